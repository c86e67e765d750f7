"""A user's preferences: how each followed show and personal topic reaches them, their time zone, quiet hours and
digest hour.

Stored on the user document as `preferences`. A show (or a personal topic: a watch rule's `show` of the updates
addressed to the user) left out of `shows` is `live` and a missing key takes its default, so a user who never
opened the Preferences page has a complete set. Auth writes them (PUT /api/me/preferences); the stream leaves muted
shows and topics out of feeds of followed shows, counts and Notifications; the scheduler reads them to send pushes
and digests."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from shared.errors import invalid
from shared.rulesfile import NAME_RULE, is_topic

LIVE, PUSH, DIGEST, MUTED = "live", "push", "digest", "muted"
LEVELS = (LIVE, PUSH, DIGEST, MUTED)
DEFAULT_ZONE = "UTC"
DEFAULT_DIGEST_HOUR = 8
CLOCK = "HH:MM, from 00:00 to 23:59"
# The IANA zones a user may live in: not the system's `localtime` (the server's own clock) nor `Factory` (a zone
# that says none was set), which the system's zone database lists beside them.
ZONES = tuple(sorted(available_timezones() - {"localtime", "Factory"}))


@dataclass(frozen=True, slots=True)
class QuietHours:
    """A daily span of local time, from `start` up to `end`; it wraps midnight when `end` comes first."""

    start: time
    end: time

    def covers(self, moment: time) -> bool:
        if self.start <= self.end:
            return self.start <= moment < self.end
        return moment >= self.start or moment < self.end

    def to_json(self) -> dict[str, str]:
        return {"start": self.start.strftime("%H:%M"), "end": self.end.strftime("%H:%M")}


@dataclass(frozen=True, slots=True)
class Preferences:
    shows: Mapping[str, str] = field(default_factory=dict)  # slug -> level, for levels other than live
    time_zone: str = DEFAULT_ZONE
    quiet_hours: QuietHours | None = None
    digest_hour: int = DEFAULT_DIGEST_HOUR

    def level(self, slug: str) -> str:
        return self.shows.get(slug, LIVE)

    def uncatalogued(self, titles: Collection[str]) -> list[str]:
        """The slugs with a level that are no show of the catalogue: only the user's personal topics can make them
        mean something (`meaningful`), so a reader with none of these need not look the topics up."""
        return [slug for slug in self.shows if slug not in titles]

    def meaningful(self, titles: Collection[str], topics: Collection[str]) -> Preferences:
        """The preferences as the user is told them (GET /api/me/preferences, the stream's `preferences` event): a
        level only for what a PUT may set one for, a show of the catalogue (`titles`; push and the digest read it
        while the show is followed) or one of the user's personal `topics`. Any other key, written by hand into
        `users` or left by a show gone from the catalogue, means nothing to push or the digest and is not told, so
        what GET answers a PUT takes back."""
        kept = {slug: level for slug, level in self.shows.items() if slug in titles or slug in topics}
        return replace(self, shows=kept)

    def heard(self, follows: Iterable[str]) -> list[str]:
        """The followed shows whose updates count as unread and fill Notifications: all but the muted ones."""
        return [slug for slug in follows if self.level(slug) != MUTED]

    def muted(self) -> list[str]:
        """Every slug muted, a followed show's or a personal topic's: a personal update of one is left out of the
        unread count and of Notifications as a muted show's update is, and All Notifs still shows it."""
        return self.at_level(self.shows, MUTED)

    def at_level(self, follows: Iterable[str], level: str) -> list[str]:
        return [slug for slug in follows if self.level(slug) == level]

    def unfollowed(self, follows: Collection[str], level: str) -> list[str]:
        """The slugs at `level` that are not followed: the user's personal topics there (an unfollow drops a show's
        level; one left from before that is a slug no update addressed to the user has)."""
        return [slug for slug in self.at_level(self.shows, level) if slug not in follows]

    def local(self, now: datetime) -> datetime:
        """`now` (aware) on the user's own clock."""
        return now.astimezone(ZoneInfo(self.time_zone))

    def quiet_until(self, now: datetime) -> datetime | None:
        """When the quiet hours that cover `now` end, on the user's clock; None when `now` is not quiet."""
        local = self.local(now)
        if self.quiet_hours is None or not self.quiet_hours.covers(local.time()):
            return None
        end = datetime.combine(local.date(), self.quiet_hours.end, tzinfo=local.tzinfo)
        return end if end > local else end + timedelta(days=1)

    def to_json(self) -> dict[str, Any]:
        return {
            "shows": dict(self.shows),
            "time_zone": self.time_zone,
            "quiet_hours": self.quiet_hours.to_json() if self.quiet_hours else None,
            "digest_hour": self.digest_hour,
        }


def followed(follows: object, titles: Collection[str]) -> list[str]:
    """The follows a user is shown and counted by (/api/me, the pages, the stream's `follows` event, unread counts,
    the Preferences page's levels): those of shows in the catalogue (`titles`). The stored follows keep the others,
    so a show put back, or a bad document repaired, is followed again as it was."""
    return [slug for slug in follows if slug in titles] if isinstance(follows, list) else []


def _clock(value: object) -> time | None:
    """'HH:MM' as a time of day, None if it is not one."""
    if not isinstance(value, str) or len(value) != 5 or value[2] != ":":
        return None
    hours, minutes = value[:2], value[3:]
    if not (hours.isascii() and hours.isdigit() and minutes.isascii() and minutes.isdigit()):
        return None
    if int(hours) > 23 or int(minutes) > 59:
        return None
    return time(int(hours), int(minutes))


def _known_zone(name: object) -> bool:
    if not isinstance(name, str) or name not in ZONES:
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def preferences_of(user: Mapping[str, Any] | None) -> Preferences:
    """A user document's preferences, with the defaults for whatever is missing. Only PUT /api/me/preferences writes
    them, checked; a value written by hand that would not pass that check is read as its default, never an error."""
    stored = (user or {}).get("preferences") or {}
    shows: dict[str, Any] = stored["shows"] if isinstance(stored.get("shows"), dict) else {}
    quiet: dict[str, Any] = stored["quiet_hours"] if isinstance(stored.get("quiet_hours"), dict) else {}
    start, end = _clock(quiet.get("start")), _clock(quiet.get("end"))
    hour = stored.get("digest_hour")
    return Preferences(
        shows={slug: level for slug, level in shows.items() if level in LEVELS and level != LIVE},
        time_zone=stored["time_zone"] if _known_zone(stored.get("time_zone")) else DEFAULT_ZONE,
        quiet_hours=QuietHours(start, end) if start is not None and end is not None and start != end else None,
        digest_hour=hour if type(hour) is int and 0 <= hour <= 23 else DEFAULT_DIGEST_HOUR,
    )


def _show_changes(
    shows: object, catalogue: Collection[str], personal: Collection[str], fields: dict[str, str]
) -> dict[str, Any]:
    if not isinstance(shows, dict):
        fields["shows"] = "an object of show slug to one of " + ", ".join(LEVELS)
        return {}
    changes: dict[str, Any] = {}
    for slug, level in shows.items():
        if slug not in catalogue and not is_topic(slug):  # nor a path of the stored preferences ('.', '$')
            fields[f"shows.{slug}"] = f"not a show in the catalogue, nor a topic's name ({NAME_RULE})"
        elif slug not in catalogue and slug not in personal:
            fields[f"shows.{slug}"] = "not a show in the catalogue, nor a topic of your personal notifications"
        elif level not in LEVELS:
            fields[f"shows.{slug}"] = "one of " + ", ".join(LEVELS)
        else:
            changes[f"preferences.shows.{slug}"] = level
    return changes


def _quiet_changes(quiet: object, fields: dict[str, str]) -> dict[str, Any]:
    if quiet is None:
        return {"preferences.quiet_hours": None}
    if not isinstance(quiet, dict) or set(quiet) != {"start", "end"}:
        fields["quiet_hours"] = 'null, or {"start": "HH:MM", "end": "HH:MM"}'
        return {}
    bad = [name for name in ("start", "end") if _clock(quiet[name]) is None]
    fields.update({f"quiet_hours.{name}": CLOCK for name in bad})
    if not bad and quiet["start"] == quiet["end"]:
        fields["quiet_hours.end"] = "not the same as start (null turns quiet hours off)"
    return {"preferences.quiet_hours": {"start": quiet["start"], "end": quiet["end"]}}


def changes(
    body: Mapping[str, Any], catalogue: Collection[str], personal: Collection[str] = ()
) -> tuple[dict[str, Any], list[str]]:
    """What a PUT of preferences sets, and which show levels it resets to live (unset): every key is optional, a
    show not named keeps its level, and every problem is named by its field at once (422), so nothing is
    half-written. `personal`: the user's personal topics (`shared/updates.py` `personal_topics`), which take a level
    as shows do."""
    fields: dict[str, str] = {}
    unknown = set(body) - {"shows", "time_zone", "quiet_hours", "digest_hour"}
    for name in sorted(unknown):
        fields[name] = "not a preference: shows, time_zone, quiet_hours or digest_hour"
    setting: dict[str, Any] = {}
    if "shows" in body:
        setting.update(_show_changes(body["shows"], catalogue, personal, fields))
    if "time_zone" in body:
        if _known_zone(body["time_zone"]):
            setting["preferences.time_zone"] = body["time_zone"]
        else:
            fields["time_zone"] = "an IANA time zone name, such as Europe/Paris"
    if "quiet_hours" in body:
        setting.update(_quiet_changes(body["quiet_hours"], fields))
    if "digest_hour" in body:
        hour = body["digest_hour"]
        if isinstance(hour, float) and hour.is_integer():  # a JSON number with no fraction is an integer: 8.0 is 8
            hour = int(hour)
        if type(hour) is int and 0 <= hour <= 23:
            setting["preferences.digest_hour"] = hour
        else:
            fields["digest_hour"] = "a whole number of hours, from 0 to 23"
    if fields:
        raise invalid(fields)
    resets = [path for path, level in setting.items() if level == LIVE and path.startswith("preferences.shows.")]
    return {path: value for path, value in setting.items() if path not in resets}, resets
