"""``kmsnb.keys`` (issue 11): the alias is checked before a key is created, so a taken
alias creates nothing; every key argument follows the naming rule; records render."""

from __future__ import annotations

from pathlib import Path

import pytest

import kmsnb
from kmsnb.errors import AliasExistsError, KmsAccessDeniedError, KmsError
from kmsnb.kms.local import LocalKms

pytestmark = [pytest.mark.unit]


def test_a_taken_alias_creates_no_key(local_kms: LocalKms, sales_key: str) -> None:
    before = {info.key_id for info in local_kms.list_keys()}
    with pytest.raises(ValueError, match="alias/sales exists") as caught:
        kmsnb.keys.create_key(alias="sales", kms=local_kms)
    assert sales_key in str(caught.value)
    assert "no key was created" in str(caught.value)
    assert before == {info.key_id for info in local_kms.list_keys()}


def test_create_key_with_a_bare_alias(local_kms: LocalKms) -> None:
    record = kmsnb.keys.create_key(alias="Apollo/WorkKey", description="work", kms=local_kms)
    assert record.aliases == ("alias/Apollo/WorkKey",)
    assert local_kms.describe_key("alias/Apollo/WorkKey").key_id == record.key_id
    assert record.description == "work"


def test_an_alias_that_looks_like_a_key_id_must_be_written_out(local_kms: LocalKms) -> None:
    with pytest.raises(ValueError, match="alias/NAME"):
        kmsnb.keys.create_key(alias="key-0123456789abcdef", kms=local_kms)
    assert local_kms.list_keys() == []
    record = kmsnb.keys.create_key(alias="alias/key-0123456789abcdef", kms=local_kms)
    assert record.aliases == ("alias/key-0123456789abcdef",)


class _RacingKms:
    """Someone else takes the alias between the check and CreateAlias."""

    def __init__(self, inner: LocalKms) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)

    def create_alias(self, alias_name: str, key_id: str) -> None:
        other = self._inner.create_key("someone else").key_id
        self._inner.create_alias(alias_name, other)
        self._inner.create_alias(alias_name, key_id)  # refused: it exists now


def test_losing_a_race_for_the_alias_schedules_the_new_key_for_deletion(
    local_kms: LocalKms,
) -> None:
    racing = _RacingKms(local_kms)
    with pytest.raises(KmsError, match="scheduled for deletion"):
        kmsnb.keys.create_key(alias="contested", kms=racing)  # type: ignore[arg-type]
    states = sorted(info.key_state for info in local_kms.list_keys())
    assert states == ["Enabled", "PendingDeletion"]


def test_describe_list_and_aliases(local_kms: LocalKms, sales_key: str) -> None:
    described = kmsnb.keys.describe("sales", kms=local_kms)
    assert described.key_id == sales_key
    assert described.aliases == ("alias/sales",)
    assert described.versions is not None
    assert len(described.versions) == 1
    listed = kmsnb.keys.list_keys(kms=local_kms)
    assert [record.key_id for record in listed] == [sales_key]
    assert listed[0].aliases == ("alias/sales",)
    aliases = kmsnb.keys.list_aliases(kms=local_kms)
    assert [(a.alias_name, a.key_id) for a in aliases] == [("alias/sales", sales_key)]
    assert len(kmsnb.keys.list_aliases(key="sales", kms=local_kms)) == 1


def test_point_alias_creates_and_moves(local_kms: LocalKms, sales_key: str) -> None:
    other = local_kms.create_key("other").key_id
    assert kmsnb.keys.point_alias("reports", other, kms=local_kms).key_id == other
    moved = kmsnb.keys.point_alias("sales", other, kms=local_kms)
    assert moved.alias_name == "alias/sales"
    assert local_kms.describe_key("alias/sales").key_id == other


def test_state_changes_take_bare_aliases(local_kms: LocalKms, sales_key: str) -> None:
    assert kmsnb.keys.disable("sales", kms=local_kms).state == "Disabled"
    assert kmsnb.keys.enable("sales", kms=local_kms).state == "Enabled"
    rotated = kmsnb.keys.rotate("sales", kms=local_kms)
    assert rotated.key_id == sales_key
    assert local_kms.describe_key(sales_key).primary_key_version == rotated.key_version_id
    scheduled = kmsnb.keys.schedule_deletion("sales", days=7, kms=local_kms)
    assert scheduled.state == "PendingDeletion"
    assert kmsnb.keys.cancel_deletion("sales", kms=local_kms).state == "Enabled"


def test_schedule_deletion_checks_days_first(local_kms: LocalKms, sales_key: str) -> None:
    for days in (6, 367):
        with pytest.raises(ValueError, match="7 to 366"):
            kmsnb.keys.schedule_deletion("sales", days=days, kms=local_kms)
    assert local_kms.describe_key(sales_key).key_state == "Enabled"


def test_an_unknown_bare_alias_is_the_kms_refusal(local_kms: LocalKms) -> None:
    with pytest.raises(KmsAccessDeniedError):
        kmsnb.keys.describe("missing", kms=local_kms)


def test_kms_may_be_a_uri(tmp_path: Path) -> None:
    uri = f"local:{tmp_path / 'by-uri'}"
    created = kmsnb.keys.create_key(alias="u", kms=uri)
    assert kmsnb.keys.describe("u", kms=uri).key_id == created.key_id


def test_records_render_as_text_and_html(local_kms: LocalKms, sales_key: str) -> None:
    listed = kmsnb.keys.list_keys(kms=local_kms)
    text = str(listed)
    assert text.startswith("keys (1)")
    assert sales_key in text
    assert "alias/sales" in text
    html = listed._repr_html_()
    assert "<table" in html
    assert "alias/sales" in html
    described = kmsnb.keys.describe("sales", kms=local_kms)
    assert "primary version" in str(described)
    assert "<td" in described._repr_html_()
    assert str(kmsnb.keys.list_aliases(kms=local_kms)).startswith("aliases (1)")


def test_a_description_with_markup_is_escaped(local_kms: LocalKms) -> None:
    record = kmsnb.keys.create_key(description="<b>x</b>\x1b[2J", kms=local_kms)
    assert "<b>x</b>" not in record._repr_html_()
    assert "\x1b" not in str(record)


def test_a_taken_alias_is_an_alias_exists_error_that_says_what_to_do(
    local_kms: LocalKms, sales_key: str
) -> None:
    with pytest.raises(AliasExistsError) as caught:
        kmsnb.keys.create_key(alias="sales", kms=local_kms)
    error = caught.value
    assert isinstance(error, ValueError)  # what create_key raised for it before
    assert (error.alias_name, error.key_id) == ("alias/sales", sales_key)
    assert str(error).endswith("kmsnb.keys.point_alias('alias/sales', KEY)")


def test_create_alias_refuses_a_taken_one_and_moves_nothing(
    local_kms: LocalKms, sales_key: str
) -> None:
    other = local_kms.create_key("other").key_id
    with pytest.raises(AliasExistsError, match="it was not moved"):
        kmsnb.keys.create_alias("sales", other, kms=local_kms)
    assert local_kms.describe_key("alias/sales").key_id == sales_key
    made = kmsnb.keys.create_alias("reports", other, kms=local_kms)
    assert (made.alias_name, made.key_id) == ("alias/reports", other)
    assert local_kms.describe_key("alias/reports").key_id == other


def test_update_alias_moves_an_existing_one_only(local_kms: LocalKms, sales_key: str) -> None:
    other = local_kms.create_key("other").key_id
    assert kmsnb.keys.update_alias("sales", other, kms=local_kms).key_id == other
    assert local_kms.describe_key("alias/sales").key_id == other
    with pytest.raises(KmsAccessDeniedError) as caught:
        kmsnb.keys.update_alias("nowhere", other, kms=local_kms)
    assert caught.value.code == "Forbidden.AliasNotFound"


def test_delete_alias_keeps_the_key(local_kms: LocalKms, sales_key: str) -> None:
    assert kmsnb.keys.delete_alias("sales", kms=local_kms) == "alias/sales"
    assert list(kmsnb.keys.list_aliases(kms=local_kms)) == []
    assert local_kms.describe_key(sales_key).key_state == "Enabled"
    with pytest.raises(KmsAccessDeniedError):
        kmsnb.keys.delete_alias("sales", kms=local_kms)
    with pytest.raises(ValueError, match="alias/NAME"):
        kmsnb.keys.delete_alias("key-0123456789abcdef", kms=local_kms)
