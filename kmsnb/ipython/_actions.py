"""What the magics and the widgets share: the session's key-managing client, and one call
each into the verbs :func:`kmsnb.save` and :func:`kmsnb.load` with the faces' options.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from kmsnb import session
from kmsnb._column_keys import parse_column_keys
from kmsnb._load import load
from kmsnb._save import FORMATS, save
from kmsnb.kms import Kms, KmsClient

if TYPE_CHECKING:
    from kmsnb._save import Saved

__all__ = [
    "FORMATS",
    "decrypt_path",
    "encrypt_value",
    "is_dataframe",
    "management_client",
    "require_key",
]


def management_client(kms: Kms) -> KmsClient:
    """The client that manages keys behind ``kms`` (which may be the data-key cache).

    Raises:
        TypeError: ``kms`` encrypts but cannot manage keys (a bare ``Kms``).
    """
    # The data-key cache forwards key management to the client it wraps (and clears itself
    # when a key is disabled through it), so it passes as a client of its own.
    if isinstance(kms, KmsClient):
        return kms
    raise TypeError(
        f"the session's KMS ({type(kms).__name__}) cannot manage keys; "
        "use kmsnb.connect() or kmsnb.session.set_kms() with a full client"
    )


def require_key(key_id: str | None) -> str:
    """``key_id``, else the session's default key (said in the magics' words).

    Raises:
        ValueError: neither is set.
    """
    key = key_id or session.get_default_key()
    if not key:
        raise ValueError("no key given and no default key set; pass -k KEY, or %kms use KEY")
    return key


def is_dataframe(value: object) -> bool:
    # pandas is imported only if the user already did: checking a type must not load it.
    pandas = sys.modules.get("pandas")
    return pandas is not None and isinstance(value, pandas.DataFrame)


def encrypt_value(
    value: object,
    path: str,
    key_id: str | None,
    *,
    kms: Kms,
    file_format: str | None = None,
    encryption_context: Mapping[str, str] | None = None,
    overwrite: bool = False,
    column_keys: Sequence[str] | None = None,
    uniform: bool = False,
    storage_options: Mapping[str, Any] | None = None,
) -> Saved:
    """:func:`kmsnb.save` with the options of ``%encrypt`` and the widgets.

    Args:
        column_keys: column-level encryption of a DataFrame (Parquet): ``COL=KEY`` puts a
            column under master key ``KEY``, ``COL`` under ``key_id`` (see
            :mod:`kmsnb._column_keys`).
        uniform: column-level encryption with ``key_id`` for everything (DuckDB reads it).

    Raises:
        TypeError: ``value`` cannot be saved so, or column options for what is not a
            DataFrame written as Parquet.
        ValueError: no key given and no default key set, or a malformed ``COL=KEY``.
    """
    key = require_key(key_id)
    options: dict[str, Any] = {}
    columns: dict[str, str] | None = None
    if column_keys or uniform:
        if not is_dataframe(value) or file_format not in (None, "parquet"):
            raise TypeError("--columns and --uniform encrypt the columns of a DataFrame as parquet")
        file_format = "parquet"
        columns = parse_column_keys(column_keys or [], key) or None
        if uniform:
            options["uniform"] = True
    return save(
        value,
        path,
        key,
        kms=kms,
        encryption_context=encryption_context,
        format=file_format,
        columns=columns,
        overwrite=overwrite,
        storage_options=storage_options,
        **options,
    )


def decrypt_path(
    path: str,
    *,
    kms: Kms,
    columns: Sequence[str] | None = None,
    encryption_context: Mapping[str, str] | None = None,
    allowed_keys: Sequence[str] | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> object:
    """:func:`kmsnb.load`: a DataFrame for Parquet and CSV, ``str`` for text, else bytes."""
    return load(
        path,
        kms=kms,
        columns=list(columns) if columns else None,
        encryption_context=encryption_context,
        allowed_keys=allowed_keys,
        storage_options=storage_options,
    )
