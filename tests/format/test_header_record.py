"""``Header`` as a record: what the frozen dataclass it was gave, kept without dataclasses.

``kmsnb._record.FrozenRecord`` replaced ``@dataclass(frozen=True)`` (start-up, issue
16); these tests pin the behaviour callers relied on: immutability, equality over every
field but ``raw`` and ``bound``, a ``repr`` without the MAC or the bytes, copies and
pickles, and the two caches (payload context, key slot fields) agreeing with a fresh
computation.
"""

from __future__ import annotations

import copy
import hashlib
import pickle
from typing import Any

import pytest

from kmsnb._format.header import BoundSection, Header, parse_header, seal_header, serialize_header
from kmsnb._format.key_slot import slot_fields

pytestmark = [pytest.mark.unit]

DATA_KEY = bytes(range(32))
FIELDS: dict[str, Any] = {
    "key_id": "key-1",
    "key_version_id": "version-1",
    "wrapped_key": "d3JhcHBlZA==",
    "encryption_context": {"owner": "ana"},
    "content_type": "text/csv",
    "plaintext_size": 1234,
}


def _header() -> Header:
    return serialize_header(data_key=DATA_KEY, **FIELDS)


def _fields(header: Header) -> dict[str, Any]:
    return {name: getattr(header, name) for name in Header.__match_args__}


def test_header_is_immutable() -> None:
    """Assigning or deleting any attribute raises AttributeError, as a frozen dataclass did."""
    header = _header()
    with pytest.raises(AttributeError, match="cannot assign to field 'key_id'"):
        header.key_id = "other"  # type: ignore[misc]
    with pytest.raises(AttributeError, match="cannot delete field 'raw'"):
        del header.raw
    with pytest.raises(AttributeError):
        header.anything = 1  # type: ignore[attr-defined]
    assert header.key_id == "key-1"


def test_equality_ignores_raw_and_bound_only() -> None:
    """Headers are equal when every field but the bytes is; any field else tells them apart."""
    header = _header()
    same = Header(**{**_fields(header), "raw": b"", "bound": b""})
    assert header == same
    for name, value in [("key_id", "key-2"), ("slot_mac", bytes(32)), ("reserved_size", None)]:
        assert header != Header(**{**_fields(header), name: value})
    assert header != object()
    assert header.__eq__(object()) is NotImplemented


def test_hash_follows_the_compared_fields() -> None:
    """Like the dataclass: hashable when the fields are (a dict context is not)."""
    header = _header()
    with pytest.raises(TypeError, match="unhashable"):
        hash(header)
    frozen_context = Header(**{**_fields(header), "encryption_context": ()})  # type: ignore[arg-type]
    assert hash(frozen_context) == hash(Header(**_fields(frozen_context)))


def test_repr_shows_no_mac_and_no_bytes() -> None:
    """The repr names the fields, in the dataclass's form, without slot_mac, raw and bound."""
    header = _header()
    text = repr(header)
    assert text.startswith("Header(key_id='key-1', key_version_id='version-1', ")
    assert text.endswith("plaintext_size=1234, algorithm=1, reserved_size=256)")
    for hidden in ("slot_mac", "raw=", "bound=", header.slot_mac.hex()):
        assert hidden not in text


def test_copies_and_pickles_keep_every_field() -> None:
    """copy, deepcopy and pickle go through the constructor and keep raw and bound too."""
    header = _header()
    pickled = pickle.loads(pickle.dumps(header))  # noqa: S301 - bytes made here
    for clone in (copy.copy(header), copy.deepcopy(header), pickled):
        assert _fields(header) == _fields(clone)
        assert header.payload_context == clone.payload_context
        clone.verify_key_slot(DATA_KEY)


def test_caches_agree_with_a_fresh_computation() -> None:
    """The cached payload context and slot fields are what a header built by hand computes."""
    written = _header()
    parsed = parse_header(written.raw)
    by_hand = Header(**_fields(written))
    for header in (written, parsed, by_hand):
        assert hashlib.sha256(header.bound).digest() == header.payload_context
        assert slot_fields("key-1", "version-1", "d3JhcHBlZA==") == header.key_slot_fields
        header.verify_key_slot(DATA_KEY)


def test_seal_header_in_two_steps_is_serialize_header() -> None:
    """The bound section made before the KMS call, sealed after: the same bytes and fields."""
    bound = BoundSection(
        content_type="text/csv", encryption_context={"owner": "ana"}, plaintext_size=1234
    )
    sealed = seal_header(
        bound,
        data_key=DATA_KEY,
        key_id="key-1",
        key_version_id="version-1",
        wrapped_key="d3JhcHBlZA==",
    )
    header = _header()
    assert header.raw == sealed.raw
    assert header == sealed
    assert "<BoundSection of" in repr(bound)


def test_bound_section_keeps_its_own_context() -> None:
    """A context changed after the bound section was made does not reach the header."""
    context = {"owner": "ana"}
    bound = BoundSection(content_type="text/csv", encryption_context=context, plaintext_size=1)
    context["owner"] = "eve"
    sealed = seal_header(
        bound, data_key=DATA_KEY, key_id="key-1", key_version_id="v", wrapped_key="d3Jh"
    )
    assert parse_header(sealed.raw).encryption_context == {"owner": "ana"}
    assert sealed.encryption_context == {"owner": "ana"}
