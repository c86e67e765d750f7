"""Mail as it is written: an EmailMessage with a text part and an HTML part, both from templates in
web/templates/mail/. The HTML is autoescaped; the text part is printed as given, since a mail program shows it as
text and interprets nothing in it."""

from __future__ import annotations

from collections.abc import Mapping
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from shared.settings import ROOT, Settings

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
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = settings.mail_from
    message["To"] = to
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = make_msgid(domain=parseaddr(settings.mail_from)[1].rpartition("@")[2])
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(templates.get_template(f"{template}.txt").render(context))
    message.add_alternative(templates.get_template(f"{template}.html").render(context), subtype="html")
    return message
