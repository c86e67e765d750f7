"""Where mail goes: to the SMTP server of SMTP_URL, through aiosmtplib, or without one (`make run`'s default) into
.eml files in MAIL_DIR, which any mail program opens."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

import aiosmtplib

from shared.db import new_id
from shared.settings import Settings
from shared.state import Core

log = logging.getLogger("gossip.mail")

SMTP_TIMEOUT = 10.0  # seconds for each step of a conversation with the SMTP server


class NotSent(Exception):
    """The mail did not leave: the SMTP server refused it or could not be reached, or the file could not be written."""


class Mailer(Protocol):
    @property
    def where(self) -> str:
        """Where mail goes, for the log: never a password."""

    async def send(self, message: EmailMessage) -> None:
        """Sends one message, or raises NotSent."""


class SmtpMailer:
    def __init__(self, url: str, timeout: float = SMTP_TIMEOUT) -> None:
        parts = urlsplit(url)
        self.tls = parts.scheme == "smtps"
        self.host, self.port = parts.hostname or "", parts.port or (465 if self.tls else 25)
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.timeout = timeout

    @property
    def where(self) -> str:
        return f"{'smtps' if self.tls else 'smtp'}://{self.host}:{self.port}"

    async def send(self, message: EmailMessage) -> None:
        """smtps:// speaks TLS from the start; smtp:// upgrades with STARTTLS when the server offers it."""
        try:
            await aiosmtplib.send(
                message, hostname=self.host, port=self.port, username=self.username, password=self.password,
                use_tls=self.tls, timeout=self.timeout,
            )  # fmt: skip
        except (aiosmtplib.SMTPException, OSError) as error:
            raise NotSent(f"{self.where}: {error}") from error
        log.info("mail %r sent through %s", message["Subject"], self.where)


class FileMailer:
    """One .eml file per message, named so that they list in the order they were written."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @property
    def where(self) -> str:
        return str(self.folder)

    async def send(self, message: EmailMessage) -> None:
        path = self.folder / f"{datetime.now(UTC):%Y%m%dT%H%M%S.%f}-{new_id()[:8]}.eml"
        try:
            await asyncio.to_thread(self._write, path, message.as_bytes())
        except OSError as error:
            raise NotSent(f"{path}: {error}") from error
        log.info("mail %r written to %s", message["Subject"], path)

    def _write(self, path: Path, data: bytes) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def mailer_for(settings: Settings) -> Mailer:
    """Where the settings send mail. Mailers hold no connection, so each part that sends may make its own."""
    return SmtpMailer(settings.smtp_url) if settings.smtp_url else FileMailer(settings.mail_dir)


def announce(mailer: Mailer) -> None:
    """The log line at startup that says where mail goes."""
    how = "written as .eml files to (no SMTP_URL)" if isinstance(mailer, FileMailer) else "sent through"
    log.info("mail is %s %s", how, mailer.where)


@contextlib.asynccontextmanager
async def mailing(core: Core) -> AsyncIterator[dict[str, Any]]:
    """Where the auth process's mail goes, said once in the log at startup."""
    mailer = mailer_for(core["settings"])
    announce(mailer)
    yield {"mailer": mailer}
