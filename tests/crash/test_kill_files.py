"""Killing ``kmsnb encrypt``, ``decrypt`` and ``rewrap``: kill -9 at random moments,
SIGTERM and SIGHUP while decrypting, and a disk that fills up (RLIMIT_FSIZE).

After every round: the destination is absent or whole and valid, an old destination is
never lost, the source is intact, and no file holding plaintext is left anywhere. The
same holds with ``--no-fsync`` (``durable=False`` skips what only a power cut needs), and
for a file large enough that its write-back is started while it is written."""

from __future__ import annotations

import functools
import os
import random
import signal
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pending_output import wait_for_pending_output

import kmsnb
from kmsnb.kms.local import LocalKms

from .conftest import (
    ROUNDS,
    KillDelays,
    Tally,
    Zygote,
    digest,
    marked_plaintext,
    scan,
    temporary_files,
)

pytestmark = [pytest.mark.crash, pytest.mark.slow]

SIZE = 4 * 1024 * 1024
NEW = marked_plaintext(SIZE, 1)
#: Past two steps of early write-back (kmsnb._write_back.WRITE_BACK_STEP, 8 MiB).
LARGE_SIZE = 20 * 1024 * 1024


@functools.cache
def _large() -> bytes:
    return marked_plaintext(LARGE_SIZE, 4)


OLD = marked_plaintext(SIZE // 2, 2)
KILLED = -signal.SIGKILL


def _cli(kms_uri: str, *args: str) -> dict[str, Any]:
    return {"kind": "cli", "argv": ["--kms", kms_uri, *args]}


def _decrypts(data: bytes, kms: LocalKms) -> bytes | None:
    """The verified plaintext of ``data``, or ``None`` if it is not a whole kmsnb file."""
    try:
        return kmsnb.decrypt_bytes(data, kms=kms)
    except kmsnb.KmsnbError:
        return None


def _decrypts_to(path: Path, kms: LocalKms) -> bytes | None:
    return _decrypts(path.read_bytes(), kms)


def _next_write_sweeps(
    zygote: Zygote, request: dict[str, Any], reset: Callable[[], object], folder: Path
) -> None:
    """The next write to the folder leaves no temporary file, whatever the kills left."""
    reset()
    assert zygote.run(request)["exit"] == 0
    assert temporary_files(folder) == []


def _delays(
    zygote: Zygote, request: dict[str, Any], rng: random.Random, reset: Callable[[], object]
) -> KillDelays:
    """Time three undisturbed runs of ``request`` (``reset`` before each)."""
    times = []
    for _ in range(3):
        reset()
        reply = zygote.run(request)
        assert reply["exit"] == 0, reply
        times.append(float(reply["elapsed_s"]))
    return KillDelays(rng, times)


def _kill_at_random(
    zygote: Zygote, request: dict[str, Any], delays: KillDelays, tally: Tally
) -> dict[str, Any]:
    reply = zygote.run({**request, "kill_after_s": delays.next()})
    tally.rounds += 1
    if reply["exit"] == KILLED:
        tally.killed += 1
    elif reply["exit"] == 0:
        tally.completed += 1
    else:
        raise AssertionError(f"the writer failed on its own: {reply}")
    delays.record(completed=reply["exit"] == 0)
    return reply


@pytest.mark.parametrize("overwrite", [False, True], ids=["new", "overwrite"])
@pytest.mark.parametrize("flags", [[], ["--no-fsync"]], ids=["fsync", "no-fsync"])
def test_kill_9_during_encrypt(
    zygote: Zygote, tmp_path: Path, kms_uri: str, key_id: str, local_kms: LocalKms,
    tally: Tally, rng: random.Random, overwrite: bool, flags: list[str],
) -> None:  # fmt: skip
    source, out = tmp_path / "src" / "data.bin", tmp_path / "out"
    source.parent.mkdir()
    out.mkdir()
    source.write_bytes(NEW)
    source_digest = digest(source)
    destination = out / "data.bin.kms"
    old = kmsnb.encrypt_bytes(OLD, key_id, kms=local_kms)
    request = _cli(kms_uri, "encrypt", str(source), "-o", str(destination), "--key", key_id, *flags)
    if overwrite:
        request["argv"].append("--overwrite")

    def reset() -> None:
        destination.unlink(missing_ok=True)
        if overwrite:
            destination.write_bytes(old)

    delays = _delays(zygote, request, rng, reset)
    for _ in range(ROUNDS):
        reset()
        reply = _kill_at_random(zygote, request, delays, tally)
        found = _decrypts_to(destination, local_kms) if destination.exists() else None
        if reply["exit"] == 0 and found != NEW:
            tally.outputs_invalid += 1
        if destination.exists() and found not in ((NEW, OLD) if overwrite else (NEW,)):
            tally.outputs_invalid += 1
        if overwrite and not destination.exists():
            tally.data_lost += 1
        if digest(source) != source_digest:
            tally.data_lost += 1
        scan(out, tally, allowed=set(), whole=lambda data: _decrypts(data, local_kms) == NEW)
    _next_write_sweeps(zygote, request, reset, out)
    assert tally.problems() == {}
    assert tally.killed >= ROUNDS // 2


@pytest.mark.parametrize(
    ("overwrite", "flags", "large"),
    [
        pytest.param(False, [], False, id="fsync-new"),
        pytest.param(True, [], False, id="fsync-overwrite"),
        pytest.param(False, ["--no-fsync"], False, id="no-fsync-new"),
        pytest.param(True, ["--no-fsync"], False, id="no-fsync-overwrite"),
        pytest.param(False, [], True, id="fsync-new-20MiB"),
    ],
)
def test_kill_9_during_decrypt(
    zygote: Zygote, tmp_path: Path, kms_uri: str, key_id: str, local_kms: LocalKms,
    tally: Tally, rng: random.Random, overwrite: bool, flags: list[str], large: bool,
) -> None:  # fmt: skip
    new = _large() if large else NEW
    source, out = tmp_path / "data.bin.kms", tmp_path / "out"
    out.mkdir()
    source.write_bytes(kmsnb.encrypt_bytes(new, key_id, kms=local_kms))
    source_digest = digest(source)
    destination = out / "data.bin"
    request = _cli(kms_uri, "decrypt", str(source), "-o", str(destination), *flags)
    if overwrite:
        request["argv"].append("--overwrite")

    def reset() -> None:
        destination.unlink(missing_ok=True)
        if overwrite:
            destination.write_bytes(OLD)

    delays = _delays(zygote, request, rng, reset)
    for _ in range(ROUNDS):
        reset()
        reply = _kill_at_random(zygote, request, delays, tally)
        found = destination.read_bytes() if destination.exists() else None
        if found is not None and found not in ((new, OLD) if overwrite else (new,)):
            tally.outputs_invalid += 1
        if reply["exit"] == 0 and found != new:
            tally.outputs_invalid += 1
        if overwrite and found is None:
            tally.data_lost += 1
        if digest(source) != source_digest:
            tally.data_lost += 1
        scan(out, tally, allowed={destination} if found else set(), whole=new.__eq__)
    _next_write_sweeps(zygote, request, reset, out)
    assert tally.problems() == {}
    assert tally.killed >= ROUNDS // 2


def test_kill_9_during_rewrap(
    zygote: Zygote, tmp_path: Path, kms_uri: str, key_id: str, local_kms: LocalKms,
    tally: Tally, rng: random.Random,
) -> None:  # fmt: skip
    out = tmp_path / "out"
    out.mkdir()
    path = out / "data.kms"
    path.write_bytes(kmsnb.encrypt_bytes(NEW, key_id, kms=local_kms))
    path.chmod(0o640)
    keys = [key_id, local_kms.create_key("the other key").key_id]
    delays = _delays(zygote, _cli(kms_uri, "rewrap", str(path), "--key", key_id), rng, list)
    for round_number in range(ROUNDS):
        before = kmsnb.inspect(path).key_id
        target = keys[(round_number + 1) % 2]
        request = _cli(kms_uri, "rewrap", str(path), "--key", target)
        reply = _kill_at_random(zygote, request, delays, tally)
        if not path.exists():
            tally.data_lost += 1
            break
        info = kmsnb.inspect(path)
        if _decrypts_to(path, local_kms) != NEW or info.key_id not in (before, target):
            tally.data_lost += 1
        if reply["exit"] == 0 and info.key_id != target:
            tally.outputs_invalid += 1
        if stat.S_IMODE(path.stat().st_mode) != 0o640:
            tally.outputs_invalid += 1
        scan(out, tally, allowed=set(), whole=lambda data: _decrypts(data, local_kms) == NEW)
    _next_write_sweeps(zygote, _cli(kms_uri, "rewrap", str(path), "--key", key_id), list, out)
    assert sorted(os.listdir(out)) == ["data.kms"]
    assert tally.problems() == {}
    assert tally.killed >= ROUNDS // 2


def test_kill_9_with_named_temporary_files_then_the_next_write_sweeps(
    zygote: Zygote, tmp_path: Path, kms_uri: str, key_id: str, local_kms: LocalKms,
    tally: Tally, rng: random.Random,
) -> None:  # fmt: skip
    """Without O_TMPFILE, kill -9 can leave a named temporary file (nothing can catch
    it); the next write to the folder removes it. Counted after that next write."""
    source, out = tmp_path / "data.bin.kms", tmp_path / "out"
    out.mkdir()
    source.write_bytes(kmsnb.encrypt_bytes(NEW, key_id, kms=local_kms))
    destination = out / "data.bin"
    request = _cli(kms_uri, "decrypt", str(source), "-o", str(destination))
    request["named_fallback"] = True

    def reset() -> None:
        destination.unlink(missing_ok=True)

    delays = _delays(zygote, request, rng, reset)
    left_by_kills = 0
    for _ in range(ROUNDS // 2):
        reset()
        _kill_at_random(zygote, request, delays, tally)
        left_by_kills += len(temporary_files(out))
    _next_write_sweeps(zygote, request, reset, out)
    scan(out, tally, allowed={destination})
    tally.notes.append(f"{left_by_kills} left by kill -9, swept by the next write")
    assert destination.read_bytes() == NEW
    assert tally.problems() == {}


# -- SIGTERM and SIGHUP ----------------------------------------------------------------------

FALLBACK_CLI = (
    "import sys, kmsnb._files as files; files._open_anonymous = lambda directory: None; "
    "from kmsnb.cli import main; sys.exit(main(sys.argv[1:]))"
)


@pytest.mark.parametrize("mode", ["anonymous", "named"])
def test_sigterm_and_sighup_during_decrypt(
    tmp_path: Path, kms_uri: str, key_id: str, local_kms: LocalKms, tally: Tally,
    rng: random.Random, mode: str,
) -> None:  # fmt: skip
    """What ``timeout``, ``docker stop`` and closing a terminal send: the command stops
    as on Ctrl-C, with 128 + the signal, leaving nothing."""
    source, out = tmp_path / "big.kms", tmp_path / "out"
    out.mkdir()
    big = marked_plaintext(4 * SIZE, 3)
    source.write_bytes(kmsnb.encrypt_bytes(big, key_id, kms=local_kms))
    destination = out / "big.bin"
    launcher = ["-m", "kmsnb"] if mode == "anonymous" else ["-c", FALLBACK_CLI]
    command = [sys.executable, *launcher, "--kms", kms_uri, "decrypt", str(source), "-o"]
    delays = KillDelays(rng, [0.05])  # after the output is started: within the decryption
    for round_number in range(8):
        signum = (signal.SIGTERM, signal.SIGHUP)[round_number % 2]
        destination.unlink(missing_ok=True)
        process = subprocess.Popen(
            [*command, str(destination)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        try:
            try:
                if wait_for_pending_output(process, out):  # else it finished first
                    process.wait(timeout=delays.next())
            except subprocess.TimeoutExpired:
                process.send_signal(signum)  # Popen checks the process is still its child
            _, stderr = process.communicate(timeout=60)
        finally:
            process.kill()
            process.wait()
        tally.rounds += 1
        # Stopped (128 + signal, one line said), or the signal came once the command was
        # done (0, or death by the default disposition after the handlers were restored).
        assert process.returncode in (0, 128 + signum, -signum), stderr
        if process.returncode == 128 + signum:
            assert stderr == f"kmsnb: stopped by {signum.name}\n".encode()
        if process.returncode == 0:
            tally.completed += 1
        else:
            tally.killed += 1
        delays.record(completed=process.returncode == 0)
        if process.returncode == 0 or destination.exists():
            tally.outputs_invalid += destination.read_bytes() != big
        scan(out, tally, allowed={destination})
    assert tally.problems() == {}
    assert tally.killed >= 4


# -- a disk that fills up ------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["encrypt", "decrypt"])
@pytest.mark.parametrize("overwrite", [False, True], ids=["new", "overwrite"])
def test_a_full_disk(
    zygote: Zygote, tmp_path: Path, kms_uri: str, key_id: str, local_kms: LocalKms,
    tally: Tally, command: str, overwrite: bool,
) -> None:  # fmt: skip
    """RLIMIT_FSIZE stops the writes halfway (EFBIG): an error naming the destination,
    nothing written, an old destination kept."""
    source, out = tmp_path / "source", tmp_path / "out"
    out.mkdir()
    destination = out / "destination"
    old = kmsnb.encrypt_bytes(OLD, key_id, kms=local_kms) if command == "encrypt" else OLD
    if command == "encrypt":
        source.write_bytes(NEW)
        args = [command, str(source), "-o", str(destination), "--key", key_id]
    else:
        source.write_bytes(kmsnb.encrypt_bytes(NEW, key_id, kms=local_kms))
        args = [command, str(source), "-o", str(destination)]
    log = tmp_path / "log"
    for limit in (0, 1, 65_536, 1_000_000, SIZE - 1):
        destination.unlink(missing_ok=True)
        if overwrite:
            destination.write_bytes(old)
        log.write_bytes(b"")
        request = {
            **_cli(kms_uri, *args, *(["--overwrite"] if overwrite else [])),
            "file_size_limit": limit,
            "log": str(log),
        }
        reply = zygote.run(request)
        tally.rounds += 1
        tally.failed_cleanly += reply["exit"] == 1
        said = log.read_text()
        assert reply["exit"] == 1, said
        assert said.startswith("kmsnb: error: [Errno 27] File too large"), said
        assert repr(str(destination)) in said
        assert "kmsnb-tmp" not in said
        if overwrite and destination.read_bytes() != old:
            tally.data_lost += 1
        if not overwrite and destination.exists():
            tally.outputs_invalid += 1
        scan(out, tally, allowed={destination} if overwrite else set())
    assert tally.problems() == {}
