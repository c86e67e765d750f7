"""Settings are read once from the environment; a bad value stops startup naming the variable."""

from __future__ import annotations

import resource
import stat
from pathlib import Path

import pytest

from shared.settings import ROOT, RULES, Settings, dev_secret, open_file_budget


def test_defaults_serve_make_run() -> None:
    settings = Settings.from_env({"SECRET_KEY": "s"})
    assert (settings.mongo_url, settings.mongo_db, settings.host, settings.port) == ("", "gossip", "127.0.0.1", 8000)


@pytest.mark.parametrize(
    ("name", "value"),
    [("PING_INTERVAL", "soon"), ("PORT", "-1"), ("LOG_FORMAT", "xml"), ("PORT", "abc"), ("PORT", "0"),
     ("PORT", "99999"), ("PORT", "80.5"), ("EMBEDDED_PORT", "65536"), ("EMBEDDED_PORT", "9" * 5000),
     ("HISTORY_DAYS", "-1"), ("HISTORY_DAYS", "nan"), ("REPLAY_LIMIT", "0"), ("PING_INTERVAL", "inf"),
     ("SESSION_MAX_AGE", "0.5"), ("REPLAY_LIMIT", "2.5"), ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318"),
     ("OTEL_EXPORTER_OTLP_ENDPOINT", "ftp://collector"), ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://")],
)  # fmt: skip
def test_a_bad_value_names_the_variable(name: str, value: str) -> None:
    with pytest.raises(ValueError, match=name):
        Settings.from_env({"SECRET_KEY": "s", name: value})


def test_traces_are_off_unless_an_otlp_endpoint_is_named() -> None:
    assert Settings.from_env({"SECRET_KEY": "s"}).otlp_endpoint == ""
    named = Settings.from_env({"SECRET_KEY": "s", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"})
    assert named.otlp_endpoint == "http://collector:4318"


def test_history_days_of_zero_keeps_everything_and_limits_have_defaults() -> None:
    assert Settings.from_env({"SECRET_KEY": "s", "HISTORY_DAYS": "0"}).history_days == 0
    settings = Settings.from_env({"SECRET_KEY": "s"})
    assert (settings.history_days, settings.replay_limit) == (90, 500)


def test_dev_secret_is_generated_once_and_private(tmp_path: Path) -> None:
    first = dev_secret(tmp_path)
    assert dev_secret(tmp_path) == first and len(first) >= 40
    assert stat.S_IMODE((tmp_path / "secret_key").stat().st_mode) == 0o600


def test_every_limit_has_a_default_and_a_variable() -> None:
    settings = Settings.from_env({
        "SECRET_KEY": "s", "HASH_CONCURRENCY": "3", "PUBLISHES_PER_AUTHOR": "10", "PUBLISH_WINDOW": "5",
        "MAX_FEEDS": "100", "TRUSTED_PROXIES": "172.30.80.9/24, 10.0.0.1", "DRAIN_TIMEOUT": "0.5",
        "FEED_OPENS_PER_USER": "7", "FEED_OPEN_WINDOW": "30",
    })  # fmt: skip
    assert (settings.hash_concurrency, settings.publishes_per_author, settings.publish_window) == (3, 10, 5.0)
    assert (settings.max_feeds, settings.drain_timeout) == (100, 0.5)
    assert (settings.feed_opens_per_user, settings.feed_open_window) == (7, 30.0)
    assert settings.trusted_proxies == ("172.30.80.0/24", "10.0.0.1")
    assert Settings.from_env({"SECRET_KEY": "s"}).trusted_proxies == ()  # `make run` believes no forwarded header


def test_the_feeds_a_process_holds_are_sized_to_its_open_file_limit() -> None:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert Settings.from_env({"SECRET_KEY": "s"}).max_feeds == open_file_budget() < soft


@pytest.mark.parametrize(
    ("name", "value"),
    [("TRUSTED_PROXIES", "gateway"), ("TRUSTED_PROXIES", "10.0.0.1,*"), ("HASH_CONCURRENCY", "1.5"),
     ("FEEDS_PER_USER", "0"), ("LOGIN_WINDOW", "-1"), ("MAX_FEEDS", "inf"), ("FEED_OPENS_PER_USER", "2.5"),
     ("FEED_OPEN_WINDOW", "0")],
)  # fmt: skip
def test_a_bad_limit_names_the_variable(name: str, value: str) -> None:
    with pytest.raises(ValueError, match=name):
        Settings.from_env({"SECRET_KEY": "s", name: value})


def test_push_settings_from_the_environment() -> None:
    key = "a key, checked as the auth service starts"
    settings = Settings.from_env({
        "SECRET_KEY": "s", "VAPID_PRIVATE_KEY": key, "VAPID_SUBJECT": "https://gossip.example.org",
        "PUSH_DELAY": "0", "PUSH_ALLOW_HTTP_LOOPBACK": "1", "SCHEDULER_INTERVAL": "5", "PRESENCE_INTERVAL": "2",
    })  # fmt: skip
    assert (settings.vapid_private_key, settings.vapid_subject) == (key, "https://gossip.example.org")
    assert (settings.push_delay, settings.push_allow_http_loopback) == (0.0, True)
    assert (settings.scheduler_interval, settings.presence_interval) == (5.0, 2.0)
    defaults = Settings.from_env({"SECRET_KEY": "s", "VAPID_PRIVATE_KEY": key})
    assert (defaults.push_delay, defaults.push_allow_http_loopback, defaults.scheduler_interval) == (60.0, False, 15.0)


def test_mail_defaults_serve_make_run_and_public_url_follows_the_port() -> None:
    settings = Settings.from_env({"SECRET_KEY": "s", "PORT": "8123"})
    assert (settings.smtp_url, settings.mail_from, settings.public_url) == (
        "",
        "Gossip <gossip@localhost>",
        "http://127.0.0.1:8123",
    )
    assert settings.mail_dir.parts[-2:] == ("var", "mail")
    given = Settings.from_env(
        {"SECRET_KEY": "s", "SMTP_URL": "smtp://mailpit:1025", "PUBLIC_URL": "https://g.example/"}
    )
    assert (given.smtp_url, given.public_url) == ("smtp://mailpit:1025", "https://g.example")


@pytest.mark.parametrize(
    ("name", "value"),
    [("VAPID_SUBJECT", "gossip@example.org"), ("VAPID_SUBJECT", "http://x.org"),
     ("PUSH_ALLOW_HTTP_LOOPBACK", "maybe"), ("PUSH_DELAY", "-1"), ("SCHEDULER_INTERVAL", "0"),
     ("SCHEDULER_INTERVAL", "61"),
     ("SMTP_URL", "mailpit:1025"), ("SMTP_URL", "http://mailpit"), ("SMTP_URL", "smtp://"),
     ("SMTP_URL", "smtp://mailpit:port"), ("PUBLIC_URL", "gossip.example"), ("PUBLIC_URL", "ftp://g.example"),
     ("MAIL_FROM", "Gossip"), ("MAIL_FROM", "a@b.example\r\nBcc: x@y.example"), ("VERIFICATION_MAILS", "0"),
     ("SENDS_KEEP_DAYS", "1.5"), ("SENDS_KEEP_DAYS", "forever")],
)  # fmt: skip
def test_a_bad_push_or_mail_setting_names_the_variable(name: str, value: str) -> None:
    with pytest.raises(ValueError, match=name):
        Settings.from_env({"SECRET_KEY": "s", name: value})


def test_admin_users_are_a_comma_separated_list_and_none_by_default() -> None:
    settings = Settings.from_env({"SECRET_KEY": "s", "ADMIN_USERS": " root, ops ,,"})
    assert settings.admin_users == ("root", "ops")
    assert Settings.from_env({"SECRET_KEY": "s"}).admin_users == ()


def test_an_empty_environment_gives_the_defaults_settings_declare() -> None:
    """Each default is written once, on its field: from_env takes it from there."""
    assert Settings.from_env({"SECRET_KEY": "s", "WATCH_RULES": ""}) == Settings(secret_key="s")


def test_the_watch_rules_are_the_checkouts_gossip_toml_unless_another_file_or_none_is_named() -> None:
    """What `make run` serves with: the shipped, commented example, unless WATCH_RULES says otherwise."""
    assert Settings.from_env({"SECRET_KEY": "s"}).watch_rules == RULES == ROOT / "gossip.toml"
    named = Settings.from_env({"SECRET_KEY": "s", "WATCH_RULES": "/etc/gossip/rules.toml"})
    assert named.watch_rules == Path("/etc/gossip/rules.toml")
    assert Settings.from_env({"SECRET_KEY": "s", "WATCH_RULES": ""}).watch_rules is None
