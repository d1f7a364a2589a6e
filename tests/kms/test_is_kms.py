"""``kmsnb.kms._base.is_kms``: the envelope's KMS check, the same answers as the protocol's."""

from __future__ import annotations

from typing import Any

import pytest

from kmsnb import encrypt_bytes
from kmsnb.kms._base import Kms, is_kms

pytestmark = pytest.mark.unit


class _ClassKms:
    def generate_data_key(self, key_id: str, encryption_context: Any = None) -> Any:
        raise NotImplementedError

    def decrypt_data_key(self, ciphertext_blob: str, encryption_context: Any = None) -> Any:
        raise NotImplementedError


class _Empty:
    pass


def _duck(*, with_decrypt: bool) -> _Empty:
    duck = _Empty()
    duck.generate_data_key = lambda *args: None  # type: ignore[attr-defined]
    if with_decrypt:
        duck.decrypt_data_key = lambda *args: None  # type: ignore[attr-defined]
    return duck


@pytest.mark.parametrize("repeat", [1, 2])
def test_is_kms_answers_as_the_protocol_does(repeat: int) -> None:
    """Asked twice, so that the second answer comes from what the first remembered; a
    duck whose methods are instance attributes must not make its class (``_Empty``) pass."""
    candidates = [_ClassKms(), _Empty(), _duck(with_decrypt=True), _duck(with_decrypt=False), 3]
    for _ in range(repeat):
        assert [is_kms(c) for c in candidates] == [isinstance(c, Kms) for c in candidates]
        assert [is_kms(c) for c in candidates] == [True, False, True, False, False]


def test_the_envelope_refuses_what_is_not_a_kms() -> None:
    with pytest.raises(TypeError, match="kms must be a KMS client"):
        encrypt_bytes(b"x", "alias/k", kms=_Empty())  # type: ignore[arg-type]
