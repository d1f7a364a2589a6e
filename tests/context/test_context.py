"""The encryption context rule module: type checks, ``KEY=VALUE`` parsing and the
mismatch message, which names keys and never values."""

from __future__ import annotations

from types import MappingProxyType

import pytest

from kmsnb._context import (
    check_context_matches,
    check_encryption_context,
    describe_context_mismatch,
    parse_context_pairs,
)
from kmsnb.errors import ContextMismatchError

pytestmark = [pytest.mark.unit]


def test_a_context_is_copied_into_a_plain_dict() -> None:
    original = MappingProxyType({"dataset": "payroll"})
    checked = check_encryption_context(original)
    assert checked == {"dataset": "payroll"}
    assert type(checked) is dict
    assert check_encryption_context(None) is None
    assert check_encryption_context({}) == {}


@pytest.mark.parametrize("value", [["a=b"], "a=b", {"a": 1}, {1: "a"}])
def test_not_a_mapping_of_str_is_a_type_error(value: object) -> None:
    with pytest.raises(TypeError, match="encryption_context"):
        check_encryption_context(value)


def test_control_characters_are_refused_without_showing_them() -> None:
    for context in ({"k\x1b": "v"}, {"k": "v\x07"}):
        with pytest.raises(ValueError, match="control character") as caught:
            check_encryption_context(context)
        assert "\x1b" not in str(caught.value)
        assert "\x07" not in str(caught.value)


def test_pairs_parse_and_the_first_equals_sign_separates() -> None:
    assert parse_context_pairs(["team=sales", "q=a=b"]) == {"team": "sales", "q": "a=b"}
    assert parse_context_pairs(["empty="]) == {"empty": ""}
    assert parse_context_pairs(None) is None
    assert parse_context_pairs([]) is None


@pytest.mark.parametrize("bad", ["novalue", "=value"])
def test_a_bad_pair_is_named(bad: str) -> None:
    with pytest.raises(ValueError, match="KEY=VALUE") as caught:
        parse_context_pairs(["ok=1", bad])
    assert repr(bad) in str(caught.value)


def test_a_repeated_key_is_refused() -> None:
    with pytest.raises(ValueError, match="'team' is given twice"):
        parse_context_pairs(["team=a", "team=b"])


def test_pairs_that_are_not_utf8_are_refused() -> None:
    with pytest.raises(ValueError, match="UTF-8"):
        parse_context_pairs(["k=\udcff"])  # how argv carries a byte that is not UTF-8


def test_one_string_is_not_a_list_of_pairs() -> None:
    with pytest.raises(TypeError, match="list"):
        parse_context_pairs("team=sales")


def test_the_mismatch_names_keys_never_values() -> None:
    expected = {"dataset": "payroll-2026", "region": "eu", "same": "x"}
    found = {"dataset": "payroll-2025", "owner": "hr-secret-team", "same": "x"}
    message = describe_context_mismatch(expected, found)
    assert "'dataset', 'owner', 'region'" in message
    for value in ("payroll-2026", "payroll-2025", "hr-secret-team", "eu"):
        assert value not in message
    assert "'same'" not in message


def test_check_context_matches() -> None:
    check_context_matches(None, {"a": "b"})  # None accepts the file's own
    check_context_matches({"a": "b"}, {"a": "b"})
    with pytest.raises(ContextMismatchError, match="'a'"):
        check_context_matches({"a": "b"}, {"a": "c"})
    with pytest.raises(ContextMismatchError, match="'a'"):
        check_context_matches({}, {"a": "b"})
