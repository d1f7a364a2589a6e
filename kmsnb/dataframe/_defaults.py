"""What the DataFrame helpers use when given no KMS or key, and the checks of their input."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd  # type: ignore[import-untyped,unused-ignore]

if TYPE_CHECKING:
    from kmsnb.kms._base import Kms


def resolve_kms(kms: Kms | None) -> Kms:
    """``kms``, or the session's KMS (:func:`kmsnb.session.get_kms`) when ``None``."""
    if kms is not None:
        return kms
    from kmsnb import session

    return session.get_kms()


def resolve_key(key_id: str | None) -> str:
    """``key_id``, or the session's default key when ``None``; checked, never empty."""
    if key_id is None:
        from kmsnb import session

        key_id = session.get_default_key()
        if key_id is None:
            raise ValueError(
                "no key_id given and no default key set; pass key_id='alias/...' or call "
                "kmsnb.session.set_default_key('alias/...')"
            )
    if not isinstance(key_id, str):
        raise TypeError(f"key_id must be str, not {type(key_id).__name__}")
    if not key_id:
        raise ValueError("key_id must not be empty")
    return key_id


def check_frame(df: object) -> pd.DataFrame:
    """``df`` if it is a DataFrame; a Series or anything else is a ``TypeError``."""
    if isinstance(df, pd.Series):
        raise TypeError("expected a DataFrame, got a Series; convert it with series.to_frame()")
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"expected a pandas DataFrame, not {type(df).__name__}")
    return df
