"""Control characters in key ids and encryption contexts (issue 9, item 8): refused when
writing, escaped when shown. The faces' displays are tested beside the faces
(tests/cli/test_trust.py, tests/ipython/test_trust.py)."""

from __future__ import annotations

import io
import json
import re

import pytest
from forgery import HOSTILE_TEXT, ForgingKms, hostile_file

import kmsnb
from kmsnb._text import escape_control_characters, json_for_display
from kmsnb.kms import DataKey
from kmsnb.testing import InMemoryKms

pytestmark = [pytest.mark.unit]

RAW_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
CONTROLS = ["\x00", "\x07", "\t", "\n", "\x1b", "\x7f", "\x80", "\x9b", "\x9f"]


@pytest.mark.parametrize("control", CONTROLS, ids=lambda c: f"U+{ord(c):04X}")
def test_writers_refuse_control_characters_before_asking_the_kms(
    kms: InMemoryKms, key_id: str, control: str
) -> None:
    cases = [
        {"key_id": f"alias/a{control}b"},
        {"encryption_context": {f"k{control}": "v"}},
        {"encryption_context": {"k": f"v{control}"}},
    ]
    for case in cases:
        arguments = {"key_id": key_id, **case}
        with pytest.raises(ValueError, match="control character") as caught:
            kmsnb.encrypt_bytes(b"x", kms=kms, **arguments)  # type: ignore[arg-type]
        assert control not in str(caught.value)
    assert kms.calls["generate_data_key"] == 0


def test_a_kms_answer_with_a_control_character_is_not_written(kms: InMemoryKms) -> None:
    """The header's key id is the one GenerateDataKey's answer names: it is checked too."""
    key_id = kms.create_key()
    answering = ForgingKms(kms, key_id, "alias/asked-for")
    with pytest.raises(ValueError, match="control character"):
        kmsnb.encrypt_bytes(b"x", "alias/asked-for", kms=_Renaming(answering, "bad\x1bkey"))


class _Renaming:
    """Reports another key id in GenerateDataKey's answer."""

    def __init__(self, inner: ForgingKms, key_id: str) -> None:
        self._inner, self._key_id = inner, key_id

    def generate_data_key(self, key_id: str, encryption_context: object = None) -> DataKey:
        real = self._inner.generate_data_key(key_id, encryption_context)  # type: ignore[arg-type]
        return DataKey(self._key_id, real.key_version_id, real.plaintext, real.ciphertext_blob)

    def decrypt_data_key(self, blob: str, encryption_context: object = None) -> object:
        return self._inner.decrypt_data_key(blob, encryption_context)  # type: ignore[arg-type]


def test_hostile_headers_still_inspect_and_show_escaped(kms: InMemoryKms, key_id: str) -> None:
    info = kmsnb.inspect(io.BytesIO(hostile_file(kms, key_id)))
    assert info.key_id == HOSTILE_TEXT  # parsed as it is: readers refuse nothing here
    assert not RAW_CONTROL.search(repr(info))


def test_escaping_helpers() -> None:
    shown = escape_control_characters(HOSTILE_TEXT)
    assert not RAW_CONTROL.search(shown)
    assert shown == "evil\\x1b[2J\\x1b]0;pwned\\x07\\x9b31m\\x7f"
    assert escape_control_characters("naïve 中文 ✓") == "naïve 中文 ✓"
    document = {"key_id": HOSTILE_TEXT, "context": {"note": HOSTILE_TEXT}}
    encoded = json_for_display(document, indent=2)
    assert not RAW_CONTROL.search(encoded.replace("\n", ""))  # indentation is structure
    assert json.loads(encoded) == document  # the same data, only escaped
