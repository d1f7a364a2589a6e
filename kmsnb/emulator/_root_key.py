"""The keystore's root key: from the caller, ``KMSNB_EMULATOR_ROOT_KEY``, or ``root.key``.

The root key wraps every key version's material (:mod:`kmsnb.emulator.store`). It is
taken, in this order, from the caller, from the environment variable (base64), or from
the keystore's ``root.key`` (the same base64, one line); a keystore that has none yet
gets a fresh random one written there. A keystore that cannot be written needs it from
the caller or the environment.
"""

from __future__ import annotations

import base64
import binascii
import os

from kmsnb._wipe import wipe
from kmsnb.emulator._keystore_dir import ROOT_KEY_FILE, StoreDirectory
from kmsnb.emulator._keystore_errors import (
    KeyStoreCorruptedError,
    KeyStoreError,
    KeyStoreReadOnlyError,
)

__all__ = ["ROOT_KEY_ENV", "ROOT_KEY_SIZE", "read_root_key"]

ROOT_KEY_ENV = "KMSNB_EMULATOR_ROOT_KEY"
ROOT_KEY_SIZE = 32
_MAX_ROOT_KEY_FILE_SIZE = 1024


def read_root_key(directory: StoreDirectory, explicit: bytes | None) -> bytearray:
    """The root key, for the caller to wipe; made and stored in ``directory`` if it has none.

    Raises:
        KeyStoreError: ``explicit`` or the variable is not a 32-byte key in base64.
        KeyStoreCorruptedError: ``root.key`` is not one.
        KeyStoreReadOnlyError: a keystore that cannot be written has no ``root.key``.
    """
    if explicit is not None:
        if len(explicit) != ROOT_KEY_SIZE:
            raise KeyStoreError(f"the root key must be {ROOT_KEY_SIZE} bytes")
        return bytearray(explicit)
    from_env = os.environ.get(ROOT_KEY_ENV)
    if from_env:
        return _decode_root_key(from_env.encode("utf-8", "replace"), source=ROOT_KEY_ENV)
    path = directory.file(ROOT_KEY_FILE)
    stored = directory.read(ROOT_KEY_FILE, max_size=_MAX_ROOT_KEY_FILE_SIZE)
    if stored is not None:
        try:
            return _decode_root_key(stored, source=str(path))
        except KeyStoreError as exc:
            raise KeyStoreCorruptedError(str(exc)) from None
    if directory.read_only:
        raise KeyStoreReadOnlyError(
            f"the keystore {directory.path} is read-only and has no {ROOT_KEY_FILE}; "
            f"set {ROOT_KEY_ENV}, or open it writable once"
        )
    root = bytearray(os.urandom(ROOT_KEY_SIZE))
    encoded = bytearray(base64.b64encode(root) + b"\n")
    try:
        directory.replace(ROOT_KEY_FILE, encoded)
    finally:
        wipe(encoded)
    return root


def _decode_root_key(text: bytes, *, source: str) -> bytearray:
    try:
        root = bytearray(base64.b64decode(text.strip(), validate=True))
    except (binascii.Error, ValueError):
        raise KeyStoreError(f"{source} is not base64; it must hold a 32-byte root key") from None
    if len(root) != ROOT_KEY_SIZE:
        wipe(root)
        raise KeyStoreError(f"{source} must hold a {ROOT_KEY_SIZE}-byte root key")
    return root
