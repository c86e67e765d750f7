"""Live servers for tests: the app on a real uvicorn in this process, and a service's metrics read over HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import uvicorn
from opentelemetry.sdk.trace import TracerProvider
from starlette.types import ASGIApp

from dev.processes import ServiceProcess
from services.all import app as gossip_app
from shared.malformed import JsonErrorProtocol
from shared.settings import Settings
from tests.support.http import get


class _Uvicorn(uvicorn.Server):
    """uvicorn's server, woken at once by `exit` from another thread: its own loop notices `should_exit` only at its
    next tick, up to a tenth of a second later, which each test that serves would wait."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._told = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    async def main_loop(self) -> None:
        """uvicorn's loop, a tick every tenth of a second, each tick cut short by `exit`."""
        self._loop = asyncio.get_running_loop()
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 1) % 864_000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._told.wait(), 0.1)

    def exit(self) -> None:
        self.should_exit = True
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has ended already: the server has stopped
                self._loop.call_soon_threadsafe(self._told.set)


def loopback_socket(port: int = 0) -> socket.socket:
    """Bound before anything is told its port (0: one the kernel chooses), so nothing else can take it in between."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    return sock


class LiveServer:
    """A real uvicorn serving a real socket, in a thread of the test process so that it starts in milliseconds."""

    def __init__(
        self, app: ASGIApp, graceful: float = 3.0, port: int = 0, sock: socket.socket | None = None, **options: Any
    ) -> None:
        """`port`: a given one, to come back where a stopped server was (its browsers reconnect there). `sock`: a
        loopback_socket() already bound, for an app that is told its own address; closed with the server. `options`:
        more of uvicorn's, such as another `http` protocol than the one services run on."""
        self.sock = sock or loopback_socket(port)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        options = {"http": JsonErrorProtocol, **options}  # as services run
        config = uvicorn.Config(
            app, log_config=None, lifespan="on", timeout_graceful_shutdown=graceful, proxy_headers=False, **options
        )
        self.server = _Uvicorn(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def start(self, timeout: float = 15.0) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start; see the log above")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 15.0) -> None:
        self.server.exit()
        self.thread.join(timeout)
        self.sock.close()
        if self.thread.is_alive():
            raise RuntimeError(f"uvicorn did not shut down within {timeout} s")


def gossip_server(settings: Settings, port: int = 0, tracer_provider: TracerProvider | None = None) -> LiveServer:
    """All three services' routes on one live uvicorn, as `make run` serves them, started; `port` as LiveServer's;
    `tracer_provider`: where its spans go (else traces are as the settings say)."""
    app = gossip_app.create(settings, tracer_provider)
    return LiveServer(app, port=port).start()


@contextlib.contextmanager
def serving(settings: Settings, tracer_provider: TracerProvider | None = None) -> Iterator[str]:
    """gossip_server(), stopped after: yields its URL."""
    live = gossip_server(settings, tracer_provider=tracer_provider)
    try:
        yield live.url
    finally:
        live.stop()


def gauge(url: str, name: str) -> float:
    """A metric's current value, read from a service's /metrics."""
    text = get(f"{url}/metrics", timeout=5).text
    return float(next(line for line in text.splitlines() if line.startswith(name + " ")).split()[1])


def access_lines(process: ServiceProcess) -> list[dict[str, Any]]:
    """A service process's access log so far, one dict per request (LOG_FORMAT=json)."""
    lines = [json.loads(line) for line in process.output().splitlines() if line.startswith("{")]
    return [line for line in lines if line["logger"] == "gossip.access"]
