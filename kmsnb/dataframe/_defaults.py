"""What the DataFrame helpers use when given no KMS or key, and the checks of their input."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd  # type: ignore[import-untyped,unused-ignore]

from kmsnb._keynames import resolve_key_name

if TYPE_CHECKING:
    from kmsnb.kms._base import Kms


def resolve_kms(kms: Kms | str | None) -> Kms:
    """``kms`` as :func:`kmsnb.connect` takes it (a client, or a URI), or the session's KMS
    (:func:`kmsnb.session.get_kms`) when ``None``."""
    if kms is None:
        from kmsnb import session

        return session.get_kms()
    from kmsnb.connection import connect

    return connect(kms)


def resolve_key(key_id: str | None) -> str:
    """``key_id`` by the one key-naming rule (a bare ``NAME`` means ``alias/NAME``), or the
    session's default key when ``None``."""
    if key_id is None:
        from kmsnb import session

        key_id = session.get_default_key()
        if key_id is None:
            raise ValueError(
                "no key_id given and no default key set; pass key_id='alias/...' or call "
                "kmsnb.session.set_default_key('alias/...')"
            )
    return resolve_key_name(key_id)


def check_frame(df: object) -> pd.DataFrame:
    """``df`` if it is a DataFrame; a Series or anything else is a ``TypeError``."""
    if isinstance(df, pd.Series):
        raise TypeError("expected a DataFrame, got a Series; convert it with series.to_frame()")
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"expected a pandas DataFrame, not {type(df).__name__}")
    return df
