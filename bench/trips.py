"""The database round trips one publish makes, counted by PyMongo's command monitoring and named by command.

A script publishing in a loop waits for each of its publishes, and each waits for the round trips it makes one
after the other: their count is what its rate is made of. The count is taken in a process of its own
(`python -m bench.trips MONGO_URL PUBLISHES`), since a listener registered with PyMongo hears every client the
process makes after it: that process serves the ingest app on a loopback port, as ingest's own process would, and
posts to it with an API token, one publish at a time, after a few that warm up the token cache and the rate
limit's lease. It prints the commands a publish made, on average, by name, as one JSON object.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import socket
import subprocess
import sys
from collections import Counter

import uvicorn
from pymongo import monitoring

from bench import new_event_loop
from bench.cluster import UNLIMITED, bearer_post, token_of
from bench.http import Connection, Publisher
from services.ingest import app as ingest
from shared.app import create_app
from shared.db import connect, prepare
from shared.settings import Settings

WARM_UP = 20  # publishes before counting: the token is cached and the author's tokens leased by then
TIMEOUT = 120.0


class Commands(monitoring.CommandListener):
    """Counts, by name, the commands started while `counting`."""

    def __init__(self) -> None:
        self.counting = False
        self.names: Counter[str] = Counter()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if self.counting:
            self.names[event.command_name] += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


async def count(mongo_url: str, publishes: int, commands: Commands) -> dict[str, float]:
    """The ingest app in this process, with the load scenarios' settings; `publishes` counted publishes. Its
    database client is made when the app starts, after `commands` was registered, so it reports to it."""
    settings = Settings(secret_key=secrets.token_urlsafe(32), mongo_url=mongo_url,
                        mongo_db=f"bench_trips_{secrets.token_hex(4)}",
                        publishes_per_author=int(UNLIMITED["PUBLISHES_PER_AUTHOR"]))  # fmt: skip
    app = create_app("ingest", ingest.routes, settings, ingest.extensions)
    listening = socket.create_server(("127.0.0.1", 0))  # connections wait in its backlog until the app is up
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, lifespan="on"))
    serving = asyncio.create_task(server.serve(sockets=[listening]))
    client = connect(mongo_url)
    db = client[settings.mongo_db]
    try:
        await prepare(db)
        token = await token_of(db, settings, "publisher")
        publisher = Publisher([await Connection.open(listening.getsockname()[1])], bearer_post(token))
        for number in range(WARM_UP):
            await publisher.publish("flash", f"warm-up {number}")
        commands.counting = True
        for number in range(publishes):
            await publisher.publish("flash", f"counted {number}")
        commands.counting = False
        await publisher.close()
    finally:
        server.should_exit = True
        await serving
        listening.close()
        await client.drop_database(settings.mongo_db)
        await client.close()
    return {name: times / publishes for name, times in commands.names.most_common()}


def round_trips(mongo_url: str, publishes: int = 200) -> dict[str, float]:
    """The commands one publish makes, by name, counted over `publishes` publishes in a process of their own."""
    command = [sys.executable, "-m", "bench.trips", mongo_url, str(publishes)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, check=False)
    if done.returncode:
        raise RuntimeError(f"counting round trips failed:\n{done.stderr}")
    said: dict[str, float] = json.loads(done.stdout.splitlines()[-1])
    return said


def main() -> None:
    commands = Commands()
    monitoring.register(commands)
    per_publish = asyncio.Runner(loop_factory=new_event_loop).run(count(sys.argv[1], int(sys.argv[2]), commands))
    print(json.dumps(per_publish), flush=True)


if __name__ == "__main__":
    main()
