"""Request bodies: JSON or an HTML form with the same field names, read within a bound."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

from shared.db import MAX_INT
from shared.errors import ApiError
from shared.state import AnyRequest

MAX_BODY = 16 * 1024


def _too_large(limit: int) -> ApiError:
    return ApiError(413, detail=f"The body is larger than {limit} bytes.", headers={"connection": "close"})


def _declared_length(request: AnyRequest) -> int | None:
    raw = request.headers.get("content-length", "")
    return int(raw) if raw.isascii() and raw.isdigit() else None


async def read_body(request: AnyRequest, limit: int = MAX_BODY) -> bytes:
    """The body, up to `limit` bytes. Past it, 413: decided from Content-Length before reading when the client
    declares one, so that a client waiting on `Expect: 100-continue` never sends the body at all. What is not read
    is drained after the answer (shared/lingering.py), so the client reads its 413 instead of a reset."""
    declared = _declared_length(request)
    if declared is not None and declared > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def media_type(request: AnyRequest) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


JSON_BLANK = " \t\n\r"  # JSON's own whitespace: str.strip() would also take "\x1c" and its kin for blank


async def read_object(request: AnyRequest, *, form: bool = False, limit: int = MAX_BODY) -> dict[str, Any]:
    """The API takes JSON only; pages also take their own forms, which carry a CSRF token."""
    kind = media_type(request)
    accepted = ("application/json", "application/x-www-form-urlencoded") if form else ("application/json",)
    if kind not in accepted:
        raise ApiError(415, detail="Send the body as application/json.")
    body = await read_body(request, limit)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "bad_encoding", "The body is not valid UTF-8.") from None
    if kind == "application/x-www-form-urlencoded":
        return dict(parse_qsl(text, keep_blank_values=True))
    try:
        value = json.loads(text) if text.strip(JSON_BLANK) else {}
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than the parser's stack
        raise ApiError(400, "invalid_json", "The body is not valid JSON.") from None
    if not isinstance(value, dict):
        raise ApiError(400, "invalid_json", "The body must be a JSON object.")
    return value


def _is_text(value: object) -> bool:
    """JSON can carry lone surrogates, which no database can store."""
    if not isinstance(value, str):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _type_problem(value: object) -> str:
    return "must be valid Unicode text (no lone surrogates)" if isinstance(value, str) else "must be a string"


def fields_of(value: dict[str, Any], *names: str) -> dict[str, str]:
    """The named fields as text, whichever encoding they came in."""
    wrong = {name: _type_problem(value.get(name, "")) for name in names if not _is_text(value.get(name, ""))}
    if wrong:
        raise ApiError(422, detail="Some fields have the wrong type.", fields=wrong)
    return {name: value.get(name, "") for name in names}


async def read_fields(request: AnyRequest, *names: str, limit: int = MAX_BODY) -> dict[str, str]:
    """Missing fields come back empty, so the validation that follows can say 'required' for each."""
    return fields_of(await read_object(request, limit=limit), *names)


def whole_number(name: str, raw: str | None, low: int = 0, high: int = MAX_INT) -> int | None:
    """A query parameter or header that holds a number, such as an update id; None when it is absent, while an empty
    value is refused like any other that is not a number. At most 19 digits, so that neither int() nor MongoDB's
    64-bit integers choke on it."""
    if raw is None:
        return None
    digits = raw.isascii() and raw.isdigit()
    if not (digits and len(raw) <= 19 and low <= int(raw) <= high):
        if (low, high) != (0, MAX_INT):
            message = f"a whole number from {low} to {high}"
        else:
            message = f"at most {MAX_INT}" if digits else "a non-negative integer"
        raise ApiError(422, detail=f"{name} must be {message}.", fields={name: message})
    return int(raw)
