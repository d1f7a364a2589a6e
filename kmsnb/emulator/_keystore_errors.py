"""The keystore's exceptions, and how an operating-system failure becomes one of them.

Every message names the file or directory concerned and says what to do; none says
"network": the keystore is a local directory. The classes are re-exported by
:mod:`kmsnb.emulator` and :mod:`kmsnb.emulator.store`.
"""

from __future__ import annotations

import errno

from kmsnb.errors import KmsnbError

__all__ = [
    "KeyStoreCorruptedError",
    "KeyStoreError",
    "KeyStoreFullError",
    "KeyStoreMigrationError",
    "KeyStoreReadOnlyError",
    "KeyStoreUnsafeError",
    "from_os_error",
]


class KeyStoreError(KmsnbError):
    """The keystore cannot be used: unreadable, corrupted, unsafe, read-only or full."""


class KeyStoreCorruptedError(KeyStoreError):
    """A keystore file cannot be read or trusted: damaged, truncated, malformed, changed
    outside kmsnb (its authentication failed), or opened with another root key."""


class KeyStoreUnsafeError(KeyStoreError):
    """The keystore directory or a file in it could be read or changed by someone else:
    not owned by this user, writable (or, for ``root.key``, readable) by group or others,
    a symbolic link, or not a regular file. Refused as ssh refuses such key files."""


class KeyStoreReadOnlyError(KeyStoreError):
    """A change was asked of a keystore that cannot be written (read-only mount, or no
    write permission). Reads (Decrypt, listings) still work."""


class KeyStoreFullError(KeyStoreError):
    """The keystore's disk (or quota, or the process's file size limit) is full."""


class KeyStoreMigrationError(KeyStoreError):
    """The keystore was written by kmsnb 0.1, whose metadata is not authenticated; it is
    used only once its owner says it is trusted (see :mod:`kmsnb.emulator.store`)."""


_READ_ONLY = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})
_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})


def from_os_error(exc: OSError, path: str, doing: str, *, store: str) -> KeyStoreError:
    """The keystore error for ``exc``, raised while ``doing`` (``"write"``) ``path`` of
    the keystore in directory ``store``."""
    reason = exc.strerror or type(exc).__name__
    if exc.errno in _FULL:
        return KeyStoreFullError(
            f"cannot {doing} {path}: the disk holding the keystore is full ({reason}); "
            "free some space, then retry"
        )
    if exc.errno == errno.EFBIG:
        return KeyStoreFullError(
            f"cannot {doing} {path}: the file size limit was reached ({reason}); "
            "raise it (ulimit -f), then retry"
        )
    if exc.errno in _READ_ONLY:
        return KeyStoreReadOnlyError(
            f"cannot {doing} {path}: the keystore {store} is read-only ({reason}); "
            "it can decrypt and list, but changes need a writable keystore"
        )
    return KeyStoreError(f"cannot {doing} {path}: {reason}")
