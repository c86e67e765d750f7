"""The README is followed as written: its configuration table names every variable the settings read, its curl
blocks work top to bottom, and its mongosh one-liner puts an update on everyone's page."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from shared.db import Database
from shared.settings import ROOT, RULES, Settings
from tests.support.accounts import registered
from tests.support.servers import gossip_server
from tests.support.sse import events


class Recording(dict[str, str]):
    """An environment that notes every name looked up in it."""

    def __init__(self, **values: str) -> None:
        super().__init__(values)
        self.read: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.read.add(key)
        return super().get(key, default)


def test_the_configuration_table_names_every_variable_the_settings_read() -> None:
    env = Recording(SECRET_KEY="given, so that no secret file is written")
    Settings.from_env(env)
    table = re.findall(r"^\| `([A-Z_]+)` \|", (ROOT / "README.md").read_text(), re.MULTILINE)
    assert sorted(table) == sorted(env.read)


def commands(section: str) -> list[str]:
    """The commands of the `sh` block under a README heading, continued lines joined, comment lines left out."""
    text = (ROOT / "README.md").read_text().split(f"\n## {section}\n", 1)[1]
    block = re.search(r"```sh\n(.*?)```", text, re.DOTALL)
    assert block, section
    lines = re.sub(r"\\\n\s*", "", block.group(1)).splitlines()
    return [line for line in lines if line.strip() and not line.startswith("#")]


def test_the_curl_blocks_work_followed_top_to_bottom(server: str, tmp_path: Path) -> None:
    """As a reader types them, in one directory (the cookie jar) and one shell session ($TOKEN)."""
    env = {**os.environ, "BODY": str(tmp_path / "body")}
    for command in (
        commands("From the command line") + commands("Publishing from scripts") + commands("The email digest")
    ):
        if command.startswith("TOKEN="):  # the reader copies the token from the answer before
            env["TOKEN"] = json.loads((tmp_path / "body").read_text())["token"]
            continue
        assert command.startswith("curl "), command
        command = command.replace("localhost:8000", server.removeprefix("http://")).replace(
            "curl ", """curl -sS -o "$BODY" -w '%{http_code}' --max-time 2 """, 1
        )  # --max-time: `curl -N` on a feed would read for ever
        result = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True)
        assert result.stdout in {"200", "201", "204"}, (command, result.stdout, (tmp_path / "body").read_text())


async def test_the_mongosh_one_liner_puts_an_update_on_everyones_page(alice: httpx.AsyncClient, db: Database) -> None:
    """The document it inserts, inserted as mongosh would: it reaches a feed of every show."""
    block = (ROOT / "README.md").read_text().split("\n## Changes made in MongoDB\n", 1)[1]
    command = re.search(r"^mongosh '(mongodb://[^']+)' --eval 'db\.updates\.insertOne\((\{.*\})\)'$", block, re.M)
    assert command, "the one-liner"
    assert urlsplit(command.group(1)).path == f"/{Settings(secret_key='s').mongo_db}"
    async with events(alice, "/events/all") as feed:
        await db.updates.insert_one(json.loads(command.group(2)))
        (update,) = await feed.updates(1, timeout=2)
    assert (update["seq"], update["title"], update["text"]) == (1, "The Flash", "Barry is back")


async def test_the_watch_rule_one_liners_put_an_episode_on_its_followers_pages(settings: Settings) -> None:
    """The Python one-liner run as written, against the test's database; the mongosh one inserts the same."""
    block = (ROOT / "README.md").read_text().split("\n## Watch rules: changes anywhere in the database\n", 1)[1]
    assert re.search(r"^mongosh 'mongodb://127\.0\.0\.1:27027/gossip\?directConnection=true' --eval "
                     r"'db\.episodes\.insertOne\(\{\"show\": \"flash\", \"title\": \"Pilot\"", block, re.M)  # fmt: skip
    python = re.search(r"^\.venv/bin/python -c '(.*)'$", block, re.M)
    assert python, "the Python one-liner"
    code = python.group(1).replace("mongodb://127.0.0.1:27027", settings.mongo_url)
    code = code.replace(").gossip.", f")[{settings.mongo_db!r}].")
    live = gossip_server(dataclasses.replace(settings, watch_rules=RULES))
    try:
        async with registered(live.url, "rae") as rae:
            await rae.put("/api/me/follows/flash")
            async with events(rae) as feed:
                ran = await asyncio.create_subprocess_exec(sys.executable, "-c", code)
                assert await asyncio.wait_for(ran.wait(), 30) == 0
                (update,) = await feed.updates(1, timeout=5)
            page = (await rae.get("/notifications")).text
    finally:
        live.stop()
    assert update["text"] == "New episode of The Flash: Pilot, on Tue 08 Dec"
    assert update["text"] in page
