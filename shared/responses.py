"""The one JSON answer of every service, success and error alike: Starlette's, ending with a newline."""

from __future__ import annotations

from typing import Any

from starlette import responses

END = b"\n"


class JSONResponse(responses.JSONResponse):  # noqa: TID251 (the one place it is extended)
    """Starlette's compact JSON and one newline after it, as a line of text ends: `curl` prints the shell's prompt
    on a line of its own after the answer, and a script reading lines gets a whole one. Content-Length counts it,
    since Starlette measures what `render` returns. Feeds are no JSON answer: their Server-Sent Events frames end as
    that format says. Starlette's own class is banned from import (pyproject.toml) so that no answer skips this."""

    def render(self, content: Any) -> bytes:
        return super().render(content) + END
