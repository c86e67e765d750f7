"""The watch rules file as both services read it: its tables, the checks on their names, and the names reserved."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from shared.rulesfile import ReservedNames, RuleError, reserved, tables
from shared.settings import RULES

EPISODES = '[[rules]]\nname = "episodes"\ncollection = "episodes"\n'


def test_the_shipped_rules_names_are_reserved_and_no_file_reserves_none() -> None:
    assert reserved(RULES) == {"episodes", "orders"}
    assert reserved(None) == frozenset()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rules = [1, 2]", r"watch rules .*gossip\.toml: only \[\[rules\]\] tables belong in it"),
        ("[other]\nname = 'x'", r"watch rules .*gossip\.toml: only \[\[rules\]\] tables belong in it"),
        ('[[rules]]\nname = "Orders"', r"watch rule #1, name: 3 to 32 of a-z, 0-9, '_' or '-', got 'Orders'"),
        (EPISODES + '[[rules]]\ncollection = "x"', r"watch rule #2, name: .* got None"),
        (EPISODES + EPISODES, r"watch rule 'episodes', name: two rules have this name"),
    ],
)
def test_a_file_of_more_than_named_rules_is_refused_before_any_name_is_reserved(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "gossip.toml"
    path.write_text(text)
    with pytest.raises(RuleError, match=message):
        reserved(path)
    with pytest.raises(RuleError, match=message):
        tables(path)


def _named(*names: str) -> str:
    return "".join(f'[[rules]]\nname = "{name}"\ncollection = "{name}"\n' for name in names)


def test_the_reserved_names_follow_the_file_as_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "gossip.toml"
    path.write_text(_named("episodes"))
    names = ReservedNames(path)
    assert names.current() == {"episodes"}
    path.write_text(_named("episodes", "headlines"))
    assert names.current() == {"episodes", "headlines"}
    replaced = tmp_path / "saved.toml"
    replaced.write_text(_named("orders"))
    replaced.replace(path)  # as an editor saves: a new file renamed over the old
    assert names.current() == {"orders"}
    assert ReservedNames(None).current() == frozenset()


@pytest.mark.parametrize("breaks", ["a typo", "a wrong rule", "removed"])
def test_a_file_broken_while_running_keeps_the_names_read_last_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, breaks: str
) -> None:
    path = tmp_path / "gossip.toml"
    path.write_text(_named("episodes", "orders"))
    names = ReservedNames(path)
    if breaks == "removed":
        path.unlink()
    else:
        path.write_text("[[rules]\n" if breaks == "a typo" else _named("Orders"))
    with caplog.at_level(logging.WARNING, logger="gossip.rules"):
        assert [names.current() for _ in range(3)] == [{"episodes", "orders"}] * 3
    (warning,) = caplog.records
    assert str(path) in warning.getMessage() and "stay reserved" in warning.getMessage()
    path.write_text(_named("episodes"))
    assert names.current() == {"episodes"}  # right again: its names, and no more warnings
    assert len(caplog.records) == 1


def test_a_file_that_cannot_be_read_at_the_start_stops_it(tmp_path: Path) -> None:
    with pytest.raises(RuleError, match="watch rules"):
        ReservedNames(tmp_path / "missing.toml")
