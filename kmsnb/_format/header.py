"""The kmsnb v1 header: one serialize function, one parse function, every length bounded.

Layout (all integers big-endian; the spec is ``docs/FORMAT.md``)::

    magic            8 bytes   89 4B 4D 53 4E 42 0D 0A  ("\\x89KMSNB\\r\\n")
    version          1 byte    0x01
    header_size      u32       size of the whole header, magic included
    -- bound section: fixed for the life of the file --
    algorithm        u8        0x01 = Cobblestone-256 (C2SP chunked encryption, AES-256-GCM)
    content_type     u8 len  ‖ printable ASCII
    plaintext_size   u64       0xFFFF_FFFF_FFFF_FFFF when unknown (a stream)
    context_size     u32     ‖ encryption context, canonical (see below)
    -- key slot: replaced when the data key is rewrapped under another master key --
    key_id           u16 len ‖ UTF-8
    key_version_id   u16 len ‖ UTF-8
    wrapped_key      u16 len ‖ ASCII (the KMS CiphertextBlob, base64)
    slot_mac         32 bytes  HMAC-SHA-256 of the key slot, under a key derived from the data key
    -- optional: room kept for a longer key slot, so that rewrap can work in place --
    reserved         u16 len ‖ len zero bytes

    encryption context = u16 pair count ‖ (u16 len ‖ key ‖ u16 len ‖ value) per pair,
                         UTF-8, keys unique and sorted by their UTF-8 bytes

Every header byte is authenticated before any plaintext is released, in two parts:

* the payload's Cobblestone ``context`` is ``SHA-256(magic ‖ version ‖ bound section)``,
  so the key commitment fails if any of those bytes changed;
* the key slot is authenticated by ``slot_mac`` = HMAC-SHA-256(K, bound digest ‖ key id ‖
  key version id ‖ wrapped key, each length-prefixed, ‖ the reserved field's u16 length
  when there is one), with K = HKDF-SHA-256(data key, info="kmsnb/v1 key slot"). The data
  key comes from the KMS, which only unwraps a blob it made, under the same encryption
  context. A header without a reserved field is exactly what kmsnb wrote before it had one.

Keeping the key slot out of the payload's binding is what lets ``rewrap`` move a file to
another master key (KMS ReEncrypt) without rewriting the data, and the reserved field is
what lets it rewrite the key slot where it is (:meth:`Header.with_key_slot_in_place`).

The bounds of each field and their encodings are in :mod:`kmsnb._format.header_fields`;
this module assembles, authenticates and parses whole headers.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import BinaryIO, Literal

from kmsnb._format.header_fields import (
    ALGORITHM_COBBLESTONE_256,
    ALGORITHM_NAMES,
    CONTENT_TYPE_BYTES,
    CONTENT_TYPE_CSV,
    CONTENT_TYPE_PARQUET,
    CONTENT_TYPE_TEXT,
    FORMAT_VERSION,
    MAGIC,
    MAX_CONTENT_TYPE_SIZE,
    MAX_CONTEXT_SIZE,
    MAX_HEADER_SIZE,
    MAX_KEY_ID_SIZE,
    MAX_KEY_SLOT_SIZE,
    MAX_KEY_VERSION_ID_SIZE,
    MAX_WRAPPED_KEY_SIZE,
    MIN_HEADER_SIZE,
    PREFIX,
    RESERVED_PREFIX,
    SLOT_MAC_SIZE,
    UNKNOWN_SIZE,
    WRITER_RESERVED_SIZE,
    FieldCursor,
    bound_section,
    decode_context,
    encode_context,
    parse_reserved,
    writer_reserved_size,
)
from kmsnb._format.key_slot import (
    VerifiedKeySlot,
    check_writable_key_slot,
    slot_fields,
    slot_mac,
    verify_key_slot,
)
from kmsnb.errors import FormatError, TruncatedError

# The constants and field encodings live in header_fields; the ones other modules use are
# re-exported so that a header's whole vocabulary is importable from here.
__all__ = [
    "ALGORITHM_COBBLESTONE_256",
    "CONTENT_TYPE_BYTES",
    "CONTENT_TYPE_CSV",
    "CONTENT_TYPE_PARQUET",
    "CONTENT_TYPE_TEXT",
    "FORMAT_VERSION",
    "MAGIC",
    "MAX_CONTEXT_SIZE",
    "MAX_HEADER_SIZE",
    "MAX_WRAPPED_KEY_SIZE",
    "MIN_HEADER_SIZE",
    "WRITER_RESERVED_SIZE",
    "Header",
    "VerifiedKeySlot",
    "bound_section",
    "encode_context",
    "parse_header",
    "read_header",
    "serialize_header",
]


@dataclass(frozen=True)
class Header:
    """The parsed header of a kmsnb v1 file.

    ``raw`` is the exact bytes read or written; ``bound`` the part the payload is bound to.
    ``reserved_size`` is the size of the reserved field's zeros, ``None`` when the header
    has no reserved field.
    """

    key_id: str
    key_version_id: str
    wrapped_key: str
    encryption_context: Mapping[str, str]
    content_type: str = CONTENT_TYPE_BYTES
    plaintext_size: int | None = None
    algorithm: int = ALGORITHM_COBBLESTONE_256
    slot_mac: bytes = field(default=b"", repr=False)
    reserved_size: int | None = None
    raw: bytes = field(default=b"", repr=False, compare=False)
    bound: bytes = field(default=b"", repr=False, compare=False)

    @property
    def size(self) -> int:
        return len(self.raw)

    @property
    def key_slot_offset(self) -> int:
        """Where the key slot starts: everything from here to ``size`` is what a rewrap
        replaces (the bound section and ``header_size`` before it stay as they are)."""
        return len(self.bound) + PREFIX.size - len(MAGIC) - 1

    @property
    def payload_context(self) -> bytes:
        """The Cobblestone ``context`` that binds the payload to the bound section."""
        return hashlib.sha256(self.bound).digest()

    @property
    def algorithm_name(self) -> str:
        return ALGORITHM_NAMES[self.algorithm]

    def verify_key_slot(self, data_key: bytes | bytearray) -> VerifiedKeySlot:
        """Check ``slot_mac`` with the unwrapped data key.

        Returns:
            the proof that it did, which a reader takes instead of checking again.

        Raises:
            IntegrityError: the key slot was altered, or the data key is not this file's.
        """
        return verify_key_slot(self, data_key)

    def require_verified_key_slot(
        self, data_key: bytes | bytearray, verified: VerifiedKeySlot | None
    ) -> None:
        """Verify the key slot, unless ``verified`` proves it was, for this header and key.

        Raises:
            IntegrityError: as :meth:`verify_key_slot`.
            ValueError: ``verified`` was made for another header or another key object.
        """
        if verified is None:
            self.verify_key_slot(data_key)
        elif not (isinstance(verified, VerifiedKeySlot) and verified.vouches_for(self, data_key)):
            raise ValueError(
                "verified_slot does not come from verifying this header's key slot with this "
                "data key; pass the one Header.verify_key_slot returned, or none"
            )

    def with_key_slot(
        self, data_key: bytes | bytearray, *, key_id: str, key_version_id: str, wrapped_key: str
    ) -> Header:
        """This header with another key slot (after a rewrap); the bound section is kept,
        and a writer's reserved field is added (the header's size may change)."""
        check_writable_key_slot(key_id, key_version_id)
        slot = slot_fields(key_id, key_version_id, wrapped_key)
        reserved = writer_reserved_size(len(slot))
        return _assemble(
            self.bound, data_key, (key_id, key_version_id, wrapped_key), reserved, self
        )

    def with_key_slot_in_place(
        self, data_key: bytes | bytearray, *, key_id: str, key_version_id: str, wrapped_key: str
    ) -> Header | None:
        """This header with another key slot and the same size, or ``None`` if it cannot fit.

        The new slot takes the old slot's place and its reserved field what is left: an
        exact fit needs no reserved field, and a gap of one byte cannot hold one (its length
        alone takes two), so it does not fit.
        """
        check_writable_key_slot(key_id, key_version_id)
        room = self.size - self.key_slot_offset
        needed = len(slot_fields(key_id, key_version_id, wrapped_key)) + SLOT_MAC_SIZE
        if needed == room:
            reserved: int | None = None
        elif needed + RESERVED_PREFIX.size <= room:
            reserved = room - needed - RESERVED_PREFIX.size
        else:
            return None
        new = _assemble(self.bound, data_key, (key_id, key_version_id, wrapped_key), reserved, self)
        if new.size != self.size:
            raise AssertionError("kmsnb: internal error: an in-place key slot changed size")
        return new


def _assemble(
    bound: bytes,
    data_key: bytes | bytearray,
    key_slot: tuple[str, str, str],
    reserved_size: int | None,
    template: Header,
) -> Header:
    """Join the bound section and a freshly authenticated key slot into a header."""
    key_id, key_version_id, wrapped_key = key_slot
    slot = slot_fields(key_id, key_version_id, wrapped_key)
    mac = slot_mac(data_key, hashlib.sha256(bound).digest(), slot, reserved_size)
    reserved = b""
    if reserved_size is not None:
        if len(slot) + len(mac) + RESERVED_PREFIX.size + reserved_size > MAX_KEY_SLOT_SIZE:
            raise ValueError(f"the key slot leaves no room for {reserved_size} reserved bytes")
        reserved = RESERVED_PREFIX.pack(reserved_size) + bytes(reserved_size)
    header_size = PREFIX.size + len(bound) - len(MAGIC) - 1 + len(slot) + len(mac) + len(reserved)
    raw = MAGIC + bound[len(MAGIC) : len(MAGIC) + 1] + struct.pack(">I", header_size)
    raw += bound[len(MAGIC) + 1 :] + slot + mac + reserved
    return Header(
        key_id=key_id,
        key_version_id=key_version_id,
        wrapped_key=wrapped_key,
        encryption_context=dict(template.encryption_context),
        content_type=template.content_type,
        plaintext_size=template.plaintext_size,
        algorithm=template.algorithm,
        slot_mac=mac,
        reserved_size=reserved_size,
        raw=raw,
        bound=bound,
    )


def serialize_header(
    *,
    data_key: bytes | bytearray,
    key_id: str,
    key_version_id: str,
    wrapped_key: str,
    encryption_context: Mapping[str, str],
    content_type: str = CONTENT_TYPE_BYTES,
    plaintext_size: int | None = None,
    reserved_size: int | Literal["writer"] | None = "writer",
) -> Header:
    """Build a v1 header; the returned ``Header.raw`` holds its bytes.

    ``data_key`` (the plaintext data key) authenticates the key slot; it is not stored.
    ``reserved_size`` is the reserved field's size: ``"writer"`` for what kmsnb's writers
    reserve (``WRITER_RESERVED_SIZE`` when the bound allows), ``None`` for no field.

    Raises:
        TypeError, ValueError: a field has the wrong type or exceeds its bound, or a key
            id or the encryption context holds a control character.
    """
    check_writable_key_slot(key_id, key_version_id)
    bound = bound_section(
        content_type=content_type,
        encryption_context=encryption_context,
        plaintext_size=plaintext_size,
    )
    template = Header(
        key_id=key_id,
        key_version_id=key_version_id,
        wrapped_key=wrapped_key,
        encryption_context=dict(encryption_context),
        content_type=content_type,
        plaintext_size=plaintext_size,
    )
    if reserved_size == "writer":
        reserved_size = writer_reserved_size(len(slot_fields(key_id, key_version_id, wrapped_key)))
    elif reserved_size is not None and not 0 <= reserved_size <= MAX_KEY_SLOT_SIZE:
        raise ValueError(f"reserved_size must be 0..{MAX_KEY_SLOT_SIZE} or None")
    key_slot = (key_id, key_version_id, wrapped_key)
    return _assemble(bound, data_key, key_slot, reserved_size, template)


def _read_exactly(source: BinaryIO, size: int) -> bytes:
    data = source.read(size)
    # Some file objects return short reads before EOF; keep reading until we have it all.
    while data is not None and 0 < len(data) < size:
        more = source.read(size - len(data))
        if not more:
            break
        data += more
    return data or b""


def read_header(source: BinaryIO) -> Header:
    """Read and parse a header from the start of ``source``, leaving it at the payload.

    The declared header size is checked against ``MAX_HEADER_SIZE`` before the rest is read.

    Raises:
        FormatError: not a kmsnb file, an unsupported version, or a malformed header.
    """
    prefix = _read_exactly(source, PREFIX.size)
    header_size = _check_prefix(prefix)
    rest = _read_exactly(source, header_size - PREFIX.size)
    if len(rest) != header_size - PREFIX.size:
        raise TruncatedError(
            "the file ends inside its header; it was truncated", offset=len(prefix) + len(rest)
        )
    return parse_header(prefix + rest)


def _check_prefix(prefix: bytes) -> int:
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


def parse_header(raw: bytes) -> Header:
    """Parse the exact bytes of a v1 header (see the module docstring).

    Raises:
        FormatError: the bytes are not a well-formed v1 header.
    """
    header_size = _check_prefix(raw[: PREFIX.size])
    if header_size != len(raw):
        raise FormatError("malformed header: its declared size does not match its contents")
    cursor = FieldCursor(raw, PREFIX.size)
    algorithm = cursor.integer(">B", "the algorithm")
    if algorithm not in ALGORITHM_NAMES:
        raise FormatError(f"unsupported payload algorithm {algorithm}")
    content_type = cursor.text(">B", MAX_CONTENT_TYPE_SIZE, "the content type")
    if not (content_type.isascii() and content_type.isprintable()):
        raise FormatError("malformed header: the content type is not printable ASCII")
    plaintext_size = cursor.integer(">Q", "the plaintext size")
    context_size = cursor.integer(">I", "the encryption context size")
    if context_size > MAX_CONTEXT_SIZE:
        raise FormatError(
            f"malformed header: the encryption context is {context_size} bytes, "
            f"over its {MAX_CONTEXT_SIZE} limit"
        )
    encryption_context = decode_context(cursor.take(context_size, "the encryption context"))
    bound = raw[: len(MAGIC) + 1] + raw[PREFIX.size : cursor.position]
    key_slot_offset = cursor.position
    key_id = cursor.text(">H", MAX_KEY_ID_SIZE, "the key id", allow_empty=False)
    key_version_id = cursor.text(">H", MAX_KEY_VERSION_ID_SIZE, "the key version id")
    wrapped_key = cursor.text(">H", MAX_WRAPPED_KEY_SIZE, "the wrapped key", allow_empty=False)
    if not wrapped_key.isascii():
        raise FormatError("malformed header: the wrapped key is not ASCII")
    slot_mac = cursor.take(SLOT_MAC_SIZE, "the key slot MAC")
    reserved_size = parse_reserved(cursor, key_slot_offset=key_slot_offset)
    return Header(
        key_id=key_id,
        key_version_id=key_version_id,
        wrapped_key=wrapped_key,
        encryption_context=encryption_context,
        content_type=content_type,
        plaintext_size=None if plaintext_size == UNKNOWN_SIZE else plaintext_size,
        algorithm=algorithm,
        slot_mac=slot_mac,
        reserved_size=reserved_size,
        raw=bytes(raw),
        bound=bytes(bound),
    )
