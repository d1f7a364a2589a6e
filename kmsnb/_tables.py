"""Tables for :func:`kmsnb.save` and :func:`kmsnb.load`: which library a value comes from,
and which kmsnb writer and reader serve it (pandas, Arrow, polars).

Each library writes and reads its own Parquet and CSV (:mod:`kmsnb.dataframe`,
:mod:`kmsnb.arrow`, :mod:`kmsnb.polars`), so types round-trip as that library's own Parquet
writer keeps them, and the three read each other's files. Nothing here imports a library
the user has not imported: telling a table's type looks it up in ``sys.modules``, and a
writer or reader is imported only when used.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, BinaryIO, Literal

from kmsnb._format.header import CONTENT_TYPE_CSV, CONTENT_TYPE_PARQUET
from kmsnb._whole_file_io import PathOrFile
from kmsnb.kms._base import Kms

__all__ = ["LIBRARIES", "Library", "check_into", "csv_losses", "library_of", "read", "write"]

Library = Literal["pandas", "arrow", "polars"]
#: What ``kmsnb.load(into=...)`` may name.
LIBRARIES: tuple[Library, ...] = ("pandas", "arrow", "polars")

# Types every library's CSV reader gives back as they were written; others come back as
# text or as another type (narrower integers widen, dates stay text in polars...).
_ARROW_CSV_KEEPS = frozenset({"int64", "double", "bool", "string", "large_string"})
_POLARS_CSV_KEEPS = frozenset({"Int64", "Float64", "Boolean", "String"})


def library_of(value: object) -> Library | None:
    """The library ``value`` is a table of: a pandas or polars DataFrame, a pyarrow Table."""
    # A library is looked up only if the user already imported it: checking a type must
    # not load pandas, pyarrow or polars.
    pandas = sys.modules.get("pandas")
    if pandas is not None and isinstance(value, pandas.DataFrame):
        return "pandas"
    pyarrow = sys.modules.get("pyarrow")
    if pyarrow is not None and isinstance(value, pyarrow.Table):
        return "arrow"
    polars = sys.modules.get("polars")
    if polars is not None and isinstance(value, polars.DataFrame):
        return "polars"
    return None


def check_into(into: object) -> Library:
    """``into`` if it names a library :func:`kmsnb.load` returns tables of.

    Raises:
        ValueError: anything else.
    """
    if into not in LIBRARIES:
        raise ValueError(
            f"into must be one of {', '.join(map(repr, LIBRARIES))} (the library of the "
            f"table returned), not {into!r}"
        )
    return into


def csv_losses(table: Any) -> tuple[str, ...]:
    """For an Arrow Table or a polars DataFrame: what its CSV will not give back, in words
    (column names and types, never values). pandas has its own rules (``kmsnb._save``)."""
    if library_of(table) == "arrow":
        changed = [
            f"{field.name!r} ({field.type})"
            for field in table.schema
            if str(field.type) not in _ARROW_CSV_KEEPS
        ]
    else:
        changed = [
            f"{name!r} ({dtype})"
            for name, dtype in table.schema.items()
            if str(dtype) not in _POLARS_CSV_KEEPS
        ]
    if not changed:
        return ()
    return (f"column(s) {', '.join(changed)} come back as text or other types",)


def write(
    table: Any,
    path: PathOrFile,
    key_id: str,
    *,
    format: Literal["parquet", "csv"],
    columns: Sequence[str] | Mapping[str, str] | None,
    kms: Kms,
    encryption_context: Mapping[str, str] | None,
    overwrite: bool = False,
    progress: bool | None = None,
    **options: Any,
) -> None:
    """Encrypt ``table`` into ``path`` as Parquet (whole file, or column level with
    ``columns``/``uniform=True`` in ``options``) or CSV, with its own library's writer.
    ``path`` may be a binary file already open (``overwrite`` then means nothing).
    ``progress`` is the writer's (a bar judged by the table's size in memory).

    Raises:
        TypeError: not a table of a known library.
        As the library's writer: :func:`kmsnb.dataframe.to_parquet`,
        :func:`kmsnb.arrow.write_table`, :func:`kmsnb.polars.write_parquet`.
    """
    library = library_of(table)
    common: dict[str, Any] = {
        "kms": kms,
        "encryption_context": encryption_context,
        "overwrite": overwrite,
        "progress": progress,
    }
    if format == "parquet":
        common["columns"] = columns
    elif columns is not None:
        raise AssertionError("kmsnb: internal error: column mode for CSV")
    if library == "pandas":
        from kmsnb import dataframe

        writer = dataframe.to_parquet if format == "parquet" else dataframe.to_csv
        writer(table, path, key_id, **common, **options)
    elif library == "arrow":
        from kmsnb import arrow

        arrow.write_table(table, path, key_id, format=format, **common, **options)
    elif library == "polars":
        from kmsnb import polars

        if format == "parquet":
            polars.write_parquet(table, path, key_id, **common, **options)
        else:
            polars.write_csv(table, path, key_id, **common, **options)
    else:
        raise TypeError(f"not a table: {type(table).__name__}")


def read(
    into: Library,
    source: PathOrFile | BinaryIO,
    content_type: str,
    *,
    columns: Sequence[str] | None,
    kms: Kms,
    encryption_context: Mapping[str, str] | None,
    allowed_keys: Iterable[str] | None,
    progress: bool | None = None,
    **options: Any,
) -> Any:
    """The table in ``source`` (Parquet, either mode, or CSV), as a table of ``into``:
    a ``pyarrow.Table`` or a polars ``DataFrame`` (pandas: :func:`kmsnb.load` itself).

    Raises:
        As :func:`kmsnb.arrow.read_table`, :func:`kmsnb.polars.read_parquet` and
        :func:`kmsnb.polars.read_csv`.
    """
    wanted = list(columns) if columns is not None else None
    common: dict[str, Any] = {
        "kms": kms,
        "encryption_context": encryption_context,
        "allowed_keys": allowed_keys,
        "progress": progress,
    }
    if into == "arrow":
        from kmsnb import arrow

        return arrow.read_table(source, columns=wanted, **common, **options)
    if into == "polars":
        from kmsnb import polars

        if content_type == CONTENT_TYPE_PARQUET:
            return polars.read_parquet(source, columns=wanted, **common, **options)
        if content_type == CONTENT_TYPE_CSV:
            if wanted is not None:
                options = {**options, "columns": wanted}
            return polars.read_csv(source, **common, **options)
    raise AssertionError(f"kmsnb: internal error: no reader of {content_type} into {into}")
