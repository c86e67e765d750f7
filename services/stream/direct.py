"""A live frame written straight to its connection, past the ASGI send, when nothing else is pending on it.

A delivery through ASGI wakes the feed's sending task, passes five middleware wrappers and uvicorn's send: 5-7 µs
of Python on top of the 8 µs the kernel takes to send it, for each of a thousand feeds at each update. Here the hub's
fan-out loop writes the frame itself, framed as uvicorn frames a chunk of a chunked body, when the feed has nothing
queued, its sender is idle and the connection takes it at once; otherwise the frame goes through the feed's queue
and its sender as before (services/stream/hub.py decides, services/stream/response.py attaches this).

It reaches into uvicorn's private objects, so it is used only where it can check what it relies on at run time, and
the feed keeps its ASGI path wherever it cannot:
- the server's `send` (connections.py) is a method of uvicorn's httptools `RequestResponseCycle`, which holds
  the connection's `transport` and `flow` (its `write_paused`: the transport asked the server to stop writing), and
  the response's state: `response_complete`, `disconnected`, and `chunked_encoding` (True once a head without a
  content-length went out);
- nothing else writes to the connection meanwhile: the feed's sender is waiting for a frame, in no send (hub.py);
- uvicorn writes each `http.response.body` chunk of a chunked body as `<hex length>\\r\\n<bytes>\\r\\n`, and nothing in
  the app's middleware changes a body on its way (tests/stream/test_direct.py fails if either stops being true);
- a frame is written only while the transport's buffer is empty: one that holds bytes says the client is not keeping
  up, and what follows takes the ASGI path, whose send waits when the transport is paused, so the hub's sweep sees a
  stalled client and the queue's bounds hold.
"""

from __future__ import annotations

from typing import Any

from starlette.types import Send

CYCLE = ("uvicorn.protocols.http.httptools_impl", "RequestResponseCycle")
RELIED_ON = ("transport", "flow", "response_complete", "disconnected", "chunked_encoding")


class Direct:
    """One connection's way around the ASGI send."""

    __slots__ = ("_cycle", "_flow", "_transport")

    def __init__(self, cycle: Any) -> None:
        self._cycle, self._flow, self._transport = cycle, cycle.flow, cycle.transport

    @classmethod
    def of(cls, send: Send | None) -> Direct | None:
        """None unless `send` is uvicorn's httptools cycle with everything this relies on."""
        cycle: Any = getattr(send, "__self__", None)
        kind = type(cycle)
        if (kind.__module__, kind.__qualname__) != CYCLE or not all(hasattr(cycle, name) for name in RELIED_ON):
            return None
        if not hasattr(cycle.flow, "write_paused") or not callable(getattr(cycle.transport, "write", None)):
            return None
        return cls(cycle)

    def write(self, frame: bytes) -> bool:
        """Sends `frame` as the next chunk of the body, if the response is under way in chunks and the connection
        takes it at once: True when it was written, False when it must take the ASGI path."""
        cycle, transport = self._cycle, self._transport
        if cycle.chunked_encoding is not True or cycle.response_complete or cycle.disconnected:
            return False
        if transport.is_closing() or self._flow.write_paused or transport.get_write_buffer_size():
            return False
        transport.write(b"%x\r\n%b\r\n" % (len(frame), frame))
        return True
