"""kill -9 during in-place rewraps: the file always decrypts, under the old key or the new.

A child process rewraps one file back and forth between two master keys as fast as it can
(every rewrap in place: one pwrite of the key slot, then fdatasync) and is killed at a
random moment; after each kill the file must be the same inode with the same bound
section and payload bytes, name one of the two keys, and decrypt. Run with ``-m crash``.
"""

from __future__ import annotations

import io
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import kmsnb
from kmsnb._format.header import read_header
from kmsnb.kms.local import LocalKms

pytestmark = [pytest.mark.crash]

ROUNDS = 20
SEED = 20261202
PLAINTEXT = random.Random(SEED).randbytes(300_000)

# Prints a line after every rewrap, so the parent knows it started and how far it got.
_REWRAP_FOREVER = """
import sys
from kmsnb.kms.local import LocalKms
from kmsnb.rewrap import rewrap_file
path, store, *keys = sys.argv[1:]
with LocalKms(store) as kms:
    for round in range(10**9):
        rewrap_file(path, keys[round % 2], kms=kms)
        print(round, flush=True)
"""


def test_kill_9_during_in_place_rewraps_leaves_a_file_that_decrypts(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    store, path = tmp_path / "store", tmp_path / "data.kms"
    with LocalKms(store) as kms:
        keys = [kms.create_key("one").key_id, kms.create_key("two").key_id]
        path.write_bytes(kmsnb.encrypt_bytes(PLAINTEXT, keys[0], kms=kms))
        first = path.read_bytes()
        header = read_header(io.BytesIO(first))
        inode = path.stat().st_ino
        rewraps = 0
        for _ in range(ROUNDS):
            child = subprocess.Popen(
                [sys.executable, "-c", _REWRAP_FOREVER, str(path), str(store), *keys],
                stdout=subprocess.PIPE,
                text=True,
            )
            assert child.stdout is not None
            # The first rewrap is done, so the kill lands among rewraps, not in the start-up.
            assert child.stdout.readline()
            time.sleep(rng.uniform(0, 0.05))
            child.send_signal(signal.SIGKILL)
            rewraps += 1 + len(child.stdout.read().splitlines())
            child.wait()
            assert child.returncode == -signal.SIGKILL

            found = path.read_bytes()
            assert path.stat().st_ino == inode
            assert found[: header.key_slot_offset] == first[: header.key_slot_offset]
            assert found[header.size :] == first[header.size :]
            assert kmsnb.inspect(path).key_id in keys
            assert kmsnb.decrypt_bytes(found, kms=kms) == PLAINTEXT
        assert sorted(os.listdir(tmp_path)) == ["data.kms", "store"]
    print(f"{ROUNDS} kills among {rewraps} in-place rewraps")
