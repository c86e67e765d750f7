"""Every page through axe-core in real headless Chromium, at desktop and phone sizes: no serious or critical
violation, signed out and signed in. Two WCAG checks axe-core does not make are made beside it: each page's title
names the page before the site, and the border of every text field stands out 3:1 from what is around it."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, expect

from shared.settings import Settings
from tests.support.browsers import signed_in
from tests.support.servers import serving

AXE = Path(__file__).parents[2] / ".node/node_modules/axe-core/axe.min.js"  # `make test` installs it from npm
SIZES = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 375, "height": 740}}
# The mailed links' pages and the error page as a stale or mistyped link shows them.
SIGNED_OUT = ("/", "/login", "/register", "/api", "/email/verify?token=x", "/unsubscribe?token=x", "/no-such-page")
SIGNED_IN = ("/", "/shows", "/notifications", "/notifications/all", "/publish", "/preferences", "/api", "/admin")
TITLE = re.compile(r"(?!Gossip ·)[^·]+ · Gossip")  # WCAG 2.4.2: the page's own name, then the site's (not twice)
SEVERE = {"serious", "critical"}
# Swagger UI's own markup on /api, which no stylesheet or template of ours can change: its method badges (white on
# its light green, blue, orange) and version stamp are below 4.5:1, and each operation's summary button holds the
# copy-link button. These rules are waived inside #swagger-ui only; everything else there, and the rest of the page,
# is checked.
SWAGGER_UI_OWN = ["color-contrast", "nested-interactive"]
RUN = """async waived => (await axe.run()).violations.map(violation => ({...violation, nodes: violation.nodes.filter(
  node => !(waived.includes(violation.id) && document.querySelector(node.target[0])?.closest("#swagger-ui")))}))"""


# WCAG 1.4.11: a text field's border against its own background and its surroundings' (axe-core checks text only).
FAINT_BORDERS = """() => {
  const rgb = (color) => color.match(/[\\d.]+/g).map(Number);
  const luminance = ([r, g, b]) => [r, g, b].map((c) => c / 255)
    .map((c) => (c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4))
    .reduce((sum, c, i) => sum + c * [0.2126, 0.7152, 0.0722][i], 0);
  const ratio = (a, b) => (Math.max(luminance(a), luminance(b)) + 0.05) / (Math.min(luminance(a), luminance(b)) + 0.05);
  const backdrop = (node) => {
    for (let at = node; at; at = at.parentElement) {
      const color = rgb(getComputedStyle(at).backgroundColor);
      if (color.length < 4 || color[3] > 0) return color;
    }
    return [255, 255, 255];
  };
  const fields = "input:not([type=hidden], [type=checkbox], [type=radio], [type=submit]), select, textarea";
  return [...document.querySelectorAll(fields)].filter((field) => field.checkVisibility()).flatMap((field) => {
    const border = rgb(getComputedStyle(field).borderTopColor);
    const worst = Math.min(ratio(border, backdrop(field)), ratio(border, backdrop(field.parentElement)));
    return worst < 3 ? [`${field.name || field.id}: ${worst.toFixed(2)}:1`] : [];
  });
}"""


@pytest.fixture
def site(settings: Settings) -> Iterator[str]:
    """ada, who signs in below, is an operator: the console is a page too."""
    with serving(replace(settings, admin_users=("ada",))) as url:
        yield url


def axe_script() -> Path:
    """axe-core's browser bundle: skipped where npm did not install it, a failure in CI."""
    if not AXE.exists() and os.environ.get("CI"):
        pytest.fail(f"CI runs without {AXE}: `make test` should have installed axe-core with npm")
    if not AXE.exists():
        pytest.skip(f"axe-core is not installed at {AXE} (`make test` installs it where npm is)")
    return AXE


async def findings(page: Page, path: str) -> list[str]:
    """axe-core's serious and critical findings on the page at `path`, once it has settled, a line per element,
    then a wrong title and each faint border. axe-core is inlined by Playwright, which the page's CSP (script-src
    'self') allows only with bypass_csp."""
    await page.goto(path)
    if path == "/api":
        await expect(page.locator(".opblock").first).to_be_visible()
    if await page.locator("#status").count():
        await expect(page.locator("#status")).to_have_text("live")
    await page.add_script_tag(path=axe_script())
    violations: list[dict[str, Any]] = await page.evaluate(RUN, SWAGGER_UI_OWN)
    found = [
        f"{path}: {violation['id']} ({violation['impact']}) on {[node['target'] for node in violation['nodes']]}: "
        + violation["nodes"][0]["failureSummary"].replace("\n", " ")
        for violation in violations
        if violation["impact"] in SEVERE and violation["nodes"]
    ]
    if not TITLE.fullmatch(title := await page.title()):
        found.append(f"{path}: the title {title!r} does not name the page, then Gossip")
    return found + [f"{path}: a faint border on {field}" for field in await page.evaluate(FAINT_BORDERS)]


@pytest.mark.parametrize("size", SIZES)
async def test_no_page_has_a_serious_or_critical_violation(browser: Browser, site: str, size: str) -> None:
    axe_script()
    found = []
    anonymous = await browser.new_context(base_url=site, viewport=SIZES[size], bypass_csp=True)
    page = await anonymous.new_page()
    for path in SIGNED_OUT:
        found += await findings(page, path)
    member = await signed_in(browser, site, "ada", viewport=SIZES[size], bypass_csp=True)
    page = await member.new_page()
    for path in SIGNED_IN:
        found += await findings(page, path)
    assert found == [], "\n".join(found)
    await anonymous.close()
    await member.close()
