"""The README's configuration table is the operator's reference: it must name every variable the settings read."""

from __future__ import annotations

import re
from typing import Any

from shared.settings import ROOT, Settings


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
