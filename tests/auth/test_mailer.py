"""Where mail goes (services/auth/mailer.py): .eml files without an SMTP_URL, a real SMTP server with one."""

from __future__ import annotations

import logging
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

import pytest

from services.auth.letters import letter
from services.auth.mailer import FileMailer, NotSent, SmtpMailer, announce, mailer_for
from shared.settings import Settings
from tests.support.mail import part, smtp_server


def _letter(settings: Settings) -> EmailMessage:
    context = {"username": "rita", "link": "http://127.0.0.1:8000/email/verify?token=t"}
    return letter(settings, "rita@example.com", "Confirm your address for Gossip", "verify", context)


async def test_without_an_smtp_url_mail_is_written_as_eml_files_and_the_log_says_where(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "gossip.mail")
    mailer = mailer_for(settings)
    announce(mailer)
    assert isinstance(mailer, FileMailer) and f"to (no SMTP_URL) {settings.mail_dir}" in caplog.text
    await mailer.send(_letter(settings))
    await mailer.send(_letter(settings))
    first, second = sorted(settings.mail_dir.glob("*.eml"))
    assert str(first) in caplog.text and str(second) in caplog.text
    parsed = BytesParser(policy=policy.default).parsebytes(first.read_bytes())
    assert isinstance(parsed, EmailMessage)
    assert (parsed["To"], parsed["From"]) == ("rita@example.com", "Gossip <gossip@localhost>")
    assert "http://127.0.0.1:8000/email/verify?token=t" in part(parsed, "plain")


async def test_a_file_that_cannot_be_written_is_not_sent(settings: Settings, tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("a file where the folder would be")
    with pytest.raises(NotSent):
        await FileMailer(tmp_path / "taken").send(_letter(settings))


async def test_with_an_smtp_url_mail_goes_to_that_server(settings: Settings) -> None:
    async with smtp_server() as (url, inbox):
        mailer = mailer_for(Settings.from_env({"SECRET_KEY": "s", "SMTP_URL": url}))
        assert isinstance(mailer, SmtpMailer) and mailer.where == url
        await mailer.send(_letter(settings))
    (received,) = inbox.messages
    assert received["Subject"] == "Confirm your address for Gossip" and received["Message-ID"].endswith("@localhost>")


async def test_an_smtp_server_that_is_not_there_is_not_sent(settings: Settings) -> None:
    async with smtp_server() as (url, _):
        pass  # closed: nothing listens on its port any more
    with pytest.raises(NotSent, match=url.removeprefix("smtp://")):
        await SmtpMailer(url, timeout=2).send(_letter(settings))


def test_the_smtp_url_gives_the_host_port_credentials_and_tls() -> None:
    mailer = SmtpMailer("smtps://me%40home:p%3Ass@mail.example")
    assert (mailer.host, mailer.port, mailer.tls, mailer.username, mailer.password) == (
        "mail.example",
        465,
        True,
        "me@home",
        "p:ss",
    )
    assert mailer.where == "smtps://mail.example:465"  # never the password
    assert (SmtpMailer("smtp://mailpit:1025").port, SmtpMailer("smtp://mailpit").port) == (1025, 25)


def test_links_read_whole_in_the_raw_mail_and_a_line_past_the_limit_is_encoded(settings: Settings) -> None:
    raw = _letter(settings).as_bytes()
    assert b"\nhttp://127.0.0.1:8000/email/verify?token=t\n" in raw
    context = {"username": "r" * 1200, "link": "http://127.0.0.1:8000/email/verify?token=t"}
    long = letter(settings, "rita@example.com", "Long", "verify", context)
    assert all(len(line) <= 998 for line in long.as_bytes().splitlines())
    assert "r" * 1200 in part(BytesParser(policy=policy.default).parsebytes(long.as_bytes()), "plain")
