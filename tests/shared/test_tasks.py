"""shared/tasks.py: a shutdown's unwinding is bounded, and cut short it still runs every step."""

from __future__ import annotations

import asyncio

import pytest

from shared import tasks


async def test_an_unwinding_that_outlasts_its_bound_is_cut_short_and_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    ran: list[str] = []
    async with tasks.unwound_within(0, "the shutdown") as stack:
        stack.callback(ran.append, "the step before")
        stack.push_async_callback(asyncio.Event().wait)  # a wait nothing ends, as on a database that has gone
    assert ran == ["the step before"]
    assert "the shutdown took more than 0 s" in caplog.text


async def test_a_timeout_of_the_body_itself_is_not_taken_for_the_bound() -> None:
    with pytest.raises(TimeoutError):
        async with tasks.unwound_within(60, "the shutdown"):
            raise TimeoutError
