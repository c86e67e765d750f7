"""Shows over real HTTP: following, presence, read marks and unread counts."""

from __future__ import annotations

import re

import httpx

from shared.db import Database
from tests.support.accounts import csrf_of, json_error, registered, user_id
from tests.support.sse import events
from tests.support.updates import addressed, publish
from tests.support.waiting import wait_until


async def test_follow_and_unfollow_are_idempotent(alice: httpx.AsyncClient) -> None:
    for _ in range(2):
        assert (await alice.put("/api/me/follows/flash")).status_code == 204
    assert (await alice.get("/api/me")).json()["follows"] == ["flash"]
    shows = {show["slug"]: show["followed"] for show in (await alice.get("/api/shows")).json()}
    assert shows == {
        "suits": False, "flash": True, "game_of_thrones": False,
        "impractical_jokers": False, "gossip_girl": False, "sherlock": False,
    }  # fmt: skip
    for _ in range(2):
        assert (await alice.delete("/api/me/follows/flash")).status_code == 204
    assert (await alice.get("/api/me")).json()["follows"] == []


async def test_unfollowing_a_show_drops_its_level_in_the_same_write_on_the_api_and_the_page(
    alice: httpx.AsyncClient, db: Database
) -> None:
    """A show left at push or digest after its unfollow made its user due a push or a digest for nothing, and came
    back at that level when followed again. A personal topic is never followed: its level stays."""
    alice_id = await user_id(db, "alice")
    await addressed(db, alice_id, "Your order of a cup is shipped.")
    for slug in ("sherlock", "flash"):
        assert (await alice.put(f"/api/me/follows/{slug}")).status_code == 204
    levels = {"sherlock": "push", "flash": "digest", "orders": "muted"}
    assert (await alice.put("/api/me/preferences", json={"shows": levels})).status_code == 200
    assert (await alice.delete("/api/me/follows/sherlock")).status_code == 204
    stored = await db.users.find_one({"_id": alice_id})
    assert stored is not None and stored["follows"] == ["flash"]
    assert stored["preferences"]["shows"] == {"flash": "digest", "orders": "muted"}
    token = await csrf_of(alice, "/shows")
    unfollowed = await alice.post("/shows", data={"show": "flash", "action": "unfollow", "csrf_token": token})
    assert unfollowed.status_code == 303
    assert (await alice.get("/api/me/preferences")).json()["shows"] == {"orders": "muted"}
    assert (await alice.put("/api/me/follows/sherlock")).status_code == 204
    assert (await alice.get("/api/me/preferences")).json()["shows"] == {"orders": "muted"}  # sherlock: live


async def test_presence_counts_the_open_feeds_people_and_knows_no_unknown_show(alice: httpx.AsyncClient) -> None:
    assert (await alice.put("/api/me/follows/flash")).status_code == 204
    async with events(alice, "/events"):
        assert await wait_until(lambda: _watching(alice, "flash", 1), timeout=12)  # within a report interval (3 s)
        shows = {show["slug"]: show["watching"] for show in (await alice.get("/api/shows")).json()}
        assert (shows["flash"], shows["sherlock"]) == (1, 0)
        response = await alice.get("/api/shows/no_such_show/presence")
        assert json_error(response)[:2] == (404, "not_found")


async def _watching(http: httpx.AsyncClient, slug: str, count: int) -> bool:
    return (await http.get(f"/api/shows/{slug}/presence")).json() == {"watching": count}


async def test_following_an_unknown_show_is_404_naming_every_show(alice: httpx.AsyncClient) -> None:
    """A script that guessed a slug learns the right ones from the answer."""
    response = await alice.put("/api/me/follows/no_such_show")
    slugs = sorted(show["slug"] for show in (await alice.get("/api/shows")).json())
    assert json_error(response) == (404, "not_found", {"slug": "one of " + ", ".join(slugs)})
    assert response.json()["detail"] == f"There is no show 'no_such_show': a show is one of {', '.join(slugs)}."
    assert (await alice.delete("/api/me/follows/no_such_show")).status_code == 404


async def test_read_mark_only_moves_forward(alice: httpx.AsyncClient, db: Database) -> None:
    for i in range(7):
        await publish(alice, "flash", f"update {i}")
    assert (await alice.post("/api/me/read", json={"seq": 7})).status_code == 204
    assert (await alice.post("/api/me/read", json={"seq": 3})).status_code == 204
    assert (await db.users.find_one({"username": "alice"}))["last_read_seq"] == 7
    assert json_error(await alice.post("/api/me/read", json={"seq": "x"}))[0:3:2] == (
        422,
        {"seq": "a non-negative integer"},
    )


async def test_a_read_mark_for_another_user_is_403_and_marks_nothing(alice: httpx.AsyncClient, db: Database) -> None:
    """A stale tab on a shared computer, made for bob, where alice has signed in since."""
    for i in range(3):
        await publish(alice, "flash", f"update {i}")
    refused = await alice.post("/api/me/read", json={"seq": 3, "user": "bob"})
    assert json_error(refused) == (403, "other_user", {"user": "not the signed-in user"})
    assert (await db.users.find_one({"username": "alice"}))["last_read_seq"] == 0
    unnamed = await alice.post("/api/me/read", json={"seq": 3, "user": None})  # a name, if any, is a string
    assert json_error(unnamed) == (422, "invalid", {"user": "must be a string"})
    assert (await db.users.find_one({"username": "alice"}))["last_read_seq"] == 0
    assert (await alice.post("/api/me/read", json={"seq": 2, "user": "alice"})).status_code == 204
    assert (await db.users.find_one({"username": "alice"}))["last_read_seq"] == 2


async def test_read_mark_beyond_the_newest_update_is_brought_down_to_it(
    alice: httpx.AsyncClient, server: str, db: Database
) -> None:
    await alice.put("/api/me/follows/flash")
    async with registered(server, "bob") as bob:
        newest = await publish(bob, "flash", "seen")
        assert (await alice.post("/api/me/read", json={"seq": 1_000_000_000})).status_code == 204
        assert (await db.users.find_one({"username": "alice"}))["last_read_seq"] == newest["seq"]
        await publish(bob, "flash", "published after the mark")
    assert (await alice.get("/api/me")).json()["unread"] == 1


async def test_read_mark_beyond_64_bits_is_422_naming_seq(alice: httpx.AsyncClient, db: Database) -> None:
    status, _, fields = json_error(await alice.post("/api/me/read", json={"seq": 99999999999999999999}))
    assert status == 422 and "seq" in fields
    assert (await db.users.find_one({"username": "alice"}))["last_read_seq"] == 0


async def test_unread_counts_only_others_updates_published_since_joining(server: str) -> None:
    async with registered(server, "bob") as bob:
        await publish(bob, "flash", "before alice joined")
        async with registered(server, "alice") as alice:
            await alice.put("/api/me/follows/flash")
            await publish(alice, "flash", "her own")
            assert (await alice.get("/api/me")).json()["unread"] == 0
            await publish(bob, "flash", "news to alice")
            assert (await alice.get("/api/me")).json()["unread"] == 1


async def test_cookie_authenticated_api_post_must_be_json(alice: httpx.AsyncClient) -> None:
    response = await alice.post(
        "/api/me/read", content=b"seq=5", headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert json_error(response)[:2] == (415, "unsupported_media_type")
    logout = await alice.post("/api/auth/logout")  # what a cross-site form could send: no body, no content-type
    assert json_error(logout)[:2] == (415, "unsupported_media_type")
    assert "Content-Type: application/json, even with no body" in logout.json()["detail"]
    assert (await alice.get("/api/me")).status_code == 200


async def test_a_follow_of_a_show_gone_from_the_catalogue_counts_nowhere_until_the_show_is_back(
    server: str, db: Database
) -> None:
    """A show deleted, or now no usable show (a title emptied by hand), and a follow written by hand of no show at
    all: /api/me, the home page's "You follow", the pages' follows, Notifications' "Following", and the stream's
    `follows` event and unread count leave them out. The stored follows stay: the show repaired is followed again,
    its updates counted again."""
    async with registered(server, "bob") as bob, registered(server, "alice") as alice:
        alice_id = await user_id(db, "alice")
        for show in ("flash", "sherlock", "suits"):
            assert (await alice.put(f"/api/me/follows/{show}")).status_code == 204
        await publish(bob, "flash", "Barry runs")
        await publish(bob, "sherlock", "The game is on")
        await db.users.update_one({"_id": alice_id}, {"$push": {"follows": {"$each": ["gone", "a.b"]}}})
        await db.shows.update_one({"_id": "sherlock"}, {"$set": {"title": " "}})
        await db.shows.delete_one({"_id": "suits"})

        async def follows(*expected: str) -> bool:  # once the server's catalogue, read at most once a second, says so
            return bool((await alice.get("/api/me")).json()["follows"] == list(expected))

        await wait_until(lambda: follows("flash"))
        assert (await alice.get("/api/me")).json() == {"username": "alice", "follows": ["flash"], "unread": 1}
        home = (await alice.get("/")).text
        assert "You follow 1 show." in home and re.findall(r"data-follows='([^']*)'", home) == ['["flash"]']
        following = re.search(r'<p id="following">(.*?)</p>', (await alice.get("/notifications")).text, re.S)
        assert following is not None and following.group(1).split() == ["Following:", "The", "Flash"]
        async with events(alice) as feed:
            assert (await alice.put("/api/me/follows/game_of_thrones")).status_code == 204
            assert (await feed.named("follows")).json() == {"follows": ["flash", "game_of_thrones"]}
            assert (await feed.named("read")).json() == {"last_read_seq": 0, "unread": 1}
        await db.shows.update_one({"_id": "sherlock"}, {"$set": {"title": "Sherlock"}})
        await wait_until(lambda: follows("flash", "sherlock", "game_of_thrones"))
        assert (await alice.get("/api/me")).json()["unread"] == 2
        stored = await db.users.find_one({"_id": alice_id})
        assert stored is not None
        assert stored["follows"] == ["flash", "sherlock", "suits", "gone", "a.b", "game_of_thrones"]


async def test_unfollowing_a_show_keeps_the_level_of_her_personal_topic_of_the_same_name(
    alice: httpx.AsyncClient, db: Database
) -> None:
    """A personal watch rule's topic may be named as a show of the catalogue is, and a level is kept by slug: while
    she has personal updates of that topic, the level is the topic's too, and unfollowing the show leaves it. A show
    that is no topic of hers still loses its level."""
    await addressed(db, await user_id(db, "alice"), "Your parcel is out for delivery.", topic="flash")
    for show in ("flash", "sherlock"):
        assert (await alice.put(f"/api/me/follows/{show}")).status_code == 204
    levels = {"flash": "muted", "sherlock": "push"}
    assert (await alice.put("/api/me/preferences", json={"shows": levels})).status_code == 200
    assert (await alice.delete("/api/me/follows/flash")).status_code == 204
    token = await csrf_of(alice, "/shows")
    unfollowed = await alice.post("/shows", data={"show": "sherlock", "action": "unfollow", "csrf_token": token})
    assert unfollowed.status_code == 303
    assert (await alice.get("/api/me")).json()["follows"] == []
    assert (await alice.get("/api/me/preferences")).json()["shows"] == {"flash": "muted"}
    page = (await alice.get("/preferences")).text
    assert re.findall(r'name="shows\.([^"]*)"', page) == ["flash"]  # listed with her personal topics now
