"""The watch rules file as both services read it: its tables, the checks on their names, and the names reserved."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.rulesfile import RuleError, reserved, tables
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
