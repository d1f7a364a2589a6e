"""Fixtures for the DataFrame, cache and session tests: an in-memory KMS and a dtype zoo."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from kmsnb import session
from kmsnb.testing import InMemoryKms

MAIN_KEY = "alias/main"
PII_KEY = "alias/pii"


@pytest.fixture
def kms() -> InMemoryKms:
    """An in-memory KMS holding ``alias/main`` and ``alias/pii``."""
    fake = InMemoryKms()
    fake.create_key(alias=MAIN_KEY)
    fake.create_key(alias=PII_KEY)
    return fake


@pytest.fixture(autouse=True)
def _fresh_state() -> Iterator[None]:
    """Each test starts with no session KMS or key, and no PME factory (nor its KEKs)."""
    session.reset()
    yield
    session.reset()
    pme = sys.modules.get("kmsnb._pme")
    if pme is not None:
        pme.clear_factories()
