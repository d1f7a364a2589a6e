"""An independent verifier of kmsnb v1 files, for the test vectors.

Written from ``docs/FORMAT.md`` and the C2SP text (https://c2sp.org/chunked-encryption)
with ``cryptography``'s HKDF and AESGCM, ``hmac`` and ``hashlib`` only. It imports nothing
from kmsnb and not ``cryptography.cobblestone``, so a file both accept was read by two
implementations. It holds whole files in memory: for tests, not for use.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from typing import NamedTuple

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF, HKDFExpand

MAGIC = b"\x89KMSNB\r\n"
CHUNK_SIZE, TAG_SIZE = 16384, 16
ENCRYPTED_CHUNK_SIZE = CHUNK_SIZE + TAG_SIZE
PREFIX_SIZE = 24 + 32  # salt, commitment
MAX_CONTEXT_SIZE, MAX_PAIR_COUNT = 65536, 1024
MAX_HEADER_SIZE = 13 + 52 + 255 + MAX_CONTEXT_SIZE + 2048 + 256 + 4096
MAX_KEY_SLOT_SIZE = 6 + 2048 + 256 + 4096 + 32  # key_id's length .. end of the header
C2SP_INFO = b"c2sp.org/chunked-encryption@v1+AEAD_AES_256_GCM\x00"


class Rejected(Exception):
    """Not a valid kmsnb v1 file; ``stage`` is "header", "key slot" or "payload"."""

    def __init__(self, stage: str, reason: str) -> None:
        super().__init__(f"{stage}: {reason}")
        self.stage = stage


class Header(NamedTuple):
    size: int
    bound: bytes  # magic ‖ version ‖ algorithm … context: what the payload is bound to
    slot: bytes  # the key-slot fields as the slot MAC reads them (+ the reserved length)
    slot_mac: bytes
    plaintext_size: int | None


class _Fields:
    def __init__(self, data: bytes, position: int = 0) -> None:
        self.data, self.position = data, position

    def take(self, size: int) -> bytes:
        if self.position + size > len(self.data):
            raise Rejected("header", "a field runs past its container")
        self.position += size
        return self.data[self.position - size : self.position]

    def number(self, fmt: str) -> int:
        return int(struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0])

    def text(self, fmt: str, limit: int, *, empty_ok: bool = True) -> str:
        size = self.number(fmt)
        if size > limit or (size == 0 and not empty_ok):
            raise Rejected("header", f"a field of {size} bytes is out of bounds")
        try:
            return self.take(size).decode("utf-8")
        except UnicodeDecodeError:
            raise Rejected("header", "a text field is not UTF-8") from None


def _check_context(encoded: bytes) -> None:
    fields, previous = _Fields(encoded), b""
    count = fields.number(">H")
    if count > MAX_PAIR_COUNT:
        raise Rejected("header", "too many context pairs")
    for _ in range(count):
        key = fields.text(">H", MAX_CONTEXT_SIZE, empty_ok=False).encode()
        fields.text(">H", MAX_CONTEXT_SIZE)
        if previous and key <= previous:  # canonical: unique keys, sorted by UTF-8 bytes
            raise Rejected("header", "context keys are not sorted and unique")
        previous = key
    if fields.position != len(encoded):
        raise Rejected("header", "bytes follow the context pairs")


def parse_header(data: bytes) -> Header:
    if len(data) < 13:
        raise Rejected("header", "the file ends before the header size")
    magic, version, size = struct.unpack_from(">8sBI", data)
    if magic != MAGIC or version != 1 or size > MAX_HEADER_SIZE or size > len(data):
        raise Rejected("header", "bad magic, version or header size")
    fields = _Fields(data[:size], 13)
    if fields.number(">B") != 1:
        raise Rejected("header", "unknown algorithm")
    content_type = fields.text(">B", 255)
    if not (content_type.isascii() and content_type.isprintable()):
        raise Rejected("header", "content type is not printable ASCII")
    plaintext_size = fields.number(">Q")
    context_size = fields.number(">I")
    if context_size > MAX_CONTEXT_SIZE:
        raise Rejected("header", "context too large")
    _check_context(fields.take(context_size))
    bound, slot_start = data[:9] + data[13 : fields.position], fields.position
    fields.text(">H", 2048, empty_ok=False)  # key id
    fields.text(">H", 256)  # key version id
    if not fields.text(">H", 4096, empty_ok=False).isascii():
        raise Rejected("header", "wrapped key is not ASCII")
    slot, slot_mac = data[slot_start : fields.position], fields.take(32)
    if fields.position != size:  # an optional reserved field: u16 len || len zero bytes
        if size - slot_start > MAX_KEY_SLOT_SIZE:
            raise Rejected("header", "key slot and reserved field over the bound")
        reserved_length = fields.take(2)
        if fields.take(int.from_bytes(reserved_length, "big")).strip(b"\x00"):
            raise Rejected("header", "reserved bytes that are not zero")
        if fields.position != size:
            raise Rejected("header", "bytes follow the reserved field")
        slot += reserved_length
    unknown = plaintext_size == 2**64 - 1
    return Header(size, bound, slot, slot_mac, None if unknown else plaintext_size)


def decrypt_payload(payload: bytes, data_key: bytes, context: bytes, size: int | None) -> bytes:
    """C2SP chunked encryption with HKDF-Expand-SHA-512 and AES-256-GCM, as Cobblestone-256."""
    if len(payload) < PREFIX_SIZE:
        raise Rejected("payload", "the file ends before the commitment")
    info = C2SP_INFO + payload[:24] + context
    derived = HKDFExpand(hashes.SHA512(), 32 + 12 + 32, info).derive(data_key)
    if not hmac.compare_digest(derived[44:], payload[24:PREFIX_SIZE]):
        raise Rejected("payload", "key commitment mismatch")
    aead, base_nonce = AESGCM(derived[:32]), int.from_bytes(derived[32:44], "big")
    chunks = payload[PREFIX_SIZE:]
    full_count, final_size = divmod(len(chunks), ENCRYPTED_CHUNK_SIZE)
    if final_size < TAG_SIZE:  # the final chunk is always short: 0..16383 bytes and a tag
        raise Rejected("payload", "no final chunk; truncated")
    plaintext = []
    for index in range(full_count + 1):
        piece = chunks[index * ENCRYPTED_CHUNK_SIZE : (index + 1) * ENCRYPTED_CHUNK_SIZE]
        try:
            plaintext.append(aead.decrypt((base_nonce ^ index).to_bytes(12, "big"), piece, b""))
        except InvalidTag:
            raise Rejected("payload", f"chunk {index} failed authentication") from None
    result = b"".join(plaintext)
    if size is not None and len(result) != size:
        raise Rejected("payload", "plaintext size differs from the header's")
    return result


def verify(data: bytes, data_key: bytes) -> bytes:
    """Return the plaintext of the kmsnb v1 file ``data``, or raise :class:`Rejected`."""
    header = parse_header(data)
    bound_digest = hashlib.sha256(header.bound).digest()
    info = b"kmsnb/v1 key slot"
    slot_key = HKDF(hashes.SHA256(), 32, salt=None, info=info).derive(data_key)
    expected_mac = hmac.digest(slot_key, bound_digest + header.slot, "sha256")
    if not hmac.compare_digest(expected_mac, header.slot_mac):
        raise Rejected("key slot", "slot MAC mismatch")
    return decrypt_payload(data[header.size :], data_key, bound_digest, header.plaintext_size)
