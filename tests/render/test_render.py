"""Records as text and HTML, escaped (kmsnb._render)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from kmsnb._render import Rendered, cell_text, format_size, html_table, text_table

pytestmark = [pytest.mark.unit]


def test_text_table_aligns_columns_under_the_header() -> None:
    shown = text_table("keys (2)", ["key", "state"], [["k1", "Enabled"], ["longer-key", "x"]])
    assert shown.splitlines() == [
        "keys (2)",
        "key         state",
        "----------  -------",
        "k1          Enabled",
        "longer-key  x",
    ]


def test_html_is_escaped_and_control_characters_too() -> None:
    shown = html_table("t", ["a"], [["<script>\x1b[2J"]])
    assert "<script>" not in shown
    assert "&lt;script&gt;" in shown
    assert "\x1b" not in shown
    assert "\x1b" not in text_table("t\x1b", None, [["a\x9b"]])


def test_cells() -> None:
    assert cell_text(None) == ""
    assert cell_text({"a": "1", "b": "2"}) == "a=1, b=2"
    assert cell_text("x\x07") == "x\\x07"


@pytest.mark.parametrize(
    ("size", "shown"),
    [
        (None, "unknown"),
        (0, "0 bytes"),
        (1023, "1023 bytes"),
        (1024, "1.0 KiB (1024 bytes)"),
        (1073741824, "1.0 GiB (1073741824 bytes)"),
    ],
)
def test_sizes_are_readable(size: int | None, shown: str) -> None:
    assert shown == format_size(size)


class _Record(Rendered):
    def _table(self) -> tuple[str, Sequence[str] | None, Sequence[Sequence[str]]]:
        return "record", None, [["field", "value"]]


def test_a_rendered_record_shows_the_same_fields_as_text_and_html() -> None:
    record = _Record()
    assert str(record) == "record\nfield  value"
    assert "<td" in record._repr_html_()
    assert "value" in record._repr_html_()
