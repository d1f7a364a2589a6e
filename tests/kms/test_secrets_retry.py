"""AliyunKms's Secrets Manager calls under the retry policy of ``kmsnb.kms._retry``.

The emulator's fault injection plays the ambiguous failures (an answer later than the
client's read timeout, a connection dropped after the write was carried out). A secret
write retried after one is refused in a recognisable way (``Rejected.ResourceExist``,
``Rejected.ResourceInDeleteWindow``, ``Forbidden.ResourceNotFound``); the client must then
check whether the write it sent is the one that took effect, succeed if so, and never
report another writer's secret as its own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from kmsnb.emulator.faults import Fault, FaultConfig
from kmsnb.errors import KmsError, KmsUnavailableError

if TYPE_CHECKING:
    from conftest import RunningEmulator

pytestmark = pytest.mark.integration

READ_TIMEOUT_S = 0.4
LATE_S = 1.2  # an answer this late is past the client's read timeout


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The backoff waits of AliyunKms (not slept): one per retry."""
    recorded: list[float] = []
    monkeypatch.setattr("kmsnb.kms._retry.time.sleep", recorded.append)
    return recorded


def _flaky(
    start_emulator: Callable[..., RunningEmulator], *faults: Fault
) -> tuple[RunningEmulator, Any]:
    """A server whose first requests get ``faults``; an AliyunKms with a short timeout."""
    emulator = start_emulator(faults=FaultConfig(schedule=faults, slow_answer_s=LATE_S))
    kms = emulator.aliyun_kms(read_timeout_s=READ_TIMEOUT_S, backoff_base_s=0.001)
    return emulator, kms


def _stored(emulator: RunningEmulator, name: str) -> Any:
    emulator.server.stop()  # waits for requests still running on the server
    return emulator.service.store.snapshot().secrets.get(name)


@pytest.mark.parametrize("fault", [Fault.DROP_AFTER, Fault.SLOW_ANSWER])
def test_a_create_secret_whose_answer_was_lost_succeeds_once(
    start_emulator: Callable[..., RunningEmulator], waits: list[float], fault: Fault
) -> None:
    """The retry answers Rejected.ResourceExist; the version read back is ours."""
    emulator, kms = _flaky(start_emulator, fault)
    created = kms.create_secret("db/password", "hunter2", version_id="v1")
    assert (created.name, created.version_id) == ("db/password", "v1")
    assert len(waits) == 1  # sent twice: the second refused, then checked
    with kms.get_secret_value("db/password") as secret:
        assert secret.reveal() == "hunter2"
    stored = _stored(emulator, "db/password")
    assert list(stored.versions) == ["v1"]


def test_a_binary_create_secret_with_a_generated_version_is_reconciled(
    start_emulator: Callable[..., RunningEmulator], waits: list[float]
) -> None:
    emulator, kms = _flaky(start_emulator, Fault.DROP_AFTER)
    created = kms.create_secret("blob", b"\x00\xff binary")
    assert created.version_id  # the UUID the client made, which the check found
    assert list(_stored(emulator, "blob").versions) == [created.version_id]


def test_a_put_secret_value_whose_answer_was_lost_succeeds_with_its_stages(
    start_emulator: Callable[..., RunningEmulator], waits: list[float]
) -> None:
    emulator, kms = _flaky(start_emulator, Fault.NONE, Fault.DROP_AFTER)
    kms.create_secret("token", "old", version_id="v1")
    put = kms.put_secret_value("token", "new", version_id="v2")
    assert put.version_id == "v2"
    assert put.version_stages == ("ACSCurrent",)
    assert len(waits) == 1
    stored = _stored(emulator, "token")
    assert list(stored.versions) == ["v1", "v2"]
    assert stored.stages == {"ACSCurrent": "v2", "ACSPrevious": "v1"}


def test_a_secret_created_meanwhile_by_another_writer_is_still_refused(
    start_emulator: Callable[..., RunningEmulator], waits: list[float]
) -> None:
    """Dropped before it ran; by the retry another writer holds the name, with the same
    version id and another value: Rejected.ResourceExist, not a false success."""
    emulator, kms = _flaky(start_emulator, Fault.DROP)
    emulator.service.call(
        "CreateSecret", {"SecretName": "race", "SecretData": "theirs", "VersionId": "v1"}
    )
    with pytest.raises(KmsError) as caught:
        kms.create_secret("race", "mine", version_id="v1")
    assert caught.value.code == "Rejected.ResourceExist"
    assert len(waits) == 1
    with kms.get_secret_value("race") as secret:
        assert secret.reveal() == "theirs"


def test_an_existing_secret_is_refused_without_a_lost_answer(
    start_emulator: Callable[..., RunningEmulator], waits: list[float]
) -> None:
    """No uncertain try, no check: the refusal is the answer, even with the same value."""
    _emulator, kms = _flaky(start_emulator)
    kms.create_secret("twice", "same", version_id="v1")
    with pytest.raises(KmsError) as caught:
        kms.create_secret("twice", "same", version_id="v1")
    assert caught.value.code == "Rejected.ResourceExist"
    assert waits == []


def test_retried_deletions_and_restores_that_took_effect_succeed(
    start_emulator: Callable[..., RunningEmulator], waits: list[float]
) -> None:
    emulator, kms = _flaky(
        start_emulator,
        Fault.NONE,  # CreateSecret "windowed"
        Fault.NONE,  # CreateSecret "forced"
        Fault.DROP_AFTER,  # DeleteSecret with a window: done; the retry finds it pending
        Fault.DROP_AFTER,  # RestoreSecret: done; restoring again changes nothing
        Fault.DROP_AFTER,  # DeleteSecret forced: done; the retry finds no secret
    )
    kms.create_secret("windowed", "a")
    kms.create_secret("forced", "b")
    planned = kms.delete_secret("windowed", recovery_window_in_days=7)
    assert planned  # the planned date, read back by the check
    kms.restore_secret("windowed")
    assert kms.delete_secret("forced", force=True) is None
    assert len(waits) == 3
    assert [info.name for info in kms.list_secrets()] == ["windowed"]
    assert kms.describe_secret("windowed").planned_delete_time is None
    assert _stored(emulator, "forced") is None


def test_a_secret_read_answered_late_is_retried(
    start_emulator: Callable[..., RunningEmulator], waits: list[float]
) -> None:
    _emulator, kms = _flaky(start_emulator, Fault.NONE, Fault.SLOW_ANSWER, Fault.DROP_AFTER)
    kms.create_secret("read", "value")
    with kms.get_secret_value("read") as secret:
        assert secret.reveal() == "value"
    assert len(waits) == 2


def test_a_secret_write_whose_every_try_was_uncertain_has_an_unknown_outcome(
    start_emulator: Callable[..., RunningEmulator], waits: list[float]
) -> None:
    emulator, kms = _flaky(start_emulator, Fault.NONE, *[Fault.DROP_AFTER] * 4)
    kms.create_secret("unknown", "v1 value", version_id="v1")
    with pytest.raises(KmsUnavailableError) as caught:
        kms.put_secret_value("unknown", "v2 value", version_id="v2")
    assert caught.value.outcome_unknown is True
    assert "may or may not have carried out PutSecretValue" in str(caught.value)
    assert "kmsnb secret list" in str(caught.value)
    assert "v2 value" not in str(caught.value)
    assert len(waits) == 3
    assert list(_stored(emulator, "unknown").versions) == ["v1", "v2"]  # it did, once


def test_secret_reads_that_fail_are_never_unknown(
    start_emulator: Callable[..., RunningEmulator], waits: list[float]
) -> None:
    _emulator, kms = _flaky(start_emulator, *[Fault.DROP_AFTER] * 4)
    with pytest.raises(KmsUnavailableError) as caught:
        kms.list_secrets()
    assert caught.value.outcome_unknown is False
