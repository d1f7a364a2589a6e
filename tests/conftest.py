"""Fixtures shared by every test tier: a fake KMS holding one master key, and ``bars``,
which records the progress bars kmsnb makes (tqdm replaced by a fake).

Without a ``tests/__init__.py`` pytest puts this folder on ``sys.path``, so test modules
import the helpers beside it as ``strategies`` and ``c2sp_verifier``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from progress_bars import BarRecorder

from kmsnb.testing import InMemoryKms


@pytest.fixture
def kms() -> InMemoryKms:
    """A fresh in-memory KMS; ``kms.calls`` counts what it was asked."""
    return InMemoryKms()


@pytest.fixture
def key_id(kms: InMemoryKms) -> str:
    """A master key in ``kms``, reachable as well by the alias ``alias/kmsnb-test``."""
    return kms.create_key(alias="alias/kmsnb-test")


@pytest.fixture
def bars(monkeypatch: pytest.MonkeyPatch) -> Iterator[BarRecorder]:
    """tqdm replaced by :class:`RecordingBar`; the progress threshold restored after."""
    from kmsnb import _progress

    recorder = BarRecorder()

    def lookup() -> Any:
        recorder.lookups += 1
        return recorder.make

    monkeypatch.setattr(_progress, "_tqdm_class", lookup)
    yield recorder
    _progress.set_progress_threshold(_progress.DEFAULT_PROGRESS_THRESHOLD)
