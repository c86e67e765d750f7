"""The notifications pages over real HTTP: what the first page shows, what it marks unread, and older pages."""

from __future__ import annotations

import re

import httpx

from services.stream.app import PAGE_SIZE, UNREAD_MAX
from shared.db import Database, next_seq
from shared.updates import COUNT_CAP
from tests.support.accounts import registered
from tests.support.updates import publish, stored_update


def listed(page: httpx.Response) -> list[tuple[int, bool]]:
    """Each item on a notifications page: its seq, and whether it is marked unread."""
    assert page.status_code == 200, page.text
    items = re.findall(r'<li data-seq="(\d+)"[^>]*class="(\w*)"', page.text)
    return [(int(seq), unread == "unread") for seq, unread in items]


async def test_only_others_updates_since_joining_are_marked_unread(server: str) -> None:
    async with registered(server, "bob") as bob:
        before = await publish(bob, "flash", "before alice joined")
        async with registered(server, "alice") as alice:
            await alice.put("/api/me/follows/flash")
            own = await publish(alice, "flash", "her own")
            news = await publish(bob, "flash", "news to alice")
            page = await alice.get("/notifications")
    assert listed(page) == [(news["seq"], True), (own["seq"], False), (before["seq"], False)]


async def published(db: Database, count: int, author: str = "bob") -> list[int]:
    """`count` flash updates by `author`, straight into MongoDB with seqs from the counter: quicker than HTTP."""
    last = await next_seq(db, count=count)
    seqs = list(range(last - count + 1, last + 1))
    await db.updates.insert_many([stored_update(seq, author=author) for seq in seqs])
    return seqs


async def test_the_first_page_lists_every_unread_update_and_continues_live(
    alice: httpx.AsyncClient, db: Database
) -> None:
    await alice.put("/api/me/follows/flash")
    seqs = await published(db, 60)
    page = await alice.get("/notifications")
    assert listed(page) == [(seq, True) for seq in reversed(seqs)]
    assert 'data-live="followed"' in page.text and 'id="older"' not in page.text


async def test_with_few_unread_the_first_page_shows_recent_ones_and_links_older_pages(
    alice: httpx.AsyncClient, db: Database
) -> None:
    await alice.put("/api/me/follows/flash")
    seqs = await published(db, 61)
    await alice.post("/api/me/read", json={"seq": seqs[-2]})
    first = await alice.get("/notifications")
    assert listed(first) == [(seqs[-1], True)] + [(seq, False) for seq in reversed(seqs[11:-1])]
    older = await alice.get(f"/notifications?before={seqs[11]}")
    assert f'href="/notifications?before={seqs[11]}"' in first.text
    assert listed(older) == [(seq, False) for seq in reversed(seqs[:11])]
    assert "data-live" not in older.text and 'id="older"' not in older.text  # static, and the last page


async def test_past_the_cap_the_oldest_unread_are_on_the_older_page_which_marks_nothing_read(
    alice: httpx.AsyncClient, db: Database
) -> None:
    await alice.put("/api/me/follows/flash")
    seqs = await published(db, UNREAD_MAX + 10)
    first = listed(await alice.get("/notifications"))
    assert first == [(seq, True) for seq in reversed(seqs[10:])]
    older = await alice.get(f"/notifications?before={seqs[10]}")
    assert listed(older) == [(seq, True) for seq in reversed(seqs[:10])]
    assert (await alice.get("/api/me")).json()["unread"] == COUNT_CAP  # UNREAD_MAX + 10: counted up to the cap


async def test_all_notifications_pages_older_updates_of_every_show(alice: httpx.AsyncClient, db: Database) -> None:
    seqs = await published(db, PAGE_SIZE + 5)
    await alice.post("/api/me/read", json={"seq": seqs[-1]})  # nothing unread: the first page is the newest 50
    first = await alice.get("/notifications/all")
    assert [seq for seq, _ in listed(first)] == list(reversed(seqs[5:]))
    older = await alice.get(f"/notifications/all?before={seqs[5]}")
    assert [seq for seq, _ in listed(older)] == list(reversed(seqs[:5]))


async def test_a_bad_before_is_refused(alice: httpx.AsyncClient) -> None:
    for before in ("abc", "-1", "9" * 20):
        assert (await alice.get(f"/notifications?before={before}")).status_code == 422


async def test_pages_show_the_current_text_marked_as_edited_and_not_what_was_retracted(
    alice: httpx.AsyncClient,
) -> None:
    edited, retracted = await publish(alice, "flash", "first text"), await publish(alice, "flash", "retracted")
    await alice.patch(f"/api/updates/{edited['seq']}", json={"text": "second text"})
    await alice.delete(f"/api/updates/{retracted['seq']}")
    page = await alice.get("/notifications/all")
    assert listed(page) == [(edited["seq"], False)]
    assert "second text" in page.text and "first text" not in page.text and 'class="edited"' in page.text


async def test_update_text_is_shown_as_text_never_as_html(alice: httpx.AsyncClient) -> None:
    await alice.put("/api/me/follows/flash")
    text = '<img src=x onerror=alert(1)> & <b>bold</b> "quoted"'
    await publish(alice, "flash", text)
    for path in ("/notifications", "/notifications/all"):
        page = (await alice.get(path)).text
        assert "&lt;img src=x onerror=alert(1)&gt; &amp; &lt;b&gt;bold&lt;/b&gt; &#34;quoted&#34;" in page, path
        assert "<img src=x" not in page and "<b>bold" not in page, path


async def test_a_page_another_site_opened_is_marked_so_and_one_of_ours_is_not(alice: httpx.AsyncClient) -> None:
    opened = await alice.get("/notifications", headers={"sec-fetch-site": "cross-site"})
    assert "data-opened-by-another-site" in opened.text
    for site in ("same-origin", "none"):  # a link of ours, or a bookmark or a typed address
        assert (
            "data-opened-by-another-site"
            not in (await alice.get("/notifications", headers={"sec-fetch-site": site})).text
        )


async def test_a_muted_show_is_left_out_of_the_badge_and_notifications_and_all_notifs_lists_it_as_read(
    server: str,
) -> None:
    async with registered(server, "bob") as bob, registered(server, "alice") as alice:
        for show in ("flash", "sherlock"):
            await alice.put(f"/api/me/follows/{show}")
        flash, sherlock = await publish(bob, "flash", "muted soon"), await publish(bob, "sherlock", "heard")
        assert 'id="unread-count" title="unread">2<' in (await alice.get("/shows")).text
        await alice.put("/api/me/preferences", json={"shows": {"flash": "muted"}})
        assert 'id="unread-count" title="unread">1<' in (await alice.get("/shows")).text
        page = await alice.get("/notifications")
        assert listed(page) == [(sherlock["seq"], True)] and "The Flash (muted)" in page.text
        assert listed(await alice.get("/notifications/all")) == [(sherlock["seq"], True), (flash["seq"], False)]
