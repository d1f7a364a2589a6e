"""What the magics return: tables and receipts that render as HTML in Jupyter, text elsewhere.

Every object here holds only what is safe to show and to keep in ``Out``, the history
database and a saved notebook: key ids, aliases, states, sizes, digests. Never decrypted
data, a data key or a credential.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, overload

from kmsnb._text import escape_control_characters

__all__ = ["Details", "Receipt", "Table"]

T = TypeVar("T")

_STYLE = "border-collapse:collapse;text-align:left"
_CELL = "padding:2px 8px;text-align:left;vertical-align:top"


def _text(value: object) -> str:
    """A cell's text, control characters escaped: a file's header may hold anything."""
    if value is None:
        return ""
    if isinstance(value, Mapping):
        text = ", ".join(f"{key}={item}" for key, item in value.items())
    else:
        text = str(value)
    return escape_control_characters(text)


def _escaped(
    title: str, header: Sequence[str] | None, rows: Sequence[Sequence[str]]
) -> tuple[str, Sequence[str] | None, list[list[str]]]:
    """Every cell without raw control characters (paths and key ids come from outside)."""
    return (
        escape_control_characters(title),
        None if header is None else [escape_control_characters(cell) for cell in header],
        [[escape_control_characters(cell) for cell in row] for row in rows],
    )


def _text_table(title: str, header: Sequence[str] | None, rows: Sequence[Sequence[str]]) -> str:
    title, header, rows = _escaped(title, header, rows)
    lines = [title]
    widths = [len(cell) for cell in header] if header else [0] * len(rows[0]) if rows else []
    for row in rows:
        widths = [max(width, len(cell)) for width, cell in zip(widths, row, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True))

    if header:
        lines.append(line(header).rstrip())
        lines.append("  ".join("-" * width for width in widths))
    lines.extend(line(row).rstrip() for row in rows)
    return "\n".join(lines)


def _html_table(title: str, header: Sequence[str] | None, rows: Sequence[Sequence[str]]) -> str:
    title, header, rows = _escaped(title, header, rows)
    parts = [f'<table class="kmsnb" style="{_STYLE}">']
    parts.append(f'<caption style="text-align:left"><b>{html.escape(title)}</b></caption>')
    if header:
        cells = "".join(f'<th style="{_CELL}">{html.escape(cell)}</th>' for cell in header)
        parts.append(f"<thead><tr>{cells}</tr></thead>")
    parts.append("<tbody>")
    for row in rows:
        cells = "".join(f'<td style="{_CELL}">{html.escape(cell)}</td>' for cell in row)
        parts.append(f"<tr>{cells}</tr>")
    parts.append("</tbody></table>")
    return "".join(parts)


class _Rendered:
    """Text for ``str``/``repr`` and IPython's terminal display, HTML for Jupyter."""

    def _render(self) -> tuple[str, Sequence[str] | None, list[list[str]]]:
        raise NotImplementedError

    def __str__(self) -> str:
        return _text_table(*self._render())

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        return _html_table(*self._render())

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))


class Table(_Rendered, Sequence[T]):
    """A list of records (``KeyInfo``, ``AliasInfo``...) shown as a table.

    It is a sequence of the records themselves, so ``keys = %kms keys`` then
    ``keys[0].key_id`` works.
    """

    def __init__(
        self,
        title: str,
        records: Sequence[T],
        columns: Sequence[tuple[str, Callable[[T], object]]],
    ) -> None:
        self.title = title
        self._records = list(records)
        self._columns = list(columns)

    @overload
    def __getitem__(self, index: int) -> T: ...

    @overload
    def __getitem__(self, index: slice) -> list[T]: ...

    def __getitem__(self, index: int | slice) -> T | list[T]:
        return self._records[index]

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self) -> Iterator[T]:
        return iter(self._records)

    def _render(self) -> tuple[str, Sequence[str] | None, list[list[str]]]:
        header = [name for name, _ in self._columns]
        rows = [[_text(get(record)) for _, get in self._columns] for record in self._records]
        title = f"{self.title} ({len(rows)})" if rows else f"{self.title}: none"
        return title, header if rows else None, rows


class Details(_Rendered, Generic[T]):
    """One record (``KeyInfo``, ``FileInfo``...) shown as a two-column table of fields.

    ``value`` is the record; its public attributes can also be read from the ``Details``
    itself, so ``info = %kms describe KEY`` then ``info.key_state`` works.
    """

    def __init__(self, title: str, value: T, fields: Sequence[tuple[str, object]]) -> None:
        self.title = title
        self.value = value
        self.fields = [(name, _text(item)) for name, item in fields]

    def __getattr__(self, name: str) -> Any:
        # Only public names: IPython probes objects for _repr_*_ and _ipython_*_ methods,
        # which must not be answered by the record.
        if name.startswith("_") or name == "value":
            raise AttributeError(name)
        return getattr(self.value, name)

    def _render(self) -> tuple[str, Sequence[str] | None, list[list[str]]]:
        return self.title, None, [[name, item] for name, item in self.fields]


@dataclass(frozen=True)
class Receipt:
    """What ``%encrypt`` wrote: where, under which key, how much, and the file's digest.

    It describes the ciphertext only; the data itself is never part of it.
    """

    path: str
    key_id: str
    key_version_id: str
    key_alias: str | None
    kind: str  # "DataFrame", "bytes" or "str"
    content_type: str
    ciphertext_size: int
    sha256: str
    rows: int | None = None
    columns: int | None = None
    plaintext_size: int | None = None
    encryption_context: Mapping[str, str] = field(default_factory=dict)
    #: Column-level encryption: the columns named under keys of their own (``{}``:
    #: none, or ``uniform``); ``None`` for a whole-file kmsnb file.
    column_keys: Mapping[str, str] | None = None
    uniform: bool = False

    @property
    def shape(self) -> str:
        if self.rows is not None and self.columns is not None:
            return f"{self.kind}, {self.rows} rows x {self.columns} columns"
        return f"{self.kind}, {self.plaintext_size} bytes"

    def _fields(self) -> list[list[str]]:
        key = self.key_id if self.key_alias is None else f"{self.key_id} ({self.key_alias})"
        fields = [
            ["path", self.path],
            ["key", key],
            ["key version", self.key_version_id],
            ["plaintext", self.shape],
            ["content type", self.content_type],
            ["ciphertext", f"{self.ciphertext_size} bytes"],
            ["sha256", self.sha256],
        ]
        if self.column_keys is not None:
            named = ", ".join(f"{name}={key}" for name, key in self.column_keys.items())
            shown = (
                "uniform: one key for the footer and every column"
                if self.uniform
                else (
                    f"{named}; the footer and the other columns: {self.key_id}"
                    if named
                    else f"every column and the footer: {self.key_id}"
                )
            )
            fields.append(["column-level", _text(shown)])
        if self.encryption_context:
            fields.append(["encryption context", _text(self.encryption_context)])
        return fields

    def __str__(self) -> str:
        return _text_table("encrypted", None, self._fields())

    def _repr_html_(self) -> str:
        return _html_table("encrypted", None, self._fields())

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))
