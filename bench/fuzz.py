"""Malformed requests thrown at a live server over raw sockets: what each was answered, and whether any was reset.

Most go where bodies are read (publishing, with a valid token, a session cookie, a wrong token or none), the rest
at the other endpoints that take a body. Bodies are JSON, nonsense bytes, deep nesting, lone surrogates, or larger
than any limit (up to 4 MiB, sometimes announced with `Expect: 100-continue` as curl does past 1 MiB), sent with a
Content-Length or in chunks. A request is reset when the connection fails before its whole answer arrived.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections import Counter
from dataclasses import dataclass, field

from bench.http import read_answer

EXPECT_WAIT = 1.0  # what curl waits for `100 Continue` before it sends the body anyway
OTHER_PATHS = [
    ("POST", "/api/me/read"), ("PUT", "/api/me/follows/flash"), ("POST", "/api/me/tokens"), ("POST", "/publish"),
    ("GET", "/api/updates?after=-1&limit=x"), ("DELETE", "/api/me/tokens/%2e%2e"), ("POST", "/shows"),
    ("GET", "/events?after=99999999999999999999"), ("PATCH", "/api/updates"),
]  # fmt: skip
CONTENT_TYPES = ["application/json", "application/json; charset=latin-1", "APPLICATION/JSON ;", "text/plain", "",
                 "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"]  # fmt: skip


@dataclass
class Tally:
    statuses: Counter[int] = field(default_factory=Counter)
    resets: int = 0
    unanswered: int = 0  # no answer within the client's timeout

    @property
    def server_errors(self) -> int:
        return sum(count for status, count in self.statuses.items() if status >= 500)


@dataclass(frozen=True, slots=True)
class Attempt:
    head: bytes
    body: bytes
    chunked: bool
    expect: bool


def _text(rng: random.Random) -> str:
    pieces = ["flash", "€", "\x00", "\ud800", "🎬", "<script>", "x" * rng.randint(0, 1500), "'\"\\", "\u202e"]
    return "".join(rng.choice(pieces) for _ in range(rng.randint(0, 4)))


def _body(rng: random.Random) -> bytes:
    kind = rng.randrange(10)
    if kind < 4:
        update = {"show": rng.choice(["flash", "sherlock", "", "nope", 7, None]), "text": _text(rng)}
        return json.dumps(update, ensure_ascii=rng.random() < 0.5).encode("utf-8", "surrogatepass")
    if kind == 4:
        return rng.randbytes(rng.randint(0, 512))
    if kind == 5:
        return b"[" * rng.randint(1, 5000)
    if kind == 6:
        return b'{"show":"flash","text":"\\ud800\\u0000"}'
    if kind == 7:
        return rng.choice([b"", b"{", b"null", b"1e999999", b"\xef\xbb\xbf{}", b"show=flash&text=hi"])
    size = rng.randint(1 << 20, 4 << 20) if rng.random() < 0.2 else rng.randint(16 * 1024, 1 << 20)
    return b'{"show":"flash","text":"' + b"x" * size + b'"}'  # past every limit


def attempt(rng: random.Random, token: str, cookie: str) -> Attempt:
    """One request, drawn from `rng`."""
    method, path = ("POST", "/api/updates") if rng.random() < 0.8 else rng.choice(OTHER_PATHS)
    kind = "application/json" if rng.random() < 0.6 else rng.choice(CONTENT_TYPES)
    headers = {"host": "127.0.0.1", "content-type": kind}
    who = rng.choices(["token", "cookie", "garbage", "none"], [4, 3, 2, 1])[0]
    if who == "token":
        headers["authorization"] = f"Bearer {token}"
    elif who == "cookie":
        headers["cookie"] = f"gossip_session={cookie}"
    elif who == "garbage":
        headers["authorization"] = rng.choice(["Bearer", "Bearer gsp_x", "Basic YWxpY2U6eA==", "Bearer " + "a" * 4000])
    if rng.random() < 0.3:
        headers["idempotency-key"] = rng.choice([str(rng.random()), "k" * 300, "", "ключ"])
    body = _body(rng)
    chunked = rng.random() < 0.2
    expect = len(body) > 1 << 20 and rng.random() < 0.5
    if expect:
        headers["expect"] = "100-continue"
    if chunked:
        headers["transfer-encoding"] = "chunked"
    else:
        headers["content-length"] = str(len(body))
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    return Attempt(head.encode("utf-8") + b"\r\n", body, chunked, expect)


async def _send_body(writer: asyncio.StreamWriter, attempt: Attempt, answered: asyncio.Future[None]) -> None:
    if attempt.expect:  # as curl does: wait a moment for the server's word, then send anyway
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(answered), EXPECT_WAIT)
        if answered.done():
            return
    if attempt.chunked:
        for start in range(0, len(attempt.body), 65536):
            piece = attempt.body[start : start + 65536]
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
        writer.write(b"0\r\n\r\n")
    else:
        writer.write(attempt.body)
    await writer.drain()


async def send(port: int, attempt: Attempt, timeout: float = 60.0) -> int | None:
    """The status answered, None if the connection was reset before the whole answer arrived, or 0 for no answer
    within `timeout`. The body is sent while the answer is read, as a client does: an answer before the body is all
    out still counts."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    answered: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    writer.write(attempt.head)
    sending = asyncio.create_task(_send_body(writer, attempt, answered))
    try:
        while True:  # a `100 Continue` is not the answer
            answer = await asyncio.wait_for(read_answer(reader), timeout)
            if answer.status != 100:
                return answer.status
    except (ConnectionError, asyncio.IncompleteReadError):
        return None
    except TimeoutError:
        return 0
    finally:
        if not answered.done():
            answered.set_result(None)
        sending.cancel()
        with contextlib.suppress(BaseException):
            await sending
        writer.close()


async def fuzz(port: int, token: str, cookie: str, count: int, concurrency: int = 16, seed: int = 13) -> Tally:
    rng, tally = random.Random(seed), Tally()
    attempts = (attempt(rng, token, cookie) for _ in range(count))  # drawn as sent: large bodies are not all held

    async def worker() -> None:
        for one in attempts:
            status = await send(port, one)
            if status is None:
                tally.resets += 1
            elif status == 0:
                tally.unanswered += 1
            else:
                tally.statuses[status] += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return tally
