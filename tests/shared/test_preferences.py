"""The preferences model: pure logic, on the user's own clock."""

from __future__ import annotations

from datetime import UTC, datetime
from datetime import time as clock

import pytest

from shared.errors import ApiError
from shared.preferences import DIGEST, LIVE, MUTED, PUSH, Preferences, QuietHours, changes, followed, preferences_of

CATALOGUE = {"sherlock", "flash", "suits"}


def test_a_user_without_preferences_has_the_defaults() -> None:
    prefs = preferences_of({"username": "alice"})
    assert prefs.to_json() == {"shows": {}, "time_zone": "UTC", "quiet_hours": None, "digest_hour": 8}
    assert prefs.level("sherlock") == LIVE


def test_muted_shows_are_not_heard() -> None:
    prefs = Preferences(shows={"flash": MUTED, "sherlock": PUSH, "orders": MUTED})
    assert prefs.heard(["flash", "sherlock", "suits"]) == ["sherlock", "suits"]
    assert prefs.muted() == ["flash", "orders"]  # a personal topic's too
    assert prefs.at_level(["flash", "sherlock", "suits"], PUSH) == ["sherlock"]


def test_hand_written_nonsense_reads_as_the_defaults() -> None:
    stored = {"shows": {"flash": "loud", "suits": DIGEST}, "time_zone": "Mars/Olympus", "digest_hour": 31,
              "quiet_hours": {"start": "25:00", "end": "07:00"}}  # fmt: skip
    prefs = preferences_of({"preferences": stored})
    assert prefs.to_json() == {"shows": {"suits": DIGEST}, "time_zone": "UTC", "quiet_hours": None, "digest_hour": 8}


@pytest.mark.parametrize(
    ("start", "end", "moment", "quiet"),
    [
        ("22:00", "07:00", "23:30", True),
        ("22:00", "07:00", "22:00", True),
        ("22:00", "07:00", "06:59", True),
        ("22:00", "07:00", "07:00", False),
        ("22:00", "07:00", "12:00", False),
        ("13:00", "14:00", "13:00", True),
        ("13:00", "14:00", "14:00", False),
    ],
)
def test_quiet_hours_may_wrap_midnight(start: str, end: str, moment: str, quiet: bool) -> None:
    span = QuietHours(clock.fromisoformat(start), clock.fromisoformat(end))
    assert span.covers(clock.fromisoformat(moment)) is quiet


def test_quiet_hours_end_on_the_users_own_clock() -> None:
    prefs = preferences_of(
        {"preferences": {"time_zone": "Europe/Paris", "quiet_hours": {"start": "22:00", "end": "07:00"}}}
    )
    late = datetime(2026, 12, 7, 22, 30, tzinfo=UTC)  # 23:30 in Paris
    assert prefs.quiet_until(late) == datetime(2026, 12, 8, 6, 0, tzinfo=UTC)
    early = datetime(2026, 12, 8, 5, 0, tzinfo=UTC)  # 06:00 in Paris
    assert prefs.quiet_until(early) == datetime(2026, 12, 8, 6, 0, tzinfo=UTC)
    assert prefs.quiet_until(datetime(2026, 12, 8, 12, 0, tzinfo=UTC)) is None


def test_a_put_sets_what_it_names_and_resets_live_shows() -> None:
    body = {"shows": {"sherlock": PUSH, "flash": LIVE}, "time_zone": "Europe/Paris", "quiet_hours": None}
    setting, resets = changes(body, CATALOGUE)
    assert setting == {
        "preferences.shows.sherlock": PUSH,
        "preferences.time_zone": "Europe/Paris",
        "preferences.quiet_hours": None,
    }
    assert resets == ["preferences.shows.flash"]


def test_every_bad_field_is_named_at_once() -> None:
    body = {"shows": {"nope": PUSH, "flash": "loud"}, "time_zone": "Nowhere/City", "digest_hour": 24,
            "quiet_hours": {"start": "7:00", "end": "24:00"}, "colour": "red"}  # fmt: skip
    with pytest.raises(ApiError) as raised:
        changes(body, CATALOGUE)
    assert raised.value.status == 422
    assert raised.value.fields == {
        "shows.nope": "not a show in the catalogue, nor a topic of your personal notifications",
        "shows.flash": "one of live, push, digest, muted",
        "time_zone": "an IANA time zone name, such as Europe/Paris",
        "digest_hour": "a whole number of hours, from 0 to 23",
        "quiet_hours.start": "HH:MM, from 00:00 to 23:59",
        "quiet_hours.end": "HH:MM, from 00:00 to 23:59",
        "colour": "not a preference: shows, time_zone, quiet_hours or digest_hour",
    }


@pytest.mark.parametrize(
    ("body", "fields"),
    [({"shows": ["sherlock"]}, {"shows": "an object of show slug to one of live, push, digest, muted"}),
     ({"quiet_hours": "22-07"}, {"quiet_hours": 'null, or {"start": "HH:MM", "end": "HH:MM"}'}),
     ({"quiet_hours": {"start": "22:00", "end": "22:00"}},
      {"quiet_hours.end": "not the same as start (null turns quiet hours off)"})],
)  # fmt: skip
def test_a_refusal_tells_what_the_field_takes(body: dict[str, object], fields: dict[str, str]) -> None:
    with pytest.raises(ApiError) as raised:
        changes(body, CATALOGUE)
    assert raised.value.fields == fields


def test_a_slug_that_is_no_topic_name_is_refused_even_among_the_topics_given() -> None:
    """`changes` guards the stored path `preferences.shows.<slug>` itself, whatever list of topics it is handed."""
    with pytest.raises(ApiError) as raised:
        changes({"shows": {"a.b": PUSH}}, CATALOGUE, {"a.b"})
    assert raised.value.fields == {
        "shows.a.b": "not a show in the catalogue, nor a topic's name (3 to 32 of a-z, 0-9, '_' or '-')"
    }


@pytest.mark.parametrize("zone", ["localtime", "Factory"])
def test_a_zone_that_names_no_place_is_refused(zone: str) -> None:
    """The system's zone database lists them, but `localtime` is the server's clock and `Factory` says none is set."""
    with pytest.raises(ApiError) as raised:
        changes({"time_zone": zone}, CATALOGUE)
    assert list(raised.value.fields) == ["time_zone"]


def test_a_personal_topic_takes_any_level_a_show_does_and_only_the_users_own() -> None:
    assert changes({"shows": {"orders": PUSH}}, CATALOGUE, {"orders"}) == ({"preferences.shows.orders": PUSH}, [])
    assert changes({"shows": {"orders": LIVE}}, CATALOGUE, {"orders"}) == ({}, ["preferences.shows.orders"])
    assert changes({"shows": {"orders": MUTED}}, CATALOGUE, {"orders"}) == ({"preferences.shows.orders": MUTED}, [])
    with pytest.raises(ApiError) as loud:
        changes({"shows": {"orders": "loud"}}, CATALOGUE, {"orders"})
    assert loud.value.fields == {"shows.orders": "one of live, push, digest, muted"}
    with pytest.raises(ApiError) as unknown:
        changes({"shows": {"orders": PUSH}}, CATALOGUE)
    assert set(unknown.value.fields) == {"shows.orders"}


def test_a_level_is_told_only_for_a_show_of_the_catalogue_or_a_personal_topic() -> None:
    """The one rule of GET /api/me/preferences and the stream's `preferences` event; only a slug beyond the
    catalogue needs the user's topics to decide."""
    prefs = Preferences(shows={"sherlock": PUSH, "orders": MUTED, "gone": DIGEST, "<b>x</b>": PUSH}, digest_hour=7)
    assert prefs.uncatalogued(CATALOGUE) == ["orders", "gone", "<b>x</b>"]
    assert prefs.meaningful(CATALOGUE, {"orders"}) == Preferences(
        shows={"sherlock": PUSH, "orders": MUTED}, digest_hour=7
    )
    assert Preferences(shows={"flash": MUTED}).uncatalogued(CATALOGUE) == []


def test_the_slugs_at_a_level_not_followed_are_the_personal_topics_there() -> None:
    prefs = Preferences(shows={"orders": PUSH, "sherlock": PUSH, "flash": DIGEST})
    assert prefs.unfollowed(["sherlock", "flash"], PUSH) == ["orders"]
    assert prefs.unfollowed(["sherlock"], DIGEST) == ["flash"]


@pytest.mark.parametrize("quiet", [{"start": "22:00"}, "22-07", {"start": "22:00", "end": "22:00"}, [1]])
def test_quiet_hours_must_be_a_span_or_null(quiet: object) -> None:
    with pytest.raises(ApiError) as raised:
        changes({"quiet_hours": quiet}, CATALOGUE)
    assert any(name.startswith("quiet_hours") for name in raised.value.fields)


@pytest.mark.parametrize("hour", [True, 8.5, "8", -1])
def test_the_digest_hour_is_a_whole_hour(hour: object) -> None:
    with pytest.raises(ApiError) as raised:
        changes({"digest_hour": hour}, CATALOGUE)
    assert raised.value.fields == {"digest_hour": "a whole number of hours, from 0 to 23"}


def test_a_whole_hour_written_with_a_fraction_is_that_hour() -> None:
    """JSON Schema's integers (and so the API document's) include 22.0."""
    assert changes({"digest_hour": 22.0}, CATALOGUE) == ({"preferences.digest_hour": 22}, [])


@pytest.mark.parametrize("value", ["22h00", "22:000", "ab:00", "2a:00", "22:0b", "\u0662\u0662:00", "22:\u0660\u0667",
                                   "23:60", "24:00", "7:00"])  # fmt: skip
def test_a_clock_is_two_ascii_digits_a_colon_and_two_more_within_the_day(value: str) -> None:
    with pytest.raises(ApiError) as raised:
        changes({"quiet_hours": {"start": value, "end": "07:00"}}, CATALOGUE)
    assert raised.value.fields == {"quiet_hours.start": "HH:MM, from 00:00 to 23:59"}
    stored = preferences_of({"preferences": {"quiet_hours": {"start": value, "end": "07:00"}}})
    assert stored.quiet_hours is None


def test_the_first_and_last_minutes_of_the_day_are_clocks() -> None:
    span = {"start": "23:59", "end": "00:00"}
    assert changes({"quiet_hours": span}, CATALOGUE) == ({"preferences.quiet_hours": span}, [])
    assert preferences_of({"preferences": {"quiet_hours": span}}).quiet_hours == QuietHours(clock(23, 59), clock(0, 0))


@pytest.mark.parametrize("hour", [0, 23])
def test_midnight_and_eleven_pm_are_digest_hours(hour: int) -> None:
    assert changes({"digest_hour": hour}, CATALOGUE) == ({"preferences.digest_hour": hour}, [])
    assert preferences_of({"preferences": {"digest_hour": hour}}).digest_hour == hour


def test_a_stored_digest_hour_past_the_day_reads_as_the_default() -> None:
    assert preferences_of({"preferences": {"digest_hour": 24}}).digest_hour == 8


@pytest.mark.parametrize("follows", [None, "sherlock", {"sherlock": True}])
def test_follows_that_are_no_list_are_none(follows: object) -> None:
    """A hand-written `follows` of another type is read as no follows, never iterated."""
    assert followed(follows, CATALOGUE) == []


def test_the_follows_shown_are_those_of_the_catalogue_in_their_order() -> None:
    assert followed(["suits", "gone", "sherlock"], CATALOGUE) == ["suits", "sherlock"]
