"""Fixtures for the verbs: a local emulator keystore with a key under ``alias/sales``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kmsnb import session
from kmsnb.kms.local import LocalKms


@pytest.fixture
def local_kms(tmp_path: Path) -> Iterator[LocalKms]:
    """The emulator in-process, in a keystore of this test's own."""
    kms = LocalKms(tmp_path / "keystore")
    yield kms
    kms.close()


@pytest.fixture
def sales_key(local_kms: LocalKms) -> str:
    """A key in ``local_kms`` that ``alias/sales`` points to; its id."""
    key_id = local_kms.create_key("sales").key_id
    local_kms.create_alias("alias/sales", key_id)
    return key_id


@pytest.fixture(autouse=True)
def _fresh_session() -> Iterator[None]:
    """No default key or KMS leaks from one test into the next."""
    session.reset()
    yield
    session.reset()
