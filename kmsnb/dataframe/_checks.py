"""The check of the DataFrame helpers' input (their KMS and key defaults are
:mod:`kmsnb._defaults`, shared with every verb)."""

from __future__ import annotations

import pandas as pd  # type: ignore[import-untyped,unused-ignore]

__all__ = ["check_frame"]


def check_frame(df: object) -> pd.DataFrame:
    """``df`` if it is a DataFrame; a Series or anything else is a ``TypeError``."""
    if isinstance(df, pd.Series):
        raise TypeError("expected a DataFrame, got a Series; convert it with series.to_frame()")
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"expected a pandas DataFrame, not {type(df).__name__}")
    return df
