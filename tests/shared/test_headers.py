"""Every answer says nosniff, whatever produced it: a page, an API answer, an error, a static file, a feed."""

from __future__ import annotations

import httpx


async def test_every_answer_says_nosniff(alice: httpx.AsyncClient) -> None:
    answers = [
        await alice.get("/"), await alice.get("/api/me"), await alice.get("/api/no/such"),
        await alice.post("/api/updates", content=b"{", headers={"content-type": "application/json"}),
        await alice.get("/static/feed.js"), await alice.get("/healthz"), await alice.get("/metrics"),
    ]  # fmt: skip
    async with alice.stream("GET", "/events") as feed:
        answers.append(feed)
    assert [answer.headers.get("x-content-type-options") for answer in answers] == ["nosniff"] * len(answers)
