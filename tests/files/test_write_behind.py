"""Writing a large output from a thread of its own (kmsnb._write_behind, kmsnb._output):
the bytes and their order, the early write-back, and errors that stay sticky and name
the destination."""

from __future__ import annotations

import errno
import os
import random
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import kmsnb._output as output_file
import kmsnb._write_behind as write_behind
from kmsnb._files import atomic_output
from kmsnb._write_behind import BackgroundWriter

pytestmark = pytest.mark.unit


def _threads_alive() -> int:
    return write_behind.running_count()


@pytest.fixture
def descriptor(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    path = tmp_path / "out.bin"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    yield fd, path
    os.close(fd)


def _failing_write(fail_at: int) -> tuple[list[int], Callable[[int, memoryview], int]]:
    """An ``os.write`` that fails with ENOSPC at its ``fail_at``-th call (from 1)."""
    calls: list[int] = []
    real_write = os.write

    def write(fd: int, data: memoryview) -> int:
        calls.append(len(data))
        if len(calls) == fail_at:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    return calls, write


# -- BackgroundWriter -----------------------------------------------------------------------


def test_the_bytes_arrive_whole_and_in_order(descriptor: tuple[int, Path]) -> None:
    """Pieces smaller and larger than a slot, a non-contiguous one, a drain in the middle."""
    fd, path = descriptor
    rng = random.Random(7)
    sent: list[int] = []
    writer = BackgroundWriter(fd, sent.append, slot_size=4096, slot_count=3)
    expected = bytearray()
    for _ in range(200):
        piece = rng.randbytes(rng.choice([1, 100, 4095, 4096, 4097, 10_000]))
        writer.write(piece)
        expected += piece
    strided = memoryview(bytes(range(256)) * 4)[::2]  # not contiguous: copied first
    writer.write(strided)
    expected += strided.tobytes()
    writer.drain()
    assert path.read_bytes() == expected  # drained: all of it is in the file already
    writer.write(b"tail")
    expected += b"tail"
    writer.close()
    assert path.read_bytes() == expected
    assert sum(sent) == len(expected)
    assert all(size <= 4096 for size in sent)
    assert _threads_alive() == 0


def test_an_error_of_the_thread_is_raised_by_the_next_call_and_every_one_after(
    descriptor: tuple[int, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    fd, path = descriptor
    calls, failing = _failing_write(fail_at=2)
    monkeypatch.setattr(os, "write", failing)  # os.write is only the thread's here
    writer = BackgroundWriter(fd, lambda size: None, slot_size=1000, slot_count=2)

    def write_then_drain() -> None:
        for _ in range(50):
            writer.write(bytes(1000))
        writer.drain()

    with pytest.raises(OSError, match="No space") as raised:
        write_then_drain()
    assert raised.value.errno == errno.ENOSPC
    with pytest.raises(OSError, match="No space"):
        writer.write(b"x")
    with pytest.raises(OSError, match="No space"):
        writer.drain()
    with pytest.raises(OSError, match="No space"):
        writer.close()
    assert calls == [1000, 1000]  # nothing was written after the failure
    assert path.stat().st_size == 1000
    assert _threads_alive() == 0


def test_abandon_writes_nothing_more(descriptor: tuple[int, Path]) -> None:
    """Slots still queued when the output is abandoned are dropped, not written."""
    fd, path = descriptor
    first_written, release = threading.Event(), threading.Event()

    def wrote(size: int) -> None:
        first_written.set()
        release.wait(timeout=10)

    writer = BackgroundWriter(fd, wrote, slot_size=100, slot_count=4)
    writer.write(bytes(100))  # the thread takes it and waits in wrote()
    assert first_written.wait(timeout=10)
    writer.write(bytes(250))  # two slots queued, half of one being filled
    abandoning = threading.Thread(target=writer.abandon)
    abandoning.start()
    release.set()
    abandoning.join(timeout=10)
    assert not abandoning.is_alive()
    assert path.stat().st_size == 100
    assert _threads_alive() == 0


# -- an output written behind ----------------------------------------------------------------


@pytest.fixture
def early(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """Write behind after 64 KiB, write-back every 128 KiB (recorded, not made)."""
    started: list[tuple[int, int]] = []
    monkeypatch.setattr(output_file, "WRITE_BEHIND_AFTER", 65536)
    monkeypatch.setattr(output_file, "WRITE_BACK_STEP", 131072)
    monkeypatch.setattr(output_file, "start_write_back", lambda fd, o, s: started.append((o, s)))
    return started


def test_a_large_output_is_written_behind_byte_for_byte(
    tmp_path: Path, early: list[tuple[int, int]]
) -> None:
    destination = tmp_path / "out.bin"
    data = random.Random(3).randbytes(3_000_000)
    threads_during = 0
    thread_objects = threading.active_count()
    with atomic_output(destination, overwrite=False) as output:
        for start in range(0, len(data), 10_000):
            output.write(data[start : start + 10_000])
            assert output.tell() == min(start + 10_000, len(data))
        threads_during = _threads_alive()
        # A bare thread, no threading.Thread: the end of one runs a weak-reference callback
        # in the main thread, where a SIGTERM's exception would be dropped (see the module).
        assert threading.active_count() == thread_objects
    assert threads_during == 1
    assert destination.read_bytes() == data
    assert _threads_alive() == 0
    # The write-back still covers the file from its start, in contiguous steps.
    offsets = [offset for offset, _ in early]
    assert [0] + [offset + size for offset, size in early[:-1]] == offsets
    assert len(data) - 131072 < sum(size for _, size in early) <= len(data)


def test_a_scratch_output_is_written_behind_without_write_back(
    tmp_path: Path, early: list[tuple[int, int]]
) -> None:
    destination = tmp_path / "scratch.bin"
    with atomic_output(destination, overwrite=False, durable=False) as output:
        output.write(bytes(1_000_000))
        output.write(b"end")
    assert destination.read_bytes() == bytes(1_000_000) + b"end"
    assert early == []


def test_no_thread_for_a_small_output(tmp_path: Path, early: list[tuple[int, int]]) -> None:
    with atomic_output(tmp_path / "small.bin", overwrite=False) as output:
        output.write(bytes(65535))
        assert _threads_alive() == 0
    assert (tmp_path / "small.bin").stat().st_size == 65535


def test_a_failed_write_behind_names_the_destination_and_leaves_nothing(
    tmp_path: Path, early: list[tuple[int, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    destination = tmp_path / "out.bin"
    _, failing = _failing_write(fail_at=3)
    monkeypatch.setattr(os, "write", failing)  # only the background thread calls os.write

    def write() -> None:
        with atomic_output(destination, overwrite=False) as output:
            for _ in range(100):
                output.write(bytes(100_000))

    with pytest.raises(OSError, match="No space") as raised:
        write()
    assert raised.value.errno == errno.ENOSPC
    assert raised.value.filename == os.fspath(destination)
    assert os.listdir(tmp_path) == []
    assert _threads_alive() == 0


def test_an_interrupted_write_behind_stops_its_thread_and_leaves_nothing(
    tmp_path: Path, early: list[tuple[int, int]]
) -> None:
    destination = tmp_path / "out.bin"
    alive: list[int] = []

    def write_then_interrupt() -> None:
        with atomic_output(destination, overwrite=False) as output:
            output.write(bytes(1_000_000))
            output.write(bytes(1_000_000))  # past WRITE_BEHIND_AFTER: this one goes behind
            alive.append(_threads_alive())
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_then_interrupt()
    assert alive == [1]
    assert os.listdir(tmp_path) == []
    assert _threads_alive() == 0


def test_a_seek_goes_back_to_writing_in_the_callers_thread(
    tmp_path: Path, early: list[tuple[int, int]]
) -> None:
    destination = tmp_path / "out.bin"
    with atomic_output(destination, overwrite=False) as output:
        output.write(bytes(500_000))
        output.write(bytes(500_000))
        assert _threads_alive() == 1
        output.seek(0)
        assert _threads_alive() == 0
        output.write(b"head")
        output.seek(0, os.SEEK_END)
        output.write(bytes(1_000_000))  # no new thread after a seek
        assert _threads_alive() == 0
    assert destination.read_bytes() == b"head" + bytes(2_000_000 - 4)


def test_without_a_thread_to_be_had_the_output_is_written_in_the_callers_thread(
    tmp_path: Path, early: list[tuple[int, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process at its thread limit (``can't start new thread``) still gets its output."""

    def refuse(function: object, arguments: object) -> int:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(write_behind._thread, "start_new_thread", refuse)
    destination = tmp_path / "out.bin"
    data = random.Random(11).randbytes(1_000_000)
    with atomic_output(destination, overwrite=False) as output:
        for start in range(0, len(data), 100_000):
            output.write(data[start : start + 100_000])
    assert destination.read_bytes() == data
    assert early  # the write-back went on from the caller's thread
