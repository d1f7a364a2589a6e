"""Writing a file all at once or not at all, and never leaving a piece of it behind.

Every local file kmsnb writes goes through :func:`atomic_output`:

* **On Linux** the data goes to an anonymous file (``O_TMPFILE``) in the destination's
  folder. It has no name, so no crash (``kill -9``, a power cut) can leave it behind: the
  kernel frees it with the last descriptor. Once the data is complete it is fsynced and
  given its name with ``linkat``, which refuses an existing name, and the folder is
  fsynced. ``linkat`` goes through ``/proc/self/fd/N`` with ``AT_SYMLINK_FOLLOW``, as
  open(2) suggests: the ``AT_EMPTY_PATH`` form needs ``CAP_DAC_READ_SEARCH``.
* **To replace a file** (``overwrite=True``) the complete file is linked to a temporary
  name and renamed over the destination: the named file exists only once complete, and a
  crash in that instant leaves a whole file that the next write to the folder sweeps.
* **Elsewhere**, and where the file system has no ``O_TMPFILE``, a named temporary file
  ``.kmsnb-tmp.HOST.PID.RANDOM`` (mode 0600) takes its place. It is removed after any
  error (Ctrl-C included) and on SIGTERM and SIGHUP: the CLI turns those into an
  exception; a library cannot take over its host's handlers, so it installs its own
  only where the disposition is the default (death), and only while such a file exists,
  removing the files and then dying of the signal as the default would. A ``kill -9``
  can still leave one: a write first sweeps the folder of kmsnb's temporary files whose
  process is gone (or, made on another host or by kmsnb 0.1, older than an hour); a
  process sweeps a folder at its first write there and then at most once a second
  (:mod:`kmsnb._temporary`).
* **Without hard links** (link fails with EPERM or ENOTSUP: vfat, many FUSE mounts) the
  file is published by an exclusive rename (``renameat2(RENAME_NOREPLACE)``).

The temporary names have a fixed length, so every legal name (up to 255 bytes) works.

Destinations that are not regular files are never replaced:

* a **character device or FIFO** (``/dev/null``, a terminal, a named pipe) is written
  through, as ``cp`` does, with or without ``overwrite``: nothing stored is replaced.
  The writing is not atomic; like stdout, what was written before an error stays.
* a **symbolic link** is followed: its target is replaced whole and the link is kept; a
  dangling link is refused (``cp`` refuses it too).
* a **directory, block device or socket** is refused before anything is written.

**Durability.** By default (``durable=True``) the complete file is fsynced before it
gets its name, and the folder after, as a crash-safe copy does (temporary file, fsync,
rename, folder fsync): no fewer steps, and no more. While the data comes, its write-back
is started early (:mod:`kmsnb._write_back`), so that the final fsync has little left.

``durable=False`` skips the fsyncs and the early write-back, for scratch outputs
(``--no-fsync`` in the CLI), and nothing else: the output still appears only once
complete; after an error or a killed process (``kill -9`` included: the page cache
survives the process) nothing is left and an existing destination is untouched; and
no crash of any kind leaves a plaintext file, since the data was only ever in an
anonymous file (or a named temporary one, removed or swept as above). What it gives up
is the power cut or kernel crash: after one, the output may be missing, empty or short,
and a file it replaced may be lost too.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import stat
import sys
from collections.abc import Iterator
from typing import BinaryIO

from kmsnb._output import Output, naming
from kmsnb._path_text import anchored, as_path_text
from kmsnb._temporary import (
    STALE_AFTER_S,
    claim_temporary,
    discard,
    is_temporary_name,
    open_named,
    sweep_if_due,
    sweep_stale_temporaries,
    unregister,
)

__all__ = [
    "STALE_AFTER_S",
    "atomic_output",
    "fsync_directory",
    "is_temporary_name",
    "sweep_stale_temporaries",
]

_NO_LINKS = (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP)
_NO_TMPFILE = (errno.EOPNOTSUPP, errno.ENOTSUP, errno.EISDIR, errno.EINVAL)
_COPY_SIZE = 1 << 20
_HAS_PROC_FD = os.path.isdir("/proc/self/fd")


def fsync_directory(directory: str | os.PathLike[str]) -> None:
    """Make a rename in ``directory`` durable (a no-op where directories can't be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on directories; the rename still happened
    finally:
        os.close(fd)


# -- what the destination is -------------------------------------------------------------


def _exists(destination: str) -> FileExistsError:
    return FileExistsError(f"{destination} exists; pass overwrite=True to replace it")


def _resolve(destination: str, *, overwrite: bool) -> tuple[str, bool]:
    """Return the file to replace or create, and whether to write through it instead.

    Raises:
        FileExistsError: a regular file is there and ``overwrite`` is false.
        IsADirectoryError, ValueError: a destination that is never written (see above).
    """
    # lstat first: a new destination (the common case) costs one call, not stat and then
    # lstat to tell a missing file from a dangling link.
    try:
        status = os.lstat(destination)
    except FileNotFoundError:
        return destination, False
    except OSError as error:
        raise naming(error, destination) from None
    through_a_link = stat.S_ISLNK(status.st_mode)
    if through_a_link:
        try:
            status = os.stat(destination)
        except FileNotFoundError:
            if not overwrite:
                raise _exists(destination) from None
            raise ValueError(
                f"{destination} is a symbolic link to a missing file "
                f"({os.readlink(destination)}); kmsnb does not write through dangling links"
            ) from None
        except OSError as error:
            raise naming(error, destination) from None
    kind = status.st_mode
    if stat.S_ISCHR(kind) or stat.S_ISFIFO(kind):
        return destination, True
    if stat.S_ISDIR(kind):
        raise IsADirectoryError(f"{destination} is a directory; name the file to write in it")
    if not stat.S_ISREG(kind):
        what = "a block device" if stat.S_ISBLK(kind) else "not a regular file"
        raise ValueError(f"{destination} is {what}; kmsnb writes only files and pipes")
    if not overwrite:
        raise _exists(destination)
    # A link is kept and its target replaced. Otherwise the name itself is replaced, in the
    # folder it names (through linked folders or not, the same one): realpath's lstat of
    # every component was a tenth of a 4 KiB decrypt_file's overwrite (issue 16).
    return (os.path.realpath(destination) if through_a_link else destination), False


_name_max: dict[str, int | None] = {}  # folder -> its PC_NAME_MAX (None: not known)
_NAME_MAX_MEMORY = 1024  # folders remembered; beyond that, the memory starts again


def _folder_name_max(directory: str) -> int | None:
    """The longest name ``directory`` holds, asked once per folder per process: a
    ``pathconf`` per file was 2 us of a 4 KiB file's encryption (issue 16). A folder that
    changes file system meanwhile only moves the refusal to the end (``linkat``, ENAMETOOLONG)."""
    if directory in _name_max:
        return _name_max[directory]
    try:
        limit: int | None = os.pathconf(directory, "PC_NAME_MAX")
    except (OSError, ValueError):
        return None  # not remembered: the folder may not exist yet
    if len(_name_max) >= _NAME_MAX_MEMORY:
        _name_max.clear()
    _name_max[directory] = limit
    return limit


def _check_name_length(directory: str, name: str, destination: str) -> None:
    """Refuse a name the folder cannot hold now, rather than after all the work."""
    limit = _folder_name_max(directory)
    if limit is None:
        return
    if len(os.fsencode(name)) > limit:
        raise OSError(errno.ENAMETOOLONG, os.strerror(errno.ENAMETOOLONG), destination)


class _Folder:
    """The destination's folder, opened once for ``linkat`` and for its fsync."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None

    def fileno(self) -> int:
        """A descriptor of the folder; raises ``OSError`` where it cannot be opened."""
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        return self._fd

    def fsync(self) -> None:
        """Make a new name in the folder durable (a no-op where that cannot be done)."""
        # Not openable, or a file system that refuses fsync on directories.
        with contextlib.suppress(OSError):
            os.fsync(self.fileno())

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _open_anonymous(directory: str) -> int | None:
    """An unnamed file in ``directory``, or ``None`` where there is no such thing."""
    if not hasattr(os, "O_TMPFILE") or not _HAS_PROC_FD:
        return None
    try:
        return os.open(directory, os.O_TMPFILE | os.O_RDWR | os.O_CLOEXEC, 0o600)
    except OSError as error:
        if error.errno in _NO_TMPFILE:
            return None
        raise


def _link_fd(fd: int, folder: _Folder, name: str) -> None:
    """Name the anonymous file ``fd``: linkat(AT_FDCWD, "/proc/self/fd/N", dir, name,
    AT_SYMLINK_FOLLOW). (Python calls plain link(), which links the /proc symbolic link
    itself, unless a directory descriptor is given.)"""
    os.link(f"/proc/self/fd/{fd}", name, dst_dir_fd=folder.fileno(), follow_symlinks=True)


def _link_anonymous(fd: int, folder: _Folder, claimed: list[str]) -> None:
    """Give the anonymous file ``fd`` a temporary name, in ``claimed`` before it exists
    (:func:`kmsnb._temporary.claim_temporary`)."""
    claim_temporary(folder.path, claimed, lambda path: _link_fd(fd, folder, os.path.basename(path)))


def _copy_to_named(fd: int, directory: str, claimed: list[str], *, durable: bool) -> None:
    """Copy the anonymous file ``fd`` to a named temporary one, for file systems that
    cannot link it; its path is appended to ``claimed`` before it exists."""
    with io.FileIO(open_named(directory, claimed), "wb", closefd=True) as copy:
        os.lseek(fd, 0, os.SEEK_SET)
        while block := os.read(fd, _COPY_SIZE):
            copy.write(block)
        if durable:
            os.fsync(copy.fileno())


def _rename_exclusive(source: str, destination: str) -> None:
    """``rename`` that refuses an existing destination (renameat2 RENAME_NOREPLACE)."""
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = getattr(libc, "renameat2", None)
        if renameat2 is not None:
            at_fdcwd, rename_noreplace = -100, 1
            result = renameat2(
                at_fdcwd, os.fsencode(source), at_fdcwd, os.fsencode(destination), rename_noreplace
            )
            if result == 0:
                return
            code = ctypes.get_errno()
            if code not in (errno.EINVAL, errno.ENOSYS, *_NO_LINKS):
                raise OSError(code, os.strerror(code), os.fspath(destination))
    # No exclusive rename here: check, then rename (a file created in between is replaced).
    if os.path.lexists(destination):
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), os.fspath(destination))
    os.rename(source, destination)


def _publish_named(path: str, target: str, *, overwrite: bool) -> None:
    if overwrite:
        os.replace(path, target)
        return
    try:
        os.link(path, target, follow_symlinks=False)
    except OSError as error:
        if error.errno not in _NO_LINKS:
            raise
        _rename_exclusive(path, target)
        return
    os.unlink(path)


def _publish(
    fd: int, named: str | None, folder: _Folder, target: str, *, overwrite: bool, durable: bool
) -> None:
    """Give the complete file its name; a named temporary one is gone afterwards."""
    if named is not None:
        _publish_named(named, target, overwrite=overwrite)
        return
    if not overwrite:
        try:
            _link_fd(fd, folder, os.path.basename(target))
            return
        except OSError as error:
            if error.errno not in _NO_LINKS:
                raise
    # Through a temporary name, noted in ``claimed`` before it exists: whatever stops the
    # publishing (a signal's exception included) removes every temporary file it made.
    claimed: list[str] = []
    try:
        linked = False
        if overwrite:
            try:
                _link_anonymous(fd, folder, claimed)
                linked = True
            except OSError as error:
                if error.errno not in _NO_LINKS:
                    raise
        if not linked:
            _copy_to_named(fd, folder.path, claimed, durable=durable)
        _publish_named(claimed[-1], target, overwrite=overwrite)
    except BaseException:
        for path in claimed:
            discard(path)
        raise
    for path in claimed:
        unregister(path)


@contextlib.contextmanager
def _write_through(destination: str) -> Iterator[BinaryIO]:
    try:
        fd = os.open(destination, os.O_WRONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError as error:
        raise naming(error, destination) from None
    with Output(fd, destination) as output:
        yield output


@contextlib.contextmanager
def atomic_output(
    path: str | os.PathLike[str], *, overwrite: bool, sweep: bool = True, durable: bool = True
) -> Iterator[BinaryIO]:
    """Yield a binary file that becomes ``path`` only if the block completes.

    The file is created mode 0600 in the destination's folder, fsynced, and named
    ``path`` at the end (see the module's docstring). After any error nothing is left,
    and an existing ``path`` is untouched. Errors name ``path``, never a temporary file.

    Args:
        overwrite: replace an existing file.
        sweep: remove stale temporary files from the folder first (a fresh folder of
            kmsnb's own, such as a dataset's generation, needs none).
        durable: fsync the file and the folder, so that the output survives a power
            cut once this returns; ``False`` for scratch outputs (see the module's
            docstring for what it skips, and what it never does).

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is false.
        IsADirectoryError, ValueError: ``path`` is a directory, a block device, a socket
            or a dangling symbolic link.
        OSError: the folder is missing, read-only, full...; it names ``path``.
    """
    destination = as_path_text(path)
    target, through = _resolve(destination, overwrite=overwrite)
    try:
        target = anchored(target)  # the folder of the call, whatever chdir comes after
    except OSError as error:
        raise naming(error, destination) from None
    if through:
        with _write_through(destination) as through_output:
            yield through_output
        return
    directory, name = os.path.split(target)  # spelled as a Path's: parent and name
    directory = directory or "."
    _check_name_length(directory, name, destination)
    if sweep:
        sweep_if_due(directory)
    # Everything from the opening on is inside the try: an exception at any point (a
    # signal's included) leaves no file (tests/files/test_write_behind_signals.py).
    claimed: list[str] = []  # a named temporary file, where there is no anonymous one
    named: str | None = None
    output: Output | None = None
    folder = _Folder(directory)
    try:
        try:
            fd = _open_anonymous(directory)
            if fd is None:
                fd = open_named(directory, claimed)
                named = claimed[-1]
        except OSError as error:
            raise naming(error, destination) from None
        output = Output(fd, destination, write_back=durable, behind=True)
        yield output
        output.flush()
        try:
            if durable:
                os.fsync(fd)
            _publish(fd, named, folder, target, overwrite=overwrite, durable=durable)
        except OSError as error:
            raise naming(error, destination) from None
    except BaseException:
        folder.close()
        # The error that stopped the write is the one to report, not one from closing.
        # Without an Output (stopped while making it) the descriptor is left to its
        # FileIO, if one was made, or to the process's end: closing it here could close
        # another file that got its number meanwhile.
        if output is not None:
            output.abandon()
        for path in claimed:
            discard(path)
        raise
    output.close()  # the anonymous file's descriptor stays open until it has its name
    if named is not None:
        unregister(named)
    try:
        if durable:
            folder.fsync()
    finally:
        folder.close()
