"""The crash suite's tools: the zygote that forks writers to kill, the plaintext with its
marker, the scan for plaintext left behind, and the tally printed at the end.

Run alone with ``pytest -m crash``. Every round is bounded: a writer is killed at a random
moment within the time a round took undisturbed (measured first, in the same run), and
each test runs a fixed number of rounds (``ROUNDS``).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from kmsnb._files import is_temporary_name
from kmsnb._format.header import MAGIC
from kmsnb.kms.local import LocalKms

ROUNDS = 20
SEED = 20261202
MARKER = b"KMSNB-CRASH-PLAINTEXT-MARKER"  # the zygote's frames carry it too
ZYGOTE = Path(__file__).with_name("_zygote.py")


def marked_plaintext(size: int, seed: int) -> bytes:
    """Random bytes with MARKER at the start of every KiB: any piece of it shows it."""
    generator = random.Random(seed)
    block = 1024 - len(MARKER)
    pieces = [MARKER + generator.randbytes(block) for _ in range(size // 1024)]
    return b"".join(pieces)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- the tally ------------------------------------------------------------------------------


@dataclass
class Tally:
    """What the rounds of one scenario did, and what they must never do."""

    rounds: int = 0
    killed: int = 0
    completed: int = 0
    failed_cleanly: int = 0  # an error exit (a full disk): nothing written, nothing lost
    plaintext_files_left: int = 0
    temporary_files_left: int = 0  # a temporary file that is not a whole, valid output
    whole_copies_left: int = 0  # killed between the link and the rename of an overwrite
    outputs_invalid: int = 0  # a destination present but not whole and valid
    data_lost: int = 0  # an old file or dataset gone, or a source changed
    acknowledged_lost: int = 0
    notes: list[str] = field(default_factory=list)

    def problems(self) -> dict[str, int]:
        names = ("plaintext_files_left", "temporary_files_left", "outputs_invalid")
        names += ("data_lost", "acknowledged_lost")
        return {name: getattr(self, name) for name in names if getattr(self, name)}


_TALLIES: dict[str, Tally] = {}


@pytest.fixture
def tally(request: pytest.FixtureRequest) -> Tally:
    """This test's tally; the test asserts it has no problems, the summary prints it."""
    found = Tally()
    _TALLIES[request.node.name] = found
    return found


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _TALLIES:
        return
    write = terminalreporter.write_line
    write("")
    write(f"crash suite (seed {SEED}): scenario, rounds, killed, completed, clean errors; left")
    totals: Counter[str] = Counter()
    for name, found in _TALLIES.items():
        problems = found.problems()
        totals.update({"rounds": found.rounds, "killed": found.killed, **problems})
        totals["whole_copies_left"] += found.whole_copies_left
        shown = ", ".join(f"{key} {value}" for key, value in problems.items()) or "nothing"
        if found.whole_copies_left:
            shown += f" (whole copies swept by the next write: {found.whole_copies_left})"
        shown += "".join(f"; {note}" for note in found.notes)
        write(
            f"  {name}: {found.rounds} rounds, {found.killed} killed, {found.completed} "
            f"completed, {found.failed_cleanly} clean errors; {shown}"
        )
    write(
        f"  total: {totals['rounds']} rounds, {totals['killed']} killed, whole copies left "
        f"by a kill between link and rename (then swept) {totals['whole_copies_left']}; "
        f"plaintext files left "
        f"{totals['plaintext_files_left']}, data lost {totals['data_lost']}, acknowledged "
        f"changes lost {totals['acknowledged_lost']}, temporary files left "
        f"{totals['temporary_files_left']}, invalid outputs {totals['outputs_invalid']}"
    )


# -- scanning what is left --------------------------------------------------------------------


def scan(
    folder: Path, tally: Tally, *, allowed: set[Path], whole: Callable[[bytes], bool] | None = None
) -> None:
    """Count what is left under ``folder`` (hidden files included, ``allowed`` aside).

    A plaintext file is one that is not a kmsnb file yet holds MARKER. A kmsnb temporary
    file is a problem unless ``whole`` says it is a whole output: what a kill between the
    link to a temporary name and the rename of an overwrite leaves, by design, for the
    next write to sweep (the tests then check that it does).
    """
    for root, _, names in os.walk(folder):
        for name in names:
            path = Path(root, name)
            if path in allowed or not path.is_file() or path.is_symlink():
                continue
            data = path.read_bytes()
            if is_temporary_name(name) and whole is not None and whole(data):
                tally.whole_copies_left += 1
                continue
            tally.temporary_files_left += is_temporary_name(name)
            if not data.startswith(MAGIC) and MARKER in data:
                tally.plaintext_files_left += 1


def temporary_files(folder: Path) -> list[str]:
    return [name for _, _, names in os.walk(folder) for name in names if is_temporary_name(name)]


# -- the zygote -----------------------------------------------------------------------------


class Zygote:
    """Forks writers from a process that has imported everything (see ``_zygote.py``)."""

    def __init__(self, environment: dict[str, str], preload: Sequence[str] = ()) -> None:
        self._process = subprocess.Popen(
            [sys.executable, str(ZYGOTE), *preload],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=environment,
            text=True,
        )
        assert json.loads(self._readline()) == {"ready": True}

    def _readline(self) -> str:
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            raise AssertionError(f"the zygote died ({self._process.poll()})")
        return line

    def run(self, request: dict[str, Any]) -> dict[str, Any]:
        """Run one writer; kill it after ``kill_after_s`` if given. Returns the reply."""
        assert self._process.stdin is not None
        self._process.stdin.write(json.dumps(request) + "\n")
        self._process.stdin.flush()
        reply: dict[str, Any] = json.loads(self._readline())
        return reply

    def close(self) -> None:
        assert self._process.stdin is not None
        self._process.stdin.close()
        try:
            self._process.wait(timeout=30)
        finally:
            self._process.kill()
            self._process.wait()


@pytest.fixture(scope="session")
def zygote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Zygote]:
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in ("KMSNB_KMS", "KMSNB_EMULATOR_ROOT_KEY")
    }
    environment["KMSNB_EMULATOR_DIR"] = str(tmp_path_factory.mktemp("crash-default-store"))
    forks = Zygote(environment)
    yield forks
    forks.close()


@pytest.fixture(autouse=True)
def _forget_dask_clients() -> Iterator[None]:
    """Reading datasets back connects kmsnb.dask's per-process client: drop it after."""
    yield
    kms_ref = sys.modules.get("kmsnb.dask._kms_ref")
    if kms_ref is not None:
        kms_ref.connect_once.cache_clear()


@pytest.fixture
def rng(request: pytest.FixtureRequest) -> random.Random:
    """Reproducible kill delays: the suite's seed and the test's name."""
    return random.Random(f"{SEED}-{request.node.name}")


@pytest.fixture
def kms_uri(tmp_path: Path) -> str:
    return f"local:{tmp_path / 'store'}"


@pytest.fixture
def local_kms(kms_uri: str) -> Iterator[LocalKms]:
    with LocalKms(kms_uri.removeprefix("local:")) as kms:
        yield kms


@pytest.fixture
def key_id(local_kms: LocalKms) -> str:
    return local_kms.create_key("crash suite").key_id


class KillDelays:
    """Random moments within a round's undisturbed time (the median of three runs).

    The spread follows what happens: a round that completed shrinks it, a killed one
    widens it a little, so a busy or idle machine still gets most rounds killed, at
    moments spread over the whole write, and a few completed.
    """

    def __init__(self, rng: random.Random, undisturbed_s: list[float]) -> None:
        self._rng = rng
        self._bound = 1.15 * sorted(undisturbed_s)[len(undisturbed_s) // 2]

    def next(self) -> float:
        return self._rng.uniform(0.0, self._bound)

    def record(self, *, completed: bool) -> None:
        self._bound *= 0.7 if completed else 1.05
