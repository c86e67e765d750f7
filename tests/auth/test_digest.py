"""The digest job (services/auth/digest.py) with its clock injected, against the real database and a real SMTP
server on loopback: when it goes, to whom, once, what it says, and what happens when the server refuses it."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.auth import digest
from services.auth.accounts import user_document
from services.auth.digest import send_digests
from services.auth.mailer import SmtpMailer
from shared.db import Database, ensure_indexes, seed_shows, utcnow
from shared.settings import Settings
from tests.support.catalogue import HOSTILE_SHOWS
from tests.support.mail import Inbox, part, smtp_server
from tests.support.updates import personal_update, stored_update

PARIS = "Europe/Paris"  # UTC+1 in December: a digest hour of 8 is 07:00 UTC
DAY = datetime(2026, 12, 7, tzinfo=UTC)


def at(hours: float, days: int = 0) -> datetime:
    return DAY + timedelta(days=days, hours=hours)


Mailing = tuple[Database, SmtpMailer, Settings, Inbox]


@pytest.fixture
async def mailing(db: Database, settings: Settings) -> AsyncIterator[Mailing]:
    await seed_shows(db)  # a digest titles its updates from the catalogue, as every reader does
    async with smtp_server() as (url, inbox):
        yield db, SmtpMailer(url), settings, inbox


async def reader(
    db: Database, name: str = "rita", *, verified: bool = True, shows: dict[str, str] | None = None, **more: Any
) -> dict[str, Any]:
    """A user who follows flash and sherlock, flash at the digest level, in Paris, with an address."""
    user = user_document(name, "not-a-hash", follows=["flash", "sherlock"])
    email = {"address": f"{name}@example.com", "added_at": utcnow()} | ({"verified_at": utcnow()} if verified else {})
    preferences = {"shows": shows if shows is not None else {"flash": "digest"}, "time_zone": PARIS, "digest_hour": 8}
    user |= {"email": email, "preferences": preferences, **more}
    await db.users.insert_one(user)
    return user


async def updates(db: Database, *made: tuple[str, str, str]) -> None:
    """(show, text, author) each, seq from 1 in order, published at 06:00 UTC that day."""
    await db.updates.insert_many([stored_update(seq, show, text, author, at(6)) for seq, (show, text, author) in
                                  enumerate(made, start=1)])  # fmt: skip


async def test_the_digest_goes_at_the_digest_hour_on_the_users_clock_once_a_day(mailing: Mailing) -> None:
    db, mailer, settings, inbox = mailing
    await reader(db)
    await updates(db, ("flash", "Barry runs", "bob"))
    assert await send_digests(db, mailer, settings, at(6 + 59 / 60)) == 0  # 07:59 in Paris
    assert inbox.messages == []
    assert await send_digests(db, mailer, settings, at(7)) == 1  # 08:00 in Paris
    assert await send_digests(db, mailer, settings, at(7 + 1 / 60)) == 0
    assert await send_digests(db, mailer, settings, at(22.5)) == 0  # 23:30: still the same day there
    assert await send_digests(db, mailer, settings, at(23.5)) == 0  # 00:30 the next day: before its hour
    assert await send_digests(db, mailer, settings, at(7, days=1)) == 1  # still unread: the next day's digest
    assert [message["To"] for message in inbox.messages] == ["rita@example.com"] * 2
    sends = await db.sends.find({}, {"_id": 1, "status": 1}).sort("_id").to_list()
    user_id = (await db.users.find_one({"username": "rita"}))["_id"]
    assert sends == [{"_id": f"digest:{user_id}:2026-12-07", "status": "sent"},
                     {"_id": f"digest:{user_id}:2026-12-08", "status": "sent"}]  # fmt: skip


async def test_a_bad_catalogue_document_holds_up_no_digest_of_a_good_show(mailing: Mailing) -> None:
    """Show documents written straight into MongoDB that are no usable show are left out of the catalogue the
    digest titles its updates from: the good show's digest goes as ever."""
    db, mailer, settings, inbox = mailing
    await db.shows.insert_many(HOSTILE_SHOWS)
    await reader(db)
    await updates(db, ("flash", "Barry runs", "bob"))
    assert await send_digests(db, mailer, settings, at(7)) == 1
    [mail] = inbox.messages
    assert mail["Subject"] == "Gossip: 1 unread update" and "The Flash" in part(mail, "plain")


async def test_a_send_record_is_kept_sends_keep_days_of_real_time_by_an_expiry_index(mailing: Mailing) -> None:
    """The TTL monitor runs on the real clock, so the expiry is from the real time, whatever the job's clock says;
    `sends` would otherwise grow by a record a user a day for ever."""
    db, mailer, settings, _ = mailing
    kept = dataclasses.replace(settings, sends_keep_days=3)
    await ensure_indexes(db)
    await reader(db)
    await updates(db, ("flash", "Barry runs", "bob"))
    before = utcnow()
    assert await send_digests(db, mailer, kept, at(7, days=-400)) == 1  # a clock far behind the real one
    record = await db.sends.find_one({})
    assert isinstance(record["expires_at"], datetime)  # a date, which a TTL index needs, not text
    assert before + timedelta(days=3) <= record["expires_at"] <= utcnow() + timedelta(days=3)
    indexes = [index async for index in await db.sends.list_indexes()]
    assert any(index["key"] == {"expires_at": 1} for index in indexes)  # TTL on MongoDB: tests/shared/test_expiry.py


async def test_a_missed_hour_sends_at_the_first_look_later_that_day(mailing: Mailing) -> None:
    db, mailer, settings, inbox = mailing
    await reader(db)
    await updates(db, ("flash", "Barry runs", "bob"))
    assert await send_digests(db, mailer, settings, at(13)) == 1  # 14:00 in Paris: the scheduler was down at eight
    assert await send_digests(db, mailer, settings, at(13.5)) == 0
    assert len(inbox.messages) == 1


@pytest.mark.parametrize(
    ("case", "more", "made"),
    [
        ("nothing unread", {"last_read_seq": 1}, [("flash", "read already", "bob")]),
        ("only their own", {}, [("flash", "mine", "rita")]),
        ("only live shows", {}, [("sherlock", "not for the digest", "bob")]),
        ("not followed", {}, [("suits", "not followed", "bob")]),
        ("not verified", {"verified": False}, [("flash", "Barry runs", "bob")]),
        ("unsubscribed", {"digest_off": True}, [("flash", "Barry runs", "bob")]),
        ("no digest show", {"shows": {}}, [("flash", "Barry runs", "bob")]),
    ],
)  # fmt: skip
async def test_no_digest_goes_when(
    mailing: Mailing, case: str, more: dict[str, Any], made: list[tuple[str, str, str]]
) -> None:
    db, mailer, settings, inbox = mailing
    await reader(db, **more)
    await updates(db, *made)
    assert await send_digests(db, mailer, settings, at(7)) == 0, case
    assert inbox.messages == [] and await db.sends.count_documents({}) == 0


async def test_a_personal_topic_at_the_digest_level_is_mailed_though_no_show_is(mailing: Mailing) -> None:
    db, mailer, settings, inbox = mailing
    rita = await reader(db, shows={"orders": "digest"})
    await updates(db, ("flash", "Barry runs", "bob"))  # flash is live now
    await db.updates.insert_many(
        [
            personal_update(2, rita["_id"], "Your order of a cup is shipped.", at(6)),
            personal_update(3, "someone_else", "Your order of a teapot is placed.", at(6)),
        ]
    )
    assert await send_digests(db, mailer, settings, at(7)) == 1
    (mail,) = inbox.messages
    text = part(mail, "plain")
    assert mail["Subject"] == "Gossip: 1 unread update"
    assert "Your order of a cup is shipped." in text and "Your orders - orders" in text
    assert "teapot" not in text and "Barry runs" not in text


@pytest.mark.parametrize("level", ["push", "live", "muted"])
async def test_a_personal_topic_at_another_level_is_not_in_the_digest(mailing: Mailing, level: str) -> None:
    db, mailer, settings, inbox = mailing
    rita = await reader(db, shows={"flash": "digest", "orders": level})
    await updates(db, ("flash", "Barry runs", "bob"))
    await db.updates.insert_one(personal_update(2, rita["_id"], "Your order of a cup is shipped.", at(6)))
    assert await send_digests(db, mailer, settings, at(7)) == 1
    text = part(inbox.messages[0], "plain")
    assert "Barry runs" in text and "cup" not in text


async def test_a_personal_update_whose_topic_is_no_slug_is_in_no_digest(mailing: Mailing) -> None:
    """Another program wrote her personal updates with topics that are no slugs, and her preferences by hand with a
    digest level for each (the API refuses them): none of them is listed, her orders are, and nothing breaks."""
    db, mailer, settings, inbox = mailing
    topics = ["a.b", "$x", "x.$y", "z" * 500, "émission", "<script>alert(1)</script>"]
    rita = await reader(db, shows={"orders": "digest", **dict.fromkeys(topics, "digest")})
    hostile = [{**personal_update(seq, rita["_id"], "hostile", at(6)), "show": t} for seq, t in enumerate(topics, 2)]
    await db.updates.insert_many([personal_update(1, rita["_id"], "Your order of a cup is shipped.", at(6)), *hostile])
    assert await send_digests(db, mailer, settings, at(7)) == 1
    (mail,) = inbox.messages
    text, html = part(mail, "plain"), part(mail, "html")
    assert mail["Subject"] == "Gossip: 1 unread update" and "Your order of a cup is shipped." in text
    assert "hostile" not in text + html and "alert" not in text + html


async def test_the_digest_lists_the_newest_unread_in_both_parts_escaped_in_html(mailing: Mailing) -> None:
    db, mailer, settings, inbox = mailing
    await reader(db)
    made = [("flash", f"update {n}", "bob") for n in range(1, digest.MOST + 3)]
    await updates(
        db,
        *made[1:],
        ("flash", "{{ 7 * 7 }} {% if x %}", "bob"),
        ("flash", 'The <b>fastest</b> man & "friends"', "cisco"),
        ("sherlock", "not here", "bob"),
    )
    assert await send_digests(db, mailer, settings, at(7)) == 1
    (mail,) = inbox.messages
    total = digest.MOST + 3
    assert mail["Subject"] == f"Gossip: {total} unread updates" and mail["From"] == settings.mail_from
    text, html = part(mail, "plain"), part(mail, "html")
    assert 'The <b>fastest</b> man & "friends"' in text and "The Flash - cisco" in text
    assert "The &lt;b&gt;fastest&lt;/b&gt; man &amp; &#34;friends&#34;" in html and "<b>fastest" not in html
    assert "and 3 more" in text and "and 3 more" in html  # 53 unread, the 50 newest listed
    assert "{{ 7 * 7 }} {% if x %}" in text and "{{ 7 * 7 }} {% if x %}" in html  # shown, never run as a template
    assert text.index("fastest") < text.index("{{ 7") < text.index("update 52") < text.index("update 5\n")
    assert "update 4\n" not in text
    assert "not here" not in text
    assert "Mon 07 Dec 07:00" in text and "(times in Europe/Paris)" in text  # 06:00 UTC, on the reader's clock
    assert f"{settings.public_url}/notifications" in text and mail["List-Unsubscribe"].strip("<>") in text


async def test_a_followed_show_gone_from_the_catalogue_is_neither_listed_nor_counted(mailing: Mailing) -> None:
    """Its updates are no show's to list (as on the pages), so they take no place among the newest listed and are
    not in the count: the good show's are listed and counted in full."""
    db, mailer, settings, inbox = mailing
    await reader(db, shows={"flash": "digest", "sherlock": "digest"})
    flash = [("flash", f"update {n}", "bob") for n in range(1, digest.MOST + 3)]
    await updates(db, *flash, *[("sherlock", f"gone {n}", "bob") for n in range(3)])
    await db.shows.delete_one({"_id": "sherlock"})
    assert await send_digests(db, mailer, settings, at(7)) == 1
    (mail,) = inbox.messages
    assert mail["Subject"] == f"Gossip: {digest.MOST + 2} unread updates"
    text = part(mail, "plain")
    assert "update 3\n" in text and "update 2\n" not in text and "and 2 more" in text and "gone" not in text


async def test_a_refused_send_is_retried_later_and_only_then(mailing: Mailing) -> None:
    db, mailer, settings, inbox = mailing
    await reader(db)
    await updates(db, ("flash", "Barry runs", "bob"))
    inbox.refuse = 1
    assert await send_digests(db, mailer, settings, at(7)) == 0
    record = await db.sends.find_one({})
    assert record is not None and (record["status"], record["attempts"]) == ("failed", 1)
    assert await send_digests(db, mailer, settings, at(7) + timedelta(seconds=digest.RETRY_AFTER - 1)) == 0
    assert inbox.refused == 1  # not tried again before its time
    assert await send_digests(db, mailer, settings, at(7) + timedelta(seconds=digest.RETRY_AFTER)) == 1
    assert await send_digests(db, mailer, settings, at(8)) == 0
    assert len(inbox.messages) == 1 and (await db.sends.find_one({}))["status"] == "sent"


async def test_a_send_refused_every_time_is_given_up(mailing: Mailing) -> None:
    db, mailer, settings, inbox = mailing
    await reader(db)
    await updates(db, ("flash", "Barry runs", "bob"))
    inbox.refuse = 100
    for hour in range(7, 24):  # hours apart: every retry is due
        await send_digests(db, mailer, settings, at(hour))
    assert inbox.refused == digest.MAX_ATTEMPTS
    assert (await db.sends.find_one({}))["status"] == "gave up"


async def test_two_schedulers_at_once_send_each_digest_once(mailing: Mailing) -> None:
    db, mailer, settings, inbox = mailing
    for name in ("rita", "sam", "tess"):
        await reader(db, name)
    await updates(db, ("flash", "Barry runs", "bob"))
    sent = await asyncio.gather(*(send_digests(db, mailer, settings, at(7)) for _ in range(3)))
    assert sum(sent) == 3
    assert sorted(message["To"] for message in inbox.messages) == [f"{n}@example.com" for n in ("rita", "sam", "tess")]


async def test_each_user_gets_it_at_their_own_hour(mailing: Mailing) -> None:
    db, mailer, settings, inbox = mailing
    await reader(db, "rita")
    tokyo = await reader(db, "kenji")
    await db.users.update_one({"_id": tokyo["_id"]}, {"$set": {"preferences.time_zone": "Asia/Tokyo"}})
    await updates(db, ("flash", "Barry runs", "bob"))
    assert await send_digests(db, mailer, settings, at(-1)) == 1  # 08:00 in Tokyo, 00:00 in Paris
    assert await send_digests(db, mailer, settings, at(7)) == 1  # 08:00 in Paris, 16:00 in Tokyo: sent there today
    assert [message["To"] for message in inbox.messages] == ["kenji@example.com", "rita@example.com"]


async def test_the_scheduler_job_sends_through_the_settings_mail_server(mailing: Mailing) -> None:
    db, mailer, settings, inbox = mailing
    await reader(db)
    await updates(db, ("flash", "Barry runs", "bob"))
    core = {"db": db, "settings": dataclasses.replace(settings, smtp_url=mailer.where)}
    job = digest.digest_job(core)  # the job reads nothing else of the core
    await job(at(6))
    assert inbox.messages == []
    await job(at(7))
    await job(at(7.5))
    assert [message["To"] for message in inbox.messages] == ["rita@example.com"]
