"""Which column gets which master key: ``COL=KEY`` as the faces take it, and the plan that
maps master keys to the Parquet leaf paths they protect.

This module is the one place these rules live; the magics' ``--columns COL=KEY`` and
``to_parquet(columns=...)`` both end here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from kmsnb._keynames import resolve_key_name
from kmsnb._text import check_no_control_characters

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["ColumnKeys", "parse_column_keys", "plan_column_keys"]

#: What ``to_parquet(columns=...)`` takes: names under ``key_id``, or names → master keys.
ColumnKeys = Sequence[str] | Mapping[str, str]


def parse_column_keys(items: Iterable[str], default_key: str) -> dict[str, str]:
    """``["ssn=alias/pii", "email"]`` → ``{"ssn": "alias/pii", "email": default_key}``.

    Each item is ``COL=KEY`` (the column under master key ``KEY``) or ``COL`` (under
    ``default_key``, the file's key); items may also be joined by commas. The last ``=``
    splits, since key ids, aliases and ARNs hold none.

    Raises:
        ValueError: an empty column or key, or a column named twice.
    """
    plan: dict[str, str] = {}
    for item in items:
        for part in item.split(","):
            if not part:
                continue
            name, equals, key = part.rpartition("=")
            if not equals:
                name, key = part, default_key
            if not name or not key:
                raise ValueError(f"--columns takes COL=KEY or COL, not {part!r}")
            if name in plan:
                raise ValueError(f"column {name!r} is given twice")
            plan[name] = key
    return plan


def _leaf_count(data_type: pa.DataType) -> int:
    import pyarrow as pa

    if pa.types.is_struct(data_type):
        return sum(_leaf_count(data_type.field(i).type) for i in range(data_type.num_fields))
    if pa.types.is_map(data_type):
        return _leaf_count(data_type.key_type) + _leaf_count(data_type.item_type)
    if (
        pa.types.is_list(data_type)
        or pa.types.is_large_list(data_type)
        or pa.types.is_fixed_size_list(data_type)
        or pa.types.is_list_view(data_type)
        or pa.types.is_large_list_view(data_type)
    ):
        return _leaf_count(data_type.value_type)
    if isinstance(data_type, pa.ExtensionType):
        return _leaf_count(data_type.storage_type)
    return 1


def plan_column_keys(
    schema: pa.Schema, leaf_paths: Sequence[str], key_id: str, columns: ColumnKeys
) -> dict[str, list[str]]:
    """Map master keys to the Parquet leaf paths they protect.

    Every leaf is encrypted: those of the named columns under their keys, the rest
    under ``key_id``. Nested columns are named by their top-level name.

    Raises:
        TypeError: ``columns`` is neither a list of names nor a mapping of names to keys.
        ValueError: a named column is not in the frame, or a key is empty.
    """
    if isinstance(columns, str) or not isinstance(columns, Sequence | Mapping):
        raise TypeError(
            "columns must be a list of column names, or a mapping of column names to "
            "master keys, such as {'ssn': 'alias/pii'}"
        )
    wanted = dict(columns) if isinstance(columns, Mapping) else dict.fromkeys(columns, key_id)
    for name, master_key in wanted.items():
        if not isinstance(name, str):
            raise TypeError(f"column names must be str, not {type(name).__name__}")
        if not isinstance(master_key, str) or not master_key:
            raise ValueError(f"the key for column {name!r} must be a non-empty str")
        check_no_control_characters(master_key, f"the key for column {name!r}")
    # A bare NAME means alias/NAME, for the file's key and each column's (kmsnb._keynames).
    key_id = resolve_key_name(key_id)
    wanted = {name: resolve_key_name(master_key) for name, master_key in wanted.items()}
    names = schema.names
    unknown = sorted(set(wanted) - set(names))
    if unknown:
        raise ValueError(
            f"column(s) {', '.join(repr(n) for n in unknown)} not in the DataFrame "
            f"(its columns: {', '.join(repr(n) for n in names)})"
        )
    plan: dict[str, list[str]] = {}
    paths = iter(leaf_paths)
    for field in schema:
        master_key = wanted.get(field.name, key_id)
        for _ in range(_leaf_count(field.type)):
            plan.setdefault(master_key, []).append(next(paths))
    if next(paths, None) is not None:
        raise AssertionError("kmsnb: internal error: Parquet has more leaves than the schema")
    return plan
