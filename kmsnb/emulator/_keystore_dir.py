"""The keystore directory on disk: opened safely, checked as ssh checks its key files.

The directory is opened once (``O_DIRECTORY | O_NOFOLLOW``) and every file in it is opened
relative to that descriptor with ``O_NOFOLLOW``, so neither a symbolic link planted in place
of ``root.key``, ``lock`` or ``keystore.json`` nor a directory swapped underneath is
followed. Before anything is read, ownership and modes are checked:

* the directory, ``lock`` and ``keystore.json`` must belong to this user (or root) and not be
  writable by group or others;
* ``root.key`` must belong to this user (or root) and be readable by no one else;
* each must be what it claims to be: a directory, regular files.

Any of these failing raises :class:`KeyStoreUnsafeError` naming the path and the fix: a
keystore whose files someone else could replace lets them read or choose your keys.

Failures of the operating system become the keystore's own errors
(:func:`~kmsnb.emulator._keystore_errors.from_os_error`): a full disk says so, a read-only
keystore says so. A keystore that cannot be written still opens: its lock file is opened
read-only and locked shared, and only changes fail.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from kmsnb._path_text import spelled_as_a_path
from kmsnb.emulator._keystore_errors import (
    KeyStoreCorruptedError,
    KeyStoreReadOnlyError,
    KeyStoreUnsafeError,
    from_os_error,
)

if TYPE_CHECKING:
    from pathlib import Path

__all__ = [
    "DIR_ENV",
    "FileIdentity",
    "StoreDirectory",
    "default_store_dir",
]

FileIdentity = tuple[int, int, int, int]

#: The default keystore directory, when set (kmsnb.emulator.store re-exports it).
DIR_ENV = "KMSNB_EMULATOR_DIR"
LOCK_FILE = "lock"
ROOT_KEY_FILE = "root.key"
TEMP_SUFFIX = ".tmp"
# Group and other permission bits that make a file unsafe; root.key may not even be read.
_FORBIDDEN_BITS = {ROOT_KEY_FILE: 0o077}
_DEFAULT_FORBIDDEN_BITS = 0o022
_NOFOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC
# A symbolic link opened with O_NOFOLLOW: ELOOP on Linux, EMLINK on FreeBSD.
_LINK_ERRNOS = frozenset({errno.ELOOP, errno.EMLINK})
_READ_ONLY_ERRNOS = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})


def default_store_dir() -> Path:
    """Return the keystore directory: ``$KMSNB_EMULATOR_DIR``, else the user data dir."""
    from pathlib import Path  # here: a local: CLI call with a path needs no pathlib

    configured = os.environ.get(DIR_ENV)
    if configured:
        return Path(configured).expanduser()
    import platformdirs  # here: it imports tempfile, and an explicit store needs neither

    return Path(platformdirs.user_data_dir("kmsnb")) / "emulator"


class StoreDirectory:
    """The keystore's directory, created (mode 0700) if missing; see the module docstring.

    Raises:
        KeyStoreUnsafeError: the directory is a symbolic link, not a directory, not this
            user's, or writable by group or others.
        KeyStoreError: it cannot be created or opened.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        # A string spelled as a Path would be (``~`` expanded), not a Path: pathlib (with
        # the urllib.parse and ipaddress it imports) costs a local: CLI call more start-up
        # than its work.
        self.path = path = spelled_as_a_path(os.path.expanduser(os.fspath(path)))
        parent = os.path.dirname(path)
        try:
            if parent:
                os.makedirs(parent, exist_ok=True)
            with contextlib.suppress(FileExistsError):
                os.mkdir(path, mode=0o700)
        except OSError as exc:
            raise from_os_error(exc, path, "create", store=path) from None
        self._fd = -1
        self._open()
        self._lock_fd = -1
        self._lock_pid = -1
        self.read_only = False

    def _open(self) -> None:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | _NOFOLLOW)
        except OSError as exc:
            if exc.errno in _LINK_ERRNOS:
                raise _symlink(self.path) from None
            if exc.errno == errno.ENOTDIR:
                raise KeyStoreUnsafeError(
                    f"{self.path} is not a directory (or is a symbolic link); "
                    "a keystore is a directory of its own"
                ) from None
            raise from_os_error(exc, self.path, "open", store=self.path) from None
        try:
            _check_safe(os.fstat(fd), self.path, _DEFAULT_FORBIDDEN_BITS, want=stat.S_ISDIR)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def __repr__(self) -> str:
        return f"StoreDirectory({self.path!r})"

    def file(self, name: str) -> str:
        """The path of file ``name``, for messages."""
        return os.path.join(self.path, name)

    def close(self) -> None:
        if self._lock_fd >= 0 and self._lock_pid == os.getpid():
            os.close(self._lock_fd)
        self._lock_fd = self._lock_pid = -1
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _dir_fd(self) -> int:
        if self._fd < 0:  # closed, and used again: reopen, and check again
            self._open()
        return self._fd

    # -- reading ---------------------------------------------------------------------

    def read(self, name: str, *, max_size: int, head_only: bool = False) -> bytes | None:
        """The whole file ``name`` (its first ``max_size`` bytes if ``head_only``), or None
        if it does not exist.

        Raises:
            KeyStoreUnsafeError: it is a link, not a regular file, or unsafe.
            KeyStoreCorruptedError: it is larger than ``max_size``.
        """
        # O_NONBLOCK: a FIFO planted in place of a file must not hang the open.
        fd = self._open_file(name, os.O_RDONLY | os.O_NONBLOCK)
        if fd is None:
            return None
        try:
            with os.fdopen(fd, "rb") as file:
                data = file.read(max_size + (0 if head_only else 1))
        except OSError as exc:
            raise from_os_error(exc, self.file(name), "read", store=self.path) from None
        if len(data) > max_size and not head_only:
            raise KeyStoreCorruptedError(
                f"{self.file(name)} is larger than a keystore file can be ({max_size} bytes); "
                "restore it from a backup"
            )
        return data

    def identity(self, name: str) -> FileIdentity | None:
        """Inode, size, mtime and ctime of ``name`` (the link itself, never its target)."""
        try:
            st = os.stat(name, dir_fd=self._dir_fd(), follow_symlinks=False)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise from_os_error(exc, self.file(name), "read", store=self.path) from None
        return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)

    def _open_file(self, name: str, flags: int, mode: int = 0o600) -> int | None:
        path = self.file(name)
        try:
            fd = os.open(name, flags | _NOFOLLOW, mode, dir_fd=self._dir_fd())
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno in _LINK_ERRNOS:
                raise _symlink(path) from None
            raise from_os_error(exc, path, "open", store=self.path) from None
        try:
            forbidden = _FORBIDDEN_BITS.get(name, _DEFAULT_FORBIDDEN_BITS)
            _check_safe(os.fstat(fd), path, forbidden, want=stat.S_ISREG)
        except BaseException:
            os.close(fd)
            raise
        return fd

    # -- writing ---------------------------------------------------------------------

    def replace(self, name: str, data: bytes | bytearray) -> None:
        """Replace ``name`` with ``data`` so that a crash leaves the old or the new file.

        A temp file in the same directory is written, fsynced and renamed over ``name``;
        then the directory is fsynced.

        Raises:
            KeyStoreReadOnlyError, KeyStoreFullError, KeyStoreError: as the OS failed.
        """
        if self.read_only:
            raise KeyStoreReadOnlyError(
                f"cannot write {self.file(name)}: the keystore {self.path} is read-only; "
                "it can decrypt and list, but changes need a writable keystore"
            )
        dir_fd = self._dir_fd()
        import uuid  # here, not at the top: it imports platform

        temp = f".{name}.{uuid.uuid4().hex}{TEMP_SUFFIX}"
        try:
            fd = os.open(
                temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600, dir_fd=dir_fd
            )
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(temp, dir_fd=dir_fd)
            raise from_os_error(exc, self.file(name), "write", store=self.path) from None
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp, dir_fd=dir_fd)
            raise
        try:
            os.fsync(dir_fd)
        except OSError as exc:
            raise from_os_error(exc, self.path, "write", store=self.path) from None

    def remove_orphans(self) -> None:
        """Remove temp files of crashed writers; call with the exclusive lock held."""
        if self.read_only:
            return
        dir_fd = self._dir_fd()
        with os.scandir(dir_fd) as entries:
            orphans = [
                e.name for e in entries if e.name.startswith(".") and e.name.endswith(TEMP_SUFFIX)
            ]
        for orphan in orphans:
            with contextlib.suppress(FileNotFoundError, PermissionError):
                os.unlink(orphan, dir_fd=dir_fd)

    # -- the lock --------------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self, *, exclusive: bool) -> Iterator[None]:
        """``flock`` the lock file: exclusive to change the store, shared to read it.

        A keystore that cannot be written has its lock file opened read-only (and marks
        itself ``read_only``); without a lock file there, nothing can be locked, nor
        written, so reads go ahead unlocked.
        """
        fd = self._lock()
        if fd < 0:
            yield
            return
        # A keystore that cannot be written is only read: a shared lock is all it takes.
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive and not self.read_only else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def _lock(self) -> int:
        if self._lock_pid == os.getpid():
            return self._lock_fd
        # First use, or after fork: the inherited descriptor shares its flock with the
        # parent, so open our own.
        try:
            fd = self._open_file(LOCK_FILE, os.O_RDWR | os.O_CREAT)
        except KeyStoreReadOnlyError:
            fd = None
            self.read_only = True
        if self.read_only:
            fd = self._open_file(LOCK_FILE, os.O_RDONLY)
        self._lock_fd = -1 if fd is None else fd
        self._lock_pid = os.getpid()
        return self._lock_fd


def _symlink(path: str) -> KeyStoreUnsafeError:
    return KeyStoreUnsafeError(
        f"{path} is a symbolic link; kmsnb follows no link in a keystore: replace it with "
        "the file or directory itself"
    )


def _check_safe(
    st: os.stat_result, path: str, forbidden: int, *, want: Callable[[int], bool]
) -> None:
    if not want(st.st_mode):
        kind = "a directory" if want is stat.S_ISDIR else "a regular file"
        raise KeyStoreUnsafeError(f"{path} is not {kind}; a keystore holds only regular files")
    user = os.geteuid()
    if st.st_uid not in (user, 0):
        raise KeyStoreUnsafeError(
            f"{path} belongs to uid {st.st_uid}, not to you (uid {user}); a keystore must be "
            "its user's alone: use your own keystore directory"
        )
    mode = stat.S_IMODE(st.st_mode)
    if mode & forbidden:
        what = "readable or writable" if forbidden & 0o044 else "writable"
        raise KeyStoreUnsafeError(
            f"{path} is {what} by group or others (mode {mode:04o}); "
            f"run: chmod {mode & ~forbidden:04o} {path}"
        )
