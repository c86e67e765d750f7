"""Server-Sent Events as a test reads them: an open feed over httpx, parsed into events, each checked against the
API document. So an event type or shape a feed sends without documenting it fails every test that reads it."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jsonschema_rs

from shared.schemas import SCHEMAS


def _validator(name: str) -> jsonschema_rs.Validator:
    """A named schema of the document, its references resolved against the others."""
    root = {"$ref": f"#/components/schemas/{name}", "components": {"schemas": SCHEMAS}}
    return jsonschema_rs.validator_for(root, validate_formats=True)


# Each event type the document names: a validator of the event, and one of its data (contentSchema, which JSON Schema
# validators leave unchecked).
DOCUMENTED = {
    SCHEMAS[name]["properties"]["event"]["const"]: (
        _validator(name),
        _validator(SCHEMAS[name]["properties"]["data"]["contentSchema"]["$ref"].rsplit("/", 1)[1]),
    )
    for name in (choice["$ref"].rsplit("/", 1)[1] for choice in SCHEMAS["FeedEvent"]["oneOf"])
}


def check_documented(event: Event) -> None:
    assert event.event in DOCUMENTED, f"the API document has no {event.event!r} event"
    envelope, data = DOCUMENTED[event.event]
    envelope.validate({"event": event.event, "data": event.data, **({"id": event.id} if event.id else {})})
    data.validate(event.json())


@dataclasses.dataclass(frozen=True)
class Event:
    event: str
    data: str
    id: str | None = None

    def json(self) -> Any:
        return json.loads(self.data)


class EventReader:
    """Server-Sent Events parsed from an httpx streaming response: comments skipped, fields joined per event."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.aiter_lines()

    async def next(self, timeout: float = 5.0) -> Event:
        return await asyncio.wait_for(self._next(), timeout)

    async def named(self, name: str, timeout: float = 5.0) -> Event:
        """The next event of type `name`, skipping the others (a follow change is followed by a `read`, say)."""

        async def find() -> Event:
            while (event := await self._next()).event != name:
                pass
            return event

        return await asyncio.wait_for(find(), timeout)

    async def _next(self) -> Event:
        fields: dict[str, list[str]] = {}
        async for line in self._lines:
            if line == "":
                if "data" in fields:
                    event = Event(
                        fields.get("event", ["message"])[-1], "\n".join(fields["data"]), fields.get("id", [None])[-1]
                    )
                    check_documented(event)
                    return event
                fields = {}
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            fields.setdefault(name, []).append(value[1:] if value.startswith(" ") else value)
        raise EOFError("the stream ended")

    async def updates(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """The next `count` update events' data, skipping other event types."""
        found: list[dict[str, Any]] = []

        async def collect() -> None:
            while len(found) < count:
                event = await self._next()
                if event.event == "update":
                    assert event.id == str(event.json()["seq"])
                    found.append(event.json())

        await asyncio.wait_for(collect(), timeout)
        return found


@contextlib.asynccontextmanager
async def events(http: httpx.AsyncClient, path: str = "/events", **headers: str) -> AsyncIterator[EventReader]:
    async with http.stream("GET", path, headers=headers, timeout=httpx.Timeout(10, read=None)) as response:
        assert response.status_code == 200, (await response.aread()).decode()
        yield EventReader(response)


async def opening(http: httpx.AsyncClient, after: int, count: int) -> list[tuple[str, Any]]:
    """The first `count` events of /events?after=: their names, and an update's seq or another event's data."""
    async with events(http, f"/events?after={after}") as feed:
        opened = [await feed.next() for _ in range(count)]
    return [(event.event, event.json()["seq"] if event.event == "update" else event.json()) for event in opened]
