"""Outputs that appear whole or not at all (kmsnb._files), as encrypt_file and decrypt_file
see them: anonymous files, long names, destinations that are not regular files, errors that
name the destination, the named-file fallback, stale temporary files, no hard links."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import kmsnb
import kmsnb._files as files
import kmsnb._temporary as temporary
from kmsnb._files import atomic_output, is_temporary_name, sweep_stale_temporaries
from kmsnb.testing import InMemoryKms

pytestmark = [pytest.mark.unit]

PLAINTEXT = os.urandom(300_000)
LONGEST_NAME = "n" * 251 + ".kms"  # 255 bytes: the longest name ext4 and tmpfs allow


@pytest.fixture
def plain_file(tmp_path: Path) -> Path:
    path = tmp_path / "plain.bin"
    path.write_bytes(PLAINTEXT)
    return path


@pytest.fixture
def encrypted_file(tmp_path: Path, plain_file: Path, kms: InMemoryKms, key_id: str) -> Path:
    path = tmp_path / "plain.bin.kms"
    kmsnb.encrypt_file(plain_file, path, key_id, kms=kms)
    return path


@pytest.fixture
def named_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Act as on a system or file system without O_TMPFILE."""
    monkeypatch.setattr(files, "_open_anonymous", lambda directory: None)


def _names(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


def _dead_pid() -> int:
    """The PID of a process that has exited (and been reaped)."""
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], stdout=-1)
    return int(child.stdout)


# -- no name until complete ----------------------------------------------------------------


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="O_TMPFILE is Linux's")
def test_an_unfinished_output_has_no_name(tmp_path: Path, encrypted_file: Path) -> None:
    """While it is written, the output is an anonymous file: nothing a crash could leave."""
    seen: list[list[str]] = []
    with atomic_output(tmp_path / "out.bin", overwrite=False) as output:
        output.write(b"secret plaintext")
        output.flush()
        seen.append(_names(tmp_path))
    assert seen == [["plain.bin", "plain.bin.kms"]]
    assert (tmp_path / "out.bin").read_bytes() == b"secret plaintext"
    assert stat.S_IMODE((tmp_path / "out.bin").stat().st_mode) == 0o600


def _write_and_fail(path: Path, *, overwrite: bool, seen: list[list[str]] | None = None) -> None:
    with atomic_output(path, overwrite=overwrite) as output:
        output.write(b"half")
        if seen is not None:
            seen.append(_names(path.parent))
        raise RuntimeError("stopped")


def test_a_failed_write_leaves_nothing(tmp_path: Path) -> None:
    existing = tmp_path / "old.bin"
    existing.write_bytes(b"old")
    for path, overwrite in ((tmp_path / "new.bin", False), (existing, True)):
        with pytest.raises(RuntimeError, match="stopped"):
            _write_and_fail(path, overwrite=overwrite)
    assert _names(tmp_path) == ["old.bin"]
    assert existing.read_bytes() == b"old"


@pytest.mark.parametrize("mode", ["anonymous", "named"])
def test_names_of_255_bytes_work(
    tmp_path: Path,
    plain_file: Path,
    kms: InMemoryKms,
    key_id: str,
    mode: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Legal names up to 255 bytes: the temporary names never grow with the destination's."""
    if mode == "named":
        monkeypatch.setattr(files, "_open_anonymous", lambda directory: None)
    encrypted, decrypted = tmp_path / LONGEST_NAME, tmp_path / ("d" * 255)
    kmsnb.encrypt_file(plain_file, encrypted, key_id, kms=kms)
    kmsnb.encrypt_file(plain_file, encrypted, key_id, kms=kms, overwrite=True)
    kmsnb.decrypt_file(encrypted, decrypted, kms=kms)
    kmsnb.decrypt_file(encrypted, decrypted, kms=kms, overwrite=True)
    assert decrypted.read_bytes() == PLAINTEXT
    assert _names(tmp_path) == sorted(["plain.bin", LONGEST_NAME, "d" * 255])


def test_the_named_fallback_removes_its_file(tmp_path: Path, named_fallback: None) -> None:
    seen: list[list[str]] = []
    with pytest.raises(RuntimeError, match="stopped"):
        _write_and_fail(tmp_path / "a", overwrite=False, seen=seen)
    with atomic_output(tmp_path / "b", overwrite=False) as output:
        output.write(b"b")
    assert len(seen[0]) == 1
    assert is_temporary_name(seen[0][0])
    assert _names(tmp_path) == ["b"]


# -- destinations that are not regular files -------------------------------------------------


def test_a_character_device_is_written_through(
    tmp_path: Path, encrypted_file: Path, kms: InMemoryKms
) -> None:
    """Decrypting to /dev/null (or a copy of it) writes through it and never replaces it."""
    kmsnb.decrypt_file(encrypted_file, "/dev/null", kms=kms)  # no overwrite needed
    if os.geteuid() == 0:  # only root may make device nodes
        null = tmp_path / "null"
        os.mknod(null, stat.S_IFCHR | 0o666, os.stat("/dev/null").st_rdev)
        kmsnb.decrypt_file(encrypted_file, null, kms=kms, overwrite=True)
        assert stat.S_ISCHR(null.lstat().st_mode)
        assert null.lstat().st_rdev == os.stat("/dev/null").st_rdev


def test_a_fifo_is_written_through(tmp_path: Path, encrypted_file: Path, kms: InMemoryKms) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    kmsnb.decrypt_file(encrypted_file, fifo, kms=kms)
    reader.join(timeout=60)
    assert received == [PLAINTEXT]
    assert stat.S_ISFIFO(fifo.lstat().st_mode)


def test_a_symbolic_link_is_followed_and_kept(
    tmp_path: Path, encrypted_file: Path, kms: InMemoryKms
) -> None:
    target = tmp_path / "real.bin"
    target.write_bytes(b"old")
    link = tmp_path / "link.bin"
    link.symlink_to(target.name)
    with pytest.raises(FileExistsError):
        kmsnb.decrypt_file(encrypted_file, link, kms=kms)
    kmsnb.decrypt_file(encrypted_file, link, kms=kms, overwrite=True)
    assert link.is_symlink()
    assert os.readlink(link) == target.name
    assert target.read_bytes() == PLAINTEXT


@pytest.mark.parametrize("relative", [False, True], ids=["absolute", "relative"])
def test_an_overwrite_through_a_linked_folder_replaces_the_file_in_the_real_one(
    tmp_path: Path,
    encrypted_file: Path,
    kms: InMemoryKms,
    monkeypatch: pytest.MonkeyPatch,
    relative: bool,
) -> None:
    """The name itself is replaced (not resolved first): in the folder it names, whichever
    way it is spelled, leaving the links as they were and no temporary file behind."""
    real = tmp_path / "real"
    real.mkdir()
    (real / "out.bin").write_bytes(b"old")
    (tmp_path / "via").symlink_to("real")
    monkeypatch.chdir(tmp_path)
    destination = Path("via/out.bin") if relative else tmp_path / "via" / "out.bin"
    kmsnb.decrypt_file(encrypted_file, destination, kms=kms, overwrite=True)
    assert (tmp_path / "via").is_symlink()
    assert not (real / "out.bin").is_symlink()
    assert (real / "out.bin").read_bytes() == PLAINTEXT
    assert sorted(os.listdir(real)) == ["out.bin"]
    (tmp_path / "out.bin").write_bytes(b"old")
    kmsnb.decrypt_file(encrypted_file, "out.bin", kms=kms, overwrite=True)  # a bare name
    assert (tmp_path / "out.bin").read_bytes() == PLAINTEXT


@pytest.mark.parametrize("fallback", [False, True], ids=["anonymous", "named"])
@pytest.mark.parametrize("overwrite", [False, True], ids=["new", "overwrite"])
def test_a_relative_destination_is_the_folder_of_the_call_whatever_chdir_follows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, overwrite: bool, fallback: bool
) -> None:
    """The block runs the caller's code (and other threads run meanwhile): a chdir there
    must neither move the output nor replace a file of the same name elsewhere."""
    if fallback:
        monkeypatch.setattr(files, "_open_anonymous", lambda directory: None)
    here, elsewhere = tmp_path / "here", tmp_path / "elsewhere"
    here.mkdir()
    elsewhere.mkdir()
    (elsewhere / "out.bin").write_bytes(b"not this one")
    if overwrite:
        (here / "out.bin").write_bytes(b"old")
    monkeypatch.chdir(here)
    with atomic_output("out.bin", overwrite=overwrite) as output:
        output.write(b"new")
        os.chdir(elsewhere)
    assert (here / "out.bin").read_bytes() == b"new"
    assert (elsewhere / "out.bin").read_bytes() == b"not this one"
    assert _names(here) == ["out.bin"]
    assert _names(elsewhere) == ["out.bin"]


def test_refused_destinations_cost_no_kms_call(
    tmp_path: Path, plain_file: Path, encrypted_file: Path, kms: InMemoryKms, key_id: str
) -> None:
    """A directory, a dangling link or a block device is refused before the KMS is asked."""
    dangling = tmp_path / "dangling"
    dangling.symlink_to("nowhere")
    refused: list[tuple[Path, type[Exception], str]] = [
        (tmp_path, IsADirectoryError, "is a directory"),
        (dangling, ValueError, "dangling"),
    ]
    if os.geteuid() == 0:
        block = tmp_path / "block"
        os.mknod(block, stat.S_IFBLK | 0o600, os.makedev(7, 0))
        refused.append((block, ValueError, "block device"))
    calls = dict(kms.calls)
    for destination, error, message in refused:
        with pytest.raises(error, match=message):
            kmsnb.encrypt_file(plain_file, destination, key_id, kms=kms, overwrite=True)
        with pytest.raises(error, match=message):
            kmsnb.decrypt_file(encrypted_file, destination, kms=kms, overwrite=True)
    assert calls == dict(kms.calls)
    assert dangling.is_symlink()
    assert not dangling.exists()


# -- errors name the destination --------------------------------------------------------------


def _refuse_creation(code: int) -> Callable[..., int]:
    real_open = os.open

    def refusing_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        creating = flags & os.O_CREAT or (flags & os.O_TMPFILE) == os.O_TMPFILE
        if creating and "plain" not in os.fspath(path):
            raise OSError(code, os.strerror(code), path)
        return real_open(path, flags, *args, **kwargs)

    return refusing_open


@pytest.mark.parametrize("code", [errno.EROFS, errno.EACCES, errno.ENOSPC])
@pytest.mark.parametrize("mode", ["anonymous", "named"])
def test_creation_errors_name_the_destination(
    tmp_path: Path,
    plain_file: Path,
    kms: InMemoryKms,
    key_id: str,
    monkeypatch: pytest.MonkeyPatch,
    code: int,
    mode: str,
) -> None:
    """What the OS says about kmsnb's temporary file is said about the destination."""
    if mode == "named":
        monkeypatch.setattr(files, "_open_anonymous", lambda directory: None)
    monkeypatch.setattr(os, "open", _refuse_creation(code))
    destination = tmp_path / "out.kms"
    with pytest.raises(OSError, match=os.strerror(code)) as caught:
        kmsnb.encrypt_file(plain_file, destination, key_id, kms=kms)
    assert caught.value.errno == code
    assert caught.value.filename == str(destination)
    assert "kmsnb-tmp" not in str(caught.value)
    assert kms.calls["generate_data_key"] == 0


def test_missing_folders_and_long_names_name_the_destination(
    tmp_path: Path, plain_file: Path, encrypted_file: Path, kms: InMemoryKms, key_id: str
) -> None:
    for destination, code in (
        (tmp_path / "missing" / "out.kms", errno.ENOENT),
        (tmp_path / ("x" * 256), errno.ENAMETOOLONG),
    ):
        with pytest.raises(OSError, match=os.strerror(code)) as encrypting:
            kmsnb.encrypt_file(plain_file, destination, key_id, kms=kms)
        with pytest.raises(OSError, match=os.strerror(code)) as decrypting:
            kmsnb.decrypt_file(encrypted_file, destination, kms=kms)
        for caught in (encrypting, decrypting):
            assert (caught.value.errno, caught.value.filename) == (code, str(destination))
    assert kms.calls["decrypt_data_key"] == 0


def _run_as_nobody(action: Callable[[], object]) -> str:
    """Run ``action`` in a child process without root's privileges; return its error."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            try:
                action()
                message = "no error"
            except OSError as error:
                message = f"{type(error).__name__}|{error.errno}|{error.filename}|{error}"
            os.write(write_end, message.encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as reader:
        message = reader.read().decode()
    os.waitpid(pid, 0)
    return message


def test_permission_errors_name_the_destination(kms: InMemoryKms, key_id: str) -> None:
    """A real EACCES: a folder the user may not write in."""
    base = Path(tempfile.mkdtemp(prefix="kmsnb-eacces-"))  # /tmp: reachable by nobody
    try:
        base.chmod(0o755)
        source = base / "plain.bin"
        source.write_bytes(PLAINTEXT)
        source.chmod(0o644)
        locked = base / "locked"
        locked.mkdir(mode=0o555)
        destination = locked / "out.kms"

        def encrypt() -> object:
            return kmsnb.encrypt_file(source, destination, key_id, kms=kms)

        if os.geteuid() == 0:
            message = _run_as_nobody(encrypt)
        else:
            try:
                encrypt()
                message = "no error"
            except OSError as error:
                message = f"{type(error).__name__}|{error.errno}|{error.filename}|{error}"
        kind, code, filename, text = message.split("|", 3)
        assert (kind, int(code), filename) == ("PermissionError", errno.EACCES, str(destination))
        assert "kmsnb-tmp" not in text
        assert os.listdir(locked) == []
    finally:
        shutil.rmtree(base)


# -- stale temporary files ------------------------------------------------------------------


def _temporary(folder: Path, pid: int, *, host: str | None = None, age_s: float = 0) -> Path:
    path = folder / f".kmsnb-tmp.{host or temporary._host_tag()}.{pid}.0123abcd"
    path.write_bytes(b"plaintext left by a killed writer")
    if age_s:
        old = time.time() - age_s
        os.utime(path, (old, old))
    return path


def test_stale_temporary_files_are_swept_on_the_next_write(tmp_path: Path) -> None:
    """Only kmsnb's, and only those whose writer is gone (or, unknowable, an hour old)."""
    dead = _temporary(tmp_path, _dead_pid())
    alive = _temporary(tmp_path, os.getppid())
    ours = _temporary(tmp_path, os.getpid())
    foreign_old = _temporary(tmp_path, 1, host="ffffffff", age_s=2 * files.STALE_AFTER_S)
    foreign_new = _temporary(tmp_path, 2, host="ffffffff")
    legacy_old = tmp_path / ".report.csv.ab12cd_9.kmsnb-tmp"  # kmsnb 0.1's mkstemp name
    legacy_new = tmp_path / ".report.csv.zz12cd_9.kmsnb-tmp"
    for path, age in ((legacy_old, 2 * files.STALE_AFTER_S), (legacy_new, 0.0)):
        path.write_bytes(b"plaintext")
        os.utime(path, (time.time() - age, time.time() - age))
    not_a_file = tmp_path / f".kmsnb-tmp.{temporary._host_tag()}.{_dead_pid()}.99999999"
    not_a_file.mkdir()
    user_file = tmp_path / "notes.kmsnb-tmp"
    user_file.write_text("mine")

    with atomic_output(tmp_path / "out", overwrite=False) as output:
        output.write(b"x")

    assert not dead.exists()
    assert not foreign_old.exists()
    assert not legacy_old.exists()
    for kept in (alive, ours, foreign_new, legacy_new, not_a_file, user_file):
        assert kept.exists(), kept.name


def test_a_whole_file_left_by_a_crash_while_replacing_is_swept(tmp_path: Path) -> None:
    """A crash between the link to a temporary name and the rename leaves a whole file;
    the next write to the folder removes it."""
    left = _temporary(tmp_path, _dead_pid())
    with atomic_output(tmp_path / "other", overwrite=False) as output:
        output.write(b"y")
    assert _names(tmp_path) == ["other"]
    assert not left.exists()
    sweep_stale_temporaries(tmp_path / "missing")  # a missing folder is not an error


# -- without hard links -----------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["anonymous", "named"])
@pytest.mark.parametrize("code", [errno.EPERM, errno.ENOTSUP])
def test_no_hard_links_falls_back_to_an_exclusive_rename(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str, code: int
) -> None:
    """vfat and many FUSE mounts refuse link(): publish by a rename that never replaces."""
    if mode == "named":
        monkeypatch.setattr(files, "_open_anonymous", lambda directory: None)

    def no_link(*args: Any, **kwargs: Any) -> None:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "link", no_link)
    destination = tmp_path / "out"
    with atomic_output(destination, overwrite=False) as output:
        output.write(b"first")
    assert _names(tmp_path) == ["out"]
    with atomic_output(destination, overwrite=True) as output:
        output.write(b"second")
    assert destination.read_bytes() == b"second"
    # A file that appears while kmsnb writes is never replaced without overwrite.
    late = tmp_path / "late"

    def write_while_another_appears() -> None:
        with atomic_output(late, overwrite=False) as output:
            output.write(b"kmsnb's")
            late.write_bytes(b"someone else's")

    with pytest.raises(FileExistsError, match="late"):
        write_while_another_appears()
    assert late.read_bytes() == b"someone else's"
    assert _names(tmp_path) == ["late", "out"]


# -- termination signals in a library ----------------------------------------------------------

WRITER = """
import os, signal, sys, time
import kmsnb._files as files
import kmsnb._temporary as temporary
files._open_anonymous = lambda directory: None  # the named fallback
if sys.argv[2] == "host-handler":
    def host(signum, frame):
        raise SystemExit(7)
    signal.signal(signal.SIGTERM, host)
with files.atomic_output(sys.argv[1], overwrite=False) as output:
    output.write(b"plaintext")
    output.flush()
    if sys.argv[2] == "host-handler":
        assert signal.getsignal(signal.SIGTERM) is host, "the host's handler was replaced"
    print("writing", flush=True)
    # Short sleeps: Python runs a signal's handler between bytecodes, and a signal that
    # lands after the last check but before a sleep begins would wait for that sleep's end.
    for _ in range(600):
        time.sleep(0.1)
"""


@contextlib.contextmanager
def _writer(destination: Path, mode: str) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(destination), mode], stdout=subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == b"writing\n"
        yield process
    finally:
        process.kill()
        process.wait()


@pytest.mark.parametrize("signum", [15, 1], ids=["SIGTERM", "SIGHUP"])
def test_the_named_fallback_is_removed_on_termination(tmp_path: Path, signum: int) -> None:
    """kmsnb takes over the default disposition only, and still dies of the signal."""
    with _writer(tmp_path / "out", "plain") as process:
        assert any(is_temporary_name(name) for name in os.listdir(tmp_path))
        process.send_signal(signum)
        assert process.wait(timeout=60) == -signum
    assert os.listdir(tmp_path) == []


def test_a_host_programs_signal_handler_is_kept(tmp_path: Path) -> None:
    with _writer(tmp_path / "out", "host-handler") as process:
        process.terminate()
        assert process.wait(timeout=60) == 7  # the host's handler ran, and its exit
    assert os.listdir(tmp_path) == []
