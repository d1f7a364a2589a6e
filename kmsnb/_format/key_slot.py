"""The key slot of a kmsnb header: its fields' encoding, its MAC, and the proof of a check.

The key slot (``key_id``, ``key_version_id``, ``wrapped_key``) sits outside the payload
binding so that a rewrap can replace it; its own MAC, keyed from the data key, is what
authenticates it (docs/FORMAT.md, "Rewrapping in place"). Kept apart from
:mod:`kmsnb._format.header` so that module stays about parsing and serialising.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.hmac import HMAC
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from kmsnb._format.header_fields import (
    MAX_KEY_ID_SIZE,
    MAX_KEY_VERSION_ID_SIZE,
    MAX_WRAPPED_KEY_SIZE,
    RESERVED_PREFIX,
    encode_text,
)
from kmsnb._text import check_no_control_characters
from kmsnb._wipe import wipe
from kmsnb.errors import IntegrityError

if TYPE_CHECKING:
    from kmsnb._format.header import Header

__all__ = [
    "VerifiedKeySlot",
    "check_writable_key_slot",
    "slot_fields",
    "slot_mac",
    "verify_key_slot",
]

_SLOT_KEY_INFO = b"kmsnb/v1 key slot"
_SLOT_KEY_SIZE = 32
_SHA256 = hashes.SHA256()

# Only verify_key_slot uses it, so no caller can make a proof without the check.
_PROOF_SEAL = object()


class VerifiedKeySlot:
    """Proof that :meth:`Header.verify_key_slot` accepted one header with one data key.

    Only :func:`verify_key_slot` makes one, after the check (the constructor wants a
    module-private seal), so a reader given one can skip the second HMAC without trusting
    a flag its caller could set. It refers to the very header and key objects (no copy of
    the key is kept): a reader accepts it only with those same objects.
    """

    __slots__ = ("_header", "_key")

    def __init__(self, header: Header, data_key: bytes | bytearray, *, _seal: object) -> None:
        if _seal is not _PROOF_SEAL:
            raise TypeError("a VerifiedKeySlot comes from Header.verify_key_slot only")
        self._header = header
        self._key = data_key

    def __repr__(self) -> str:
        return f"<VerifiedKeySlot of key {self._header.key_id!r}>"

    def vouches_for(self, header: Header, data_key: bytes | bytearray) -> bool:
        return self._header is header and self._key is data_key


def verify_key_slot(header: Header, data_key: bytes | bytearray) -> VerifiedKeySlot:
    """Check ``header``'s slot MAC with ``data_key``, and return the proof that it matched.

    The one place a :class:`VerifiedKeySlot` is made, and only after the check.

    Raises:
        IntegrityError: the key slot was altered, or the data key is not this file's.
    """
    mac = _slot_hmac(data_key, header.payload_context, header.key_slot_fields, header.reserved_size)
    try:
        mac.verify(bytes(header.slot_mac))  # in constant time
    except InvalidSignature:
        raise IntegrityError(
            "the key slot failed authentication; the header was altered, or the data "
            "key does not belong to this file",
            offset=0,
        ) from None
    return VerifiedKeySlot(header, data_key, _seal=_PROOF_SEAL)


def check_writable_key_slot(key_id: object, key_version_id: object) -> None:
    """What a writer refuses in the key slot beyond the bounds: control characters.

    Only writers refuse them: a reader parses what a file holds and faces escape it
    (:mod:`kmsnb._text`), so a hostile file is still inspectable.
    """
    if isinstance(key_id, str):
        check_no_control_characters(key_id, "the key id")
    if isinstance(key_version_id, str):
        check_no_control_characters(key_version_id, "the key version id")


def slot_fields(key_id: str, key_version_id: str, wrapped_key: str) -> bytes:
    key = encode_text(key_id, "key_id", MAX_KEY_ID_SIZE)
    if not key:
        raise ValueError("key_id must not be empty")
    version = encode_text(key_version_id, "key_version_id", MAX_KEY_VERSION_ID_SIZE)
    wrapped = encode_text(wrapped_key, "the wrapped data key", MAX_WRAPPED_KEY_SIZE)
    if not wrapped or not wrapped.isascii():
        raise ValueError("the wrapped data key must be a non-empty ASCII string")
    return b"".join(struct.pack(">H", len(field)) + field for field in (key, version, wrapped))


def slot_mac(
    data_key: bytes | bytearray, bound_digest: bytes, slot: bytes, reserved_size: int | None
) -> bytes:
    return _slot_hmac(data_key, bound_digest, slot, reserved_size).finalize()


def _slot_hmac(
    data_key: bytes | bytearray, bound_digest: bytes, slot: bytes, reserved_size: int | None
) -> HMAC:
    """The slot MAC, fed and not yet finished. ``cryptography``'s HMAC, not the standard
    ``hmac``, which would load OpenSSL a second time (``_hashlib``, issue 16)."""
    slot_key = bytearray(_SLOT_KEY_SIZE)
    try:
        HKDF(algorithm=_SHA256, length=_SLOT_KEY_SIZE, salt=None, info=_SLOT_KEY_INFO).derive_into(
            data_key, slot_key
        )
        mac = HMAC(slot_key, _SHA256)
    finally:
        wipe(slot_key)  # HMAC keeps its own copy
    mac.update(bound_digest)
    mac.update(slot)
    # The reserved field's length is authenticated, so header_size is too; without a
    # reserved field the MAC is what it was before there was one.
    if reserved_size is not None:
        mac.update(RESERVED_PREFIX.pack(reserved_size))
    return mac
