"""What the magics return: tables and receipts that render as HTML in Jupyter, text elsewhere.

Every object here holds only what is safe to show and to keep in ``Out``, the history
database and a saved notebook: key ids, aliases, states, sizes, digests. Never decrypted
data, a data key or a credential.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from kmsnb._render import Rendered, cell_text

if TYPE_CHECKING:
    from kmsnb.envelope import FileInfo

__all__ = [
    "Details",
    "Table",
    "file_details",
]

T = TypeVar("T")

Rows = Sequence[Sequence[str]]


class _Rendered(Rendered):
    """A rendered record whose ``repr`` is its text too (what IPython's terminal shows)."""

    def __repr__(self) -> str:
        return str(self)


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

    def _table(self) -> tuple[str, Sequence[str] | None, Rows]:
        header = [name for name, _ in self._columns]
        rows = [[cell_text(get(record)) for _, get in self._columns] for record in self._records]
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
        self.fields = [(name, cell_text(item)) for name, item in fields]

    def __getattr__(self, name: str) -> Any:
        # Only public names: IPython probes objects for _repr_*_ and _ipython_*_ methods,
        # which must not be answered by the record.
        if name.startswith("_") or name == "value":
            raise AttributeError(name)
        return getattr(self.value, name)

    def _table(self) -> tuple[str, Sequence[str] | None, Rows]:
        return self.title, None, [[name, item] for name, item in self.fields]


def file_details(title: str, info: FileInfo, *, path: str | None = None) -> Details[FileInfo]:
    """What a kmsnb file's header says (``%kms inspect``), as a detail view."""
    fields: list[tuple[str, object]] = [] if path is None else [("path", path)]
    return Details(title, info, [*fields, *info.fields()])
