"""What a feed uses of its server beyond ASGI, in one place: every reach into uvicorn's and sse-starlette's private
objects. Each is checked at run time, with plain ASGI as the fallback, and tests/stream/test_server.py fails if either
library changes what it relies on.

- uvicorn's connection behind a request (`Connection.of`): `receive` is a method of the request's cycle, which holds
  the connection's `transport` (the stream service resets it to drop a feed whose client stopped reading: a graceful
  close would wait for the client to read what is buffered, for ever if it never does) and, in the httptools
  protocol, what a live frame written straight to the connection relies on (`Connection.write`).
- sse-starlette's signal that the server is stopping (`stopping`), which watches uvicorn's exit flag.

A live frame written past the ASGI send saves the hub's fan-out a task woken, five middleware wrappers and uvicorn's
send per feed and update. It relies on this, in uvicorn's httptools `RequestResponseCycle`: the connection's `flow`
(its `write_paused`: the transport asked the server to stop writing) and the response's state, `response_complete`,
`disconnected` and `chunked_encoding` (True once a head without a content-length went out); on uvicorn framing each
`http.response.body` chunk of a chunked body as `<hex length>\\r\\n<bytes>\\r\\n`; and on nothing in the app's
middleware changing a body on its way. A frame is written only while the transport's buffer is empty: one that holds
bytes says the client is not keeping up, and what follows takes the ASGI path, whose send waits while the transport
is paused, so the hub's sweep sees a stalled client and the feed's bounds hold.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
from typing import Any, Protocol

from sse_starlette.sse import EventSourceResponse
from starlette.types import Receive

CYCLES = {
    ("uvicorn.protocols.http.httptools_impl", "RequestResponseCycle"),
    ("uvicorn.protocols.http.h11_impl", "RequestResponseCycle"),
}
WRITES_CHUNKS = ("uvicorn.protocols.http.httptools_impl", "RequestResponseCycle")  # frames chunks as write() does
RELIED_ON = ("transport", "flow", "response_complete", "disconnected", "chunked_encoding")

log = logging.getLogger("gossip.stream.server")


class Transport(Protocol):
    """What is used of an asyncio (or uvloop) transport, whose classes uvloop does not share."""

    def abort(self) -> None: ...

    def is_closing(self) -> bool: ...

    def write(self, data: bytes) -> None: ...

    def get_write_buffer_size(self) -> int: ...

    def get_extra_info(self, name: str, default: Any = None) -> Any: ...


class Connection:
    """One request's connection, as uvicorn holds it. `writes`: frames may be written to it past the ASGI send."""

    __slots__ = ("_cycle", "transport", "writes")

    def __init__(self, cycle: Any, writes: bool) -> None:
        self._cycle, self.transport, self.writes = cycle, cycle.transport, writes

    @classmethod
    def of(cls, receive: Receive) -> Connection | None:
        """None unless `receive` is uvicorn's own, with a transport that can be reset: a middleware that wraps it, or
        another server, leaves the feed on plain ASGI (a dropped feed's send is then cancelled instead)."""
        cycle: Any = getattr(receive, "__self__", None)
        kind = type(cycle)
        if (kind.__module__, kind.__qualname__) not in CYCLES:
            return None
        transport = getattr(cycle, "transport", None)
        if not all(callable(getattr(transport, name, None)) for name in ("abort", "get_write_buffer_size")):
            return None
        writes = (kind.__module__, kind.__qualname__) == WRITES_CHUNKS and all(hasattr(cycle, n) for n in RELIED_ON)
        writes = writes and hasattr(cycle.flow, "write_paused") and callable(getattr(transport, "write", None))
        return cls(cycle, writes)

    def write(self, frame: bytes) -> bool:
        """Sends `frame` as the next chunk of the body, if the response is under way in chunks and the connection
        takes it at once: True when it was written, False when it must take the ASGI path. A write that fails
        (uvicorn changed in a way the checks at the start did not see) must not cost the other feeds of a fan-out,
        nor this one its frame: the connection goes back to ASGI for good."""
        if not self.writes:
            return False
        try:
            return self._written(frame)
        except Exception:
            log.exception("writing a frame straight to its connection failed; the feed sends through ASGI instead")
            self.writes = False
            return False

    def _written(self, frame: bytes) -> bool:
        cycle, transport = self._cycle, self.transport
        if cycle.chunked_encoding is not True or cycle.response_complete or cycle.disconnected:
            return False
        if transport.is_closing() or cycle.flow.write_paused or transport.get_write_buffer_size():
            return False
        transport.write(b"%x\r\n%b\r\n" % (len(frame), frame))
        return True

    def unread(self) -> int:
        """Bytes sent that the client has not taken yet."""
        size: int = self.transport.get_write_buffer_size()
        return size

    def reset(self) -> None:
        """Drops the connection now, and with a reset: a plain close of a socket whose client does not read would
        leave the kernel holding what was sent (megabytes on loopback) until it gave up on the client, minutes
        later."""
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.transport.abort()


async def stopping() -> None:
    """Returns once the server has been told to stop: sse-starlette's own signal (it watches uvicorn's exit flag),
    waited for once for all feeds rather than by a task in every response."""
    await EventSourceResponse._listen_for_exit_signal()
