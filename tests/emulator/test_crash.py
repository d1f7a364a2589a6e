"""Crash safety: ``kill -9`` a writer at random moments; no acknowledged change is lost."""

from __future__ import annotations

import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kmsnb.emulator import KeyStore, KmsService, Limits

pytestmark = pytest.mark.slow

ROUNDS = 20
LIMITS = Limits(keys=100_000, aliases=100_000, versions=100_000)

# Prints a line for each change once the call that made it has returned ("acknowledged").
WRITER = """
import sys
from kmsnb.emulator import KeyStore, KmsService, Limits
service = KmsService(KeyStore(sys.argv[1]), limits=Limits(100_000, 100_000, 100_000))
round_number = sys.argv[2]
for index in range(1_000_000):
    key_id = service.call("CreateKey", {})["KeyMetadata"]["KeyId"]
    print("key", key_id, flush=True)
    if index % 3 == 0:
        alias_name = f"alias/r{round_number}-{index}"
        service.call("CreateAlias", {"AliasName": alias_name, "KeyId": key_id})
        print("alias", alias_name, key_id, flush=True)
"""


def acknowledged_lines(output: bytes) -> list[list[str]]:
    """Complete lines only: a line cut by the kill was not acknowledged."""
    return [line.split() for line in output.decode().split("\n")[:-1]]


def test_kill_nine_loses_no_acknowledged_change(tmp_path: Path) -> None:
    store_dir = tmp_path / "store"
    keys: set[str] = set()
    aliases: dict[str, str] = {}
    rng = random.Random(20261128)
    for round_number in range(ROUNDS):
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(store_dir), str(round_number)],
            stdout=subprocess.PIPE,
        )
        assert writer.stdout is not None
        first_line = writer.stdout.readline()  # the writer is up and writing
        time.sleep(rng.uniform(0.0, 0.2))
        writer.kill()
        output = first_line + writer.stdout.read()
        writer.wait()

        new_keys = []
        for fields in acknowledged_lines(output):
            if fields[0] == "key":
                new_keys.append(fields[1])
            else:
                aliases[fields[1]] = fields[2]
        keys.update(new_keys)

        store = KeyStore(store_dir)
        state = store.snapshot()
        assert keys <= set(state.keys), f"round {round_number}: lost keys"
        assert aliases.items() <= state.aliases.items(), f"round {round_number}: lost aliases"
        assert list(store_dir.glob(".*.tmp")) == [], "orphan temp files survive reopening"
        service = KmsService(store, limits=LIMITS)
        for key_id in new_keys:
            body = service.call("GenerateDataKey", {"KeyId": key_id})
            opened = service.call("Decrypt", {"CiphertextBlob": body["CiphertextBlob"]})
            assert body["Plaintext"] == opened["Plaintext"]
        store.close()
    assert len(keys) > ROUNDS  # the writers did get work done between kills
