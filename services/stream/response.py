"""A feed's SSE response: sse-starlette's, except that a send goes straight out and only notes when it began, and
the feed leaves the hub only once the response has ended, its last send included."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from sse_starlette.sse import EventSourceResponse
from starlette.types import Message, Receive, Scope, Send

from services.stream.hub import Feed
from shared.connections import reset


class FeedResponse(EventSourceResponse):
    """sse-starlette wraps every send in an anyio cancel scope for its `send_timeout`, even when that is None. At
    fan-out those scopes took a fifth of the stream process's time, more than everything else but the socket
    writes. So a send here only notes when it began, and the hub's heartbeat drops a feed whose send has hung for
    longer than the setting (Hub.drop_stalled): one sweep for every feed instead of a timer per send. Every send
    is noted, the last one too, and the feed stays in the hub until the response is over, so the sweep sees a
    response stuck on any of them."""

    def __init__(self, feed: Feed, content: AsyncIterator[bytes], closed: Callable[[Feed], None], **options: Any):
        super().__init__(content, **options)
        self.feed, self.closed = feed, closed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        feed = self.feed

        async def noted(message: Message) -> None:
            if feed.sender is None:
                feed.sender = asyncio.current_task()
            feed.sending_since = time.monotonic()
            try:
                await send(message)
            finally:
                feed.sending_since = 0.0

        try:
            await super().__call__(scope, receive, noted)
        finally:
            if feed.transport is not None and feed.transport.get_write_buffer_size():
                # The client has not taken all that was sent: a graceful close would wait until it does, for ever
                # if it never reads again. It reconnects and replays what it missed.
                reset(feed.transport)
            self.closed(feed)

    async def _send_with_timeout(self, send: Send, message: Message) -> None:
        await send(message)
