"""`make run`: the embedded MongoDB-protocol server (unless MONGO_URL is set) and all three services on one port."""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import dataclasses
import logging
import os
import signal
import socket
import sys
import threading

import uvicorn

from dev.embedded import EmbeddedMongo, PortTaken
from dev.processes import holder
from dev.replicas import listening, replicas
from services.all import app as gossip
from shared.logs import configure
from shared.malformed import JsonErrorProtocol
from shared.settings import Settings

log = logging.getLogger("gossip.run")
PR_SET_PDEATHSIG = 1  # prctl(2)


def _exit(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _stop_gracefully_on_signals() -> None:
    """Uvicorn shuts down on SIGTERM, then raises it again, which by default ends the process on the spot and
    leaves the embedded database running; here it exits through the `with` that stops the database. A closed
    terminal's SIGHUP takes the same way."""
    signal.signal(signal.SIGTERM, _exit)
    signal.signal(signal.SIGHUP, lambda *_: os.kill(os.getpid(), signal.SIGTERM))


def _stop_with_the_database(mongo: EmbeddedMongo, server: uvicorn.Server, leaving: threading.Event) -> threading.Event:
    """Gossip cannot work without its database: if the embedded server exits while Gossip is not leaving, Gossip
    stops too, saying why, instead of answering every page with an error. Returns what is set when it did."""
    lost = threading.Event()

    def watch() -> None:
        assert mongo.process is not None
        status = mongo.process.wait()
        if not leaving.is_set():
            how = f"was killed by signal {-status}" if status < 0 else f"exited with status {status}"
            log.error("the embedded MongoDB-protocol server %s (see %s); stopping", how, mongo.data / "nx-27017.out")
            lost.set()
            server.should_exit = True

    threading.Thread(target=watch, name="embedded-watch", daemon=True).start()
    return lost


def _listen(settings: Settings, shared: bool) -> socket.socket:
    """The web port, bound before anything else starts: taken, it is said at once, naming the setting, and nothing
    claims to serve on it. `shared`: by replicas too (dev/replicas.py)."""
    try:
        sock = listening(settings, shared)
    except OSError as error:
        held = f"; {who}" if (who := holder(settings.port)) else ""
        log.error("cannot serve on %s:%d (%s%s): stop what listens there, or set PORT", settings.host, settings.port,
                  error.strerror, held)  # fmt: skip
        raise SystemExit(1) from None
    return sock


def _arguments(arguments: list[str]) -> argparse.Namespace:
    """`--streams N` (`make run STREAMS=N`): Gossip as N processes on the one port (dev/replicas.py). `--parent PID`
    (`make run` passes its own): the process whose end ends this one."""
    parser = argparse.ArgumentParser(prog="python -m dev.run")
    parser.add_argument("--streams", type=int, default=1, choices=range(1, 17), metavar="1..16")
    parser.add_argument("--parent", type=int, metavar="PID")
    return parser.parse_args(arguments)


def _stop_with(parent: int | None) -> None:
    """make killed outright (SIGKILL) passes nothing on to the recipe it runs, which would serve on unseen with its
    database, holding both ports. On Linux the kernel sends this process SIGTERM when its parent ends (the recipe
    `exec`s it, so make is the parent), and it stops as on any stop. Asked for by PID, never by default: the signal
    follows the thread that started the process, which in a program other than make may end long before it."""
    if parent is None or not sys.platform.startswith("linux"):
        return
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # it ended before the kernel was asked
        os.kill(os.getpid(), signal.SIGTERM)


def main() -> None:
    arguments = _arguments(sys.argv[1:])
    streams = arguments.streams
    try:
        settings = Settings.from_env()
    except ValueError as error:  # the message names the variable; a traceback would only bury it
        sys.stderr.write(f"gossip: {error}\n")
        raise SystemExit(2) from None
    configure(settings.log_format)
    _stop_gracefully_on_signals()
    _stop_with(arguments.parent)
    with contextlib.ExitStack() as stack:
        sock = stack.enter_context(_listen(settings, streams > 1))
        mongo = None
        if not settings.mongo_url:
            try:
                mongo = stack.enter_context(EmbeddedMongo(settings.embedded_data, port=settings.embedded_port))
            except PortTaken as error:
                log.error("the embedded MongoDB-protocol server did not start: %s; stop it, or set EMBEDDED_PORT "
                          "(or MONGO_URL for a MongoDB of your own)", error)  # fmt: skip
                raise SystemExit(1) from None
            except RuntimeError as error:  # its message says what to do; a traceback would only bury it
                log.error("the embedded MongoDB-protocol server did not start: %s", error)
                raise SystemExit(1) from None
            settings = dataclasses.replace(settings, mongo_url=mongo.url)
            log.info("embedded MongoDB-protocol server on %s, data in %s", mongo.url, mongo.data)
        stack.enter_context(replicas(streams - 1, settings))
        app = gossip.create(settings)
        config = uvicorn.Config(
            app, host=settings.host, port=settings.port, log_config=None, timeout_graceful_shutdown=5,
            proxy_headers=False,  # the app believes forwarded headers from TRUSTED_PROXIES only (shared/proxies.py)
            http=JsonErrorProtocol,  # a request that cannot be parsed gets the JSON error body too
        )  # fmt: skip
        server = uvicorn.Server(config)
        lost = threading.Event()
        if mongo is not None:
            leaving = threading.Event()
            stack.callback(leaving.set)  # unwound before the database is stopped: that exit is ours
            lost = _stop_with_the_database(mongo, server, leaving)
        processes = f" ({streams} processes)" if streams > 1 else ""
        log.info("Gossip on http://%s:%d%s", settings.host, settings.port, processes)
        try:
            server.run(sockets=[sock])
        except KeyboardInterrupt:  # Ctrl-C, raised again by uvicorn once it has shut down
            return
        if lost.is_set() or not server.started:  # each logged already
            raise SystemExit(1)


if __name__ == "__main__":
    main()
