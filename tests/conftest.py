"""Fixtures shared by every test tier: a fake KMS holding one master key.

Without a ``tests/__init__.py`` pytest puts this folder on ``sys.path``, so test modules
import the helpers beside it as ``strategies`` and ``c2sp_verifier``.
"""

from __future__ import annotations

import pytest

from kmsnb.testing import InMemoryKms


@pytest.fixture
def kms() -> InMemoryKms:
    """A fresh in-memory KMS; ``kms.calls`` counts what it was asked."""
    return InMemoryKms()


@pytest.fixture
def key_id(kms: InMemoryKms) -> str:
    """A master key in ``kms``, reachable as well by the alias ``alias/kmsnb-test``."""
    return kms.create_key(alias="alias/kmsnb-test")
