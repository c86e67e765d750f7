"""The API page in real headless Chromium: Swagger UI from our own origin renders every path of the document."""

from __future__ import annotations

from urllib.parse import urlsplit

from playwright.async_api import Browser, expect

from tests.support.browsers import signed_in


async def test_the_api_page_lists_every_path_and_loads_nothing_from_elsewhere(browser: Browser, server: str) -> None:
    context = await browser.new_context(base_url=server)
    paths = (await (await context.request.get("/api/openapi.json")).json())["paths"]
    page = await context.new_page()
    origins, refused = set(), []
    page.on("request", lambda request: origins.add(urlsplit(request.url).netloc))
    page.on("console", lambda message: refused.append(message.text) if "Content Security Policy" in message.text else 0)
    await page.goto("/api")
    await expect(page.locator(".opblock").first).to_be_visible()
    shown = await page.locator(".opblock-summary-path").evaluate_all("nodes => nodes.map(node => node.dataset.path)")
    operations = sum(len([key for key in path if key != "parameters"]) for path in paths.values())
    assert set(shown) == set(paths) and len(shown) == operations
    assert origins == {urlsplit(server).netloc}
    assert refused == []
    await context.close()


async def test_the_footer_and_the_home_pages_token_section_lead_to_the_api_page(browser: Browser, server: str) -> None:
    context = await signed_in(browser, server, "ann")
    page = await context.new_page()
    for link in (page.locator("footer").get_by_role("link", name="API", exact=True),
                 page.locator("#tokens").get_by_role("link", name="API page")):  # fmt: skip
        await page.goto("/")
        await link.click()
        await expect(page).to_have_url(f"{server}/api")
    await context.close()
