"""The ``df.kms`` accessor, registered with pandas when this module is imported."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd  # type: ignore[import-untyped,unused-ignore]

from kmsnb.dataframe._csv import to_csv
from kmsnb.dataframe._parquet import to_parquet

if TYPE_CHECKING:
    from kmsnb._whole_file_io import PathOrFile
    from kmsnb.kms._base import Kms


@pd.api.extensions.register_dataframe_accessor("kms")
class KmsAccessor:
    """``df.kms``: write the DataFrame encrypted with a KMS key.

    pandas 3 makes a new accessor on every access, so it holds nothing but the frame;
    the KMS and the default key live in :mod:`kmsnb.session`.
    """

    def __init__(self, pandas_obj: pd.DataFrame) -> None:
        if not isinstance(pandas_obj, pd.DataFrame):
            raise AttributeError("the kms accessor is only for DataFrames")
        self._df = pandas_obj

    def to_parquet(
        self,
        path: PathOrFile,
        key_id: str | None = None,
        *,
        kms: Kms | str | None = None,
        encryption_context: Mapping[str, str] | None = None,
        columns: Sequence[str] | Mapping[str, str] | None = None,
        uniform: bool = False,
        overwrite: bool = False,
        storage_options: Mapping[str, Any] | None = None,
        progress: bool | None = None,
        **pandas_kwargs: Any,
    ) -> None:
        """Write the DataFrame as encrypted Parquet; see :func:`kmsnb.dataframe.to_parquet`
        (``progress``: a bar, by the session's threshold unless ``True``/``False``)."""
        to_parquet(
            self._df,
            path,
            key_id,
            kms=kms,
            encryption_context=encryption_context,
            columns=columns,
            uniform=uniform,
            overwrite=overwrite,
            storage_options=storage_options,
            progress=progress,
            **pandas_kwargs,
        )

    def to_csv(
        self,
        path: PathOrFile,
        key_id: str | None = None,
        *,
        kms: Kms | str | None = None,
        encryption_context: Mapping[str, str] | None = None,
        overwrite: bool = False,
        storage_options: Mapping[str, Any] | None = None,
        progress: bool | None = None,
        **pandas_kwargs: Any,
    ) -> None:
        """Write the DataFrame as encrypted CSV (lossy); see :func:`kmsnb.dataframe.to_csv`
        (``progress``: a bar, by the session's threshold unless ``True``/``False``)."""
        to_csv(
            self._df,
            path,
            key_id,
            kms=kms,
            encryption_context=encryption_context,
            overwrite=overwrite,
            storage_options=storage_options,
            progress=progress,
            **pandas_kwargs,
        )
