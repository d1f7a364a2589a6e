"""Records as text and HTML, escaped (kmsnb._render)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from kmsnb._render import (
    Rendered,
    cell_text,
    format_size,
    format_size_brief,
    html_table,
    text_table,
)

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
        (1, "1 byte"),
        (1023, "1023 bytes"),
        (1024, "1.0 KiB (1024 bytes)"),
        (1073741824, "1.0 GiB (1073741824 bytes)"),
    ],
)
def test_sizes_are_readable(size: int | None, shown: str) -> None:
    assert shown == format_size(size)


def test_the_exact_count_follows_the_brief_size() -> None:
    """One rule (issue 12): the CLI's brief size is the notebook's, less the exact count."""
    for size in (0, 1, 1023, 1024, 1536, 1024**3 + 1, 5 * 1024**5, 2 * 1024**6):
        exact = "" if size < 1024 else f" ({size} bytes)"
        assert format_size(size) == format_size_brief(size) + exact
    assert format_size_brief(2 * 1024**6) == "2048.0 PiB"  # the largest unit


class _Record(Rendered):
    def _table(self) -> tuple[str, Sequence[str] | None, Sequence[Sequence[str]]]:
        return "record", None, [["field", "value"]]


def test_a_rendered_record_shows_the_same_fields_as_text_and_html() -> None:
    record = _Record()
    assert str(record) == "record\nfield  value"
    assert "<td" in record._repr_html_()
    assert "value" in record._repr_html_()
