"""Request bodies and numbers (shared/body.py): the parsing as pure logic, reading a body over real HTTP. Bodies that
are too large, not JSON or not UTF-8 are refused in tests/auth/test_accounts.py and tests/ingest/test_app.py."""

from __future__ import annotations

import httpx
import pytest
from starlette.requests import Request

from shared.body import fields_of, media_type, whole_number
from shared.db import MAX_INT
from shared.errors import ApiError
from tests.support.accounts import json_error


def with_content_type(value: str) -> Request:
    return Request({"type": "http", "method": "POST", "headers": [(b"content-type", value.encode())]})


@pytest.mark.parametrize(
    ("header", "kind"),
    [("application/json", "application/json"), ("Application/JSON; charset=utf-8", "application/json"),
     (" text/plain ;x=1", "text/plain"), ("", "")],
)  # fmt: skip
def test_the_media_type_is_the_content_type_without_parameters_in_lower_case(header: str, kind: str) -> None:
    assert media_type(with_content_type(header)) == kind


def test_fields_come_back_as_text_and_missing_ones_empty() -> None:
    assert fields_of({"show": "flash", "extra": 1}, "show", "text") == {"show": "flash", "text": ""}


@pytest.mark.parametrize(
    ("value", "why"),
    [*((value, "must be a string") for value in (7, None, ["flash"], {"a": 1}, True)),
     ("\ud800", "must be valid Unicode text (no lone surrogates)")],
)  # fmt: skip
def test_a_field_that_is_not_storable_text_is_422_naming_it(value: object, why: str) -> None:
    with pytest.raises(ApiError) as refused:
        fields_of({"show": "flash", "text": value}, "show", "text")
    assert (refused.value.status, refused.value.fields) == (422, {"text": why})


@pytest.mark.parametrize(("raw", "number"), [(None, None), ("0", 0), ("42", 42), (str(MAX_INT), MAX_INT)])
def test_a_number_in_a_parameter_is_read_and_an_absent_one_is_none(raw: str | None, number: int | None) -> None:
    assert whole_number("after", raw) == number


@pytest.mark.parametrize("raw", ["", "-1", "1.0", "１", "٣", " 1", "x", "0x10"])
def test_anything_else_is_422_naming_the_parameter(raw: str) -> None:
    with pytest.raises(ApiError) as refused:
        whole_number("after", raw)
    assert (refused.value.status, refused.value.fields) == (422, {"after": "a non-negative integer"})


@pytest.mark.parametrize("raw", [str(MAX_INT + 1), "9" * 20])
def test_a_number_too_large_is_422_saying_how_large_it_may_be(raw: str) -> None:
    with pytest.raises(ApiError) as refused:
        whole_number("after", raw)
    assert (refused.value.status, refused.value.fields) == (422, {"after": f"at most {MAX_INT}"})


def test_a_range_is_named_in_the_refusal() -> None:
    assert whole_number("limit", "1", 1, 1000) == 1 and whole_number("limit", "1000", 1, 1000) == 1000
    for raw in ("0", "1001"):
        with pytest.raises(ApiError) as refused:
            whole_number("limit", raw, 1, 1000)
        assert refused.value.fields == {"limit": "a whole number from 1 to 1000"}


async def test_an_empty_json_body_is_an_empty_object(alice: httpx.AsyncClient) -> None:
    json = {"content-type": "application/json"}
    response = await alice.post("/api/me/read", content=b"  \n", headers=json)
    assert json_error(response) == (422, "invalid", {"seq": "a non-negative integer"})  # read as {}: no seq


async def test_a_body_of_control_characters_is_not_blank_json(alice: httpx.AsyncClient) -> None:
    response = await alice.post("/api/me/read", content=b"\x1c", headers={"content-type": "application/json"})
    assert json_error(response)[:2] == (400, "invalid_json")


async def test_a_form_is_read_where_a_page_takes_one_and_refused_by_the_api(client: httpx.AsyncClient) -> None:
    form = {"username": "fay", "password": "a-long-password"}
    assert json_error(await client.post("/api/auth/register", data=form))[:2] == (415, "unsupported_media_type")
    assert (await client.post("/register", data=form)).status_code == 403  # read, and refused for its missing token
