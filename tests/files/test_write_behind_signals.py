"""A signal at the worst moment of a large output (kmsnb._write_behind, kmsnb._output,
kmsnb._files): never a hang, never a piece of the file left, never a thread left.

The CLI turns SIGTERM and SIGHUP into an exception raised wherever the main thread is,
and Ctrl-C does the same in a notebook. A ``kmsnb decrypt`` stopped so once hung in CI: the
exception had come inside ``queue.Queue``'s lock and left it taken. These tests raise an
exception at every point of a write where Python can raise one asynchronously
(:mod:`tests.async_exceptions`), one point per run, and check what each run leaves.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import kmsnb
import kmsnb._files as files
import kmsnb._output as output_file
import kmsnb._temporary as temporary
import kmsnb._write_back as write_back
import kmsnb._write_behind as write_behind
from kmsnb._files import atomic_output
from kmsnb.testing import InMemoryKms
from tests.async_exceptions import Injected, Injection

pytestmark = pytest.mark.unit

PIECE = bytes(range(256)) * 1172  # 300,032 bytes, not a multiple of a slot
PIECE_COUNT = 12  # 3.6 MB: past WRITE_BEHIND_AFTER, four slots and some, many steps
WATCHED = [
    module.__file__ or ""
    for module in (files, output_file, temporary, write_back, write_behind, contextlib)
]
#: Longest a run may take, stopped or not: far beyond a healthy one (milliseconds).
HANG_S = 20.0
#: Longest a thread of a stopped run may outlive it: a lost writer's thread looks every
#: write_behind.IDLE_CHECK_S whether its writer still exists.
THREAD_END_S = 10.0


@pytest.fixture(autouse=True)
def small_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    """Write behind after 64 KiB and start the write-back every 512 KiB, for real."""
    monkeypatch.setattr(output_file, "WRITE_BEHIND_AFTER", 65536)
    monkeypatch.setattr(output_file, "WRITE_BACK_STEP", 524288)


class _StartedThreads:
    """The threads the writer starts, seen from outside its own count: each start of a
    bare thread is wrapped, and a thread is done once its function has returned. (The
    process's thread count would do, but a test worker's other threads come and go.)"""

    def __init__(self, start: Callable[..., int]) -> None:
        self._start = start
        self.running: set[object] = set()
        self.count = 0  # started so far

    def start_new_thread(self, function: Callable[..., object], arguments: tuple[Any, ...]) -> int:
        token = object()

        def run(*given: Any) -> None:
            try:
                function(*given)
            finally:
                self.running.discard(token)

        self.running.add(token)
        self.count += 1
        return self._start(run, arguments)


@pytest.fixture(autouse=True)
def started(monkeypatch: pytest.MonkeyPatch) -> _StartedThreads:
    threads = _StartedThreads(write_behind._thread.start_new_thread)
    monkeypatch.setattr(write_behind._thread, "start_new_thread", threads.start_new_thread)
    return threads


def _write(destination: Path, *, overwrite: bool, durable: bool) -> None:
    with atomic_output(destination, overwrite=overwrite, durable=durable) as output:
        for _ in range(PIECE_COUNT):
            output.write(PIECE)


def _run_stopped_at(point: int, scenario: Callable[[], None]) -> Injection:
    """Run ``scenario`` in a thread of its own with an exception at ``point``; fail if it
    hangs, swallows the exception or raises another."""
    injection = Injection(point, WATCHED)
    # The error's type and repr only: the error itself would keep the stopped writer
    # alive (its traceback holds the frames), and with it the writer's thread.
    outcome: list[tuple[type[BaseException], str] | None] = []

    def run() -> None:
        try:
            with injection:
                scenario()
        except BaseException as error:
            outcome.append((type(error), repr(error)))
        else:
            outcome.append(None)

    runner = threading.Thread(target=run, daemon=True)
    runner.start()
    runner.join(HANG_S)
    assert not runner.is_alive(), f"hung after an exception at {injection.where}"
    if injection.fired:
        assert outcome[0] is not None, injection.where
        assert outcome[0][0] is Injected, (outcome, injection.where)
    else:
        assert outcome == [None]
    return injection


def _wait_for_threads(started: _StartedThreads, where: object) -> None:
    deadline = time.monotonic() + THREAD_END_S
    while started.running and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not started.running, f"a thread outlived the exception at {where}"
    assert write_behind.running_count() == 0, where


def _every_point(
    scenario: Callable[[], None], check: Callable[[Injection], None], started: _StartedThreads
) -> int:
    """Run ``scenario`` stopped at each point in turn, then once whole; ``check`` after
    each run. Returns how many points there were."""
    point = 1
    while True:
        injection = _run_stopped_at(point, scenario)
        _wait_for_threads(started, injection.where)
        check(injection)
        if not injection.fired:
            assert started.running == set()
            return injection.points
        point += 1


@pytest.fixture(params=["anonymous", "named"])
def temporary_kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """An anonymous file (O_TMPFILE), or a named temporary one as where there is none."""
    if request.param == "named":
        monkeypatch.setattr(files, "_open_anonymous", lambda directory: None)
    return str(request.param)


@pytest.mark.parametrize("durable", [True, False], ids=["durable", "scratch"])
def test_a_new_output_is_whole_or_absent_after_an_exception_at_any_point(
    tmp_path: Path, durable: bool, temporary_kind: str, started: _StartedThreads
) -> None:
    destination = tmp_path / "out.bin"
    whole = PIECE * PIECE_COUNT

    def check(injection: Injection) -> None:
        names = os.listdir(tmp_path)
        if names:  # stopped after it got its name: then it is complete
            assert names == ["out.bin"], injection.where
            assert destination.read_bytes() == whole, injection.where
            destination.unlink()
        else:
            assert injection.fired

    points = _every_point(
        lambda: _write(destination, overwrite=False, durable=durable), check, started
    )
    assert points > 100
    # The write behind, the write-back and the naming were all walked, and nearly every
    # run wrote behind, from a thread of its own.
    assert started.count > 100


def test_a_replaced_file_is_the_old_or_the_new_after_an_exception_at_any_point(
    tmp_path: Path, temporary_kind: str, started: _StartedThreads
) -> None:
    destination = tmp_path / "out.bin"
    old, new = b"the old file", PIECE * PIECE_COUNT

    def check(injection: Injection) -> None:
        assert os.listdir(tmp_path) == ["out.bin"], injection.where
        assert destination.read_bytes() in (old, new), injection.where
        destination.write_bytes(old)

    destination.write_bytes(old)
    points = _every_point(lambda: _write(destination, overwrite=True, durable=True), check, started)
    assert points > 100
    assert started.count > 100  # nearly every run wrote behind, from a thread of its own


def test_a_decrypted_file_is_whole_or_absent_after_an_exception_at_any_point(
    tmp_path: Path, started: _StartedThreads
) -> None:
    """What hung in CI: ``decrypt_file`` of a large file, stopped in its output."""
    kms = InMemoryKms()
    plaintext = PIECE * 9  # 2.7 MB: three of the decryption's 1 MiB steps
    source = tmp_path / "in.kms"
    source.write_bytes(kmsnb.encrypt_bytes(plaintext, kms.create_key(), kms=kms))
    destination = tmp_path / "out.bin"

    def check(injection: Injection) -> None:
        if destination.exists():
            assert destination.read_bytes() == plaintext, injection.where
            destination.unlink()
        else:
            assert injection.fired
        assert sorted(os.listdir(tmp_path)) == ["in.kms"], injection.where

    points = _every_point(lambda: kmsnb.decrypt_file(source, destination, kms=kms), check, started)
    assert points > 100
    assert started.count > 100  # nearly every run wrote behind, from a thread of its own
