"""docs/FORMAT.md says what a reader must check and what rewrap cannot do (issue 9, items
1 and 10): a reader implementing the page from its text alone must get these right."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = [pytest.mark.unit]

FORMAT = Path(__file__).parents[2] / "docs" / "FORMAT.md"


def _text() -> str:
    return " ".join(FORMAT.read_text(encoding="utf-8").split())


def test_rewrap_is_not_advertised_as_recovering_from_a_compromise() -> None:
    text = _text()
    assert "after a key compromise" not in text
    assert "does not recover from a compromise of the data key" in text
    assert "only re-encryption recovers" in text


def test_the_key_check_and_allowed_keys_are_decoder_musts() -> None:
    text = _text()
    assert re.search(r"Decrypt answer's `KeyId` MUST equal `key_id`", text)
    assert re.search(r"`allowed_keys`.*MUST resolve each entry through the KMS", text)
    assert "MUST complete before any plaintext is released" in text
