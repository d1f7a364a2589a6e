"""kmsnb's named temporary files: their names, the sweep of stale ones, and their removal
on SIGTERM and SIGHUP (see :mod:`kmsnb._files`, which uses them where a file system has no
anonymous files, and for the instant an overwrite takes).

A name is ``.kmsnb-tmp.HOST.PID.RANDOM``: HOST tags the host and PID namespace, so that
the PID can be judged; its length is fixed, so any legal destination name (up to 255
bytes) has one. A file is stale once its process is gone; one from another host, or made
by kmsnb 0.1 (``.NAME.RANDOM.kmsnb-tmp``), once untouched for :data:`STALE_AFTER_S`.

A process sweeps a folder before its first write there, and again before a write at
least :data:`SWEEP_INTERVAL_S` after its last sweep of it. A sweep reads the whole
folder, so sweeping before every write made writing N files into one folder cost
O(N²): 0.45 ms a file at 1,000 files. Leftovers come only from killed processes, so
the interval delays nothing but the removal of a file that a process killed within
the last second left.
"""

from __future__ import annotations

import _thread
import contextlib
import functools
import os
import re
import stat
import time
from collections.abc import Callable
from types import FrameType, ModuleType
from typing import TYPE_CHECKING, Any, TypeVar

__all__ = [
    "STALE_AFTER_S",
    "SWEEP_INTERVAL_S",
    "claim_temporary",
    "discard",
    "is_temporary_name",
    "open_named",
    "register",
    "sweep_stale_temporaries",
    "temporary_path",
    "unregister",
]

_T = TypeVar("_T")

#: Temporary files of an unknown or foreign owner are swept once untouched this long.
STALE_AFTER_S = 3600.0
#: Seconds after a sweep of a folder during which this process's writes there skip it.
SWEEP_INTERVAL_S = 1.0
_SWEPT_MEMORY = 1024  # folders remembered; beyond that, the expired ones are forgotten
_PREFIX = ".kmsnb-tmp."
_MARK = "kmsnb-tmp"  # in every temporary name, today's and 0.1's
# Patterns, compiled (and cached) by re at their first use: a sweep of a folder with no
# temporary file in it needs neither (start-up).
_TEMPORARY = r"\.kmsnb-tmp\.([0-9a-f]{8})\.(\d+)\.[0-9a-f]{8}"
_LEGACY_TEMPORARY = r"\..+\.[a-z0-9_]{8}\.kmsnb-tmp"  # kmsnb 0.1's mkstemp names


@functools.cache
def _host_tag() -> str:
    """Who may judge a temporary file's PID: this host and PID namespace (worked out at
    the first temporary name or sweep that needs it: most writes need neither)."""
    # cryptography's SHA-256, not hashlib's: a kmsnb write has loaded it for HKDF already,
    # and hashlib would load OpenSSL a second time (start-up). The same digest.
    from cryptography.hazmat.primitives import hashes

    try:
        namespace = str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        namespace = ""
    digest = hashes.Hash(hashes.SHA256())
    digest.update(f"{_host_name()}\0{namespace}".encode())
    return digest.finalize().hex()[:8]


def _host_name() -> str:
    """:func:`socket.gethostname`, which on POSIX is uname's node name: importing
    :mod:`socket` (with selectors and array) cost a CLI call more than its own work."""
    uname = getattr(os, "uname", None)
    if uname is not None:
        return str(uname().nodename)
    import socket

    return socket.gethostname()


def is_temporary_name(name: str) -> bool:
    """Whether ``name`` is one kmsnb gives its temporary files (today's or 0.1's)."""
    return (
        re.fullmatch(_TEMPORARY, name) is not None
        or re.fullmatch(_LEGACY_TEMPORARY, name) is not None
    )


def _is_stale(name: str, status: os.stat_result) -> bool:
    found = re.fullmatch(_TEMPORARY, name)
    if found is not None and found.group(1) == _host_tag():
        pid = int(found.group(2))
        if pid == os.getpid():
            return False  # another thread of ours is writing it
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except OSError:
            return False  # alive, under another user
        return False
    return time.time() - status.st_mtime > STALE_AFTER_S


_swept: dict[str, float] = {}  # folder -> time.monotonic() of this process's last sweep


def sweep_if_due(directory: str) -> None:
    """:func:`sweep_stale_temporaries`, unless this process swept ``directory`` less than
    :data:`SWEEP_INTERVAL_S` ago (see the module's docstring)."""
    key = os.fspath(directory)
    now = time.monotonic()
    last = _swept.get(key)
    if last is not None and now - last < SWEEP_INTERVAL_S:
        return
    if len(_swept) >= _SWEPT_MEMORY:
        for folder, swept_at in list(_swept.items()):
            if now - swept_at >= SWEEP_INTERVAL_S:
                _swept.pop(folder, None)
    sweep_stale_temporaries(directory)
    _swept[key] = now


def sweep_stale_temporaries(directory: str | os.PathLike[str]) -> None:
    """Remove kmsnb's temporary files in ``directory`` left by processes that died."""
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return  # the write itself will report what is wrong with the folder
    for entry in entries:
        name = entry.name
        # The cheap test first: a folder of a thousand files is read at every sweep.
        if not (name.startswith(".") and _MARK in name) or not is_temporary_name(name):
            continue
        with contextlib.suppress(OSError):
            status = entry.stat(follow_symlinks=False)
            if stat.S_ISREG(status.st_mode) and _is_stale(entry.name, status):
                os.unlink(entry.path)


def temporary_path(directory: str) -> str:
    """A fresh temporary name in ``directory`` (not created)."""
    return os.path.join(directory, f"{_PREFIX}{_host_tag()}.{os.getpid()}.{os.urandom(4).hex()}")


def claim_temporary(directory: str, claimed: list[str], create: Callable[[str], _T]) -> _T:
    """``create(path)`` for a fresh temporary ``path`` in ``directory``; its result.

    The path is appended to ``claimed`` and registered (:func:`register`) before
    ``create`` makes the file: whatever stops the caller, a signal's exception included,
    finds in ``claimed`` every file there is to :func:`discard`. ``create`` raises
    ``FileExistsError`` when the name is taken (32 random bits collided): another is drawn.
    """
    while True:
        path = temporary_path(directory)
        claimed.append(path)
        register(path)
        try:
            return create(path)
        except FileExistsError:
            claimed.pop()
            unregister(path)


def open_named(directory: str, claimed: list[str]) -> int:
    """Create a temporary file (0600, exclusively) in ``directory``; return it open. Its
    path is in ``claimed`` before the file exists (:func:`claim_temporary`)."""
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    flags |= getattr(os, "O_CLOEXEC", 0)
    return claim_temporary(directory, claimed, lambda path: os.open(path, flags, 0o600))


# -- named temporary files and termination signals ---------------------------------------

# The handlers use _signal, the C module under signal, imported when a name is first
# registered: signal builds its enums when imported (1.3 ms of a CLI call's start-up) and a
# handler needs only the numbers. mypy has no stub for _signal; signal's functions are the
# same ones. _thread's lock is threading.Lock itself.
_live: set[str] = set()
_live_lock = _thread.allocate_lock()
_installed: dict[int, Any] = {}


def _signal_module() -> ModuleType:
    if TYPE_CHECKING:
        import signal
    else:
        import _signal as signal
    return signal


def _signals() -> tuple[int, ...]:
    signal = _signal_module()
    return tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


def register(path: str) -> None:
    """Remove ``path`` if SIGTERM or SIGHUP ends the process before :func:`unregister`."""
    with _live_lock:
        _live.add(path)
        if len(_live) == 1:
            _install_handlers()


def unregister(path: str) -> None:
    """``path`` is gone or has become the output: stop watching it."""
    with _live_lock:
        _live.discard(path)
        if not _live:
            _restore_handlers()


def discard(path: str) -> None:
    """Remove the temporary file ``path`` (after an error) and stop watching it."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    unregister(path)


def _install_handlers() -> None:
    signal = _signal_module()

    # Only the default disposition is taken over: a host program's own handler (or
    # SIG_IGN) stays in charge. Only the main thread may set handlers: in another,
    # signal.signal raises ValueError and nothing is installed (signal is asked rather than
    # threading, which a write need not import: start-up).
    for signum in _signals():
        with contextlib.suppress(ValueError, OSError):
            if signal.getsignal(signum) == signal.SIG_DFL:
                signal.signal(signum, _remove_and_die)
                _installed[signum] = signal.SIG_DFL


def _restore_handlers() -> None:
    signal = _signal_module()

    for signum in list(_installed):
        try:
            if signal.getsignal(signum) is _remove_and_die:
                signal.signal(signum, _installed[signum])
        except ValueError:
            return  # not the main thread: the handlers stay until a restore there
        except OSError:
            pass
        del _installed[signum]


def _remove_and_die(signum: int, frame: FrameType | None) -> None:
    """Remove the named temporary files, then die of ``signum`` as the default would."""
    signal = _signal_module()

    for path in list(_live):
        with contextlib.suppress(OSError):
            os.unlink(path)
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
