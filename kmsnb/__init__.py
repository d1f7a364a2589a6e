"""kmsnb: envelope encryption with a KMS, made natural in Python notebooks.

Encrypt with a master key that never leaves the KMS::

    import kmsnb
    kms = kmsnb.connect()                 # KMSNB_KMS, else the local emulator
    kmsnb.encrypt_file("sales.csv", "sales.csv.kms", "alias/Apollo/WorkKey", kms=kms)
    kmsnb.decrypt_file("sales.csv.kms", "decrypted.csv", kms=kms)
"""

from kmsnb.envelope import (
    DecryptReader,
    EncryptWriter,
    FileInfo,
    decrypt_bytes,
    decrypt_file,
    encrypt_bytes,
    encrypt_file,
    inspect,
    open_decrypt,
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

__version__ = "0.1.0.dev0"

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
    "TruncatedError",
    "WrongKeyError",
    "__version__",
    "connect",
    "decrypt_bytes",
    "decrypt_file",
    "encrypt_bytes",
    "encrypt_file",
    "inspect",
    "open_decrypt",
    "open_encrypt",
]


def load_ipython_extension(ipython: object) -> None:
    """``%load_ext kmsnb``: see :mod:`kmsnb.ipython` (imported only here, on demand)."""
    from kmsnb.ipython import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: object) -> None:
    """``%unload_ext kmsnb``: see :mod:`kmsnb.ipython`."""
    from kmsnb.ipython import unload_ipython_extension as unload

    unload(ipython)


# --- pandas helpers (owner: kmsnb.dataframe) --------------------------------------------------
# Lazy, so that `import kmsnb` does not import pandas; imported here (E402) to stay in one block.
from typing import TYPE_CHECKING as _TYPE_CHECKING  # noqa: E402

if _TYPE_CHECKING:
    from kmsnb._connect import connect
    from kmsnb.dataframe import read_csv, read_parquet

__all__ += ["read_csv", "read_parquet"]


def __getattr__(name: str) -> object:
    # connect() is lazy too, so that `kmsnb --help` loads no backend module.
    if name == "connect":
        from kmsnb._connect import connect

        return connect
    if name in ("read_csv", "read_parquet"):
        from kmsnb import dataframe  # registers df.kms as it loads

        return getattr(dataframe, name)
    raise AttributeError(f"module 'kmsnb' has no attribute {name!r}")


def _register_accessor_if_pandas_is_loaded() -> None:
    import sys

    # pandas is already paid for: `import pandas; import kmsnb` makes df.kms available.
    if "pandas" in sys.modules:
        import kmsnb.dataframe  # noqa: F401


_register_accessor_if_pandas_is_loaded()
# --- end of pandas helpers --------------------------------------------------------------------
