"""Fault injection, and clients riding it out: the server's faults as the SDKs see them, and
AliyunKms's bounded retries."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from kmsnb.emulator.faults import Fault, FaultConfig, FaultInjector
from kmsnb.errors import KmsAccessDeniedError, KmsUnavailableError

if TYPE_CHECKING:
    from conftest import RunningEmulator


# --- the injector --------------------------------------------------------------------------------


@pytest.mark.unit
@pytest.mark.parametrize(
    "options",
    [
        {"latency_s": -1.0},
        {"latency_jitter_s": -0.1},
        {"throttle_rate": -0.1},
        {"throttle_rate": 0.6, "server_error_rate": 0.3, "drop_rate": 0.2},
    ],
)
def test_config_rejects_impossible_values(options: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must"):
        FaultConfig(**options)  # type: ignore[arg-type]


@pytest.mark.unit
def test_off_by_default() -> None:
    assert not FaultConfig().enabled
    assert FaultConfig(drop_rate=0.1).enabled
    assert {FaultInjector(FaultConfig()).draw() for _ in range(100)} == {(0.0, Fault.NONE)}


@pytest.mark.unit
def test_seeded_draws_are_reproducible_and_follow_the_rates() -> None:
    config = FaultConfig(
        throttle_rate=0.2, server_error_rate=0.2, drop_rate=0.1, latency_jitter_s=0.5, seed=7
    )
    injector, again = FaultInjector(config), FaultInjector(config)
    sequence = [injector.draw() for _ in range(10_000)]
    assert sequence == [again.draw() for _ in range(10_000)]

    counts = Counter(fault for _, fault in sequence)
    assert counts[Fault.THROTTLE] == pytest.approx(2000, rel=0.1)
    assert counts[Fault.UNAVAILABLE] + counts[Fault.INTERNAL] == pytest.approx(2000, rel=0.1)
    assert counts[Fault.UNAVAILABLE] == pytest.approx(counts[Fault.INTERNAL], rel=0.15)
    assert counts[Fault.DROP] == pytest.approx(1000, rel=0.15)
    assert all(0 <= delay <= 0.5 for delay, _ in sequence)


# --- faults as the SDKs see them -----------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize(
    ("config", "codes", "http_status"),
    [
        (FaultConfig(throttle_rate=1), {"Rejected.Throttling"}, {429}),
        (
            FaultConfig(server_error_rate=1, seed=3),
            {"ServiceUnavailableTemporary", "InternalFailure"},
            {500, 503},
        ),
    ],
    ids=["throttle", "5xx"],
)
def test_fault_responses_reach_the_new_sdk(
    start_emulator: Callable[..., RunningEmulator],
    config: FaultConfig,
    codes: set[str],
    http_status: set[int],
) -> None:
    from alibabacloud_kms20160120 import models
    from alibabacloud_tea_openapi.exceptions import AlibabaCloudException

    client = start_emulator(faults=config).new_sdk()
    seen_codes, seen_statuses = set(), set()
    for _ in range(12):
        with pytest.raises(AlibabaCloudException) as caught:
            client.list_keys(models.ListKeysRequest())
        seen_codes.add(caught.value.code)
        seen_statuses.add(caught.value.status_code)
    assert (seen_codes, seen_statuses) == (codes, http_status)


@pytest.mark.integration
def test_dropped_connection_is_a_transport_error(
    start_emulator: Callable[..., RunningEmulator],
) -> None:
    from aliyunsdkcore.acs_exception.exceptions import ClientException

    old = start_emulator(faults=FaultConfig(drop_rate=1)).sdk("old-sdk")
    with pytest.raises(ClientException) as caught:
        old.call("ListKeys")
    assert caught.value.get_error_code() == "SDK.HttpError"


@pytest.mark.integration
def test_added_latency(start_emulator: Callable[..., RunningEmulator]) -> None:
    sdk = start_emulator(faults=FaultConfig(latency_s=0.2)).sdk("acs3")
    started = time.perf_counter()
    sdk.call("ListKeys")
    assert time.perf_counter() - started >= 0.2


# --- AliyunKms's retries -------------------------------------------------------------------------


def _count_backoffs(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    waits: list[float] = []
    monkeypatch.setattr("kmsnb.kms._retry.time.sleep", waits.append)
    return waits


@pytest.mark.integration
def test_calls_succeed_within_the_retry_budget(
    start_emulator: Callable[..., RunningEmulator], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two requests in five fail (throttled, 5xx, dropped); every call still succeeds."""
    plain = start_emulator()
    key_id = plain.aliyun_kms().create_key().key_id
    faults = FaultConfig(throttle_rate=0.15, server_error_rate=0.15, drop_rate=0.1, seed=11)
    flaky = start_emulator(faults=faults, service=plain.service)
    waits = _count_backoffs(monkeypatch)
    kms = flaky.aliyun_kms(max_attempts=12, backoff_base_s=0.001)
    for number in range(40):
        context = {"n": str(number)}
        with kms.generate_data_key(key_id, context) as data_key:
            unwrapped = kms.decrypt_data_key(data_key.ciphertext_blob, context)
            assert unwrapped.plaintext == data_key.plaintext
    assert waits  # faults happened and were retried
    assert max(waits) <= 12 * 0.001 * 2**11


@pytest.mark.integration
def test_retries_are_bounded_and_end_in_kms_unavailable(
    start_emulator: Callable[..., RunningEmulator], monkeypatch: pytest.MonkeyPatch
) -> None:
    waits = _count_backoffs(monkeypatch)
    kms = start_emulator(faults=FaultConfig(throttle_rate=1)).aliyun_kms(max_attempts=3)
    with pytest.raises(KmsUnavailableError) as caught:
        kms.create_key()
    assert (caught.value.code, caught.value.http_status) == ("Rejected.Throttling", 429)
    assert caught.value.request_id
    assert len(waits) == 2  # three attempts
    # Full jitter: each wait is drawn below an exponentially growing bound.
    assert 0 <= waits[0] <= 0.1
    assert 0 <= waits[1] <= 0.2


@pytest.mark.integration
def test_dropped_connections_end_in_kms_unavailable_without_the_query(
    start_emulator: Callable[..., RunningEmulator], monkeypatch: pytest.MonkeyPatch
) -> None:
    _count_backoffs(monkeypatch)
    kms = start_emulator(faults=FaultConfig(drop_rate=1)).aliyun_kms(max_attempts=2)
    with pytest.raises(KmsUnavailableError) as caught:
        kms.generate_data_key("alias/k", {"project": "context-secret"})
    assert caught.value.code is None
    assert "context-secret" not in str(caught.value)
    assert caught.value.__cause__ is None


@pytest.mark.integration
def test_refusals_are_not_retried(
    emulator: RunningEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    waits = _count_backoffs(monkeypatch)
    with pytest.raises(KmsAccessDeniedError):
        emulator.aliyun_kms().describe_key("alias/none")
    assert waits == []
