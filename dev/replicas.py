"""`make run STREAMS=3`: Gossip as that many processes on the one port, each holding its share of the feeds, as
stream replicas behind a gateway do; no gateway is needed, since every process serves every route.

Each process listens on the same address with SO_REUSEPORT, and the kernel spreads new connections evenly between
them. Each runs its own change streams and keeps nothing another needs: a browser's page, its feed and its
reconnection may each reach a different process (DESIGN.md: no sticky sessions). The first process is `make run`'s
own, which starts the embedded database; the others are its children (`python -m dev.replicas`), told the
database's URL, and stopped when it stops.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import Iterator

import uvicorn

from dev.processes import terminate
from services.all import app as gossip
from shared.logs import configure
from shared.malformed import JsonErrorProtocol
from shared.settings import Settings

STOP_WAIT = 10.0  # seconds a replica has to shut down before it is killed


def listening(settings: Settings, shared: bool) -> socket.socket:
    """The web port's socket, bound; `shared`: with SO_REUSEPORT, so that the replicas can bind it too."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if shared:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((settings.host, settings.port))
    except OSError:
        sock.close()
        raise
    return sock


@contextlib.contextmanager
def replicas(count: int, settings: Settings) -> Iterator[list[subprocess.Popen[bytes]]]:
    """`count` more Gossip processes on the port of `settings`, on its database; stopped (SIGTERM, as a terminal's
    Ctrl-C does) when the `with` ends."""
    env = {**os.environ, "MONGO_URL": settings.mongo_url, "MONGO_DB": settings.mongo_db}
    started: list[subprocess.Popen[bytes]] = []
    try:
        for _ in range(count):
            started.append(subprocess.Popen([sys.executable, "-m", "dev.replicas"], env=env))
        yield started
    finally:
        for process in started:
            process.terminate()
        for process in started:
            terminate(process, STOP_WAIT)


def serve() -> None:
    """One replica: every route, on the shared port, until it is told to stop."""
    settings = Settings.from_env()
    configure(settings.log_format)
    app = gossip.create(settings)
    config = uvicorn.Config(
        app, log_config=None, timeout_graceful_shutdown=5, proxy_headers=False, http=JsonErrorProtocol
    )
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C reaches the replicas too; uvicorn raises it once stopped
        uvicorn.Server(config).run(sockets=[listening(settings, shared=True)])


if __name__ == "__main__":
    serve()
