"""What a feed uses of its server beyond ASGI, in one place: every reach into uvicorn's and sse-starlette's private
objects. Each is checked at run time, with plain ASGI as the fallback, and tests/stream/test_server.py fails if either
library changes what it relies on.

- uvicorn's connection behind a request (`Connection.of`): `receive` is a method of the request's cycle, which holds
  the connection's `transport` (the stream service resets it to drop a feed whose client stopped reading: a graceful
  close would wait for the client to read what is buffered, for ever if it never does) and, in the httptools
  protocol, what a live frame written straight to the connection relies on (`Connection.write`).
- uvicorn's httptools connection handed over to a parked feed (`Connection.park`, `Parked`), below.
- sse-starlette's signal that the server is stopping (`stopping`), which watches uvicorn's exit flag.

A live frame written past the ASGI send saves the hub's fan-out a task woken, five middleware wrappers and uvicorn's
send per feed and update. It relies on this, in uvicorn's httptools `RequestResponseCycle`: the connection's `flow`
(its `write_paused`: the transport asked the server to stop writing) and the response's state, `response_complete`,
`disconnected` and `chunked_encoding` (True once a head without a content-length went out); on uvicorn framing each
`http.response.body` chunk of a chunked body as `<hex length>\\r\\n<bytes>\\r\\n`; and on nothing in the app's
middleware changing a body on its way. A frame is written only while the transport's buffer is empty: one that holds
bytes says the client is not keeping up, and what follows takes the ASGI path, whose send waits while the transport
is paused, so the hub's sweep sees a stalled client and the feed's bounds hold.

A feed whose head and history are out parks (`Connection.park`): uvicorn lets its connection go, as it does when it
hands one over to a WebSocket protocol, and the request's task returns through the middleware, so that an idle feed
holds neither the task with its frames and send wrappers nor uvicorn's per-request objects (its protocol and parser,
the cycle, the scope, two asyncio Events). It relies on this, in uvicorn's httptools protocol: the connection's
protocol holds the server's `connections` (what its graceful shutdown calls `shutdown()` on and waits to see empty),
its `cycle`, its `pipeline` of requests sent ahead and its `parser`; a cycle marked `response_complete` answers the
request's wait for the client with a disconnect (once its `message_event` is set), and `run_asgi` then neither
writes nor closes the transport, nor does uvicorn arm its keep-alive timeout (armed only when its own send completes
a response); and nothing of the old protocol is reached once the transport has another (the parser, which refers
back to the protocol, is let go so that reference counting frees both at once). From then on the transport talks to
`Parked`, which tells the feed what only the connection knows: the client left, the client stopped reading, or the
server is stopping.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
import time
from typing import Any, Protocol

from sse_starlette.sse import EventSourceResponse
from starlette.types import Receive

CYCLES = {
    ("uvicorn.protocols.http.httptools_impl", "RequestResponseCycle"),
    ("uvicorn.protocols.http.h11_impl", "RequestResponseCycle"),
}
WRITES_CHUNKS = ("uvicorn.protocols.http.httptools_impl", "RequestResponseCycle")  # frames chunks as write() does
RELIED_ON = ("transport", "flow", "response_complete", "disconnected", "chunked_encoding")
PARKING = ("connections", "cycle", "pipeline", "parser")  # of uvicorn's httptools protocol, for Connection.park
LAST_CHUNK = b"0\r\n\r\n"

log = logging.getLogger("gossip.stream.server")


class Transport(Protocol):
    """What is used of an asyncio (or uvloop) transport, whose classes uvloop does not share."""

    def abort(self) -> None: ...

    def is_closing(self) -> bool: ...

    def write(self, data: bytes) -> None: ...

    def get_write_buffer_size(self) -> int: ...

    def get_extra_info(self, name: str, default: Any = None) -> Any: ...

    def close(self) -> None: ...

    def resume_reading(self) -> None: ...

    def get_protocol(self) -> Any: ...

    def set_protocol(self, protocol: Any) -> None: ...


class Tenant(Protocol):
    """What a parked connection tells its feed (services/stream/feed.py)."""

    def end(self) -> None: ...

    def gone(self) -> None: ...

    def paused(self, since: float) -> None: ...


class Connection:
    """One request's connection, as uvicorn holds it. `writes`: frames may be written to it past the ASGI send.
    `parks`: it can be handed over to its feed (`park`); `parked`: it has been."""

    __slots__ = ("_cycle", "parked", "parks", "transport", "writes")

    def __init__(self, cycle: Any, writes: bool, parks: bool = False) -> None:
        self._cycle, self.transport, self.writes, self.parks, self.parked = cycle, cycle.transport, writes, parks, False

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
        get_protocol = getattr(transport, "get_protocol", None)
        protocol: Any = get_protocol() if callable(get_protocol) else None
        parks = writes and all(hasattr(protocol, name) for name in PARKING) and hasattr(cycle, "message_event")
        parks = parks and protocol.cycle is cycle and callable(getattr(transport, "set_protocol", None))
        return cls(cycle, writes, parks)

    def write(self, frame: bytes) -> bool:
        """Sends `frame` as the next chunk of the body, if the response is under way in chunks and the connection
        takes it at once: True when it was written, False when it must take the ASGI path. A write that fails
        (uvicorn changed in a way the checks at the start did not see) must not cost the other feeds of a fan-out,
        nor this one its frame: the connection goes back to ASGI for good."""
        if self.parked:
            return self._put(b"%x\r\n%b\r\n" % (len(frame), frame))
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

    def park(self, tenant: Tenant) -> bool:
        """Hands the connection over from uvicorn to `tenant`, a feed whose head is out, if uvicorn's request is under
        way in chunks, has taken all it was given and has no request queued behind it: True once done, and the
        request's wait for the client (`receive`) then answers a disconnect, so that its task can return. From then
        on only `write`, `finish` and `reset` reach the connection, and the tenant hears of its end."""
        if not self.parks or not self._parkable():
            return False
        cycle, transport = self._cycle, self.transport
        protocol = transport.get_protocol()
        parked = Parked(tenant, protocol.connections)
        transport.set_protocol(parked)
        transport.resume_reading()  # were it paused (a body sent with the request), the client's leaving would not show
        cycle.response_complete = True  # for uvicorn the response is over; nothing of its own is armed or written
        protocol.connections.discard(protocol)
        protocol.connections.add(parked)
        protocol.parser = None  # it refers back to the protocol: let go, both are freed as the request's task ends
        cycle.message_event.set()
        self._cycle, self.parked = None, True
        return True

    def _parkable(self) -> bool:
        cycle, transport = self._cycle, self.transport
        if cycle.chunked_encoding is not True or cycle.response_complete or cycle.disconnected:
            return False
        if transport.is_closing() or cycle.flow.write_paused or transport.get_write_buffer_size():
            return False
        protocol = transport.get_protocol()
        return protocol.cycle is cycle and not protocol.pipeline

    def finish(self) -> None:
        """Ends a parked connection's response with the last chunk, and closes the connection once it is sent."""
        if self._put(LAST_CHUNK):
            self.transport.close()

    def _put(self, data: bytes) -> bool:
        """A parked connection's write: the transport buffers what the socket does not take at once (the feed bounds
        it). False once the connection is closing: what was meant for it is of no use to anyone."""
        if self.transport.is_closing():
            return False
        self.transport.write(data)
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


class Parked(asyncio.Protocol):
    """A parked feed's connection, once uvicorn has let it go. It stands among uvicorn's connections in its place, so
    that the server's graceful shutdown ends the feed and waits for it to close, as it waits for its own."""

    __slots__ = ("_connections", "_tenant")

    def __init__(self, tenant: Tenant, connections: set[Any]) -> None:
        self._tenant, self._connections = tenant, connections

    def connection_lost(self, exc: Exception | None) -> None:
        self._connections.discard(self)
        self._tenant.gone()

    def data_received(self, data: bytes) -> None:
        """A client that sends another request on a connection whose response never ends: the feed ends, and so the
        connection, and the client asks again on a new one (an EventSource never does this)."""
        self._tenant.end()

    def eof_received(self) -> bool:
        return False  # the client has gone: the transport closes, and connection_lost follows

    def pause_writing(self) -> None:
        """The client has not taken what the transport holds (past its high-water mark): the hub's sweep drops the
        feed if it stays so (Hub.drop_stalled), as it drops one whose ASGI send hangs."""
        self._tenant.paused(time.monotonic())

    def resume_writing(self) -> None:
        self._tenant.paused(0.0)

    def shutdown(self) -> None:
        """What uvicorn's graceful shutdown calls on each of its connections."""
        self._tenant.end()


async def stopping() -> None:
    """Returns once the server has been told to stop: sse-starlette's own signal (it watches uvicorn's exit flag),
    waited for once for all feeds rather than by a task in every response."""
    await EventSourceResponse._listen_for_exit_signal()
