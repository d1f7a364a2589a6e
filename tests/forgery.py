"""Forged files, made as issue 9 describes the attack: GenerateDataKey on a scratch master
key the attacker may use, and a header (or column key material) that names the key the
reader trusts.

The key-slot MAC and the column key's AES-GCM tag are keyed from the data key, which the
attacker holds, so they verify; only the KMS's Decrypt answer, which names the scratch
key, gives the forgery away.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kmsnb.kms import DataKey, UnwrappedKey, WrappedKey


class ForgingKms:
    """A KMS wrapper for writers: a data key (or a column key's KEK) asked for under
    ``claimed_key_id`` is made under ``scratch_key_id`` instead, and reported as
    ``claimed_key_id`` (what the header or the column key material then names). Other
    keys, and reads, pass through.
    """

    def __init__(self, kms: Any, scratch_key_id: str, claimed_key_id: str) -> None:
        self._kms = kms
        self._scratch_key_id = scratch_key_id
        self._claimed_key_id = claimed_key_id
        self.forged_count = 0

    def generate_data_key(
        self, key_id: str, encryption_context: Mapping[str, str] | None = None
    ) -> DataKey:
        if key_id != self._claimed_key_id:
            honest: DataKey = self._kms.generate_data_key(key_id, encryption_context)
            return honest
        real = self._kms.generate_data_key(self._scratch_key_id, encryption_context)
        self.forged_count += 1
        return DataKey(
            self._claimed_key_id, real.key_version_id, real.plaintext, real.ciphertext_blob
        )

    def decrypt_data_key(
        self, ciphertext_blob: str, encryption_context: Mapping[str, str] | None = None
    ) -> UnwrappedKey:
        unwrapped: UnwrappedKey = self._kms.decrypt_data_key(ciphertext_blob, encryption_context)
        return unwrapped

    def encrypt(
        self,
        key_id: str,
        plaintext: bytes | bytearray,
        encryption_context: Mapping[str, str] | None = None,
    ) -> WrappedKey:
        """Column keys: a KEK asked to be wrapped under ``claimed_key_id`` is wrapped under
        ``scratch_key_id`` instead (the column key material still names the claimed key)."""
        if key_id != self._claimed_key_id:
            honest: WrappedKey = self._kms.encrypt(key_id, plaintext, encryption_context)
            return honest
        real = self._kms.encrypt(self._scratch_key_id, plaintext, encryption_context)
        self.forged_count += 1
        return WrappedKey(self._claimed_key_id, real.key_version_id, real.ciphertext_blob)

    def decrypt(
        self, ciphertext_blob: str, encryption_context: Mapping[str, str] | None = None
    ) -> UnwrappedKey:
        unwrapped: UnwrappedKey = self._kms.decrypt(ciphertext_blob, encryption_context)
        return unwrapped


def forge_bytes(
    kms: Any,
    *,
    scratch_key_id: str,
    claimed_key_id: str,
    plaintext: bytes,
    encryption_context: Mapping[str, str] | None = None,
    content_type: str = "application/octet-stream",
) -> bytes:
    """A whole-file kmsnb message under ``scratch_key_id`` whose header names
    ``claimed_key_id``."""
    import kmsnb

    forger = ForgingKms(kms, scratch_key_id, claimed_key_id)
    return kmsnb.encrypt_bytes(
        plaintext,
        claimed_key_id,
        kms=forger,
        encryption_context=encryption_context,
        content_type=content_type,
    )


#: What a hostile header may hold: an ESC sequence that clears the screen, an OSC that sets
#: the terminal's title, BEL, a C1 CSI (U+009B) and DEL.
HOSTILE_TEXT = "evil\x1b[2J\x1b]0;pwned\x07\x9b31m\x7f"


def hostile_file(kms: Any, key_id: str) -> bytes:
    """A file whose header's key id and context value hold :data:`HOSTILE_TEXT`.

    kmsnb refuses to write control characters, so the file is written with placeholders
    of the same UTF-8 size, replaced afterwards (its slot MAC then fails, which does not
    matter to what only reads the header).
    """
    hostile = HOSTILE_TEXT.encode()
    # An alias, so that the writer asks for the very name the forger stands in for (a
    # bare NAME would be sent as alias/NAME).
    key_placeholder = "alias/" + "K" * (len(hostile) - len("alias/"))
    value_placeholder = "V" * len(hostile)
    message = forge_bytes(
        kms,
        scratch_key_id=key_id,
        claimed_key_id=key_placeholder,
        plaintext=b"x",
        encryption_context={"note": value_placeholder},
    )
    for placeholder in (key_placeholder, value_placeholder):
        message = message.replace(placeholder.encode(), hostile)
    return message
