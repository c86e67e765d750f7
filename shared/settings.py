"""One frozen Settings object, read from the environment once; nothing else reads os.environ."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var"


def dev_secret(var: Path = VAR) -> str:
    """A per-checkout secret, generated on first run so none is ever committed."""
    path = var / "secret_key"
    if not path.exists():
        var.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(32))
    return path.read_text().strip()


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


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 5 and 1 <= int(raw) <= 65535):
        raise ValueError(f"{name} must be a port number from 1 to 65535, got {raw!r}")
    return int(raw)


@dataclass(frozen=True, slots=True)
class Settings:
    secret_key: str
    mongo_url: str = ""  # empty: `make run` starts the embedded server and fills this in
    mongo_db: str = "gossip"
    ping_interval: float = 15.0
    send_timeout: float = 10.0  # an SSE socket that stops draining for this long is dropped
    session_max_age: int = 14 * 24 * 3600
    replay_limit: int = 500  # a reconnect is replayed at most this many updates; `resync` announces the rest
    history_days: float = 90.0  # updates older than this are removed; 0 keeps them all
    host: str = "127.0.0.1"
    port: int = 8000
    embedded_port: int = 27027
    embedded_data: Path = VAR / "mongo"
    log_format: str = "text"

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Settings:
        log_format = env.get("LOG_FORMAT", "text")
        if log_format not in ("text", "json"):
            raise ValueError(f"LOG_FORMAT must be 'text' or 'json', got {log_format!r}")
        return cls(
            secret_key=env.get("SECRET_KEY") or dev_secret(),
            mongo_url=env.get("MONGO_URL", ""),
            mongo_db=env.get("MONGO_DB", "gossip"),
            ping_interval=_number(env, "PING_INTERVAL", 15.0),
            send_timeout=_number(env, "SEND_TIMEOUT", 10.0),
            session_max_age=int(_number(env, "SESSION_MAX_AGE", 14 * 24 * 3600)),
            replay_limit=int(_number(env, "REPLAY_LIMIT", 500)),
            history_days=_number(env, "HISTORY_DAYS", 90.0, zero=True),
            host=env.get("HOST", "127.0.0.1"),
            port=_port(env, "PORT", 8000),
            embedded_port=_port(env, "EMBEDDED_PORT", 27027),
            embedded_data=Path(env.get("EMBEDDED_DATA") or VAR / "mongo"),
            log_format=log_format,
        )
