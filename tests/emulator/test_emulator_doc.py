"""docs/emulator.md lists exactly the actions the emulator answers."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kmsnb.emulator import ACTIONS

pytestmark = pytest.mark.unit

DOC = Path(__file__).parents[2] / "docs" / "emulator.md"


def test_the_actions_table_is_every_action() -> None:
    section = DOC.read_text().split("## Actions", 1)[1].split("\n## ", 1)[0]
    listed = re.findall(r"^\| ([A-Z][A-Za-z]+) \|", section, flags=re.MULTILINE)
    assert sorted(listed) == sorted(ACTIONS)
    assert len(listed) == len(set(listed))
    assert f"these {len(ACTIONS)} actions" in section
