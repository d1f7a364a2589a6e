"""Killing a writer of kmsnb.storage mid-upload to an S3 server (moto on 127.0.0.1): kill -9
at random moments, over many rounds, creating and overwriting.

After every round the object is absent (a create) or the old one (an overwrite), or the
new one whole: never a partial object, and an old one is never lost. A killed upload may
leave an incomplete multipart upload, which no reader sees; the next write to the key
still succeeds."""

from __future__ import annotations

import random
import signal
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from s3_server import moto_server, server_environment

from kmsnb.storage import MIN_PART_SIZE

from ._storage_writer import payload
from .conftest import ROUNDS, KillDelays, Tally, Zygote

pytestmark = [pytest.mark.crash, pytest.mark.slow]

PART = MIN_PART_SIZE
SIZE = 2 * PART + 300_000  # two whole parts and a short last one
PARTS = SIZE // PART


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture(scope="module")
def writers() -> Iterator[Zygote]:
    """Forks the writers from a process that has imported s3fs (botocore takes a second)."""
    forks = Zygote(server_environment(), preload=["s3fs", "_storage_writer"])
    yield forks
    forks.close()


@pytest.fixture
def s3(endpoint: str) -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )


def _object(s3: Any, bucket: str, key: str) -> bytes | None:
    try:
        data: bytes = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except s3.exceptions.NoSuchKey:
        return None
    return data


def _request(endpoint: str, url: str, seed: int, mode: str) -> dict[str, Any]:
    arguments = {"url": url, "endpoint": endpoint, "seed": seed, "size": SIZE}
    return {"kind": "storage", "args": {**arguments, "part_size": PART, "mode": mode}}


def _write_and_kill(
    writers: Zygote, endpoint: str, url: str, seed: int, mode: str, rng: random.Random,
    delays: KillDelays,
) -> tuple[bool, int]:  # fmt: skip
    """Run one writer; kill -9 it after a random number of parts plus a random delay
    (inside a part's upload, or at the commit), which shrinks when a writer completes.

    Returns whether it was killed, and its exit status."""
    request = _request(endpoint, url, seed, mode)
    request["kill_after_lines"] = rng.randint(0, PARTS)  # 0: while it starts
    request["kill_after_s"] = delays.next()
    request["signal"] = signal.SIGKILL
    reply = writers.run(request)
    delays.record(completed=not reply["killed"])
    return reply["killed"], reply["exit"]


def _check(found: bytes | None, old: bytes | None, new: bytes, tally: Tally) -> None:
    if found is None:
        tally.data_lost += old is not None
    elif found not in (old, new):
        tally.outputs_invalid += 1


@pytest.mark.parametrize("mode", ["create", "overwrite"])
def test_a_killed_upload_leaves_no_partial_object(
    writers: Zygote, endpoint: str, s3: Any, tally: Tally, rng: random.Random, mode: str
) -> None:
    """Each round has its own key: a kill right after the commit was sent may let the
    server complete the upload a moment later, which must not disturb the next round."""
    bucket = f"kmsnb-crash-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    expected: dict[str, tuple[bytes | None, bytes]] = {}
    delays = KillDelays(rng, [0.35])  # from 0 to 0.4 s at first
    for round_index in range(ROUNDS):
        key = f"data-{round_index}.kms"
        old = None
        if mode == "overwrite":
            old = payload(10_000 + round_index, PART // 2)
            s3.put_object(Bucket=bucket, Key=key, Body=old)
        new = payload(round_index, SIZE)
        expected[key] = (old, new)
        url = f"s3://{bucket}/{key}"
        killed, status = _write_and_kill(writers, endpoint, url, round_index, mode, rng, delays)
        tally.rounds += 1
        tally.killed += killed
        found = _object(s3, bucket, key)
        if not killed:
            assert status == 0, f"round {round_index}: the writer failed ({status})"
            tally.completed += 1
            tally.outputs_invalid += found != new
        else:
            _check(found, old, new, tally)
    for key, (old, new) in expected.items():  # and after any late completions
        _check(_object(s3, bucket, key), old, new, tally)
    assert tally.problems() == {}
    assert tally.killed >= ROUNDS // 2, f"only {tally.killed} of {ROUNDS} rounds were killed"
    # What the kills left (incomplete uploads) does not stop the next write to a key.
    key = "data-0.kms"
    assert writers.run(_request(endpoint, f"s3://{bucket}/{key}", 99, "overwrite"))["exit"] == 0
    assert _object(s3, bucket, key) == payload(99, SIZE)
