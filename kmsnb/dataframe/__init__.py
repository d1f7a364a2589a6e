"""pandas helpers: the ``df.kms`` accessor, and :func:`read_parquet` / :func:`read_csv`.

Importing this module registers the accessor (``import pandas; import kmsnb`` does it
too)::

    df.kms.to_parquet("sales.parquet.kms", "alias/Apollo/WorkKey")
    df = kmsnb.read_parquet("sales.parquet.kms")

Two ways to encrypt a Parquet file:

- **whole file** (default, ``columns=None``): the Parquet bytes inside a kmsnb file
  (content type ``application/vnd.apache.parquet``). Column names, row counts and
  ``df.attrs`` stay inside the encrypted part; only the header (key id, encryption
  context, content type) is in clear. Any reader needs the key for everything.
- **column level** (``columns=...``): Parquet modular encryption (see :mod:`kmsnb._pme`).
  Every column and the footer are encrypted; the named columns under their own master
  keys, so a reader without the PII key still reads the other columns. The KMS's own
  Encrypt wraps each key, so pyarrow (:class:`ParquetKmsClient`, loaded on first access,
  or a KMS client of its own) and Spark read these files (``docs/column-keys.md``);
  ``uniform=True`` puts every column under the footer's key (:mod:`kmsnb.duckdb`).

CSV is whole-file only and lossy, as CSV is: dtypes, categoricals, time zones beyond the
text, nullable types and the index (unless read back with ``index_col=0``) are not kept.
Use Parquet to round-trip a DataFrame.

No plaintext ever touches a disk. Writing, the Parquet or CSV bytes go to the envelope
encryptor: the first :data:`SIZED_WRITE_LIMIT` bytes are held in memory so that a small
file's exact size is known (which lets a :class:`~kmsnb.kms.CachingKms` reuse a data key,
as the ESDK does only for sized messages); beyond that the rest streams through. The
ciphertext goes to an unnamed file in the destination's folder, fsynced and named only when
complete (see :mod:`kmsnb._files`); to an object store (``s3://``, ``oss://``) it streams in
parts and the object is published whole once complete (:mod:`kmsnb.storage`).

Reading Parquet needs a seekable file, so the verified plaintext of a whole-file Parquet
file is held in memory: about the Parquet file's size, on top of the DataFrame. With
``columns=`` it is read through a seekable decrypting reader instead, which decrypts only
the chunks holding the footer and those columns (``docs/FORMAT.md``, "Random access"). CSV
streams into pandas, which sees only authenticated chunks and gets an error, not a
DataFrame, if the file was truncated or altered.

The package, one job per module: ``_parquet`` (:func:`to_parquet`, :func:`read_parquet`),
``_csv`` (:func:`to_csv`, :func:`read_csv`), ``_accessor`` (``df.kms``) and ``_checks``
(argument checks). What pandas, Arrow and polars share lives outside it, free of pandas:
:mod:`kmsnb._whole_file_io` (the plaintext sink into the encryptor, where the bytes go and
come from, through :mod:`kmsnb.storage`), :mod:`kmsnb._whole_file_read` (decrypting a whole
file, with a progress bar, :mod:`kmsnb._progress`) and :mod:`kmsnb._defaults` (the session's
KMS and key when none is given).
"""

from __future__ import annotations

from typing import Any

from kmsnb._whole_file_io import SIZED_WRITE_LIMIT
from kmsnb.dataframe._accessor import KmsAccessor
from kmsnb.dataframe._csv import read_csv, to_csv
from kmsnb.dataframe._parquet import read_parquet, to_parquet

__all__ = [
    "SIZED_WRITE_LIMIT",
    "KmsAccessor",
    "read_csv",
    "read_parquet",
    "to_csv",
    "to_parquet",
]


def __getattr__(name: str) -> Any:
    # pyarrow loads only when column-level encryption is used.
    if name == "ParquetKmsClient":
        from kmsnb._pme import ParquetKmsClient

        return ParquetKmsClient
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
