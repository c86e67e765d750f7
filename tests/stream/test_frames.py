"""The SSE wire format, byte for byte: what every feed sends and every browser parses (services/stream/frames.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from services.stream import frames

AT = datetime(2026, 11, 24, 10, 0, 0, 123456, tzinfo=UTC)
UPDATE = {"_id": "private", "seq": 1042, "show": "flash", "title": "The Flash", "text": "Barry is back",
          "author": "akul", "created_at": AT}  # fmt: skip


def test_an_update_is_its_seq_as_id_then_its_wire_fields_as_compact_json() -> None:
    assert frames.update_frame(UPDATE) == (
        b"id: 1042\nevent: update\n"
        b'data: {"seq":1042,"show":"flash","title":"The Flash","text":"Barry is back","author":"akul",'
        b'"created_at":"2026-11-24T10:00:00.123Z"}\n\n'
    )


def test_text_beyond_ascii_goes_out_as_utf8_not_escaped() -> None:
    frame = frames.update_frame({**UPDATE, "text": "Ünïcödé ✓"})
    assert '"text":"Ünïcödé ✓"'.encode() in frame


def test_every_other_event_has_no_id_so_it_never_moves_last_event_id() -> None:
    assert frames.event_frame("custom", {"a": 1, "b": "é"}) == 'event: custom\ndata: {"a":1,"b":"é"}\n\n'.encode()
    assert frames.follows_frame({"sherlock", "flash"}) == b'event: follows\ndata: {"follows":["flash","sherlock"]}\n\n'
    assert frames.preferences_frame({"shows": {"flash": "muted"}}) == (
        b'event: preferences\ndata: {"shows":{"flash":"muted"}}\n\n'
    )
    assert frames.read_frame(7, 3) == b'event: read\ndata: {"last_read_seq":7,"unread":3}\n\n'
    assert frames.resync_frame(1, 501, None) == b'event: resync\ndata: {"after":1,"resume":501,"missed":null}\n\n'
    assert frames.resync_frame(1, 501, 12) == b'event: resync\ndata: {"after":1,"resume":501,"missed":12}\n\n'
    assert frames.EXPIRED == b"event: expired\ndata: {}\n\n"
    assert frames.edit_frame(9, "fixed", AT) == (
        b'event: edit\ndata: {"seq":9,"text":"fixed","edited_at":"2026-11-24T10:00:00.123Z"}\n\n'
    )
    assert frames.retract_frame(9) == b'event: retract\ndata: {"seq":9}\n\n'


def test_a_ping_is_a_comment_and_retry_is_two_seconds() -> None:
    assert frames.PING == b": ping\n\n"
    assert frames.RETRY == b"retry: 2000\n\n"
