"""``session.on_kms_change``: modules that keep key material per KMS forget it when the
session's KMS is replaced, without the session knowing them."""

from __future__ import annotations

from pathlib import Path

import pytest

from kmsnb import session
from kmsnb.connection import describe_kms
from kmsnb.testing import InMemoryKms

pytestmark = [pytest.mark.unit]


def test_listeners_run_when_the_kms_is_replaced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(session, "_kms_change_listeners", [])
    calls: list[str] = []

    def listener() -> None:
        calls.append("changed")

    session.on_kms_change(listener)
    session.on_kms_change(listener)  # once only
    try:
        session.set_kms(InMemoryKms())
        assert calls == ["changed"]
        session.set_kms(None)
        assert calls == ["changed", "changed"]
    finally:
        session.reset()


def test_column_mode_registers_its_cache_clearing() -> None:
    from kmsnb import _pme  # imports pyarrow, a test dependency

    assert _pme.clear_factories in session._kms_change_listeners


def test_set_kms_takes_a_uri_and_closes_the_client_it_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed: list[bool] = []
    try:
        session.set_kms(f"local:{tmp_path / 'store'}")
        assert str(tmp_path / "store") in describe_kms(session.get_kms())
        made = session._connected
        assert made is not None
        monkeypatch.setattr(made, "close", lambda: closed.append(True))
        session.set_kms(None)
        assert closed == [True]
    finally:
        session.reset()


def test_set_kms_refuses_other_types() -> None:
    with pytest.raises(TypeError, match="KMS URI"):
        session.set_kms(42)  # type: ignore[arg-type]
