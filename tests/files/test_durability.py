"""What ``durable`` does and does not change (kmsnb._files, kmsnb._write_back), and how often
a folder is swept (kmsnb._temporary).

Durable outputs fsync the file before it gets its name and the folder after, and start
the write-back of every step while the data comes; ``durable=False`` skips exactly those
and keeps everything else: an output that appears only whole, nothing left after an
error, an existing destination untouched."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import kmsnb
import kmsnb._files as files
import kmsnb._output as output_file
import kmsnb._temporary as temporary
import kmsnb._write_back as write_back
from kmsnb._files import atomic_output
from kmsnb.errors import IntegrityError
from kmsnb.testing import InMemoryKms

pytestmark = [pytest.mark.unit]

PLAINTEXT = os.urandom(100_000)


class Fsyncs:
    """Every fsync of the process while installed: (inode, is a directory), in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, bool]] = []

    def of(self, path: Path) -> list[tuple[int, bool]]:
        inode = os.stat(path).st_ino
        return [call for call in self.calls if call[0] == inode]


@pytest.fixture
def fsyncs(monkeypatch: pytest.MonkeyPatch) -> Fsyncs:
    record, real_fsync = Fsyncs(), os.fsync

    def fsync(fd: int) -> None:
        status = os.fstat(fd)
        record.calls.append((status.st_ino, stat.S_ISDIR(status.st_mode)))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return record


@pytest.fixture
def plain_file(tmp_path: Path) -> Path:
    path = tmp_path / "plain.bin"
    path.write_bytes(PLAINTEXT)
    return path


@pytest.fixture(params=["anonymous", "named"])
def output_kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both ways kmsnb writes: an anonymous file (Linux), and the named fallback."""
    if request.param == "named":
        monkeypatch.setattr(files, "_open_anonymous", lambda directory: None)
    return str(request.param)


# -- what durable=True does ------------------------------------------------------------------


def test_a_durable_output_fsyncs_the_file_then_its_folder(
    tmp_path: Path, plain_file: Path, kms: InMemoryKms, key_id: str, fsyncs: Fsyncs,
    output_kind: str,
) -> None:  # fmt: skip
    """As a crash-safe copy does: the data before the name, the name after."""
    out = tmp_path / "out"
    out.mkdir()
    encrypted, decrypted = out / "plain.bin.kms", out / "plain.bin"
    kmsnb.encrypt_file(plain_file, encrypted, key_id, kms=kms)
    after_encrypt = list(fsyncs.calls)
    kmsnb.decrypt_file(encrypted, decrypted, kms=kms)
    assert decrypted.read_bytes() == PLAINTEXT
    folder = os.stat(out).st_ino
    for path, calls in ((encrypted, after_encrypt), (decrypted, fsyncs.calls)):
        # The file that got the name (linked or renamed: the same inode) was fsynced once,
        # and the folder last.
        inode = os.stat(path).st_ino
        assert [(inode, False)] == [call for call in calls if call[0] == inode]
        assert (folder, True) == calls[-1]
    assert len(fsyncs.calls) == 4


# -- what durable=False skips, and what it keeps ----------------------------------------------


def test_durable_false_skips_every_fsync(
    tmp_path: Path, plain_file: Path, kms: InMemoryKms, key_id: str, fsyncs: Fsyncs,
    output_kind: str,
) -> None:  # fmt: skip
    encrypted, decrypted = tmp_path / "plain.bin.kms", tmp_path / "back.bin"
    kmsnb.encrypt_file(plain_file, encrypted, key_id, kms=kms, durable=False)
    kmsnb.decrypt_file(encrypted, decrypted, kms=kms, durable=False)
    assert decrypted.read_bytes() == PLAINTEXT
    assert fsyncs.calls == []
    assert stat.S_IMODE(decrypted.stat().st_mode) == 0o600
    assert sorted(os.listdir(tmp_path)) == ["back.bin", "plain.bin", "plain.bin.kms"]


def test_durable_false_replaces_only_with_overwrite(
    tmp_path: Path, plain_file: Path, kms: InMemoryKms, key_id: str, output_kind: str
) -> None:
    encrypted, decrypted = tmp_path / "plain.bin.kms", tmp_path / "back.bin"
    kmsnb.encrypt_file(plain_file, encrypted, key_id, kms=kms)
    decrypted.write_bytes(b"old")
    with pytest.raises(FileExistsError):
        kmsnb.decrypt_file(encrypted, decrypted, kms=kms, durable=False)
    assert decrypted.read_bytes() == b"old"
    kmsnb.decrypt_file(encrypted, decrypted, kms=kms, durable=False, overwrite=True)
    assert decrypted.read_bytes() == PLAINTEXT
    assert sorted(os.listdir(tmp_path)) == ["back.bin", "plain.bin", "plain.bin.kms"]


@pytest.mark.parametrize("overwrite", [False, True], ids=["new", "overwrite"])
def test_durable_false_leaves_nothing_after_an_error(
    tmp_path: Path, output_kind: str, overwrite: bool
) -> None:
    destination = tmp_path / "out.bin"
    if overwrite:
        destination.write_bytes(b"old")
    with (  # noqa: PT012 - the failure comes after the writes
        pytest.raises(RuntimeError, match="stopped"),
        atomic_output(destination, overwrite=overwrite, durable=False) as output,
    ):
        output.write(b"plaintext" * 10_000)
        output.flush()
        raise RuntimeError("stopped")
    assert (["out.bin"] if overwrite else []) == os.listdir(tmp_path)
    if overwrite:
        assert destination.read_bytes() == b"old"


def test_a_failed_decryption_with_durable_false_leaves_no_plaintext(
    tmp_path: Path, plain_file: Path, kms: InMemoryKms, key_id: str, output_kind: str
) -> None:
    encrypted = tmp_path / "plain.bin.kms"
    kmsnb.encrypt_file(plain_file, encrypted, key_id, kms=kms)
    damaged = bytearray(encrypted.read_bytes())
    damaged[-1] ^= 1  # the final chunk's tag
    encrypted.write_bytes(bytes(damaged))
    with pytest.raises(IntegrityError, match="final chunk"):
        kmsnb.decrypt_file(encrypted, tmp_path / "back.bin", kms=kms, durable=False)
    assert sorted(os.listdir(tmp_path)) == ["plain.bin", "plain.bin.kms"]


# -- early write-back ---------------------------------------------------------------------


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """Every write-back start, as (offset, size), with 64 KiB steps instead of 8 MiB."""
    calls: list[tuple[int, int]] = []

    def record(fd: int, offset: int, size: int) -> None:
        assert stat.S_ISREG(os.fstat(fd).st_mode)
        calls.append((offset, size))

    monkeypatch.setattr(output_file, "WRITE_BACK_STEP", 65536)
    monkeypatch.setattr(output_file, "start_write_back", record)
    return calls


def _write_in_pieces(destination: Path, total: int, *, durable: bool) -> None:
    with atomic_output(destination, overwrite=False, durable=durable) as output:
        for start in range(0, total, 10_000):
            output.write(bytes(min(10_000, total - start)))


def test_write_back_starts_step_by_step_while_a_durable_output_is_written(
    tmp_path: Path, started: list[tuple[int, int]]
) -> None:
    """Contiguous ranges from the start, each at least a step; the tail is left to fsync."""
    _write_in_pieces(tmp_path / "out.bin", 1_000_000, durable=True)
    assert len(started) == 14  # 1,000,000 bytes in 70,000-byte ranges
    offsets = [offset for offset, _ in started]
    assert [0] + [offset + size for offset, size in started[:-1]] == offsets
    assert all(size >= 65536 for _, size in started)
    assert 1_000_000 - 65536 < sum(size for _, size in started) <= 1_000_000


def test_no_write_back_for_small_or_scratch_outputs(
    tmp_path: Path, started: list[tuple[int, int]]
) -> None:
    _write_in_pieces(tmp_path / "small.bin", 65535, durable=True)
    _write_in_pieces(tmp_path / "scratch.bin", 1_000_000, durable=False)
    assert started == []
    assert (tmp_path / "scratch.bin").stat().st_size == 1_000_000


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    read_end, write_end = os.pipe()
    yield read_end, write_end
    os.close(read_end)
    os.close(write_end)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sync_file_range is Linux's")
def test_start_write_back_calls_sync_file_range_and_ignores_its_errors(
    tmp_path: Path, pipe: tuple[int, int]
) -> None:
    """The real call, on a file (it must find the function) and on a pipe (ESPIPE:
    ignored, as the final fsync reports what matters)."""
    with open(tmp_path / "data.bin", "wb", buffering=0) as data:
        data.write(os.urandom(1 << 20))
        write_back.start_write_back(data.fileno(), 0, 1 << 20)
        assert write_back._sync_file_range is not None
        os.fsync(data.fileno())
    write_back.start_write_back(pipe[1], 0, 4096)


def test_a_large_durable_round_trip_with_the_real_write_back(
    tmp_path: Path, kms: InMemoryKms, key_id: str
) -> None:
    """More than two steps of 8 MiB each way, fsynced, byte for byte."""
    plaintext = os.urandom(2 * write_back.WRITE_BACK_STEP + 12345)
    source, encrypted, decrypted = tmp_path / "a", tmp_path / "a.kms", tmp_path / "b"
    source.write_bytes(plaintext)
    kmsnb.encrypt_file(source, encrypted, key_id, kms=kms)
    kmsnb.decrypt_file(encrypted, decrypted, kms=kms)
    assert plaintext == decrypted.read_bytes()


# -- how often a folder is swept ----------------------------------------------------------------


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The sweep's clock, moved by hand; and a memory of swept folders of this test's own."""
    now = [1000.0]
    monkeypatch.setattr(temporary.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(temporary, "_swept", {})
    return now


def _leftover(folder: Path, pid: int) -> Path:
    """A temporary file as a killed writer (``pid``, gone) leaves it."""
    path = folder / f".kmsnb-tmp.{temporary._host_tag()}.{pid}.0badf00d"
    path.write_bytes(b"plaintext of a killed writer")
    return path


def _gone_pid() -> int:
    """The PID of a process that has exited (and been reaped)."""
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], stdout=-1)
    return int(child.stdout)


def _write(folder: Path, name: str) -> None:
    with atomic_output(folder / name, overwrite=False) as output:
        output.write(b"x")


def test_a_folder_is_swept_by_the_first_write_then_once_per_interval(
    tmp_path: Path, clock: list[float]
) -> None:
    dead = _gone_pid()
    first = _leftover(tmp_path, dead)
    _write(tmp_path, "a")
    assert not first.exists()  # the first write of a process to a folder sweeps it
    second = _leftover(tmp_path, dead)
    clock[0] += temporary.SWEEP_INTERVAL_S / 2
    _write(tmp_path, "b")
    assert second.exists()  # swept a moment ago: not read again
    clock[0] += temporary.SWEEP_INTERVAL_S / 2
    _write(tmp_path, "c")
    assert not second.exists()
    assert sorted(os.listdir(tmp_path)) == ["a", "b", "c"]


def test_each_folder_has_its_own_sweep(tmp_path: Path, clock: list[float]) -> None:
    one, other = tmp_path / "one", tmp_path / "other"
    one.mkdir()
    other.mkdir()
    _write(one, "a")
    left = _leftover(other, _gone_pid())
    _write(other, "a")
    assert not left.exists()


def test_the_memory_of_swept_folders_is_bounded(
    tmp_path: Path, clock: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(temporary, "_SWEPT_MEMORY", 4)
    for index in range(10):
        folder = tmp_path / str(index)
        folder.mkdir()
        _write(folder, "a")
        clock[0] += temporary.SWEEP_INTERVAL_S
    assert len(temporary._swept) <= 4


# -- writers that are not files -----------------------------------------------------------------


def test_durable_false_writes_through_a_character_device(
    plain_file: Path, kms: InMemoryKms, key_id: str
) -> None:
    """/dev/null is written through either way; nothing to fsync or to name."""
    info = kmsnb.encrypt_file(plain_file, os.devnull, key_id, kms=kms, durable=False)
    assert len(PLAINTEXT) == info.plaintext_size
