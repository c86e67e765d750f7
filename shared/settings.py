"""One frozen Settings object, read from the environment once; nothing else reads os.environ."""

from __future__ import annotations

import ipaddress
import os
import re
import resource
import secrets
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from email.utils import parseaddr
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var"
SESSION_ABSOLUTE_AGE = 30 * 24 * 3600  # the default; the stream's parts that are made without settings use it too
RULES = ROOT / "gossip.toml"


def dev_secret(var: Path = VAR) -> str:
    """A per-checkout secret, generated on first run so none is ever committed."""
    path = var / "secret_key"
    if not path.exists():
        var.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(32))
    return path.read_text().strip()


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw not in ("", "0", "1", "false", "true", "no", "yes"):
        raise ValueError(f"{name} must be 1 or 0 (true or false), got {env[name]!r}")
    return raw in ("1", "true", "yes")


def _number(env: Mapping[str, str], name: str, default: float, zero: bool = False) -> float:
    """A positive number; `zero=True` also takes 0 (a knob whose 0 turns something off)."""
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {raw!r}") from None
    if not (value >= 0 if zero else value > 0) or value == float("inf"):
        raise ValueError(f"{name} must be {'zero or more' if zero else 'positive'}, got {raw!r}")
    return value


def cpus() -> int:
    """The CPUs this process may run on (its affinity), not every CPU of the host: the default for hashing."""
    return len(os.sched_getaffinity(0))


def _count(env: Mapping[str, str], name: str, default: int) -> int:
    value = _number(env, name, default)
    if not float(value).is_integer():
        raise ValueError(f"{name} must be a whole number, got {env[name]!r}")
    return int(value)


def _addresses(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """A comma-separated list of IP addresses and networks (`10.0.0.0/8`); each is checked, so a typo fails startup
    instead of trusting nobody or everybody, and a network is given as its own address (`10.0.0.5/8` as
    `10.0.0.0/8`): uvicorn takes one with host bits for a name that no client address matches."""
    found = [part.strip() for part in env.get(name, "").split(",") if part.strip()]
    try:
        return tuple(
            str(ipaddress.ip_network(part, strict=False) if "/" in part else ipaddress.ip_address(part))
            for part in found
        )
    except ValueError:
        raise ValueError(f"{name} must list IP addresses or networks, got {env[name]!r}") from None


def open_file_budget() -> int:
    """Feeds one process may hold: nine tenths of its open-file limit, the rest kept for the database's connections,
    the listening socket, log files and ordinary requests."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 100_000
    return max(1, soft - max(64, soft // 10))


def _url(env: Mapping[str, str], name: str) -> str:
    """An http(s) URL with a host, or empty."""
    raw = env.get(name, "").strip()
    if raw and not re.fullmatch(r"https?://[^/\s]+(/\S*)?", raw):
        raise ValueError(f"{name} must be an http:// or https:// URL, got {raw!r}")
    return raw


def _subject(env: Mapping[str, str], default: str) -> str:
    """Push services refuse a VAPID subject that is not a contact: a mailto: address or an https: URL."""
    subject = env.get("VAPID_SUBJECT") or default
    if not (subject.startswith("mailto:") and "@" in subject) and not subject.startswith("https://"):
        raise ValueError(f"VAPID_SUBJECT must be a mailto: address or an https:// URL, got {subject!r}")
    return subject


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 5 and 1 <= int(raw) <= 65535):
        raise ValueError(f"{name} must be a port number from 1 to 65535, got {raw!r}")
    return int(raw)


def _rules_file(env: Mapping[str, str]) -> Path | None:
    """WATCH_RULES names the rules file; empty, no rules. Unset, the checkout's gossip.toml if there is one. A file
    that is named and missing fails startup when the stream service reads it."""
    raw = env.get("WATCH_RULES")
    if raw is None:
        return RULES if RULES.exists() else None
    return Path(raw) if raw else None


def _smtp_url(env: Mapping[str, str]) -> str:
    """Empty (mail is written to MAIL_DIR), or smtp://[user:password@]host[:port], smtps:// for TLS from the start."""
    raw = env.get("SMTP_URL", "")
    if not raw:
        return ""
    try:
        url = urlsplit(raw)
        url.port  # noqa: B018 (raises ValueError for a port that is not one)
    except ValueError:
        url = None
    if url is None or url.scheme not in ("smtp", "smtps") or not url.hostname:
        raise ValueError("SMTP_URL must be smtp://[user:password@]host[:port] or smtps://..., got a value that is not")
    return raw


def _public_url(env: Mapping[str, str], port: int) -> str:
    """Where people reach the site, for the absolute links in mail: scheme and host, no trailing slash."""
    raw = env.get("PUBLIC_URL") or f"http://127.0.0.1:{port}"
    url = urlsplit(raw)
    if url.scheme not in ("http", "https") or not url.netloc or url.query or url.fragment:
        raise ValueError(
            f"PUBLIC_URL must be an http:// or https:// address such as https://gossip.example, got {raw!r}"
        )
    return raw.rstrip("/")


def _mail_from(env: Mapping[str, str], default: str) -> str:
    raw = env.get("MAIL_FROM") or default
    if "@" not in parseaddr(raw)[1] or "\n" in raw or "\r" in raw:
        raise ValueError(f"MAIL_FROM must be an address such as 'Gossip <gossip@example.com>', got {raw!r}")
    return raw


def _sends_keep_days(env: Mapping[str, str], default: float) -> float:
    """At least two days: a digest's record must outlive the user's day it is keyed by, wherever they live."""
    days = _number(env, "SENDS_KEEP_DAYS", default)
    if days < 2:
        raise ValueError(f"SENDS_KEEP_DAYS must be at least 2, got {env['SENDS_KEEP_DAYS']!r}")
    return days


def _scheduler_interval(env: Mapping[str, str], default: float) -> float:
    """At most a minute: a digest goes within a round of its hour, and a push within a round of its delay."""
    seconds = _number(env, "SCHEDULER_INTERVAL", default)
    if seconds > 60:
        raise ValueError(f"SCHEDULER_INTERVAL must be at most 60 seconds, got {env['SCHEDULER_INTERVAL']!r}")
    return seconds


@dataclass(frozen=True, slots=True)
class Settings:
    secret_key: str
    mongo_url: str = ""  # empty: `make run` starts the embedded server and fills this in
    mongo_db: str = "gossip"
    ping_interval: float = 15.0
    send_timeout: float = 10.0  # an SSE socket that stops draining for this long is dropped
    session_max_age: int = 14 * 24 * 3600  # a session unused this long ends; using it renews it
    session_absolute_age: int = SESSION_ABSOLUTE_AGE  # and every session ends this long after its login, however used
    device_max_age: int = 365 * 24 * 3600  # a browser that signed in to an account is known to it this long
    replay_limit: int = 500  # a reconnect is replayed at most this many updates; `resync` announces the rest
    history_days: float = 90.0  # updates older than this are removed; 0 keeps them all
    host: str = "127.0.0.1"
    port: int = 8000
    embedded_port: int = 27027
    embedded_data: Path = VAR / "mongo"
    log_format: str = "text"
    # Limits against abuse (docs/abuse.md). A count per window is a token bucket: that many at once, refilled evenly
    # over the window.
    hash_concurrency: int = field(default_factory=cpus)  # Argon2id hashes at once
    hash_wait: float = 1.0  # seconds a login or registration waits for a hash before a 503
    hash_memory: int = 64  # MiB each Argon2id hash takes (RFC 9106's second recommendation, argon2-cffi's default)
    login_failures_per_user_address: int = 5  # per account from one client address
    login_failures_per_user: int = 100  # per account from everywhere, its known browsers not counted
    login_failures_per_address: int = 20
    login_window: float = 60.0
    registrations_per_address: int = 20
    registration_window: float = 3600.0
    publishes_per_author: int = 60
    publish_window: float = 60.0
    tokens_per_user: int = 20
    feeds_per_user: int = 50  # per stream process
    feed_opens_per_user: int = 60  # feeds a user may open per feed_open_window, shared by every stream process
    feed_open_window: float = 60.0
    max_feeds: int = field(default_factory=open_file_budget)  # per stream process
    trusted_proxies: tuple[str, ...] = ()  # addresses whose X-Forwarded-For and -Proto are believed
    drain_timeout: float = 5.0  # seconds a body answered unread is read and discarded before the connection closes
    drain_bytes: int = 64 * 1024 * 1024  # and bytes at most; one declared larger is not drained at all
    watch_rules: Path | None = None  # the watch rules file (services/stream/rulebook.py); None: no rules
    rule_lease: float = 10.0  # seconds a stream process derives a watch rule unrenewed: a crashed one's takeover time
    otlp_endpoint: str = ""  # where traces go (OTLP over HTTP, /v1/traces appended); empty: no traces at all
    # Web Push (docs/pages.md: "Push notifications"). The key signs every push (VAPID); the subject tells push services
    # whom to contact (a mailto: or https: URL).
    vapid_private_key: str = ""  # empty: the auth service's own, generated into var/ (services/auth/webpush.py)
    vapid_subject: str = "mailto:gossip@localhost"
    push_delay: float = 60.0  # seconds an update stays unread before it is pushed
    push_allow_http_loopback: bool = False  # subscriptions may name http://127.0.0.1 (tests, local push servers)
    scheduler_interval: float = 15.0  # seconds between two rounds of the scheduler's jobs
    # Seconds between two reports of a process (a stream's open feeds, every process's refusals): a closed feed
    # leaves the counts within one interval, a killed process within three (shared/reports.py LIFETIMES).
    presence_interval: float = 3.0
    admin_users: tuple[str, ...] = ()  # usernames that may use the operator console at /admin
    # Mail: the digest and address checks go to SMTP_URL, or without one into .eml files in `mail_dir`.
    smtp_url: str = ""
    mail_dir: Path = VAR / "mail"
    mail_from: str = "Gossip <gossip@localhost>"
    public_url: str = "http://127.0.0.1:8000"  # the site's address as people reach it, for links in mail
    verification_mails: int = 3  # address checks mailed per user, and per address, per `verification_window`
    verification_window: float = 3600.0
    sends_keep_days: float = 30.0  # records of digests and pushes sent (which stop a second send) are kept this long
    memory_trace: Path | None = None  # a folder: trace allocations and write snapshots there (shared/memory.py)
    memory_trace_every: float = 60.0  # seconds between those snapshots

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Settings:
        """Each variable is its field's name in capitals, and its default the field's own."""
        read = _Reader(env)
        log_format = read.text("log_format")
        if log_format not in ("text", "json"):
            raise ValueError(f"LOG_FORMAT must be 'text' or 'json', got {log_format!r}")
        port = _port(env, "PORT", read.default("port"))
        return cls(
            secret_key=env.get("SECRET_KEY") or dev_secret(),
            mongo_url=read.text("mongo_url"),
            mongo_db=read.text("mongo_db"),
            ping_interval=read.number("ping_interval"),
            send_timeout=read.number("send_timeout"),
            session_max_age=read.count("session_max_age"),
            session_absolute_age=read.count("session_absolute_age"),
            device_max_age=read.count("device_max_age"),
            replay_limit=read.count("replay_limit"),
            history_days=read.number("history_days", zero=True),
            host=read.text("host"),
            port=port,
            embedded_port=_port(env, "EMBEDDED_PORT", read.default("embedded_port")),
            embedded_data=read.path("embedded_data"),
            log_format=log_format,
            hash_concurrency=read.count("hash_concurrency"),
            hash_wait=read.number("hash_wait"),
            hash_memory=read.count("hash_memory"),
            login_failures_per_user_address=read.count("login_failures_per_user_address"),
            login_failures_per_user=read.count("login_failures_per_user"),
            login_failures_per_address=read.count("login_failures_per_address"),
            login_window=read.number("login_window"),
            registrations_per_address=read.count("registrations_per_address"),
            registration_window=read.number("registration_window"),
            publishes_per_author=read.count("publishes_per_author"),
            publish_window=read.number("publish_window"),
            tokens_per_user=read.count("tokens_per_user"),
            feeds_per_user=read.count("feeds_per_user"),
            feed_opens_per_user=read.count("feed_opens_per_user"),
            feed_open_window=read.number("feed_open_window"),
            max_feeds=read.count("max_feeds"),
            trusted_proxies=_addresses(env, "TRUSTED_PROXIES"),
            drain_timeout=read.number("drain_timeout"),
            drain_bytes=read.count("drain_bytes"),
            watch_rules=_rules_file(env),
            rule_lease=read.number("rule_lease"),
            otlp_endpoint=_url(env, "OTEL_EXPORTER_OTLP_ENDPOINT"),
            vapid_private_key=read.text("vapid_private_key"),
            vapid_subject=_subject(env, read.default("vapid_subject")),
            push_delay=read.number("push_delay", zero=True),
            push_allow_http_loopback=_flag(env, "PUSH_ALLOW_HTTP_LOOPBACK"),
            scheduler_interval=_scheduler_interval(env, read.default("scheduler_interval")),
            presence_interval=read.number("presence_interval"),
            admin_users=tuple(name.strip() for name in env.get("ADMIN_USERS", "").split(",") if name.strip()),
            smtp_url=_smtp_url(env),
            mail_dir=read.path("mail_dir"),
            mail_from=_mail_from(env, read.default("mail_from")),
            public_url=_public_url(env, port),
            verification_mails=read.count("verification_mails"),
            verification_window=read.number("verification_window"),
            sends_keep_days=_sends_keep_days(env, read.default("sends_keep_days")),
            memory_trace=Path(env["MEMORY_TRACE"]) if env.get("MEMORY_TRACE") else None,
            memory_trace_every=read.number("memory_trace_every"),
        )


class _Reader:
    """One setting read by its field's name: the variable is the name in capitals; unset or empty, the field's
    default stands, so each default is written once, in Settings."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    @staticmethod
    def default(name: str) -> Any:
        spec = next(spec for spec in fields(Settings) if spec.name == name)
        if spec.default is MISSING and spec.default_factory is not MISSING:
            return spec.default_factory()
        return spec.default

    def text(self, name: str) -> str:
        return self.env.get(name.upper()) or str(self.default(name))

    def path(self, name: str) -> Path:
        return Path(self.env.get(name.upper()) or self.default(name))

    def number(self, name: str, zero: bool = False) -> float:
        return _number(self.env, name.upper(), self.default(name), zero)

    def count(self, name: str) -> int:
        return _count(self.env, name.upper(), self.default(name))
