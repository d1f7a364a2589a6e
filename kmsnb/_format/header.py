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

import struct
from collections.abc import Mapping
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
    BoundSection,
    FieldCursor,
    bound_digest,
    bound_section,
    check_prefix,
    decode_context,
    encode_context,
    parse_reserved,
    read_exactly,
    writer_reserved_size,
)
from kmsnb._format.key_slot import (
    VerifiedKeySlot,
    check_writable_key_slot,
    slot_fields,
    slot_mac,
    verify_key_slot,
)
from kmsnb._record import FrozenRecord
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
    "BoundSection",
    "Header",
    "VerifiedKeySlot",
    "bound_section",
    "encode_context",
    "parse_header",
    "read_header",
    "seal_header",
    "serialize_header",
]

_INIT = object.__setattr__  # past FrozenRecord's __setattr__, which refuses every write
_U32 = struct.Struct(">I")


class Header(FrozenRecord):
    """The parsed header of a kmsnb v1 file.

    ``raw`` is the exact bytes read or written; ``bound`` the part the payload is bound to.
    ``reserved_size`` is the size of the reserved field's zeros, ``None`` when the header
    has no reserved field. Immutable; equal when every field but ``raw`` and ``bound`` is;
    the ``repr`` leaves out ``slot_mac``, ``raw`` and ``bound``.
    """

    __match_args__ = (
        "key_id", "key_version_id", "wrapped_key", "encryption_context", "content_type",
        "plaintext_size", "algorithm", "slot_mac", "reserved_size", "raw", "bound",
    )  # fmt: skip
    _FIELDS = __match_args__
    _COMPARED = _FIELDS[:9]
    _SHOWN = (*_FIELDS[:7], "reserved_size")
    # Two caches, valid since nothing changes: the payload context (a SHA-256 that the
    # writer, the reader and the slot check each want) and the key slot's encoded fields.
    __slots__ = (*_FIELDS, "_payload_context", "_slot")

    key_id: str
    key_version_id: str
    wrapped_key: str
    encryption_context: Mapping[str, str]
    content_type: str
    plaintext_size: int | None
    algorithm: int
    slot_mac: bytes
    reserved_size: int | None
    raw: bytes
    bound: bytes
    _payload_context: bytes | None
    _slot: bytes | None

    def __init__(
        self,
        key_id: str,
        key_version_id: str,
        wrapped_key: str,
        encryption_context: Mapping[str, str],
        content_type: str = CONTENT_TYPE_BYTES,
        plaintext_size: int | None = None,
        algorithm: int = ALGORITHM_COBBLESTONE_256,
        slot_mac: bytes = b"",
        reserved_size: int | None = None,
        raw: bytes = b"",
        bound: bytes = b"",
    ) -> None:
        _INIT(self, "key_id", key_id)
        _INIT(self, "key_version_id", key_version_id)
        _INIT(self, "wrapped_key", wrapped_key)
        _INIT(self, "encryption_context", encryption_context)
        _INIT(self, "content_type", content_type)
        _INIT(self, "plaintext_size", plaintext_size)
        _INIT(self, "algorithm", algorithm)
        _INIT(self, "slot_mac", slot_mac)
        _INIT(self, "reserved_size", reserved_size)
        _INIT(self, "raw", raw)
        _INIT(self, "bound", bound)
        _INIT(self, "_payload_context", None)
        _INIT(self, "_slot", None)

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
        context = self._payload_context
        if context is None:
            context = bound_digest(self.bound)
            _INIT(self, "_payload_context", context)
        return context

    @property
    def key_slot_fields(self) -> bytes:
        """The key slot's three fields, encoded (what ``slot_mac`` covers, after the
        payload context)."""
        slot = self._slot
        if slot is None:
            slot = slot_fields(self.key_id, self.key_version_id, self.wrapped_key)
            _INIT(self, "_slot", slot)
        return slot

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
        return _seal(self, data_key, (key_id, key_version_id, wrapped_key), "writer")

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
        slot = slot_fields(key_id, key_version_id, wrapped_key)
        needed = len(slot) + SLOT_MAC_SIZE
        if needed == room:
            reserved: int | None = None
        elif needed + RESERVED_PREFIX.size <= room:
            reserved = room - needed - RESERVED_PREFIX.size
        else:
            return None
        new = _assemble(self, data_key, (key_id, key_version_id, wrapped_key), slot, reserved)
        if new.size != self.size:
            raise AssertionError("kmsnb: internal error: an in-place key slot changed size")
        return new


def _assemble(
    template: Header | BoundSection,
    data_key: bytes | bytearray,
    key_slot: tuple[str, str, str],
    slot: bytes,
    reserved_size: int | None,
) -> Header:
    """Join the bound section of ``template`` and a freshly authenticated key slot into a
    header (the one place a header's bytes are put together)."""
    bound, digest = template.bound, template.payload_context
    mac = slot_mac(data_key, digest, slot, reserved_size)
    reserved = b""
    if reserved_size is not None:
        if len(slot) + len(mac) + RESERVED_PREFIX.size + reserved_size > MAX_KEY_SLOT_SIZE:
            raise ValueError(f"the key slot leaves no room for {reserved_size} reserved bytes")
        reserved = RESERVED_PREFIX.pack(reserved_size) + bytes(reserved_size)
    size = PREFIX.size + len(bound) - len(MAGIC) - 1 + len(slot) + len(mac) + len(reserved)
    after_version = len(MAGIC) + 1
    raw = b"".join(
        (bound[:after_version], _U32.pack(size), bound[after_version:], slot, mac, reserved)
    )
    context = dict(template.encryption_context)
    fields = (template.content_type, template.plaintext_size, template.algorithm)
    header = Header(*key_slot, context, *fields, mac, reserved_size, raw, bound)
    _INIT(header, "_payload_context", digest)
    _INIT(header, "_slot", slot)
    return header


def seal_header(
    bound: BoundSection,
    *,
    data_key: bytes | bytearray,
    key_id: str,
    key_version_id: str,
    wrapped_key: str,
    reserved_size: int | Literal["writer"] | None = "writer",
) -> Header:
    """The header of ``bound`` with this key slot: :func:`serialize_header` in two steps,
    the first (making ``bound``) before the KMS call.

    Raises:
        TypeError, ValueError: a key slot field has the wrong type or exceeds its bound,
            or a key id holds a control character.
    """
    check_writable_key_slot(key_id, key_version_id)
    return _seal(bound, data_key, (key_id, key_version_id, wrapped_key), reserved_size)


def _seal(
    bound: Header | BoundSection,
    data_key: bytes | bytearray,
    key_slot: tuple[str, str, str],
    reserved_size: int | Literal["writer"] | None,
) -> Header:
    # The order of the checks is what it was when the slot was encoded twice.
    if reserved_size == "writer":
        slot = slot_fields(*key_slot)
        reserved_size = writer_reserved_size(len(slot))
    else:
        if reserved_size is not None and not 0 <= reserved_size <= MAX_KEY_SLOT_SIZE:
            raise ValueError(f"reserved_size must be 0..{MAX_KEY_SLOT_SIZE} or None")
        slot = slot_fields(*key_slot)
    return _assemble(bound, data_key, key_slot, slot, reserved_size)


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
    bound = BoundSection(
        content_type=content_type,
        encryption_context=encryption_context,
        plaintext_size=plaintext_size,
    )
    return _seal(bound, data_key, (key_id, key_version_id, wrapped_key), reserved_size)


def read_header(source: BinaryIO) -> Header:
    """Read and parse a header from the start of ``source``, leaving it at the payload.

    The declared header size is checked against ``MAX_HEADER_SIZE`` before the rest is read.

    Raises:
        FormatError: not a kmsnb file, an unsupported version, or a malformed header.
    """
    prefix = read_exactly(source, PREFIX.size)
    header_size = check_prefix(prefix)
    rest = read_exactly(source, header_size - PREFIX.size)
    if len(rest) != header_size - PREFIX.size:
        raise TruncatedError(
            "the file ends inside its header; it was truncated", offset=len(prefix) + len(rest)
        )
    return _parse_fields(prefix + rest)


def parse_header(raw: bytes) -> Header:
    """Parse the exact bytes of a v1 header (see the module docstring).

    Raises:
        FormatError: the bytes are not a well-formed v1 header.
    """
    header_size = check_prefix(raw[: PREFIX.size])
    if header_size != len(raw):
        raise FormatError("malformed header: its declared size does not match its contents")
    return _parse_fields(raw)


def _parse_fields(raw: bytes) -> Header:
    """Parse what follows a checked prefix, ``raw`` being exactly the declared size."""
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
    slot_mac_offset = cursor.position
    slot_mac = cursor.take(SLOT_MAC_SIZE, "the key slot MAC")
    reserved_size = parse_reserved(cursor, key_slot_offset=key_slot_offset)
    header = Header(
        key_id,
        key_version_id,
        wrapped_key,
        encryption_context,
        content_type,
        None if plaintext_size == UNKNOWN_SIZE else plaintext_size,
        algorithm,
        bytes(slot_mac),
        reserved_size,
        bytes(raw),
        bytes(bound),
    )
    # The slot's fields as they are in the file: what encoding the parsed ones would give.
    _INIT(header, "_slot", header.raw[key_slot_offset:slot_mac_offset])
    return header
