"""Where kmsnb's bytes live: local paths and fsspec URLs, written streaming and atomically.

One layer for every face (``kmsnb.save``/``load``, ``encrypt_file``/``decrypt_file``,
``read_*``/``to_*``, the CLI, the magics, the widgets, Dask)::

    from kmsnb.storage import open_input, open_output

    with open_output("s3://bucket/sales.parquet.kms", storage_options=options) as output:
        ...  # write the ciphertext: it streams out part by part
    # the object appears here, whole; after any error nothing was published

    with open_input("oss://bucket/sales.parquet.kms") as source:
        ...  # seekable; reads the object by ranges

:func:`resolve` holds the rule of what is writable (local paths, ``file://``, ``s3://``,
``oss://``, ``memory://``) and refuses the rest with
:class:`~kmsnb.errors.UnsupportedStorageError`; :mod:`kmsnb.storage._open` says how each
store is made streaming, atomic and exclusive; :mod:`kmsnb.storage._oss` why OSS goes
through Alibaba's SDK v2; :mod:`kmsnb.storage._generations` how a dataset is switched on a
store without rename; :mod:`kmsnb.storage._options` how the faces take options as text
(``--storage-option KEY=VALUE``), never credentials. Importing this package imports no
store library.
"""

from __future__ import annotations

import sys

from kmsnb.storage._location import WRITABLE, Location, StoreKind, is_url, resolve

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: is_url alone need not import typing
if TYPE_CHECKING:
    from kmsnb.storage._generations import (
        GENERATION_PREFIX,
        join,
        list_generations,
        new_generation,
        read_manifest_bytes,
        remove_generation,
        remove_unreferenced_generations,
        start_generation,
        write_manifest,
    )
    from kmsnb.storage._open import DEFAULT_PART_SIZE, MIN_PART_SIZE, open_input, open_output
    from kmsnb.storage._options import (
        CREDENTIAL_OPTIONS,
        check_no_credentials,
        parse_storage_options,
    )
    from kmsnb.storage._oss import endpoint_for, oss_settings

#: Imported when first used, as name -> its module in this package: the generation helpers
#: need uuid and shutil, which a CLI call on a local file never does, and ``kmsnb encrypt``
#: asks only whether a path is a URL before it opens a local file
#: (tests/cli/test_imports.py).
_LAZY = {
    "CREDENTIAL_OPTIONS": "_options",
    "DEFAULT_PART_SIZE": "_open",
    "GENERATION_PREFIX": "_generations",
    "MIN_PART_SIZE": "_open",
    "check_no_credentials": "_options",
    "endpoint_for": "_oss",
    "join": "_generations",
    "list_generations": "_generations",
    "new_generation": "_generations",
    "open_input": "_open",
    "open_output": "_open",
    "oss_settings": "_oss",
    "parse_storage_options": "_options",
    "read_manifest_bytes": "_generations",
    "remove_generation": "_generations",
    "remove_unreferenced_generations": "_generations",
    "start_generation": "_generations",
    "write_manifest": "_generations",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is not None:
        # importlib.import_module's work without the importlib package (start-up: a
        # decrypt comes here): __import__ returns the top package, sys.modules the module.
        qualified = f"kmsnb.storage.{module}"
        __import__(qualified)
        return getattr(sys.modules[qualified], name)
    raise AttributeError(f"module 'kmsnb.storage' has no attribute {name!r}")


__all__ = [
    "CREDENTIAL_OPTIONS",
    "DEFAULT_PART_SIZE",
    "GENERATION_PREFIX",
    "MIN_PART_SIZE",
    "WRITABLE",
    "Location",
    "StoreKind",
    "check_no_credentials",
    "endpoint_for",
    "is_url",
    "join",
    "list_generations",
    "new_generation",
    "open_input",
    "open_output",
    "oss_settings",
    "parse_storage_options",
    "read_manifest_bytes",
    "remove_generation",
    "remove_unreferenced_generations",
    "resolve",
    "start_generation",
    "write_manifest",
]
