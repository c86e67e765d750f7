"""A user's preferences, read and changed: the logic behind GET/PUT /api/me/preferences and the Preferences page."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any

from pymongo import ReturnDocument

from shared.catalogue import Catalogue
from shared.db import Database
from shared.errors import ApiError
from shared.preferences import DIGEST, LIVE, MUTED, PUSH, Preferences, changes, preferences_of
from shared.updates import personal_topics

# What the page says of each level, beside its choice.
MEANINGS = {
    LIVE: "on your open Gossip pages only",
    PUSH: "also a notification on your devices, when no Gossip page is open",
    DIGEST: "also in the daily email digest",
    MUTED: "still followed, but not counted as unread nor listed in Notifications (All Notifs still shows it)",
}
QUIET_DEFAULT = {"start": "22:00", "end": "07:00"}  # what the page offers while quiet hours are off
QUIET_FIELDS = ("quiet_hours.start", "quiet_hours.end")


def shown(user: Mapping[str, Any] | None, titles: Collection[str], personal: Collection[str]) -> dict[str, Any]:
    """What GET answers: every preference, defaults filled in, a level only where it means something
    (`Preferences.meaningful`: the stream's `preferences` event tells the same)."""
    if user is None:
        raise ApiError(401, detail="This account no longer exists.")
    return preferences_of(user).meaningful(titles, personal).to_json()


def listed(personal: Mapping[str, str], follows: Collection[str]) -> dict[str, str]:
    """Of the user's personal topics (`personal_topics`, slug to title), those the page lists in their own group:
    all but a show they follow, which is listed with the shows."""
    return {slug: title for slug, title in personal.items() if slug not in follows}


async def change(
    db: Database, catalogue: Catalogue, user_id: str, body: Mapping[str, Any], personal: Collection[str] | None = None
) -> dict[str, Any]:
    """Checks the whole body first (ApiError 422 naming each field), then writes it in one update, so nothing is
    half-written; answers the preferences as they are after it. `personal`: the user's personal topics, read here
    unless the caller has them already (the page reads them once for its form)."""
    if personal is None:
        personal = await personal_topics(db, user_id)
    titles = await catalogue.titles()
    setting, resets = changes(body, titles, personal)
    update: dict[str, Any] = {}
    if setting:
        update["$set"] = setting
    if resets:
        update["$unset"] = dict.fromkeys(resets, "")
    if update:
        user = await db.users.find_one_and_update(
            {"_id": user_id}, update, {"preferences": 1}, return_document=ReturnDocument.AFTER
        )
    else:
        user = await db.users.find_one({"_id": user_id}, {"preferences": 1})
    return shown(user, titles, personal)


def form_names(follows: Iterable[str]) -> list[str]:
    """The page's form fields: the JSON fields' names, a nested one by its path (`shows.flash`, `quiet_hours.start`),
    so that a 422's field names the input to mark."""
    return [*(f"shows.{slug}" for slug in follows), "time_zone", "quiet_hours", *QUIET_FIELDS, "digest_hour"]


def form_values(preferences: Preferences, follows: Iterable[str]) -> dict[str, str]:
    """The stored preferences as the form shows them."""
    quiet = preferences.quiet_hours.to_json() if preferences.quiet_hours else QUIET_DEFAULT
    return {
        **{f"shows.{slug}": preferences.level(slug) for slug in follows},
        "time_zone": preferences.time_zone,
        "quiet_hours": "on" if preferences.quiet_hours else "",
        "quiet_hours.start": quiet["start"],
        "quiet_hours.end": quiet["end"],
        "digest_hour": str(preferences.digest_hour),
    }


def from_form(form: Mapping[str, str], follows: Iterable[str]) -> dict[str, Any]:
    """The form as the body of a PUT: the same change, checked by the same code. A level left empty keeps its value;
    quiet hours unticked are none; an hour that is not a number is passed on as sent, for the check to name."""
    hour = form["digest_hour"].strip()
    quiet = {"start": form["quiet_hours.start"], "end": form["quiet_hours.end"]} if form["quiet_hours"] else None
    return {
        "shows": {slug: form[f"shows.{slug}"] for slug in follows if form[f"shows.{slug}"]},
        "time_zone": form["time_zone"].strip(),
        "quiet_hours": quiet,
        "digest_hour": int(hour) if hour.isascii() and hour.isdigit() and len(hour) <= 2 else hour,
    }
