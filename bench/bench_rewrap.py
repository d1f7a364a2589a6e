"""``kmsnb.rewrap.rewrap_file`` in place against the copy it replaces, in the same run.

One encrypted file per case (default 256 MiB of plaintext, under the local emulator in a
temporary keystore), rewrapped back and forth between two master keys, the cases
interleaved in a shuffled order each round (seeded), median of the rounds:

* ``in_place``: what ``rewrap_file`` does for a file kmsnb wrote: the key slot fits its
  room, so one ``pwrite`` of the slot and ``fdatasync``;
* ``copy``: the same call with the in-place path refused (``_in_one_block`` made to say
  no, as for a slot across a block boundary), so the payload is copied into a new,
  fsynced file that replaces the old one: what every rewrap did before.

Both include the KMS calls (Decrypt, ReEncrypt in the emulator, in process). It prints the
times, the same-round ratio copy ÷ in place, and checks that each file still decrypts to
its plaintext's digest. A report: it exits 0 whatever the numbers, non-zero on errors.

Usage::

    .venv/bin/python bench/bench_rewrap.py                    # 256 MiB, 5 rounds
    .venv/bin/python bench/bench_rewrap.py --size 1G --rounds 3
    .venv/bin/python bench/bench_rewrap.py --quick            # 16 MiB, 3 rounds

Files go to a temporary folder under ``bench/out/`` (git-ignored) or ``--dir``, removed at
the end.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

from _common import format_size, median, paired_ratios, parse_size, print_table, spread

import kmsnb
import kmsnb.rewrap
from kmsnb.kms.local import LocalKms

CASES = ("in_place", "copy")


def _encrypt(path: Path, size: int, kms: LocalKms, key_id: str) -> str:
    """Encrypt ``size`` seeded random bytes into ``path``; return their SHA-256."""
    generator, digest = random.Random(size), hashlib.sha256()
    with open(path, "wb") as output:
        with kmsnb.open_encrypt(output, key_id, kms=kms, plaintext_size=size) as sink:
            for start in range(0, size, 1 << 20):
                block = generator.randbytes(min(1 << 20, size - start))
                digest.update(block)
                sink.write(block)
        # On disk before the clock starts: the first in-place rewrap's fdatasync would
        # otherwise write back the whole fresh file.
        os.fsync(output.fileno())
    return digest.hexdigest()


def _rewrap(path: Path, key_id: str, kms: LocalKms, *, copy: bool) -> float:
    refused = mock.patch.object(kmsnb.rewrap, "_in_one_block", return_value=False)
    with refused if copy else contextlib.nullcontext():
        start = time.perf_counter()
        kmsnb.rewrap.rewrap_file(path, key_id, kms=kms)
        return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=parse_size, default=parse_size("256M"))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="16 MiB, 3 rounds")
    parser.add_argument("--dir", type=Path, default=Path(__file__).parent / "out")
    parser.add_argument("--seed", type=int, default=20261202)
    arguments = parser.parse_args(argv)
    size, rounds = (16 << 20, 3) if arguments.quick else (arguments.size, arguments.rounds)
    arguments.dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(arguments.seed)
    with (
        tempfile.TemporaryDirectory(dir=arguments.dir) as folder,
        LocalKms(Path(folder) / "store") as kms,
    ):
        keys = [kms.create_key("one").key_id, kms.create_key("two").key_id]
        files = {case: Path(folder) / f"{case}.kms" for case in CASES}
        digests = {case: _encrypt(path, size, kms, keys[0]) for case, path in files.items()}
        times: list[dict[str, float]] = []
        for round_number in range(rounds):
            order = list(CASES)
            rng.shuffle(order)
            target = keys[(round_number + 1) % 2]
            times.append(
                {case: _rewrap(files[case], target, kms, copy=case == "copy") for case in order}
            )
        for case, path in files.items():
            with kmsnb.open_decrypt(open(path, "rb"), kms=kms) as source:
                digest = hashlib.sha256()
                while block := source.read(1 << 20):
                    digest.update(block)
            if digest.hexdigest() != digests[case]:
                raise SystemExit(f"{case}: the rewrapped file does not decrypt to its plaintext")
    print(f"rewrap of a {format_size(size)} file (plaintext), {rounds} rounds, in {folder}")
    rows = []
    for case in CASES:
        values = [values[case] for values in times]
        low, high = spread(values)
        rows.append([case, f"{median(values) * 1000:.2f}", f"{low * 1000:.2f}-{high * 1000:.2f}"])
    print_table(["case", "median ms", "min-max ms"], rows)
    ratios = paired_ratios(times, "copy", "in_place")
    low, high = spread(ratios)
    print(f"copy ÷ in place, same round: median {median(ratios):.0f}x", end=" ")
    print(f"(min {low:.0f}x, max {high:.0f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
