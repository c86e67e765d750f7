"""A feed's SSE response: sse-starlette's, except that a send goes straight out and only notes when it began."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from sse_starlette.sse import EventSourceResponse
from starlette.types import Message, Send

from services.stream.hub import Feed


class FeedResponse(EventSourceResponse):
    """sse-starlette wraps every send in an anyio cancel scope for its `send_timeout`, even when that is None. At
    fan-out those scopes took a fifth of the stream process's time, more than everything else but the socket
    writes. So a send here only notes when it began, and the hub's heartbeat drops a feed whose send has hung for
    longer than the setting (Hub.drop_stalled): one sweep for every feed instead of a timer per send."""

    def __init__(self, feed: Feed, content: AsyncIterator[bytes], **options: Any) -> None:
        super().__init__(content, **options)
        self.feed = feed

    async def _send_with_timeout(self, send: Send, message: Message) -> None:
        if not message.get("more_body"):  # a HEAD's answer: no stream, and nothing for the hub to drop
            await send(message)
            return
        feed = self.feed
        if feed.sender is None:
            feed.sender = asyncio.current_task()
        feed.sending_since = time.monotonic()
        try:
            await send(message)
        finally:
            feed.sending_since = 0.0
