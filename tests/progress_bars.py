"""A recording stand-in for tqdm, for the tests of ``progress=`` (the ``bars`` fixture in
``conftest.py`` puts it in place of ``tqdm.autonotebook.tqdm``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kmsnb
from kmsnb.kms import Kms


class RecordingBar:
    """A stand-in for ``tqdm.autonotebook.tqdm`` that remembers what it was told (no output).

    ``fail_after``: raise ``KeyboardInterrupt`` (as a Ctrl-C would) once the count reaches
    it, to stop an operation mid-way where its bar is advanced.
    """

    fail_after: int | None = None

    def __init__(self, *, total: int | None, desc: str, **options: object) -> None:
        self.total = total
        self.initial_total = total
        self.desc = desc
        self.n = 0
        self.updates = 0
        self.closed = False

    def update(self, count: int) -> None:
        if self.closed:
            raise AssertionError("update after close")
        self.n += count
        self.updates += 1
        if self.fail_after is not None and self.n >= self.fail_after:
            raise KeyboardInterrupt

    def close(self) -> None:
        self.closed = True


class BarRecorder(list[RecordingBar]):
    """Every bar made while the ``bars`` fixture is active; ``lookups`` counts how often
    kmsnb looked tqdm up (the import a small operation must not pay)."""

    lookups = 0
    fail_after: int | None = None

    def make(self, **options: Any) -> RecordingBar:
        bar = RecordingBar(**options)
        bar.fail_after = self.fail_after
        self.append(bar)
        return bar

    @property
    def only(self) -> RecordingBar:
        """The one bar made (an assertion error unless exactly one was)."""
        assert len(self) == 1, [bar.desc for bar in self]
        return self[0]


def plaintext_size(path: Path, kms: Kms) -> int:
    """How many plaintext bytes the kmsnb file at ``path`` holds (what a bar should count)."""
    return len(kmsnb.decrypt_bytes(path.read_bytes(), kms=kms))
