"""kmsnb: envelope encryption with a KMS, made natural in Python notebooks.

Encrypt with a master key that never leaves the KMS::

    import kmsnb
    kms = kmsnb.connect()                 # KMSNB_KMS, else the local emulator
    kmsnb.encrypt_file("sales.csv", "sales.csv.kms", "alias/Apollo/WorkKey", kms=kms)
    kmsnb.decrypt_file("sales.csv.kms", "decrypted.csv", kms=kms)

Save a value and load it back (a pandas or polars DataFrame, a pyarrow Table, bytes, str)::

    receipt = kmsnb.save(df, "sales.parquet.kms", "sales")   # key alias/sales
    df = kmsnb.load("sales.parquet.kms")                      # into="arrow" | "polars"
"""

import sys

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: `kmsnb --help` never imports typing
if TYPE_CHECKING:
    from kmsnb import connection, secrets
    from kmsnb._inspect import inspect
    from kmsnb._pme_inspect import ParquetColumn, ParquetInfo
    from kmsnb._version import __version__
    from kmsnb.connection import connect
    from kmsnb.dataframe import read_csv, read_parquet
    from kmsnb.envelope import (
        DecryptReader,
        EncryptWriter,
        FileInfo,
        SeekableDecryptReader,
        decrypt_bytes,
        decrypt_file,
        encrypt_bytes,
        encrypt_file,
        open_decrypt,
        open_decrypt_seekable,
        open_encrypt,
    )
    from kmsnb.errors import (
        ContextMismatchError,
        FormatError,
        IntegrityError,
        KmsAccessDeniedError,
        KmsError,
        KmsnbError,
        KmsUnavailableError,
        TruncatedError,
        WrongKeyError,
    )

__all__ = [
    "ContextMismatchError",
    "DecryptReader",
    "EncryptWriter",
    "FileInfo",
    "FormatError",
    "IntegrityError",
    "KmsAccessDeniedError",
    "KmsError",
    "KmsUnavailableError",
    "KmsnbError",
    "ParquetColumn",
    "ParquetInfo",
    "Saved",
    "SeekableDecryptReader",
    "TruncatedError",
    "WrongKeyError",
    "__version__",
    "connect",
    "connection",
    "decrypt_bytes",
    "decrypt_file",
    "encrypt_bytes",
    "encrypt_file",
    "inspect",
    "keys",
    "load",
    "open_decrypt",
    "open_decrypt_seekable",
    "open_encrypt",
    "read_csv",
    "read_parquet",
    "save",
    "secrets",
]

# Loaded on first use, so that `import kmsnb` pulls in neither pandas nor a KMS backend,
# nor the envelope's cryptography, nor even the exceptions (`kmsnb --help` needs none of
# it): public name -> the module that defines it.
_LAZY = {
    "__version__": "kmsnb._version",
    "ContextMismatchError": "kmsnb.errors",
    "FormatError": "kmsnb.errors",
    "IntegrityError": "kmsnb.errors",
    "KmsAccessDeniedError": "kmsnb.errors",
    "KmsError": "kmsnb.errors",
    "KmsnbError": "kmsnb.errors",
    "KmsUnavailableError": "kmsnb.errors",
    "TruncatedError": "kmsnb.errors",
    "WrongKeyError": "kmsnb.errors",
    "DecryptReader": "kmsnb.envelope",
    "EncryptWriter": "kmsnb.envelope",
    "FileInfo": "kmsnb.envelope",
    "SeekableDecryptReader": "kmsnb.envelope",
    "decrypt_bytes": "kmsnb.envelope",
    "decrypt_file": "kmsnb.envelope",
    "encrypt_bytes": "kmsnb.envelope",
    "encrypt_file": "kmsnb.envelope",
    "inspect": "kmsnb._inspect",
    "open_decrypt": "kmsnb.envelope",
    "open_decrypt_seekable": "kmsnb.envelope",
    "open_encrypt": "kmsnb.envelope",
    "ParquetColumn": "kmsnb._pme_inspect",
    "ParquetInfo": "kmsnb._pme_inspect",
    "Saved": "kmsnb._save",
    "connect": "kmsnb.connection",
    "load": "kmsnb._load",
    "read_csv": "kmsnb.dataframe",
    "read_parquet": "kmsnb.dataframe",
    "save": "kmsnb._save",
}


# Submodules loaded on first use, so that `kmsnb.secrets.get(...)` works after `import kmsnb`
# (and `kmsnb.errors.KmsError`, which `import kmsnb` once loaded).
_LAZY_MODULES = frozenset({"connection", "errors", "keys", "secrets"})


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in _LAZY_MODULES:
        import importlib

        return importlib.import_module(f"kmsnb.{name}")
    raise AttributeError(f"module 'kmsnb' has no attribute {name!r}")


def load_ipython_extension(ipython: object) -> None:
    """``%load_ext kmsnb``: see :mod:`kmsnb.ipython` (imported only here, on demand)."""
    from kmsnb.ipython import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: object) -> None:
    """``%unload_ext kmsnb``: see :mod:`kmsnb.ipython`."""
    from kmsnb.ipython import unload_ipython_extension as unload

    unload(ipython)


# pandas is already paid for: `import pandas; import kmsnb` makes df.kms available.
if "pandas" in sys.modules:
    import kmsnb.dataframe  # noqa: F401
