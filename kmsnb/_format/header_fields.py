"""The fields of the kmsnb v1 header: constants, bounds, and each field's encoding.

:mod:`kmsnb._format.header` owns the layout (its module docstring) and the two functions
that write and read a whole header; this module holds what they share: the constants and
the bound of every variable field, the text and encryption-context encodings, the bytes
the payload is bound to, and a cursor that reads bounded fields (every overrun a
:class:`~kmsnb.errors.FormatError`). The spec is ``docs/FORMAT.md``, "Header".
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from typing import BinaryIO

from cryptography.hazmat.primitives import hashes

from kmsnb._text import check_context_has_no_control_characters
from kmsnb.errors import FormatError, TruncatedError

__all__ = [
    "ALGORITHM_COBBLESTONE_256",
    "ALGORITHM_NAMES",
    "CONTENT_TYPE_BYTES",
    "CONTENT_TYPE_CSV",
    "CONTENT_TYPE_PARQUET",
    "CONTENT_TYPE_TEXT",
    "FORMAT_VERSION",
    "MAGIC",
    "MAX_CONTENT_TYPE_SIZE",
    "MAX_CONTEXT_PAIR_COUNT",
    "MAX_CONTEXT_SIZE",
    "MAX_HEADER_SIZE",
    "MAX_KEY_ID_SIZE",
    "MAX_KEY_SLOT_SIZE",
    "MAX_KEY_VERSION_ID_SIZE",
    "MAX_WRAPPED_KEY_SIZE",
    "MIN_HEADER_SIZE",
    "PREFIX",
    "RESERVED_PREFIX",
    "SLOT_MAC_SIZE",
    "UNKNOWN_SIZE",
    "WRITER_RESERVED_SIZE",
    "BoundSection",
    "FieldCursor",
    "bound_digest",
    "bound_section",
    "check_prefix",
    "decode_context",
    "encode_context",
    "encode_text",
    "parse_reserved",
    "read_exactly",
    "writer_reserved_size",
]

MAGIC = b"\x89KMSNB\r\n"
FORMAT_VERSION = 1
ALGORITHM_COBBLESTONE_256 = 1
ALGORITHM_NAMES = {ALGORITHM_COBBLESTONE_256: "cobblestone-256"}

CONTENT_TYPE_BYTES = "application/octet-stream"
CONTENT_TYPE_PARQUET = "application/vnd.apache.parquet"
CONTENT_TYPE_CSV = "text/csv"
CONTENT_TYPE_TEXT = "text/plain; charset=utf-8"  # a str, saved as UTF-8: loads as str

UNKNOWN_SIZE = 0xFFFF_FFFF_FFFF_FFFF

MAX_CONTENT_TYPE_SIZE = 255
MAX_KEY_ID_SIZE = 2048
MAX_KEY_VERSION_ID_SIZE = 256
MAX_WRAPPED_KEY_SIZE = 4096
MAX_CONTEXT_SIZE = 65536
MAX_CONTEXT_PAIR_COUNT = 1024

SLOT_MAC_SIZE = 32
_MAX_U16 = 0xFFFF

# The key slot may be followed by a reserved field, u16 len || len zero bytes, that keeps
# room for a longer slot so that rewrap can replace the slot in place. From the key id's
# length to the end of the header, the slot (with its reserved field) never takes more than
# the largest slot could: the header's maximum size stays what it was.
RESERVED_PREFIX = struct.Struct(">H")
MAX_KEY_SLOT_SIZE = (
    3 * 2 + MAX_KEY_ID_SIZE + MAX_KEY_VERSION_ID_SIZE + MAX_WRAPPED_KEY_SIZE + SLOT_MAC_SIZE
)
# What kmsnb's writers reserve: a key id, version or wrapped key up to 256 bytes longer in
# all (another KMS instance, a KMS 3.0 key) still fits in place.
WRITER_RESERVED_SIZE = 256

# magic, version and header_size: what must be read before the rest can be bounded.
PREFIX = struct.Struct(">8sBI")
_FIXED_FIELDS_SIZE = 1 + 1 + 8 + 4 + 2 + 2 + 2 + SLOT_MAC_SIZE
MIN_HEADER_SIZE = PREFIX.size + _FIXED_FIELDS_SIZE + 1  # a wrapped key is never empty
MAX_HEADER_SIZE = (
    PREFIX.size
    + _FIXED_FIELDS_SIZE
    + MAX_CONTENT_TYPE_SIZE
    + MAX_KEY_ID_SIZE
    + MAX_KEY_VERSION_ID_SIZE
    + MAX_WRAPPED_KEY_SIZE
    + MAX_CONTEXT_SIZE
)


def encode_text(value: str, what: str, limit: int, *, ascii_only: bool = False) -> bytes:
    """``value`` as UTF-8, checked for its type and its bound (TypeError, ValueError)."""
    if not isinstance(value, str):
        raise TypeError(f"{what} must be str, not {type(value).__name__}")
    if ascii_only and not (value.isascii() and value.isprintable()):
        raise ValueError(f"{what} must be printable ASCII")
    encoded = value.encode("utf-8")
    if len(encoded) > limit:
        raise ValueError(f"{what} is {len(encoded)} bytes; at most {limit} are allowed")
    return encoded


def encode_context(encryption_context: Mapping[str, str]) -> bytes:
    """The canonical encoding of an encryption context (sorted by UTF-8 key bytes)."""
    pairs = sorted(
        (
            encode_text(key, "an encryption context key", _MAX_U16),
            encode_text(value, "an encryption context value", _MAX_U16),
        )
        for key, value in encryption_context.items()
    )
    if len(pairs) > MAX_CONTEXT_PAIR_COUNT:
        raise ValueError(f"the encryption context has more than {MAX_CONTEXT_PAIR_COUNT} pairs")
    parts = [struct.pack(">H", len(pairs))]
    for key, value in pairs:
        if not key:
            raise ValueError("encryption context keys must not be empty")
        parts.append(struct.pack(">H", len(key)) + key + struct.pack(">H", len(value)) + value)
    encoded = b"".join(parts)
    if len(encoded) > MAX_CONTEXT_SIZE:
        raise ValueError(
            f"the encryption context encodes to {len(encoded)} bytes; "
            f"at most {MAX_CONTEXT_SIZE} are allowed"
        )
    return encoded


def bound_section(
    *, content_type: str, encryption_context: Mapping[str, str], plaintext_size: int | None
) -> bytes:
    """The bytes the payload is bound to: magic, version and the bound section.

    Raises:
        TypeError, ValueError: a field has the wrong type or exceeds its bound, or the
            encryption context holds a control character.
    """
    content = encode_text(content_type, "content_type", MAX_CONTENT_TYPE_SIZE, ascii_only=True)
    if plaintext_size is not None and not 0 <= plaintext_size < UNKNOWN_SIZE:
        raise ValueError("plaintext_size must be a non-negative 64-bit integer")
    context = encode_context(encryption_context)
    # Written only: a reader parses what a file holds and faces escape it
    # (kmsnb._text), so a hostile file is still inspectable.
    check_context_has_no_control_characters(encryption_context)
    return b"".join(
        [
            MAGIC,
            bytes([FORMAT_VERSION, ALGORITHM_COBBLESTONE_256, len(content)]),
            content,
            struct.pack(
                ">QI", UNKNOWN_SIZE if plaintext_size is None else plaintext_size, len(context)
            ),
            context,
        ]
    )


_SHA256 = hashes.SHA256()


def bound_digest(bound: bytes) -> bytes:
    """SHA-256 of the bound section: the payload's Cobblestone ``context``, and the first
    input of the slot MAC. With ``cryptography``'s hash, which HKDF loads anyway: the
    standard ``hashlib`` would load OpenSSL a second time (``_hashlib``, issue 16)."""
    digest = hashes.Hash(_SHA256)
    digest.update(bound)
    return digest.finalize()


class BoundSection:
    """A header's bound section, checked, encoded and hashed, waiting for its key slot.

    Made before the KMS is asked for a data key, so that a bad argument costs no KMS call
    (``TypeError``, ``ValueError``: as :func:`bound_section`); ``seal_header``
    (:mod:`kmsnb._format.header`) adds the key slot. The section is encoded and hashed
    once; ``bound`` and ``payload_context`` are what the header will hold.
    """

    __slots__ = (
        "algorithm",
        "bound",
        "content_type",
        "encryption_context",
        "payload_context",
        "plaintext_size",
    )

    def __init__(
        self,
        *,
        content_type: str,
        encryption_context: Mapping[str, str],
        plaintext_size: int | None,
    ) -> None:
        self.bound = bound_section(
            content_type=content_type,
            encryption_context=encryption_context,
            plaintext_size=plaintext_size,
        )
        self.payload_context = bound_digest(self.bound)
        self.content_type = content_type
        # A copy: the header's fields must stay what was encoded.
        self.encryption_context = dict(encryption_context)
        self.plaintext_size = plaintext_size
        self.algorithm = ALGORITHM_COBBLESTONE_256

    def __repr__(self) -> str:
        return f"<BoundSection of {len(self.bound)} bytes, {self.content_type!r}>"


def read_exactly(source: BinaryIO, size: int) -> bytes:
    data = source.read(size)
    # Some file objects return short reads before EOF; keep reading until we have it all.
    while data is not None and 0 < len(data) < size:
        more = source.read(size - len(data))
        if not more:
            break
        data += more
    return data or b""


def check_prefix(prefix: bytes) -> int:
    """Check magic, version and the declared header size; return the size."""
    if not prefix:
        raise FormatError("not a kmsnb file (it is empty)")
    if len(prefix) < len(MAGIC) or prefix[: len(MAGIC)] != MAGIC:
        if prefix[: len(MAGIC)] == MAGIC[: len(prefix)]:
            raise TruncatedError("the file ends inside its header; it was truncated", offset=0)
        raise FormatError("not a kmsnb file (bad magic number)")
    if len(prefix) < PREFIX.size:
        raise TruncatedError(
            "the file ends inside its header; it was truncated", offset=len(prefix)
        )
    _, version, header_size = PREFIX.unpack(prefix)
    if version != FORMAT_VERSION:
        raise FormatError(
            f"unsupported kmsnb format version {version}; this kmsnb reads version "
            f"{FORMAT_VERSION} (upgrade kmsnb to read newer files)"
        )
    if not MIN_HEADER_SIZE <= header_size <= MAX_HEADER_SIZE:
        raise FormatError(
            f"the header declares {header_size} bytes, outside {MIN_HEADER_SIZE}..{MAX_HEADER_SIZE}"
        )
    return int(header_size)


#: The integer fields' formats, made once: a header has a dozen of them to read.
_INTEGERS = {fmt: struct.Struct(fmt) for fmt in (">B", ">H", ">I", ">Q")}


class FieldCursor:
    """Reads bounded fields from a header; every overrun is a FormatError.

    A header is a dozen fields read once per file opened, so each read is one call, with
    the bound checks inline (issue 16: small files).
    """

    __slots__ = ("data", "position")

    def __init__(self, data: bytes, position: int) -> None:
        self.data = data
        self.position = position

    def take(self, size: int, what: str) -> bytes:
        start = self.position
        end = start + size
        if end > len(self.data):
            raise _overrun(what)
        self.position = end
        return self.data[start:end]

    def integer(self, fmt: str, what: str) -> int:
        unpacker = _INTEGERS.get(fmt) or struct.Struct(fmt)
        start = self.position
        end = start + unpacker.size
        if end > len(self.data):
            raise _overrun(what)
        self.position = end
        return int(unpacker.unpack_from(self.data, start)[0])

    def text(self, length_fmt: str, limit: int, what: str, *, allow_empty: bool = True) -> str:
        unpacker = _INTEGERS.get(length_fmt) or struct.Struct(length_fmt)
        data = self.data
        start = self.position + unpacker.size
        if start > len(data):
            raise _overrun(f"the length of {what}")
        length = int(unpacker.unpack_from(data, self.position)[0])
        if length > limit:
            raise FormatError(f"malformed header: {what} is {length} bytes, over its {limit} limit")
        if length == 0 and not allow_empty:
            raise FormatError(f"malformed header: {what} is empty")
        end = start + length
        if end > len(data):
            raise _overrun(what)
        self.position = end
        try:
            return str(data[start:end], "utf-8")
        except UnicodeDecodeError:
            raise FormatError(f"malformed header: {what} is not valid UTF-8") from None


def _overrun(what: str) -> FormatError:
    return FormatError(f"malformed header: {what} runs past the end of the header")


def decode_context(encoded: bytes) -> dict[str, str]:
    """Parse an encoded encryption context; only the canonical encoding is accepted."""
    cursor = FieldCursor(encoded, 0)
    count = cursor.integer(">H", "the encryption context pair count")
    if count > MAX_CONTEXT_PAIR_COUNT:
        raise FormatError("malformed header: too many encryption context pairs")
    context: dict[str, str] = {}
    previous_key: bytes | None = None
    for _ in range(count):
        key = cursor.text(">H", MAX_CONTEXT_SIZE, "an encryption context key", allow_empty=False)
        value = cursor.text(">H", MAX_CONTEXT_SIZE, "an encryption context value")
        key_bytes = key.encode("utf-8")
        # One canonical encoding per context: a reader that accepted unsorted or repeated
        # keys would let two different byte strings mean the same context.
        if previous_key is not None and key_bytes <= previous_key:
            raise FormatError("malformed header: encryption context keys are not sorted and unique")
        previous_key = key_bytes
        context[key] = value
    if cursor.position != len(encoded):
        raise FormatError("malformed header: bytes follow the encryption context pairs")
    return context


def writer_reserved_size(slot_size: int) -> int | None:
    """kmsnb's writers reserve ``WRITER_RESERVED_SIZE`` bytes, or what the bound leaves."""
    left = MAX_KEY_SLOT_SIZE - slot_size - SLOT_MAC_SIZE - RESERVED_PREFIX.size
    return min(WRITER_RESERVED_SIZE, left) if left >= 0 else None


def parse_reserved(cursor: FieldCursor, *, key_slot_offset: int) -> int | None:
    """Check what follows the slot MAC: nothing, or exactly one all-zero reserved field."""
    if cursor.position == len(cursor.data):
        return None
    if len(cursor.data) - key_slot_offset > MAX_KEY_SLOT_SIZE:
        raise FormatError(
            f"malformed header: the key slot and its reserved room take more than "
            f"{MAX_KEY_SLOT_SIZE} bytes"
        )
    size = cursor.integer(RESERVED_PREFIX.format, "the length of the reserved field")
    if cursor.take(size, "the reserved field").count(0) != size:
        raise FormatError("malformed header: the reserved field is not all zero bytes")
    if cursor.position != len(cursor.data):
        raise FormatError("malformed header: bytes follow the reserved field")
    return size
