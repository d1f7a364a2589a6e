"""kmsnb.session: the process-wide KMS and default key."""

from __future__ import annotations

import os
import sys
import threading
import types

import pytest

from kmsnb import session
from kmsnb.kms import CachingKms
from kmsnb.testing import InMemoryKms

from .conftest import MAIN_KEY

pytestmark = pytest.mark.unit


class ClosingKms(InMemoryKms):
    """An in-memory KMS that counts close() calls, like LocalKms wiping its store."""

    def __init__(self) -> None:
        super().__init__()
        self.close_count = 0

    def close(self) -> None:
        self.close_count += 1


@pytest.fixture
def connected(monkeypatch: pytest.MonkeyPatch) -> list[ClosingKms]:
    """Stand in for kmsnb.connect (which may not exist yet); record what it made."""
    made: list[ClosingKms] = []

    def connect(uri: str | None = None) -> ClosingKms:
        made.append(ClosingKms())
        return made[-1]

    module = types.ModuleType("kmsnb.connection")
    module.connect = connect  # type: ignore[attr-defined]
    module.default_kms_uri = lambda: os.environ.get("KMSNB_KMS") or "local:"  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "kmsnb.connection", module)
    return made


def test_default_key() -> None:
    assert session.get_default_key() is None
    session.set_default_key(MAIN_KEY)
    assert session.get_default_key() == MAIN_KEY
    session.set_default_key(None)
    assert session.get_default_key() is None


def test_default_key_checks_its_type() -> None:
    with pytest.raises(TypeError):
        session.set_default_key(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="empty"):
        session.set_default_key("")


def test_get_kms_connects_once_behind_a_cache(connected: list[ClosingKms]) -> None:
    results: list[object] = []
    threads = [threading.Thread(target=lambda: results.append(session.get_kms())) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(connected) == 1
    assert len({id(kms) for kms in results}) == 1
    kms = results[0]
    assert isinstance(kms, CachingKms)
    assert kms.wrapped is connected[0]


def test_set_kms_wraps_in_a_cache_unless_told_not_to(kms: InMemoryKms) -> None:
    session.set_kms(kms)
    cached = session.get_kms()
    assert isinstance(cached, CachingKms)
    assert cached.wrapped is kms
    session.set_kms(kms, cache=False)
    assert session.get_kms() is kms
    mine = CachingKms(kms)
    session.set_kms(mine)
    assert session.get_kms() is mine  # not wrapped twice


def test_replacing_the_kms_zeroes_the_cache_the_session_made(kms: InMemoryKms) -> None:
    session.set_kms(kms)
    cached = session.get_kms()
    assert isinstance(cached, CachingKms)
    cached.generate_data_key(MAIN_KEY, plaintext_size=1)
    (entry,) = cached._entries.values()
    session.set_kms(InMemoryKms())
    assert not any(entry.material)


def test_a_cache_the_user_passed_is_left_alone(kms: InMemoryKms) -> None:
    mine = CachingKms(kms)
    mine.generate_data_key(MAIN_KEY, plaintext_size=1)
    session.set_kms(mine)
    session.reset()
    assert mine.stats.entry_count == 1


def test_reset_forgets_everything_and_closes_what_it_connected(
    connected: list[ClosingKms],
) -> None:
    session.set_default_key(MAIN_KEY)
    first = session.get_kms()
    session.reset()
    assert session.get_default_key() is None
    assert connected[0].close_count == 1
    assert session.get_kms() is not first
    assert len(connected) == 2


def test_set_kms_refuses_non_kms() -> None:
    with pytest.raises(TypeError):
        session.set_kms(object())  # type: ignore[arg-type]


def test_the_kms_uri_is_the_one_connected_from(
    connected: list[ClosingKms], monkeypatch: pytest.MonkeyPatch, kms: InMemoryKms
) -> None:
    """What other processes (Dask's workers) connect to: $KMSNB_KMS until the session has
    connected, then the URI it connected from; none for a client given to set_kms."""
    monkeypatch.delenv("KMSNB_KMS", raising=False)
    assert session.get_kms_uri() == "local:"
    monkeypatch.setenv("KMSNB_KMS", "local:/srv/keys")
    assert session.get_kms_uri() == "local:/srv/keys"
    session.get_kms()
    monkeypatch.setenv("KMSNB_KMS", "aliyun:cn-hangzhou")
    assert session.get_kms_uri() == "local:/srv/keys"
    session.set_kms(kms)
    assert session.get_kms_uri() is None
    session.set_kms(kms, uri="local:/srv/other")
    assert session.get_kms_uri() == "local:/srv/other"
    with pytest.raises(ValueError, match="uri="):
        session.set_kms(None, uri="local:/srv/other")
    session.reset()
    assert session.get_kms_uri() == "aliyun:cn-hangzhou"
