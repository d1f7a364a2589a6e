"""kmsnb._record.FrozenRecord: the one immutable record above the KMS backends, in place of
``@dataclass(frozen=True)`` (start-up, issue 16). What callers relied on, for each record
that uses it besides the header (``tests/format/test_header_record.py``): construction by
position and keyword, immutability, equality and hashing over the compared fields, reprs
that show only what may be shown, copies and pickles, and ``match``."""

from __future__ import annotations

import copy
import pickle
from pathlib import Path

import pytest

from kmsnb._key_check import AllowedKeys
from kmsnb._record import FrozenRecord
from kmsnb.connection import KmsUri
from kmsnb.storage._location import Location

pytestmark = pytest.mark.unit

RECORDS: list[FrozenRecord] = [
    KmsUri("local", store_path=Path("keys/ks")),
    KmsUri("sdk", region_id="cn-hangzhou", endpoint="https://kms.cn-hangzhou.aliyuncs.com"),
    Location("s3://bucket/key", "s3", "s3", "bucket/key", {"profile": "secret-profile"}),
    AllowedKeys((("alias/a", "key-1"), ("key-2", "key-2"))),
]


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: type(r).__name__)
def test_a_record_is_frozen(record: FrozenRecord) -> None:
    field = record._FIELDS[0]
    with pytest.raises(AttributeError, match="cannot assign"):
        setattr(record, field, "other")
    with pytest.raises(AttributeError, match="cannot delete"):
        delattr(record, field)
    with pytest.raises(AttributeError):
        record.unknown = 1  # type: ignore[attr-defined]


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: type(r).__name__)
def test_copies_and_pickles_are_equal_records(record: FrozenRecord) -> None:
    for twin in (copy.copy(record), copy.deepcopy(record), pickle.loads(pickle.dumps(record))):  # noqa: S301 (our own bytes)
        assert twin == record
        assert type(twin) is type(record)


def test_equality_and_hashing_follow_the_fields() -> None:
    local = KmsUri("local", store_path=Path("keys/ks"))
    assert local == KmsUri("local", Path("keys/ks"))
    assert hash(local) == hash(KmsUri(kind="local", store_path=Path("keys/ks")))
    assert local != KmsUri("local", store_path=Path("keys/other"))
    assert {local, KmsUri("local", Path("keys/ks"))} == {local}
    keys = AllowedKeys((("alias/a", "key-1"),))
    assert keys == AllowedKeys((("alias/a", "key-1"),))
    assert keys != AllowedKeys((("alias/b", "key-1"),))
    assert keys != local  # another record type is never equal


def test_a_location_compares_its_options_and_never_shows_them() -> None:
    with_options = Location("s3://b/k", "s3", "s3", "b/k", {"profile": "secret-profile"})
    assert with_options != Location("s3://b/k", "s3", "s3", "b/k")
    assert Location("s3://b/k", "s3", "s3", "b/k").storage_options == {}
    assert repr(with_options) == ("Location(url='s3://b/k', kind='s3', protocol='s3', path='b/k')")
    assert "secret-profile" not in repr(with_options)
    with pytest.raises(TypeError):  # a dict among the fields, as with the dataclass
        hash(with_options)


def test_reprs_name_the_fields_in_order() -> None:
    assert repr(KmsUri("sdk", region_id="cn-hangzhou")) == (
        "KmsUri(kind='sdk', store_path=None, region_id='cn-hangzhou', endpoint=None)"
    )
    assert repr(AllowedKeys((("k", "k"),))) == "AllowedKeys(entries=(('k', 'k'),))"


def test_records_match_by_position_and_keyword() -> None:
    match KmsUri("sdk", region_id="cn-shanghai"):
        case KmsUri("sdk", None, region):
            assert region == "cn-shanghai"
        case _:
            pytest.fail("KmsUri did not match by position")
    match Location("memory://x", "memory", "memory", "x"):
        case Location(kind="memory", path=path):
            assert path == "x"
        case _:
            pytest.fail("Location did not match by keyword")
