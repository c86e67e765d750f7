"""The email address (services/auth/addresses.py) over HTTP: given, checked through the link mailed to a real SMTP
server on loopback and followed like a person would, changed, removed, throttled; and the digest's one-click
unsubscribe link followed the same way."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from services.auth import links
from services.auth.digest import send_digests
from services.auth.mailer import SmtpMailer
from shared.db import Database
from shared.settings import Settings
from tests.support.accounts import csrf_of, json_error, registered
from tests.support.http import async_client
from tests.support.mail import Inbox, csrf_in, follow, link, mailing_server, part, smtp_server
from tests.support.updates import publish
from tests.support.waiting import wait_until

Served = tuple[str, Settings, Inbox]


@pytest.fixture
async def served(settings: Settings) -> AsyncIterator[Served]:
    async with smtp_server() as (smtp_url, inbox):
        with mailing_server(settings, smtp_url, verification_mails=2) as (url, running):
            yield url, running, inbox


@pytest.fixture
async def alice(served: Served) -> AsyncIterator[httpx.AsyncClient]:
    async with registered(served[0], "alice") as http:
        yield http


async def _checked(alice: httpx.AsyncClient, inbox: Inbox, address: str) -> str:
    """Gives the address and returns the link mailed to it."""
    before = len(inbox.to(address))
    response = await alice.put("/api/me/email", json={"email": address})
    assert response.status_code == 200, response.text
    await wait_until(lambda: len(inbox.to(address)) > before)
    return link(inbox.to(address)[-1], links.VERIFY_PATH)


async def test_an_address_is_verified_by_following_the_link_mailed_to_it(
    served: Served, alice: httpx.AsyncClient, db: Database
) -> None:
    url, _, inbox = served
    assert (await alice.get("/api/me/email")).json() == {"email": None, "verified": False, "digest": True}
    response = await alice.put("/api/me/email", json={"email": " Alice@EXAMPLE.com "})
    assert response.json() == {"email": "Alice@example.com", "verified": False, "digest": True}
    await wait_until(lambda: inbox.to("Alice@example.com"))
    (mail,) = inbox.messages
    assert mail["Subject"] == "Confirm your address for Gossip" and mail["From"] == "Gossip <gossip@localhost>"
    verify = link(mail, links.VERIFY_PATH)
    assert verify.startswith(f"{url}/email/verify?token=") and verify in part(mail, "html")
    async with async_client(timeout=10) as stranger:  # another device, not signed in
        page = await follow(stranger, verify)
        assert page.status_code == 200 and "Your address is verified" in page.text
        again = await follow(stranger, verify)
        assert again.status_code == 200 and "verified already" in again.text
    assert (await alice.get("/api/me/email")).json() == {"email": "Alice@example.com", "verified": True, "digest": True}
    stored = (await db.users.find_one({"username": "alice"}))["email"]
    assert isinstance(stored["added_at"], datetime) and isinstance(stored["verified_at"], datetime)  # dates, not text
    same = await alice.put("/api/me/email", json={"email": "alice@example.com".replace("alice", "Alice")})
    assert same.json()["verified"] is True and len(inbox.messages) == 1  # the same verified address: nothing mailed


async def test_opening_the_link_only_asks_and_its_button_needs_the_pages_csrf_token(
    served: Served, alice: httpx.AsyncClient
) -> None:
    """Mail programs' link scanners open every link in a mail: opening it must verify nothing."""
    verify = await _checked(alice, served[2], "scanned@example.com")
    async with async_client(timeout=10) as scanner:
        page = await scanner.get(verify)
        assert page.status_code == 200 and 'id="verify"' in page.text and "verified" not in page.text.lower()
        assert (await scanner.head(verify)).status_code == 200
        forged = await scanner.post(verify, data={"csrf_token": "forged"})
        assert forged.status_code == 403
        assert (await alice.get("/api/me/email")).json()["verified"] is False
        done = await scanner.post(verify, data={"csrf_token": csrf_in(page)})
        assert done.status_code == 200 and "Your address is verified" in done.text
    assert (await alice.get("/api/me/email")).json()["verified"] is True


@pytest.mark.parametrize(
    "address",
    ["", "not-an-address", "two@@example.com", "a@b", "x" * 250 + "@example.com", " " * 250 + "padded@example.com"],
)
async def test_what_is_not_an_address_is_422_naming_the_field(alice: httpx.AsyncClient, address: str) -> None:
    response = await alice.put("/api/me/email", json={"email": address})
    status, error, fields = json_error(response)
    assert (status, error, list(fields)) == (422, "invalid", ["email"])
    assert (await alice.get("/api/me/email")).json()["email"] is None  # nothing half-written


async def test_email_routes_need_a_session(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/me/email")).status_code == 401
    assert (await client.put("/api/me/email", json={"email": "a@example.com"})).status_code == 401


async def test_a_changed_address_starts_unverified_and_links_to_the_old_one_stop_working(
    served: Served, alice: httpx.AsyncClient
) -> None:
    inbox = served[2]
    first = await _checked(alice, inbox, "one@example.com")
    assert "Your address is verified" in (await follow(alice, first)).text
    assert (await alice.delete("/api/me/email/digest")).status_code == 204  # as an unsubscribe would
    second = await _checked(alice, inbox, "two@example.com")
    assert (await alice.get("/api/me/email")).json() == {"email": "two@example.com", "verified": False, "digest": False}
    stale = await follow(alice, first)
    assert stale.status_code == 400 and "no longer on the account" in stale.text
    assert "Your address is verified" in (await follow(alice, second)).text  # a new address: its digest is on
    assert (await alice.get("/api/me/email")).json() == {"email": "two@example.com", "verified": True, "digest": True}
    await alice.delete("/api/me/email")
    assert (await alice.get("/api/me/email")).json()["email"] is None
    assert (await follow(alice, second)).status_code == 400  # removed: its links do nothing


def _signed_long_ago(settings: Settings, payload: list[str], age: float) -> str:
    class Then(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time() - age)

    signer = URLSafeTimedSerializer(settings.secret_key, salt=links.VERIFY_SALT, signer=Then)
    return str(signer.dumps(payload))


async def test_an_expired_or_altered_link_shows_a_clear_page(served: Served, alice: httpx.AsyncClient) -> None:
    _, settings, inbox = served
    verify = await _checked(alice, inbox, "late@example.com")
    token = parse_qs(urlsplit(verify).query)["token"][0]
    payload = URLSafeTimedSerializer(settings.secret_key, salt=links.VERIFY_SALT).loads(token)
    assert payload[1] == "late@example.com"
    expired = _signed_long_ago(settings, payload, links.VERIFY_MAX_AGE + 60)
    page = await alice.get("/email/verify", params={"token": expired})
    assert page.status_code == 400 and "expired" in page.text and page.headers["content-type"].startswith("text/html")
    fresh = _signed_long_ago(settings, payload, links.VERIFY_MAX_AGE - 60)  # a day less a minute: still good
    for broken in (token[:-2], token.replace(".", "x", 1), "", fresh + "x"):
        page = await alice.get("/email/verify", params={"token": broken})
        assert page.status_code == 400 and "not valid" in page.text
    assert (await alice.get("/api/me/email")).json()["verified"] is False
    assert (await alice.get("/email/verify", params={"token": fresh})).status_code == 200


async def test_check_mails_are_throttled_per_user(served: Served, alice: httpx.AsyncClient) -> None:
    inbox = served[2]  # two per window in this server's settings
    await _checked(alice, inbox, "bomb@example.com")
    assert (await alice.put("/api/me/email", json={"email": "bomb@example.com"})).status_code == 200  # again
    refused = await alice.put("/api/me/email", json={"email": "bomb@example.com"})
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0
    changed = await alice.put("/api/me/email", json={"email": "other@example.com"})
    assert changed.status_code == 429
    assert (await alice.get("/api/me/email")).json()["email"] == "bomb@example.com"  # refused: nothing changed
    assert len(inbox.to("bomb@example.com")) == 2 and inbox.to("other@example.com") == []


async def test_check_mails_are_throttled_per_address_across_users(served: Served, alice: httpx.AsyncClient) -> None:
    url, _, inbox = served
    await _checked(alice, inbox, "target@example.com")
    async with registered(url, "bob") as bob:
        await _checked(bob, inbox, "target@example.com")
        async with registered(url, "carol") as carol:
            refused = await carol.put("/api/me/email", json={"email": "target@example.com"})
            assert refused.status_code == 429
    assert len(inbox.to("target@example.com")) == 2


async def test_the_forms_resend_button_needs_an_unverified_address(served: Served, alice: httpx.AsyncClient) -> None:
    token, inbox = await csrf_of(alice, "/preferences"), served[2]
    none = await alice.post("/email", data={"action": "resend", "email": "", "csrf_token": token})
    assert none.status_code == 409 and "no address to check" in none.text
    link_ = await _checked(alice, inbox, "twice@example.com")
    again = await alice.post("/email", data={"action": "resend", "email": "", "csrf_token": token})
    assert again.status_code == 303 and len(inbox.to("twice@example.com")) == 2
    await follow(alice, link_)
    done = await alice.post("/email", data={"action": "resend", "email": "", "csrf_token": token})
    assert done.status_code == 409 and "verified already" in done.text and len(inbox.to("twice@example.com")) == 2


async def test_the_preferences_form_changes_the_address_with_csrf(served: Served, alice: httpx.AsyncClient) -> None:
    token = await csrf_of(alice, "/")
    saved = await alice.post("/email", data={"action": "save", "email": "form@example.com", "csrf_token": token})
    assert (saved.status_code, saved.headers["location"]) == (303, "/preferences#email")
    await wait_until(lambda: served[2].to("form@example.com"))
    page = (await alice.get("/preferences")).text
    assert "Check your mail" in page and "form@example.com" in page and "verification sent" in page
    bad = await alice.post("/email", data={"action": "save", "email": "nope", "csrf_token": token})
    assert bad.status_code == 422 and 'id="email-error"' in bad.text and "not an email address" in bad.text
    assert (await alice.get("/api/me/email")).json()["email"] == "form@example.com"
    forged = await alice.post("/email", data={"action": "remove", "email": "", "csrf_token": "forged"})
    assert forged.status_code == 403 and (await alice.get("/api/me/email")).json()["email"] == "form@example.com"
    removed = await alice.post("/email", data={"action": "remove", "email": "", "csrf_token": token})
    assert removed.status_code == 303 and (await alice.get("/api/me/email")).json()["email"] is None


async def test_the_digest_arrives_and_its_one_click_link_turns_it_off(
    served: Served, alice: httpx.AsyncClient, db: Database
) -> None:
    url, settings, inbox = served
    await follow(alice, await _checked(alice, inbox, "reader@example.com"))
    await alice.put("/api/me/follows/flash")
    assert (await alice.put("/api/me/preferences", json={"shows": {"flash": "digest"}})).status_code == 200
    async with registered(url, "bob") as bob:
        await publish(bob, "flash", "Barry is <b>fast</b> & late")
    mailer, morning = SmtpMailer(settings.smtp_url), datetime.now(UTC).replace(hour=9, minute=0)
    assert await send_digests(db, mailer, settings, morning) == 1
    digest = inbox.messages[-1]
    assert digest["To"] == "reader@example.com" and digest["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    unsubscribe = digest["List-Unsubscribe"].strip("<>")
    assert unsubscribe.startswith(f"{url}/unsubscribe?token=")
    # on one line and as written: a mail program's one-click reads the header as it is, encoded words undecoded
    assert f"\r\nList-Unsubscribe: <{unsubscribe}>\r\n".encode() in inbox.raw[-1]
    assert "Barry is <b>fast</b> & late" in part(digest, "plain")
    assert "Barry is &lt;b&gt;fast&lt;/b&gt; &amp; late" in part(digest, "html") and "<b>fast" not in part(
        digest, "html"
    )
    async with async_client(timeout=10) as mail_program:  # no cookie, no CSRF token: RFC 8058's one click
        asked = await mail_program.get(unsubscribe)
        assert asked.status_code == 200 and 'id="unsubscribe"' in asked.text
        assert (await mail_program.head(unsubscribe)).status_code == 200  # a link checker's HEAD
        assert (await alice.get("/api/me/email")).json()["digest"] is True  # looking changes nothing
        done = await mail_program.post(unsubscribe, data={"List-Unsubscribe": "One-Click"})
        assert done.status_code == 200 and "no more digests" in done.text
        tampered = await mail_program.post(unsubscribe + "x", data={"List-Unsubscribe": "One-Click"})
        assert tampered.status_code == 400
    assert (await alice.get("/api/me/email")).json() == {
        "email": "reader@example.com",
        "verified": True,
        "digest": False,
    }
    assert await send_digests(db, mailer, settings, morning + timedelta(days=1)) == 0
    assert (await alice.put("/api/me/email/digest")).status_code == 204  # back on, from Preferences
    assert await send_digests(db, mailer, settings, morning + timedelta(days=1)) == 1
    export = (await alice.get("/api/me/export")).json()  # the user's own data: the address and what was sent
    assert export["user"]["email"]["address"] == "reader@example.com" and "digest_off" not in export["user"]
    assert sorted(send["status"] for send in export["sends"]) == ["sent", "sent"]


async def test_a_check_that_cannot_be_mailed_is_a_503_and_can_be_asked_for_again(settings: Settings) -> None:
    async with smtp_server() as (gone, _):
        pass  # closed: nothing listens there any more
    with mailing_server(settings, gone) as (url, _):
        async with registered(url, "dana") as dana:
            response = await dana.put("/api/me/email", json={"email": "dana@example.com"})
            assert json_error(response)[:2] == (503, "not_sent") and "again" in response.json()["detail"]
            assert (await dana.get("/api/me/email")).json()["verified"] is False
            again = await dana.put("/api/me/email", json={"email": "dana@example.com"})
            assert json_error(again)[:2] == (503, "not_sent")


async def test_an_unsubscribe_link_for_an_address_no_longer_held_changes_nothing(
    served: Served, alice: httpx.AsyncClient, db: Database
) -> None:
    url, settings, inbox = served
    await follow(alice, await _checked(alice, inbox, "new@example.com"))
    user_id = (await db.users.find_one({"username": "alice"}))["_id"]
    old = links.unsubscribe_link(settings, user_id, "old@example.com")
    assert old.startswith(f"{url}/unsubscribe?token=")
    async with async_client(timeout=10) as mail_program:
        done = await mail_program.post(old, data={"List-Unsubscribe": "One-Click"})
        assert done.status_code == 200 and "no longer gets mail from Gossip" in done.text
        assert (await alice.get("/api/me/email")).json()["digest"] is True
        current = await mail_program.post(links.unsubscribe_link(settings, user_id, "new@example.com"))
        assert current.status_code == 200 and (await alice.get("/api/me/email")).json()["digest"] is False
