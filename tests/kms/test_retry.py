"""AliyunKms retries only what is safe to repeat once a request may have reached the KMS.

The emulator's fault injection plays the ambiguous failures: an answer later than the
client's read timeout, a connection dropped after the request was carried out. A CreateKey
must then run at most once on the server, and the caller be told the outcome is unknown.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from kmsnb.emulator.faults import Fault, FaultConfig
from kmsnb.errors import KmsAccessDeniedError, KmsError, KmsUnavailableError
from kmsnb.kms._retry import sent_before_failing

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
    start_emulator: Callable[..., RunningEmulator], *faults: Fault, **config: Any
) -> tuple[RunningEmulator, Any]:
    """A server whose first requests get ``faults``; an AliyunKms with a short timeout."""
    emulator = start_emulator(faults=FaultConfig(schedule=faults, slow_answer_s=LATE_S, **config))
    kms = emulator.aliyun_kms(read_timeout_s=READ_TIMEOUT_S, backoff_base_s=0.001)
    return emulator, kms


def _key_count(emulator: RunningEmulator) -> int:
    emulator.server.stop()  # waits for requests still running on the server
    return len(emulator.service.store.snapshot().keys)


@pytest.mark.parametrize(
    ("faults", "config"),
    [
        ((Fault.SLOW_ANSWER,), {}),
        ((Fault.DROP_AFTER,), {}),
        ((), {"latency_s": LATE_S}),  # slow before carrying it out: it still runs, once
    ],
    ids=["answer-too-late", "dropped-after", "slow-server"],
)
def test_create_key_runs_once_and_the_caller_learns_the_outcome_is_unknown(
    start_emulator: Callable[..., RunningEmulator],
    waits: list[float],
    faults: tuple[Fault, ...],
    config: dict[str, float],
) -> None:
    emulator, kms = _flaky(start_emulator, *faults, **config)
    with pytest.raises(KmsUnavailableError) as caught:
        kms.create_key("once")
    assert caught.value.outcome_unknown is True
    assert "may or may not have carried out CreateKey" in str(caught.value)
    assert waits == []  # never sent again
    assert _key_count(emulator) == 1  # the server did it, exactly once


def test_a_create_key_dropped_before_it_ran_is_still_not_resent(
    start_emulator: Callable[..., RunningEmulator], waits: list[float]
) -> None:
    """The client cannot tell a drop before from a drop after: unknown, not retried."""
    emulator, kms = _flaky(start_emulator, Fault.DROP)
    with pytest.raises(KmsUnavailableError) as caught:
        kms.create_key()
    assert caught.value.outcome_unknown is True
    assert waits == []
    assert _key_count(emulator) == 0


def test_a_throttled_create_key_is_retried(
    start_emulator: Callable[..., RunningEmulator], waits: list[float]
) -> None:
    """Throttling is refused before the service acts: safe to send again."""
    emulator, kms = _flaky(start_emulator, Fault.THROTTLE, Fault.THROTTLE)
    assert kms.create_key().key_state == "Enabled"
    assert len(waits) == 2
    assert _key_count(emulator) == 1


def test_a_create_key_that_never_connected_is_retried_and_not_unknown(
    start_emulator: Callable[..., RunningEmulator], waits: list[float]
) -> None:
    emulator = start_emulator()
    with socket.socket() as probe:  # a port with nobody listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    kms = emulator.aliyun_kms(max_attempts=3, backoff_base_s=0.001)
    kms._client._endpoint = f"127.0.0.1:{port}"  # the same client, aimed at nothing
    with pytest.raises(KmsUnavailableError) as caught:
        kms.create_key()
    assert caught.value.outcome_unknown is False
    assert len(waits) == 2  # three tries: nothing was ever sent


def test_create_key_version_is_not_resent(
    start_emulator: Callable[..., RunningEmulator], waits: list[float]
) -> None:
    emulator, kms = _flaky(start_emulator, Fault.NONE, Fault.DROP_AFTER)
    key = kms.create_key()
    with pytest.raises(KmsUnavailableError) as caught:
        kms.create_key_version(key.key_id)
    assert caught.value.outcome_unknown is True
    assert waits == []
    emulator.server.stop()
    assert len(emulator.service.store.snapshot().keys[key.key_id].version_ids) == 2


def test_a_retried_create_alias_that_took_effect_succeeds(
    start_emulator: Callable[..., RunningEmulator], waits: list[float]
) -> None:
    _emulator, kms = _flaky(start_emulator, Fault.NONE, Fault.DROP_AFTER)
    key = kms.create_key()
    kms.create_alias("alias/retried", key.key_id)  # the retry answers AliasAlreadyExists
    assert len(waits) == 1
    assert [(a.alias_name, a.key_id) for a in kms.list_aliases()] == [("alias/retried", key.key_id)]


def test_a_create_alias_answered_late_is_checked_and_succeeds(
    start_emulator: Callable[..., RunningEmulator], waits: list[float]
) -> None:
    _emulator, kms = _flaky(start_emulator, Fault.NONE, Fault.SLOW_ANSWER)
    key = kms.create_key()
    kms.create_alias("alias/late", key.key_id)
    assert kms.describe_key("alias/late").key_id == key.key_id


def test_an_alias_taken_by_another_key_is_still_refused(
    start_emulator: Callable[..., RunningEmulator], waits: list[float]
) -> None:
    _emulator, kms = _flaky(start_emulator)
    mine, theirs = kms.create_key(), kms.create_key()
    kms.create_alias("alias/taken", theirs.key_id)
    with pytest.raises(KmsError) as caught:
        kms.create_alias("alias/taken", mine.key_id)
    assert caught.value.code == "AliasAlreadyExists"


def test_an_alias_taken_meanwhile_by_another_key_is_refused_after_an_uncertain_try(
    start_emulator: Callable[..., RunningEmulator], waits: list[float]
) -> None:
    """Dropped before it ran; by the retry the alias names another key: no false success."""
    emulator, kms = _flaky(start_emulator, Fault.NONE, Fault.NONE, Fault.DROP)
    mine, theirs = kms.create_key(), kms.create_key()
    emulator.service.call("CreateAlias", {"AliasName": "alias/race", "KeyId": theirs.key_id})
    with pytest.raises(KmsError) as caught:
        kms.create_alias("alias/race", mine.key_id)
    assert caught.value.code == "AliasAlreadyExists"


def test_retried_delete_alias_and_deletion_changes_that_took_effect_succeed(
    start_emulator: Callable[..., RunningEmulator], waits: list[float]
) -> None:
    _emulator, kms = _flaky(
        start_emulator,
        Fault.NONE,  # CreateKey
        Fault.NONE,  # CreateAlias
        Fault.DROP_AFTER,  # DeleteAlias: done, no answer; the retry finds no alias
        Fault.DROP_AFTER,  # ScheduleKeyDeletion: done; the retry finds PendingDeletion
        Fault.DROP_AFTER,  # CancelKeyDeletion: done; the retry finds it Enabled
    )
    key = kms.create_key()
    kms.create_alias("alias/gone", key.key_id)
    kms.delete_alias("alias/gone")
    assert kms.list_aliases() == []
    kms.schedule_key_deletion(key.key_id, 7)
    assert kms.describe_key(key.key_id).key_state == "PendingDeletion"
    kms.cancel_key_deletion(key.key_id)
    assert kms.describe_key(key.key_id).key_state == "Enabled"
    assert len(waits) == 3


def test_idempotent_calls_are_retried_after_a_late_answer(
    start_emulator: Callable[..., RunningEmulator], waits: list[float]
) -> None:
    _emulator, kms = _flaky(start_emulator, Fault.NONE, Fault.SLOW_ANSWER, Fault.DROP_AFTER)
    key = kms.create_key()
    with kms.generate_data_key(key.key_id, {"a": "b"}) as data_key:
        assert data_key.plaintext
    assert len(waits) == 2


def test_a_write_whose_every_try_was_uncertain_has_an_unknown_outcome(
    start_emulator: Callable[..., RunningEmulator], waits: list[float]
) -> None:
    _emulator, kms = _flaky(start_emulator, Fault.NONE, *[Fault.DROP_AFTER] * 4)
    key = kms.create_key()
    with pytest.raises(KmsUnavailableError) as caught:
        kms.disable_key(key.key_id)
    assert caught.value.outcome_unknown is True
    assert len(waits) == 3


def test_reads_that_fail_are_never_unknown(
    start_emulator: Callable[..., RunningEmulator], waits: list[float]
) -> None:
    _emulator, kms = _flaky(start_emulator, *[Fault.DROP_AFTER] * 4)
    with pytest.raises(KmsUnavailableError) as caught:
        kms.list_aliases()
    assert caught.value.outcome_unknown is False


def test_refusals_are_neither_retried_nor_unknown(
    start_emulator: Callable[..., RunningEmulator], waits: list[float]
) -> None:
    _emulator, kms = _flaky(start_emulator)
    with pytest.raises(KmsAccessDeniedError):
        kms.create_key_version("alias/none")
    assert waits == []


@pytest.mark.unit
def test_the_outcome_unknown_attribute_defaults_to_false() -> None:
    assert KmsUnavailableError("throttled").outcome_unknown is False
    assert KmsUnavailableError("lost", outcome_unknown=True).outcome_unknown is True


class _Unsent(Exception):
    pass


@pytest.mark.unit
def test_a_connection_failure_anywhere_in_the_chain_means_nothing_was_sent() -> None:
    inner = _Unsent("refused")
    wrapped = RuntimeError("max retries", inner)  # urllib3 passes its reason as an argument
    outer = OSError("RetryError")
    outer.__context__ = wrapped
    sdk_error = RuntimeError("UnretryableException")
    sdk_error.inner_exception = outer  # type: ignore[attr-defined]
    assert sent_before_failing(sdk_error, (_Unsent,)) is False
    assert sent_before_failing(TimeoutError("read timed out"), (_Unsent,)) is True
    looped = RuntimeError("a cycle")
    looped.__context__ = RuntimeError("back", looped)
    assert sent_before_failing(looped, (_Unsent,)) is True
