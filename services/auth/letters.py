"""Mail as it is written: an EmailMessage with a text part and an HTML part, both from templates in
web/templates/mail/. The HTML is autoescaped; the text part is printed as given, since a mail program shows it as
text and interprets nothing in it."""

from __future__ import annotations

from collections.abc import Mapping
from email import policy
from email.headerregistry import BaseHeader, HeaderRegistry, UnstructuredHeader
from email.message import EmailMessage
from email.policy import Policy
from email.utils import formatdate, make_msgid, parseaddr
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from shared.settings import ROOT, Settings

LINE_MAX = 998  # octets in a line of mail, by RFC 5322


class OneLine(UnstructuredHeader, BaseHeader):
    """A header written as given, on one line: a link in angle brackets (List-Unsubscribe) has no space to fold at,
    and Python would write a long one as encoded words, which a mail program's one-click (RFC 8058) reads as they
    are, not as the link. The header object itself folds, so the policy of whoever flattens the message (aiosmtplib
    uses its own) keeps it whole. Its values are Gossip's own links, far shorter than LINE_MAX."""

    def fold(self, *, policy: Policy) -> str:
        return f"{self.name}: {self}{policy.linesep}"


_headers = HeaderRegistry()
_headers.map_to_type("list-unsubscribe", OneLine)
POLICY = policy.default.clone(header_factory=_headers)
templates = Environment(
    loader=FileSystemLoader(ROOT / "web" / "templates" / "mail"),
    autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False, default=False),
    undefined=StrictUndefined,  # a name missing from the context is a bug, not an empty line in someone's mail
    keep_trailing_newline=True,
)


def letter(
    settings: Settings, to: str, subject: str, template: str, context: Mapping[str, Any],
    headers: Mapping[str, str] | None = None,
) -> EmailMessage:  # fmt: skip
    """`template` names the pair `<template>.txt` and `<template>.html`. `to` is an address checked when it was given,
    so it can carry no line break into the headers."""
    message = EmailMessage(policy=POLICY)
    message["Subject"] = subject
    message["From"] = settings.mail_from
    message["To"] = to
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = make_msgid(domain=parseaddr(settings.mail_from)[1].rpartition("@")[2])
    for name, value in (headers or {}).items():
        message[name] = value
    text, html = (templates.get_template(f"{template}.{kind}").render(context) for kind in ("txt", "html"))
    message.set_content(text, cte=_encoding(text))
    message.add_alternative(html, subtype="html", cte=_encoding(html))
    return message


def _encoding(body: str) -> str:
    """As written, so that a link reads whole in the .eml file or the raw mail (every SMTP server of today takes
    8BITMIME); quoted-printable only for a line past SMTP's limit of 998 octets."""
    longest = max((len(line.encode()) for line in body.splitlines()), default=0)
    return "8bit" if longest <= LINE_MAX else "quoted-printable"
