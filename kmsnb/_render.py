"""Records as text and as HTML: the tables and detail views every face shows.

The verbs return small records (:class:`kmsnb.Saved`, the key records of
:mod:`kmsnb.keys`); they render through these functions, so a terminal, ``print`` and a
Jupyter cell show the same fields. No IPython here: ``_repr_html_`` is plain HTML text.
Every cell has its control characters escaped (a file's header, a key's description or an
alias may hold anything), and HTML is escaped on top.
"""

from __future__ import annotations

import html
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, Final

from kmsnb._sizes import format_size, format_size_brief
from kmsnb._text import escape_control_characters

__all__ = [
    "Rendered",
    "cell_text",
    "format_size",
    "format_size_brief",
    "html_table",
    "text_table",
]

_STYLE: Final = "border-collapse:collapse;text-align:left"
_CELL: Final = "padding:2px 8px;text-align:left;vertical-align:top"

Rows = Sequence[Sequence[str]]


def cell_text(value: object) -> str:
    """A cell's text: ``""`` for ``None``, ``k=v, ...`` for a mapping, control characters
    escaped."""
    if value is None:
        return ""
    if isinstance(value, Mapping):
        text = ", ".join(f"{key}={item}" for key, item in value.items())
    else:
        text = str(value)
    return escape_control_characters(text)


def _escaped(
    title: str, header: Sequence[str] | None, rows: Rows
) -> tuple[str, Sequence[str] | None, list[list[str]]]:
    return (
        escape_control_characters(title),
        None if header is None else [escape_control_characters(cell) for cell in header],
        [[escape_control_characters(cell) for cell in row] for row in rows],
    )


def text_table(title: str, header: Sequence[str] | None, rows: Rows) -> str:
    """A title line, then the rows in aligned columns (under ``header`` when given)."""
    title, header, escaped = _escaped(title, header, rows)
    lines = [title]
    widths = [len(cell) for cell in header] if header else [0] * len(escaped[0]) if escaped else []
    for row in escaped:
        widths = [max(width, len(cell)) for width, cell in zip(widths, row, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True))

    if header:
        lines.append(line(header).rstrip())
        lines.append("  ".join("-" * width for width in widths))
    lines.extend(line(row).rstrip() for row in escaped)
    return "\n".join(lines)


def html_table(title: str, header: Sequence[str] | None, rows: Rows) -> str:
    """The same table as HTML, every cell escaped."""
    title, header, escaped = _escaped(title, header, rows)
    parts = [f'<table class="kmsnb" style="{_STYLE}">']
    parts.append(f'<caption style="text-align:left"><b>{html.escape(title)}</b></caption>')
    if header:
        cells = "".join(f'<th style="{_CELL}">{html.escape(cell)}</th>' for cell in header)
        parts.append(f"<thead><tr>{cells}</tr></thead>")
    parts.append("<tbody>")
    for row in escaped:
        cells = "".join(f'<td style="{_CELL}">{html.escape(cell)}</td>' for cell in row)
        parts.append(f"<tr>{cells}</tr>")
    parts.append("</tbody></table>")
    return "".join(parts)


class Rendered(ABC):
    """Base: text for ``str`` and IPython's terminal display, HTML for Jupyter.

    Subclasses define :meth:`_table`: ``(title, header or None, rows)``. A detail view is
    a table of ``[field, value]`` rows without a header.
    """

    @abstractmethod
    def _table(self) -> tuple[str, Sequence[str] | None, Rows]:
        """The title, the header (``None`` for a detail view) and the rows, as text."""

    def __str__(self) -> str:
        return text_table(*self._table())

    def _repr_html_(self) -> str:
        return html_table(*self._table())

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))
