"""The README and docs/ are followed as written: the README's shell session works pasted in order, so do the API
guide's, the configuration table names every variable the settings read, the one-liners that write into MongoDB
put an update on everyone's page, and every relative link and anchor between them leads somewhere."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import subprocess
import sys
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from shared.db import Database
from shared.settings import ROOT, RULES, Settings
from tests.support.accounts import registered
from tests.support.servers import gauge, gossip_server
from tests.support.sse import events
from tests.support.updates import publish
from tests.support.waiting import wait_until

README = ROOT / "README.md"
DOCS = ROOT / "docs"
WATCH_RULES = "Notifications from changes in MongoDB"  # the README's section

# What a reader's shell does, strictly: a failed command (an HTTP error included) ends the session. A feed
# (`curl -N`) reads until the reader's Ctrl-C, so it is given a few seconds and its timeout (28) is its end.
SHELL = """set -eo pipefail
curl() {
  local status=0 limit=30
  if [[ " $* " == *" -N "* ]]; then limit=5; fi
  command curl -sS --fail-with-body --max-time "$limit" "${@//127.0.0.1:8000/$GOSSIP}" || status=$?
  if [[ $status -eq 28 && $limit -eq 5 ]]; then status=0; fi
  return "$status"
}
"""


class Recording(dict[str, str]):
    """An environment that notes every name looked up in it."""

    def __init__(self, **values: str) -> None:
        super().__init__(values)
        self.read: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.read.add(key)
        return super().get(key, default)


def section(path: Path, heading: str) -> str:
    """The text under a heading (any level) up to the next heading of the same or a higher level; a `#` line inside
    a fenced block is a shell comment, not a heading."""
    lines = path.read_text().splitlines(keepends=True)
    level, fenced, taken = 0, False, []
    for line in lines:
        fenced ^= line.startswith("```")
        found = None if fenced else re.match(r"(#+) (.*)\n", line)
        if found and level and len(found.group(1)) <= level:
            break
        if level:
            taken.append(line)
        elif found and found.group(2) == heading:
            level = len(found.group(1))
    assert level, (path.name, heading)
    return "".join(taken)


def shell(path: Path, *headings: str) -> str:
    """The `sh` blocks under those headings, in order, as one script."""
    blocks = [block for heading in headings for block in re.findall(r"```sh\n(.*?)```", section(path, heading), re.S)]
    assert len(blocks) >= len(headings), (path.name, headings)
    return "".join(blocks)


def run_session(script: str, server: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GOSSIP": server.removeprefix("http://")}
    return subprocess.run(["bash", "-c", SHELL + script], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_the_configuration_table_names_every_variable_the_settings_read() -> None:
    env = Recording(SECRET_KEY="given, so that no secret file is written")
    Settings.from_env(env)
    table = re.findall(r"^\| `([A-Z_]+)` \|", section(DOCS / "operations.md", "Configuration"), re.MULTILINE)
    assert sorted(table) == sorted(env.read)


def test_every_address_pasted_is_the_one_the_server_binds() -> None:
    """`make run` serves 127.0.0.1 only, as the tour's pages and the mails' links say; `localhost` may be tried as
    ::1 first. The shell sessions ask 127.0.0.1 too, and the curl wrapper above points them at the test's server."""
    readme = shell(README, "The API in brief")
    guide = shell(DOCS / "api.md", "From the command line", "Publishing from scripts", "Preferences, push and email")
    for script in (readme, guide):
        assert "localhost" not in script
        assert "127.0.0.1:8000/" in script


async def test_the_readme_session_works_pasted_in_order_after_the_tour(server: str, tmp_path: Path) -> None:
    """Someone else published first, as in the tour, so the session's own update is not seq 1: it must take its seq
    from the publish's answer. Its feed, at the end, gets what that someone publishes while it is open. Then the API
    guide's blocks, in another directory, as another reader."""
    async with registered(server, "alice") as alice:
        await publish(alice, "flash", "Iris knows")
        session = asyncio.create_task(
            asyncio.to_thread(run_session, shell(README, "The API in brief"), server, tmp_path)
        )
        await wait_until(lambda: session.done() or gauge(server, "gossip_stream_connections") == 1, timeout=60)
        await publish(alice, "flash", "Iris knows more")
        readme = await session
    assert readme.returncode == 0, (readme.stdout, readme.stderr)
    assert '"text":"Barry is back, for good"' in readme.stdout  # the edit's answer
    assert re.search(r'^data: \{"seq":3,.*"text":"Iris knows more"', readme.stdout, re.MULTILINE)  # the feed
    guide = tmp_path / "guide"
    guide.mkdir()
    sections = ("From the command line", "Publishing from scripts", "Preferences, push and email")
    api = await asyncio.to_thread(run_session, shell(DOCS / "api.md", *sections), server, guide)
    assert api.returncode == 0, (api.stdout, api.stderr)
    assert '"verified":false' in api.stdout.replace(" ", "")


async def test_the_readme_session_fails_at_someone_elses_seq(server: str, tmp_path: Path) -> None:
    """The session is strict: an edit of seq 1, someone else's update after the tour, answers 403 and stops it."""
    async with registered(server, "alice") as alice:
        await publish(alice, "flash", "Iris knows")
    script = shell(README, "The API in brief").replace(
        '"127.0.0.1:8000/api/updates/$SEQ"', "127.0.0.1:8000/api/updates/1"
    )
    result = await asyncio.to_thread(run_session, script, server, tmp_path)
    assert (result.returncode, result.stderr) == (22, "curl: (22) The requested URL returned error: 403\n")


async def test_the_mongodb_one_liners_put_an_update_on_everyones_page(
    alice: httpx.AsyncClient, settings: Settings
) -> None:
    """The Python one-liner run as written, against the test's database; the mongosh one inserts the same."""
    block = section(DOCS / "watch-rules.md", "Changes made in MongoDB")
    mongosh = re.search(r"^mongosh '(mongodb://[^']+)' --eval 'db\.updates\.insertOne\((\{.*\})\)'$", block, re.M)
    assert mongosh, "the mongosh one-liner"
    assert urlsplit(mongosh.group(1)).path == f"/{Settings(secret_key='s').mongo_db}"
    python = re.search(r"^\.venv/bin/python -c '(.*)'$", block, re.M)
    assert python, "the Python one-liner"
    assert f".gossip.updates.insert_one({mongosh.group(2)})" in python.group(1)
    code = python.group(1).replace("mongodb://127.0.0.1:27027/?directConnection=true", settings.mongo_url)
    code = code.replace(").gossip.", f")[{settings.mongo_db!r}].")
    assert settings.mongo_url in code
    async with events(alice, "/events/all") as feed:
        ran = await asyncio.create_subprocess_exec(sys.executable, "-c", code)
        assert await asyncio.wait_for(ran.wait(), 30) == 0
        (update,) = await feed.updates(1, timeout=5)
    assert (update["seq"], update["title"], update["text"]) == (1, "The Flash", "Barry is back")
    assert json.loads(mongosh.group(2))["author"] == update["author"]


async def test_the_watch_rule_one_liners_put_an_episode_on_its_followers_pages(settings: Settings) -> None:
    """The Python one-liner run as written, against the test's database; the mongosh one inserts the same."""
    block = section(README, WATCH_RULES)
    assert re.search(r"^mongosh 'mongodb://127\.0\.0\.1:27027/gossip\?directConnection=true' --eval "
                     r"'db\.episodes\.insertOne\(\{\"show\": \"flash\", \"title\": \"Pilot\"", block, re.M)  # fmt: skip
    python = re.search(r"^\.venv/bin/python -c '(.*)'$", block, re.M)
    assert python, "the Python one-liner"
    code = python.group(1).replace("mongodb://127.0.0.1:27027/?directConnection=true", settings.mongo_url)
    code = code.replace(").gossip.", f")[{settings.mongo_db!r}].")
    assert settings.mongo_url in code
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


def test_the_rules_files_shown_are_the_shipped_one() -> None:
    """The README's copy and the watch rules guide's annotated one: the same rules as gossip.toml, setting for
    setting."""
    shipped = tomllib.loads(RULES.read_text())
    guide = section(DOCS / "watch-rules.md", "Watch rules: changes anywhere in the database")
    for block in (section(README, WATCH_RULES), guide):
        (toml,) = re.findall(r"```toml\n(.*?)```", block, re.S)
        assert tomllib.loads(toml) == shipped


async def test_the_readmes_replay_command_notifies_what_was_missed(settings: Settings, db: Database) -> None:
    """Run as written but for the test's database: episodes that no stream heard, inserted after its --since."""
    (command,) = re.findall(r"^MONGO_URL=(\S+) \.venv/bin/python (-m services\.stream\.rules replay .*)$",
                            section(README, WATCH_RULES), re.M)  # fmt: skip
    assert command[0] == "mongodb://127.0.0.1:27027"
    airs = datetime(2026, 12, 8, 20, 0, tzinfo=UTC)
    await db.episodes.insert_many([{"show": "flash", "title": f"Missed {n}", "airs_at": airs} for n in range(2)])
    environment = {**os.environ, "MONGO_URL": settings.mongo_url, "MONGO_DB": settings.mongo_db,
                   "WATCH_RULES": str(RULES), "SECRET_KEY": settings.secret_key}  # fmt: skip
    ran = await asyncio.create_subprocess_exec(
        sys.executable, *command[1].split(), env=environment, stderr=asyncio.subprocess.PIPE
    )
    _, said = await asyncio.wait_for(ran.communicate(), 60)
    assert ran.returncode == 0, said.decode()
    texts = [update["text"] async for update in db.updates.find().sort("seq", 1)]
    assert texts == [f"New episode of The Flash: Missed {n}, on Tue 08 Dec" for n in range(2)]


def anchor(heading: str) -> str:
    """A heading's anchor as GitHub makes it: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    return {anchor(heading) for heading in re.findall(r"^#+ (.*)$", prose(path), re.MULTILINE)}


def prose(path: Path) -> str:
    """The file without its fenced blocks."""
    return re.sub(r"^```.*?^```", "", path.read_text(), flags=re.S | re.M)


def links(path: Path) -> list[str]:
    """The targets of the page's links, outside its fenced blocks."""
    return re.findall(r"\]\(([^)\s]+)\)", prose(path))


def test_the_readme_is_a_short_front_door_that_leads_to_every_page_of_docs() -> None:
    """What Gossip is, the two commands, a tour and the picture, under 250 lines; the rest is in docs/, every page
    of it reached from the README by following links."""
    text = README.read_text()
    assert len(text.splitlines()) < 250
    assert "make run" in text and "make test" in text and "make run PORT=" in text
    assert {"A quick tour", "How it works", "Everything else"} <= set(re.findall(r"^## (.*)$", prose(README), re.M))
    reached: set[Path] = set()
    waiting = [README.resolve()]
    while waiting:
        page = waiting.pop()
        files = {link.partition("#")[0] for link in links(page) if not re.match(r"[a-z]+:", link)}
        targets = {(page.parent / file).resolve() for file in files if file.endswith(".md")}
        waiting += [target for target in targets - reached if target.parent == DOCS.resolve()]
        reached |= targets
    assert {page.resolve() for page in DOCS.glob("*.md")} <= reached


def test_every_relative_link_leads_to_a_file_and_heading_that_exist() -> None:
    pages = [README, *sorted(DOCS.glob("*.md"))]
    assert len(pages) > 5
    broken = []
    for page in pages:
        for target in links(page):
            if re.match(r"[a-z]+:", target):
                continue
            file, _, fragment = target.partition("#")
            linked = (page.parent / file).resolve() if file else page
            if not linked.exists() or (fragment and fragment not in anchors(linked)):
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert broken == []
