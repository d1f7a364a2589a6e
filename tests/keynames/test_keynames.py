"""The one rule for naming a master key (issue 11): ids, ARNs and ``alias/NAME`` pass
unchanged; any other bare ``NAME`` means ``alias/NAME``."""

from __future__ import annotations

import pytest

from kmsnb._keynames import KEY_NAMING_HELP, is_alias, resolve_key_name

pytestmark = [pytest.mark.unit]

UNCHANGED = [
    "a5ef9f53-943b-4476-8a01-2c3d4e5f6a7b",  # UUID key id
    "A5EF9F53-943B-4476-8A01-2C3D4E5F6A7B",
    "key-hzz62f1cb6fmmvtqyb0pb",  # KMS 3.0 instance key id
    "key-0123456789abcdef",  # exactly 16 after key-
    "acs:kms:cn-hangzhou:123456789012:key/a5ef9f53-943b-4476-8a01-2c3d4e5f6a7b",
    "acs:kms:cn-hangzhou:123456789012:alias/sales",
    "alias/sales",
    "alias/Apollo/WorkKey",
    "alias/key-0123456789abcdef",  # an alias that looks like an id, written out
]


@pytest.mark.parametrize("name", UNCHANGED)
def test_ids_arns_and_aliases_pass_unchanged(name: str) -> None:
    assert name == resolve_key_name(name)


@pytest.mark.parametrize(
    ("name", "resolved"),
    [
        ("sales", "alias/sales"),
        ("Apollo/WorkKey", "alias/Apollo/WorkKey"),
        ("pii", "alias/pii"),
        ("key-short", "alias/key-short"),  # fewer than 16 after key-
        ("key-0123456789ABCDEF", "alias/key-0123456789ABCDEF"),  # ids are lowercase
        ("a5ef9f53-943b-4476-8a01", "alias/a5ef9f53-943b-4476-8a01"),  # not a whole UUID
        ("Alias/sales", "alias/Alias/sales"),  # the prefix is lowercase
    ],
)
def test_a_bare_name_means_an_alias(name: str, resolved: str) -> None:
    assert resolved == resolve_key_name(name)
    assert is_alias(name)


def test_resolving_twice_changes_nothing() -> None:
    for name in [*UNCHANGED, "sales", "Apollo/WorkKey"]:
        assert resolve_key_name(name) == resolve_key_name(resolve_key_name(name))


def test_key_ids_are_not_aliases() -> None:
    assert not is_alias("key-0123456789abcdef")
    assert not is_alias("a5ef9f53-943b-4476-8a01-2c3d4e5f6a7b")


def test_misuse_is_refused() -> None:
    with pytest.raises(TypeError, match="must be str"):
        resolve_key_name(b"sales")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="empty"):
        resolve_key_name("")
    with pytest.raises(ValueError, match="control character") as caught:
        resolve_key_name("sa\x1bles")
    assert "\x1b" not in str(caught.value)


def test_the_help_sentence_states_the_rule() -> None:
    assert "alias/NAME" in KEY_NAMING_HELP
    assert "bare NAME means alias/NAME" in KEY_NAMING_HELP
