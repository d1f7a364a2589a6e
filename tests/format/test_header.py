"""The v1 header: layout, canonical encoding, bounds, key-slot authentication, reading.

Each check names the docs/FORMAT.md section it follows ("Header", "Decoding").
"""

from __future__ import annotations

import hashlib
import io
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from strategies import header_fields

from kmsnb._format.header import (
    MAGIC,
    MAX_HEADER_SIZE,
    Header,
    encode_context,
    parse_header,
    read_header,
    serialize_header,
)
from kmsnb.errors import FormatError, IntegrityError, TruncatedError

pytestmark = [pytest.mark.unit]

DATA_KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
FIELDS: dict[str, Any] = {
    "key_id": "key-1",
    "key_version_id": "version-1",
    "wrapped_key": "d3JhcHBlZA==",
    "encryption_context": {"owner": "ana", "dataset": "sales"},
    "content_type": "text/csv",
    "plaintext_size": 1234,
}


def _header(**changes: Any) -> Header:
    return serialize_header(data_key=DATA_KEY, **{**FIELDS, **changes})


def _u16(data: bytes) -> bytes:
    return struct.pack(">H", len(data)) + data


def _raw_header(
    *,
    context: bytes,
    wrapped_key: bytes = b"d3JhcHBlZA==",
    content_type: bytes = b"text/csv",
    key_id: bytes = b"key-1",
    version: int = 1,
    algorithm: int = 1,
) -> bytes:
    """A header written by hand, field by field, as the spec lays it out (slot MAC zero)."""
    body = (
        bytes([algorithm, len(content_type)])
        + content_type
        + struct.pack(">QI", 0, len(context))
        + context
        + _u16(key_id)
        + _u16(b"v")
        + _u16(wrapped_key)
        + bytes(32)
    )
    return MAGIC + bytes([version]) + struct.pack(">I", 13 + len(body)) + body


def _context(*pairs: tuple[bytes, bytes], count: int | None = None) -> bytes:
    encoded = b"".join(_u16(key) + _u16(value) for key, value in pairs)
    return struct.pack(">H", len(pairs) if count is None else count) + encoded


class _ReadSpy(io.BytesIO):
    """A source that records every size asked of ``read``, and can hand out 1 byte a time."""

    def __init__(self, data: bytes, *, trickle: bool = False) -> None:
        super().__init__(data)
        self.requested: list[int] = []
        self.trickle = trickle

    def read(self, size: int | None = -1) -> bytes:
        self.requested.append(-1 if size is None else size)
        return super().read(1 if self.trickle and size else size)


# -- layout ------------------------------------------------------------------------------


def test_layout_matches_the_spec() -> None:
    """Every field sits where FORMAT.md "Header" puts it, big-endian, length-prefixed."""
    header = _header(reserved_size=None)
    raw = header.raw
    context = encode_context(FIELDS["encryption_context"])
    expected_bound = (
        MAGIC + b"\x01" + b"\x01" + b"\x08text/csv" + struct.pack(">QI", 1234, len(context))
    ) + context
    slot = _u16(b"key-1") + _u16(b"version-1") + _u16(b"d3JhcHBlZA==")
    assert MAGIC == b"\x89KMSNB\r\n"
    assert expected_bound[:9] + struct.pack(">I", len(raw)) + expected_bound[9:] + slot == raw[:-32]
    assert expected_bound == header.bound
    assert hashlib.sha256(expected_bound).digest() == header.payload_context
    assert len(raw) == header.size


def test_writers_reserve_room_after_the_slot_mac() -> None:
    """kmsnb writes a reserved field (u16 len || zeros) after the slot MAC, which the MAC
    covers by its length; without one the header is the one kmsnb wrote before."""
    plain, reserved = _header(reserved_size=None), _header()
    assert (
        reserved.raw[: plain.size - 32]
        == plain.raw[:9] + struct.pack(">I", reserved.size) + plain.raw[13 : plain.size - 32]
    )
    assert reserved.raw[plain.size :] == struct.pack(">H", 256) + bytes(256)
    assert (reserved.reserved_size, plain.reserved_size) == (256, None)
    assert reserved.slot_mac != plain.slot_mac  # the reserved length is authenticated
    assert parse_header(reserved.raw) == reserved
    reserved.verify_key_slot(DATA_KEY)
    plain.verify_key_slot(DATA_KEY)
    assert reserved.key_slot_offset == plain.key_slot_offset == len(plain.bound) + 4


def test_a_bad_reserved_field_is_a_format_error() -> None:
    """A non-zero reserved byte, a length past the header, one stray byte, or a slot plus
    room over the largest slot's size are FormatErrors."""
    header = _header(reserved_size=4)
    raw = bytearray(header.raw)
    raw[-1] = 1
    with pytest.raises(FormatError, match="not all zero"):
        parse_header(bytes(raw))
    with pytest.raises(FormatError, match="runs past"):
        parse_header(header.raw[:-6] + struct.pack(">H", 5) + bytes(4))
    one_byte = _header(reserved_size=None).raw + b"\x00"
    with pytest.raises(FormatError):
        parse_header(one_byte[:9] + struct.pack(">I", len(one_byte)) + one_byte[13:])
    with pytest.raises(ValueError, match="no room"):
        _header(reserved_size=6438)


def test_a_key_slot_is_replaced_in_place_only_when_it_fits() -> None:
    """Same size, same bound section; a longer slot takes reserved room; a slot one byte
    short of filling the room (no room for the reserved field's length) does not fit."""
    header = _header()
    longer = header.with_key_slot_in_place(
        DATA_KEY, key_id="k" * 200, key_version_id="v", wrapped_key="w" * 40
    )
    assert longer is not None
    assert (longer.size, longer.bound, longer.key_id) == (header.size, header.bound, "k" * 200)
    assert parse_header(longer.raw) == longer
    longer.verify_key_slot(DATA_KEY)
    room = header.size - header.key_slot_offset
    base = 6 + len("v") + len("w") + 32
    exact = header.with_key_slot_in_place(
        DATA_KEY, key_id="k" * (room - base), key_version_id="v", wrapped_key="w"
    )
    assert exact is not None
    assert (exact.reserved_size, exact.size) == (None, header.size)
    assert None is header.with_key_slot_in_place(
        DATA_KEY, key_id="k" * (room - base - 1), key_version_id="v", wrapped_key="w"
    )
    assert None is header.with_key_slot_in_place(
        DATA_KEY, key_id="k" * (room - base + 1), key_version_id="v", wrapped_key="w"
    )


def test_a_torn_key_slot_is_detected() -> None:
    """Half of a new slot over half of the old one fails the slot MAC: a torn in-place
    write is caught before any plaintext, never mistaken for either slot."""
    old = _header()
    new = old.with_key_slot_in_place(
        DATA_KEY, key_id="key-2", key_version_id="version-2", wrapped_key="b3RoZXI="
    )
    assert new is not None
    middle = old.key_slot_offset + 8
    torn = parse_header(new.raw[:middle] + old.raw[middle:])
    with pytest.raises(IntegrityError):
        torn.verify_key_slot(DATA_KEY)


def test_context_encoding_is_canonical_utf8_order() -> None:
    """Keys are sorted by their UTF-8 bytes, whatever the mapping's order (not UTF-16 order)."""
    emoji, halfwidth, accented = "\U0001f600", "\uff61", "é"
    encoded = encode_context({emoji: "3", halfwidth: "2", accented: "1"})
    expected = _context(
        (accented.encode(), b"1"), (halfwidth.encode(), b"2"), (emoji.encode(), b"3")
    )
    assert expected == encoded
    assert encoded == encode_context({accented: "1", emoji: "3", halfwidth: "2"})
    assert encode_context({}) == b"\x00\x00"


@settings(max_examples=60, deadline=None)
@given(fields=header_fields())
def test_serialize_parse_round_trip(fields: dict[str, Any]) -> None:
    """Parsing what was serialized gives back every field and the same bytes."""
    header = serialize_header(data_key=DATA_KEY, **fields)
    parsed = parse_header(header.raw)
    assert header == parsed
    assert header.raw == parsed.raw
    assert header.payload_context == parsed.payload_context
    assert fields["plaintext_size"] == parsed.plaintext_size
    parsed.verify_key_slot(DATA_KEY)


# -- key slot ----------------------------------------------------------------------------


def test_key_slot_verifies_only_under_its_data_key() -> None:
    """The slot MAC is keyed by the data key: another key fails with IntegrityError."""
    header = parse_header(_header().raw)
    header.verify_key_slot(DATA_KEY)
    with pytest.raises(IntegrityError):
        header.verify_key_slot(OTHER_KEY)


@pytest.mark.parametrize(
    "change",
    [
        {"key_id": "key-2"},
        {"key_version_id": "version-2"},
        {"wrapped_key": "b3RoZXI="},
        {"slot_mac": bytes(32)},
        {"bound": b"changed"},
    ],
    ids=["key-id", "key-version-id", "wrapped-key", "slot-mac", "bound-section"],
)
def test_key_slot_mac_covers_every_slot_field(change: dict[str, Any]) -> None:
    """Changing any key-slot field, the MAC, or the bound section fails the slot check."""
    parsed = parse_header(_header().raw)
    # Header is immutable (no dataclass: start-up), so a changed one is built anew.
    fields = {name: getattr(parsed, name) for name in Header.__match_args__}
    tampered = Header(**{**fields, **change})
    with pytest.raises(IntegrityError):
        tampered.verify_key_slot(DATA_KEY)


def test_rewrapped_header_keeps_the_payload_binding() -> None:
    """``with_key_slot`` replaces only the key slot: same bound section, same payload context."""
    header = _header()
    moved = header.with_key_slot(
        DATA_KEY, key_id="key-2", key_version_id="v-9", wrapped_key="bmV3IGJsb2I="
    )
    parsed = parse_header(moved.raw)
    assert header.bound == parsed.bound
    assert header.payload_context == parsed.payload_context
    assert (
        parsed.key_id,
        parsed.key_version_id,
        parsed.wrapped_key,
    ) == ("key-2", "v-9", "bmV3IGJsb2I=")
    parsed.verify_key_slot(DATA_KEY)


# -- what serialize_header refuses ---------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"wrapped_key": "A" * 4097}, ValueError),
        ({"wrapped_key": ""}, ValueError),
        ({"wrapped_key": "Aé"}, ValueError),
        ({"key_id": "k" * 2049}, ValueError),
        ({"key_id": ""}, ValueError),
        ({"key_version_id": "v" * 257}, ValueError),
        ({"content_type": "t" * 256}, ValueError),
        ({"content_type": "text/csv\n"}, ValueError),
        ({"content_type": "texté"}, ValueError),
        ({"plaintext_size": -1}, ValueError),
        ({"plaintext_size": 2**64 - 1}, ValueError),
        ({"encryption_context": {"": "empty key"}}, ValueError),
        ({"encryption_context": {"k": "v" * 65530}}, ValueError),
        ({"encryption_context": {"k": "v" * 65536}}, ValueError),
        ({"encryption_context": {"k" * 70000: ""}}, ValueError),
        ({"encryption_context": {f"k{i}": "" for i in range(1025)}}, ValueError),
        ({"key_id": 7}, TypeError),
        ({"encryption_context": {"k": 1}}, TypeError),
    ],
    ids=[
        "wrapped-key-4097",
        "wrapped-key-empty",
        "wrapped-key-not-ascii",
        "key-id-2049",
        "key-id-empty",
        "key-version-257",
        "content-type-256",
        "content-type-newline",
        "content-type-not-ascii",
        "size-negative",
        "size-unknown-marker",
        "context-empty-key",
        "context-over-64k",
        "context-value-over-u16",
        "context-key-over-u16",
        "context-1025-pairs",
        "key-id-not-str",
        "context-value-not-str",
    ],
)
def test_serialize_refuses_out_of_bounds_fields(
    change: dict[str, Any], error: type[Exception]
) -> None:
    """Every bound of FORMAT.md "Header" is enforced when writing, with TypeError/ValueError."""
    with pytest.raises(error):
        _header(**change)


def test_bounds_are_inclusive() -> None:
    """A field exactly at its bound is written and read back."""
    header = _header(
        wrapped_key="A" * 4096, key_id="k" * 2048, key_version_id="v" * 256, content_type="t" * 255
    )
    assert header == parse_header(header.raw)


def test_max_header_size_is_the_sum_of_the_bounds() -> None:
    """MAX_HEADER_SIZE = fixed fields + every variable field at its bound (FORMAT.md)."""
    fixed = 8 + 1 + 4 + 1 + 1 + 8 + 4 + 2 + 2 + 2 + 32
    assert fixed + 255 + 65536 + 2048 + 256 + 4096 == MAX_HEADER_SIZE


# -- what parse_header refuses -------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        _raw_header(context=_context((b"b", b"1"), (b"a", b"2"))),
        _raw_header(context=_context((b"a", b"1"), (b"a", b"2"))),
        _raw_header(context=_context((b"", b"1"))),
        _raw_header(context=_context((b"a", b"1")) + b"\x00"),
        _raw_header(context=_context((b"a", b"1"), count=2)),
        _raw_header(context=_context(*[(b"k%04d" % i, b"") for i in range(1025)])),
        _raw_header(context=_context((b"\xff", b"1"))),
        _raw_header(context=b""),
        _raw_header(context=_context(), wrapped_key=b"A" * 4097),
        _raw_header(context=_context(), wrapped_key=b""),
        _raw_header(context=_context(), wrapped_key="Aé".encode()),
        _raw_header(context=_context(), key_id=b""),
        _raw_header(context=_context(), key_id=b"\xc3"),
        _raw_header(context=_context(), content_type=b"text\x7f"),
        _raw_header(context=_context(), algorithm=0),
        _raw_header(context=_context(), algorithm=2),
        _raw_header(context=_context(), version=0),
        _raw_header(context=_context()) + b"\x00",
    ],
    ids=[
        "context-unsorted",
        "context-duplicate-key",
        "context-empty-key",
        "context-trailing-byte",
        "context-count-too-high",
        "context-1025-pairs",
        "context-key-not-utf8",
        "context-missing-count",
        "wrapped-key-4097",
        "wrapped-key-empty",
        "wrapped-key-not-ascii",
        "key-id-empty",
        "key-id-not-utf8",
        "content-type-not-printable",
        "algorithm-0",
        "algorithm-2",
        "version-0",
        "size-mismatch",
    ],
)
def test_parse_refuses_malformed_headers(raw: bytes) -> None:
    """A header that breaks any rule of FORMAT.md "Header" is a FormatError."""
    with pytest.raises(FormatError) as caught:
        parse_header(raw)
    assert FormatError is type(caught.value)


def test_parse_accepts_the_hand_written_layout() -> None:
    """The hand-written layout used above parses when nothing is wrong with it."""
    parsed = parse_header(_raw_header(context=_context((b"a", b"1"), (b"b", b"2"))))
    assert parsed.encryption_context == {"a": "1", "b": "2"}
    assert parsed.plaintext_size == 0


def test_context_size_over_bound_refused() -> None:
    """A declared context size over 64 KiB is refused before the context is read."""
    raw = bytearray(_raw_header(context=_context()))
    context_size_offset = 13 + 2 + len(b"text/csv") + 8
    raw[context_size_offset : context_size_offset + 4] = struct.pack(">I", 65537)
    with pytest.raises(FormatError, match="65537"):
        parse_header(bytes(raw))


# -- read_header ---------------------------------------------------------------------------


@pytest.mark.parametrize("declared", [MAX_HEADER_SIZE + 1, 2**32 - 1, 0, 12])
def test_declared_size_checked_before_reading_the_rest(declared: int) -> None:
    """An out-of-bounds header size is refused after reading 13 bytes, nothing more."""
    raw = bytearray(_header().raw)
    raw[9:13] = struct.pack(">I", declared)
    source = _ReadSpy(bytes(raw) + bytes(100_000))
    with pytest.raises(FormatError):
        read_header(source)
    assert sum(source.requested) == 13


@pytest.mark.parametrize("version", [0, 2, 255])
def test_unknown_version_refused(version: int) -> None:
    """Any version byte but 0x01 is a FormatError that says which version this reads."""
    raw = bytearray(_header().raw)
    raw[8] = version
    with pytest.raises(FormatError, match=f"version {version}"):
        read_header(io.BytesIO(bytes(raw)))


def test_not_a_kmsnb_file() -> None:
    """Other data is a FormatError, an empty file too; a magic prefix is a truncation."""
    with pytest.raises(FormatError, match="bad magic"):
        read_header(io.BytesIO(b"PAR1" + bytes(100)))
    with pytest.raises(FormatError, match="empty"):
        read_header(io.BytesIO(b""))
    with pytest.raises(TruncatedError):
        read_header(io.BytesIO(MAGIC[:3]))


def test_every_truncated_header_is_a_truncation() -> None:
    """A file cut anywhere inside its header (but not empty) raises TruncatedError."""
    raw = _header().raw
    for size in range(1, len(raw)):
        with pytest.raises(TruncatedError):
            read_header(io.BytesIO(raw[:size]))


def test_read_leaves_the_source_at_the_payload() -> None:
    """``read_header`` consumes exactly the header, even from a source of 1-byte reads."""
    header = _header()
    for source in (io.BytesIO(header.raw + b"payload"), _ReadSpy(header.raw + b"x", trickle=True)):
        assert header == read_header(source)
        assert header.size == source.tell()
