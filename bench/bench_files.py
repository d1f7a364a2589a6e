"""File throughput of ``kmsnb.encrypt_file`` / ``decrypt_file`` against a reference loop.

On a generated file (default 256 MiB), in one run, interleaved (shuffled order each round,
seeded), median of the rounds, every case in a fresh child process that fsyncs its output:

* ``kmsnb_enc`` / ``kmsnb_dec``: ``kmsnb.encrypt_file`` / ``decrypt_file``, with
  :class:`kmsnb.testing.InMemoryKms` so that the KMS costs microseconds, not a round trip;
* ``ref_enc`` / ``ref_dec``: the anchors' reference loop, written here:
  ``readinto`` 1 MiB, ``AESGCM.encrypt_into`` / ``decrypt_into`` into preallocated
  buffers, STREAM nonce (7-byte prefix ‖ u32 counter ‖ last-chunk flag), ``write``;
* ``copy``: the same 1 MiB ``readinto`` / ``write`` loop without crypto.

It prints MB/s, the same-round time ratios (÷ reference, ÷ copy), the peak RSS of each
case and its growth over the RSS after imports, the import time of ``kmsnb`` over
``cryptography``, and PASS/FAIL against the targets. It exits 0 whatever the targets say
(it is a report), non-zero only on errors.

Usage::

    .venv/bin/python bench/bench_files.py --quick             # 16 MiB, 3 rounds: smoke run
    .venv/bin/python bench/bench_files.py                     # 256 MiB, 5 rounds, on disk
    .venv/bin/python bench/bench_files.py --size 1G --rounds 3 --cases kmsnb_enc,kmsnb_dec
    .venv/bin/python bench/bench_files.py --dir /dev/shm      # tmpfs: takes the disk out
    .venv/bin/python bench/bench_files.py --profile --size 64M  # cProfile, in-process

Files go to a temporary folder under ``bench/out/`` (git-ignored, on the repo's disk) or
under ``--dir``; it is removed at the end of the run.

Reading the numbers on this VM: besides CPU steal, a case that allocates its output's page
cache after the machine sat idle for a couple of seconds gets pages the host has reclaimed
(virtio-balloon free page reporting) and runs 3-5x slower, whichever case it is. Each
child therefore warms the page cache before its clock starts (``_common.warm_page_cache``).
Hence too the same-round ratios, their min-max, and the "best ÷ best" column (noise only
ever slows a run down); ``--rounds 15`` gives steadier medians.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import platform
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from _common import (
    MIB,
    ChildError,
    emit_result,
    files_equal,
    filesystem_type,
    format_size,
    mbps,
    median,
    memory_snapshot,
    paired_ratios,
    parse_size,
    print_table,
    run_child,
    spread,
    time_command,
    verdict,
    warm_page_cache,
    write_random_file,
)

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from kmsnb.kms import Kms
    from kmsnb.kms._base import DataKey, UnwrappedKey

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "bench" / "out"

#: Buffer of the reference loop and the copy; kmsnb's default step is the same 1 MiB.
BUFFER_SIZE = MIB
NONCE_PREFIX_SIZE = 7
TAG_SIZE = 16

CASES: dict[str, str] = {
    "kmsnb_enc": "kmsnb.encrypt_file (Cobblestone-256, InMemoryKms), fsync",
    "kmsnb_dec": "kmsnb.decrypt_file, fsync",
    "ref_enc": "reference: readinto 1 MiB + AESGCM.encrypt_into + write, fsync",
    "ref_dec": "reference: readinto 1 MiB+16 + AESGCM.decrypt_into + write, fsync",
    "copy": "plain copy: readinto 1 MiB + write, fsync",
}
#: The reference case each kmsnb case is compared with, same round.
REFERENCE_OF = {"kmsnb_enc": "ref_enc", "kmsnb_dec": "ref_dec"}
#: Decrypt cases need a ciphertext made (untimed, before the rounds) by their encrypt case.
PREPARED_BY = {"kmsnb_dec": "kmsnb_enc", "ref_dec": "ref_enc"}
#: Cases whose output must equal the source, checked once (untimed).
VERIFIED = ("kmsnb_dec", "ref_dec", "copy")
KMSNB_CASES = ("kmsnb_enc", "kmsnb_dec")

TARGET_VS_REFERENCE = 1.10
TARGET_VS_COPY = 1.15
TARGET_RSS_GROWTH_MIB = 32.0
TARGET_IMPORT_S = 0.100

IMPORT_COMMANDS: dict[str, str] = {
    "python": "pass",
    "cryptography": "import cryptography",
    "cryptography+aead": (
        "import cryptography.cobblestone, cryptography.hazmat.primitives.ciphers.aead"
    ),
    "kmsnb": "import kmsnb",
}
IMPORT_RUNS_MIN = 5


# --- the cases (run in the child) ----------------------------------------------------------


def reference_encrypt(aead: AESGCM, src: Path, dst: Path, buffer_size: int) -> int:
    """The anchors' STREAM loop: 7-byte nonce prefix, then one sealed chunk per buffer."""
    pack_into = struct.Struct(">IB").pack_into
    nonce = bytearray(12)
    nonce[:NONCE_PREFIX_SIZE] = os.urandom(NONCE_PREFIX_SIZE)
    plain = memoryview(bytearray(buffer_size))
    sealed = memoryview(bytearray(buffer_size + TAG_SIZE))
    with open(src, "rb") as source, open(dst, "wb") as sink:
        size = os.fstat(source.fileno()).st_size
        count = max(1, -(-size // buffer_size))
        sink.write(nonce[:NONCE_PREFIX_SIZE])
        for index in range(count):
            want = min(buffer_size, size - index * buffer_size)
            if source.readinto(plain[:want]) != want:
                raise RuntimeError(f"{src} changed size while it was read")
            pack_into(nonce, NONCE_PREFIX_SIZE, index, index == count - 1)
            aead.encrypt_into(nonce, plain[:want], None, sealed[: want + TAG_SIZE])
            sink.write(sealed[: want + TAG_SIZE])
        sink.flush()
        os.fsync(sink.fileno())
    return size


def reference_decrypt(aead: AESGCM, src: Path, dst: Path, buffer_size: int) -> int:
    """Undo :func:`reference_encrypt`; each chunk is written only after its tag verified."""
    pack_into = struct.Struct(">IB").pack_into
    sealed_size = buffer_size + TAG_SIZE
    sealed = memoryview(bytearray(sealed_size))
    plain = memoryview(bytearray(buffer_size))
    written = 0
    with open(src, "rb") as source, open(dst, "wb") as sink:
        payload_size = os.fstat(source.fileno()).st_size - NONCE_PREFIX_SIZE
        nonce = bytearray(12)
        nonce[:NONCE_PREFIX_SIZE] = source.read(NONCE_PREFIX_SIZE)
        count = max(1, -(-payload_size // sealed_size))
        for index in range(count):
            want = min(sealed_size, payload_size - index * sealed_size)
            if want < TAG_SIZE or source.readinto(sealed[:want]) != want:
                raise RuntimeError(f"{src} is truncated")
            pack_into(nonce, NONCE_PREFIX_SIZE, index, index == count - 1)
            size = want - TAG_SIZE
            aead.decrypt_into(nonce, sealed[:want], None, plain[:size])
            sink.write(plain[:size])
            written += size
        sink.flush()
        os.fsync(sink.fileno())
    return written


def plain_copy(src: Path, dst: Path, buffer_size: int) -> int:
    """The I/O ceiling: the same loop with no crypto."""
    view = memoryview(bytearray(buffer_size))
    total = 0
    with open(src, "rb") as source, open(dst, "wb") as sink:
        while count := source.readinto(view):
            sink.write(view[:count])
            total += count
        sink.flush()
        os.fsync(sink.fileno())
    return total


class CapturingKms:
    """Wraps a KMS and saves the data key it generates, so a later child can decrypt.

    Used only when preparing the ciphertext for ``kmsnb_dec`` (untimed): an
    ``InMemoryKms``'s master keys vanish with its process.
    """

    def __init__(self, inner: Kms, key_file: Path) -> None:
        self._inner = inner
        self._key_file = key_file

    def generate_data_key(
        self, key_id: str, encryption_context: Mapping[str, str] | None = None
    ) -> DataKey:
        data_key = self._inner.generate_data_key(key_id, encryption_context)
        saved = {
            "blob": data_key.ciphertext_blob,
            "key": data_key.plaintext.hex(),
            "key_id": data_key.key_id,
            "key_version_id": data_key.key_version_id,
        }
        self._key_file.write_text(json.dumps(saved), encoding="ascii")
        return data_key

    def decrypt_data_key(
        self, ciphertext_blob: str, encryption_context: Mapping[str, str] | None = None
    ) -> UnwrappedKey:
        return self._inner.decrypt_data_key(ciphertext_blob, encryption_context)


class ReplayKms:
    """Unwraps the one data key that :class:`CapturingKms` saved: the KMS of ``kmsnb_dec``."""

    def __init__(self, key_file: Path) -> None:
        saved = json.loads(key_file.read_text(encoding="ascii"))
        self._blob: str = saved["blob"]
        self._key = bytes.fromhex(saved["key"])
        self._key_id: str = saved["key_id"]
        self._key_version_id: str = saved["key_version_id"]

    def generate_data_key(
        self, key_id: str, encryption_context: Mapping[str, str] | None = None
    ) -> DataKey:
        raise NotImplementedError("ReplayKms only unwraps the prepared data key")

    def decrypt_data_key(
        self, ciphertext_blob: str, encryption_context: Mapping[str, str] | None = None
    ) -> UnwrappedKey:
        from kmsnb.kms import UnwrappedKey

        if ciphertext_blob != self._blob:
            raise ValueError("not the wrapped key of the prepared file")
        return UnwrappedKey(self._key_id, self._key_version_id, bytearray(self._key))


def _setup_case(args: argparse.Namespace) -> Callable[[], int]:
    """Import what the case needs and return it ready to run (returns plaintext bytes)."""
    src, dst, case = Path(args.src), Path(args.dst), args.case
    key_file = Path(args.key_file) if args.key_file else None
    if case == "copy":
        return lambda: plain_copy(src, dst, BUFFER_SIZE)
    if case in ("ref_enc", "ref_dec"):
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        if case == "ref_enc":
            key = AESGCM.generate_key(bit_length=256)
            if key_file is not None and args.save_key:
                key_file.write_text(json.dumps({"key": key.hex()}), encoding="ascii")
            encryptor = AESGCM(key)
            return lambda: reference_encrypt(encryptor, src, dst, BUFFER_SIZE)
        if key_file is None:
            raise SystemExit("ref_dec needs --key-file")
        decryptor = AESGCM(bytes.fromhex(json.loads(key_file.read_text("ascii"))["key"]))
        return lambda: reference_decrypt(decryptor, src, dst, BUFFER_SIZE)
    if case == "kmsnb_enc":
        from kmsnb import encrypt_file
        from kmsnb.testing import InMemoryKms

        memory_kms = InMemoryKms()
        key_id = memory_kms.create_key()
        kms: Kms = memory_kms
        if key_file is not None and args.save_key:
            kms = CapturingKms(memory_kms, key_file)
        size = src.stat().st_size

        def run_encrypt() -> int:
            # No bar: the reference loops draw none, and tqdm's import would be timed.
            encrypt_file(src, dst, key_id, kms=kms, progress=False)
            return size

        return run_encrypt
    if case == "kmsnb_dec":
        from kmsnb import decrypt_file

        if key_file is None:
            raise SystemExit("kmsnb_dec needs --key-file")
        replay = ReplayKms(key_file)

        def run_decrypt() -> int:
            info = decrypt_file(src, dst, kms=replay, progress=False)
            return info.plaintext_size if info.plaintext_size is not None else dst.stat().st_size

        return run_decrypt
    raise SystemExit(f"unknown case {case!r}; one of {', '.join(CASES)}")


def child_main(args: argparse.Namespace) -> int:
    run = _setup_case(args)
    # Memory the VM's host has not taken back, for every case alike (see _common.py).
    warm_page_cache(Path(args.dst).parent, Path(args.src).stat().st_size + 16 * MIB)
    gc.collect()
    before = memory_snapshot()
    start = time.perf_counter()
    size = run()
    seconds = time.perf_counter() - start
    after = memory_snapshot()
    emit_result(
        {
            "case": args.case,
            "seconds": seconds,
            "bytes": size,
            "rss_after_imports_kib": before["rss_kib"],
            "maxrss_after_imports_kib": before["maxrss_kib"],
            "maxrss_kib": after["maxrss_kib"],
            "hwm_kib": after["hwm_kib"],
        }
    )
    return 0


# --- the driver -------------------------------------------------------------------------


def _child_argv(case: str, src: Path, dst: Path, key_file: Path | None, save: bool) -> list[str]:
    argv = [sys.executable, str(Path(__file__).resolve()), "--case", case]
    argv += ["--src", str(src), "--dst", str(dst)]
    if key_file is not None:
        argv += ["--key-file", str(key_file)]
    if save:
        argv.append("--save-key")
    return argv


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)
    os.sync()  # settle the unlink's write-back outside the timed region


def _clean_up(work: Path, default_base: Path | None) -> None:
    """Remove this run's folder, and ``bench/out/`` too if nothing else is left in it."""
    shutil.rmtree(work, ignore_errors=True)
    if default_base is not None:
        with contextlib.suppress(OSError):
            default_base.rmdir()


def _git_revision() -> str:
    try:
        completed = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return completed.stdout.strip() + " (+ working tree)"


def _fmt_range(values: list[float], digits: int) -> str:
    low, high = spread(values)
    return f"{median(values):,.{digits}f} ({low:,.{digits}f}-{high:,.{digits}f})"


def _verified_cell(result: bool | None) -> str:
    if result is None:
        return "-"
    return "yes" if result else "NO"


def _measure_imports(runs: int, rng: random.Random) -> dict[str, list[float]]:
    """Wall time of fresh ``python -c`` runs, interleaved and shuffled per round."""
    times: dict[str, list[float]] = {name: [] for name in IMPORT_COMMANDS}
    for code in IMPORT_COMMANDS.values():  # warm the bytecode caches, untimed
        time_command([sys.executable, "-c", code], cwd=REPO)
    for _ in range(runs):
        order = list(IMPORT_COMMANDS)
        rng.shuffle(order)
        for name in order:
            times[name].append(
                time_command([sys.executable, "-c", IMPORT_COMMANDS[name]], cwd=REPO)
            )
    return times


def _import_profile(top: int = 12) -> list[tuple[int, int, str]]:
    """``-X importtime`` of ``import kmsnb``: the ``top`` entries by cumulative µs."""
    completed = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import kmsnb"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    entries: list[tuple[int, int, str]] = []
    for line in completed.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, cumulative_us, name = line[len("import time:") :].split("|", 2)
        entries.append((int(self_us), int(cumulative_us), name.rstrip()))
    entries.sort(key=lambda entry: entry[1], reverse=True)
    return entries[:top]


def driver_main(args: argparse.Namespace) -> int:
    size: int = args.size
    cases: list[str] = args.cases
    base = Path(args.dir) if args.dir else DEFAULT_OUT
    base.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench_files-", dir=base))
    try:
        return _drive(args, size, cases, work)
    except ChildError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        _clean_up(work, None if args.dir else base)


def _drive(args: argparse.Namespace, size: int, cases: list[str], work: Path) -> int:
    rng = random.Random(args.seed)
    fs_type = filesystem_type(work)
    timeout = 120 + size / 10_000_000
    meta: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "size": size,
        "rounds": args.rounds,
        "seed": args.seed,
        "cases": cases,
        "dir": str(work),
        "filesystem": fs_type,
        "python": platform.python_version(),
        "cryptography": metadata.version("cryptography"),
        "kmsnb": _git_revision(),
        "cpus": os.cpu_count(),
        "buffer_size": BUFFER_SIZE,
    }
    print(
        f"bench_files: {format_size(size)} file, {args.rounds} rounds, cases "
        f"{', '.join(cases)}; seed {args.seed}\n"
        f"  files in {work} ({fs_type}); Python {meta['python']}, cryptography "
        f"{meta['cryptography']}, kmsnb {meta['kmsnb']}, {meta['cpus']} CPUs",
        flush=True,
    )

    src = work / "plain.bin"
    start = time.perf_counter()
    write_random_file(src, size)
    print(f"  generated {src.name} in {time.perf_counter() - start:.1f} s", file=sys.stderr)

    prepared: dict[str, tuple[Path, Path | None]] = {}  # decrypt case -> (ciphertext, key file)
    for case in cases:
        producer = PREPARED_BY.get(case)
        if producer is None:
            continue
        ciphertext, saved_key = work / f"prepared.{producer}", work / f"key.{producer}.json"
        run_child(_child_argv(producer, src, ciphertext, saved_key, True), timeout=timeout)
        prepared[case] = (ciphertext, saved_key)

    samples: list[dict[str, Any]] = []
    per_round: list[dict[str, float]] = []
    verified: dict[str, bool] = {}
    for round_index in range(args.rounds):
        order = list(cases)
        rng.shuffle(order)
        seconds: dict[str, float] = {}
        for case in order:
            source, key_file = prepared.get(case, (src, None))
            dst = work / f"out.{case}"
            _remove(dst)
            result = run_child(_child_argv(case, source, dst, key_file, False), timeout=timeout)
            if result["bytes"] != size:
                raise ChildError(f"{case} handled {result['bytes']} bytes, not {size}")
            if case in VERIFIED and case not in verified:
                verified[case] = files_equal(src, dst)
                if not verified[case]:
                    raise ChildError(f"{case}: the output differs from the source")
            _remove(dst)
            result["round"] = round_index
            samples.append(result)
            seconds[case] = result["seconds"]
        per_round.append(seconds)
        progress = ", ".join(
            f"{case} {mbps(size, seconds[case]):,.0f}" for case in cases if case in seconds
        )
        print(f"  round {round_index + 1}/{args.rounds} (MB/s): {progress}", file=sys.stderr)

    import_runs = max(IMPORT_RUNS_MIN, args.rounds)
    imports = _measure_imports(import_runs, rng)
    import_tree = _import_profile()

    summary = _report(size, cases, samples, per_round, verified, imports, import_tree, fs_type)
    if args.json:
        output = {
            "meta": meta,
            "samples": samples,
            "imports": imports,
            "import_tree": import_tree,
            "summary": summary,
        }
        Path(args.json).write_text(json.dumps(output, indent=2) + "\n", encoding="utf-8")
        print(f"\nraw results: {args.json}")
    return 0


def _best(samples: list[dict[str, Any]], case: str | None) -> float | None:
    """The fastest time of ``case`` over the rounds, or ``None`` if it did not run."""
    times = [sample["seconds"] for sample in samples if sample["case"] == case]
    return min(times) if times else None


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def _fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _peak_kib(sample: Mapping[str, Any]) -> int:
    """A child's peak RSS: ``ru_maxrss``, or ``VmHWM`` where ``ru_maxrss`` is inherited.

    On Linux ``ru_maxrss`` is ``max(parent's peak at spawn, own peak)``; ``VmHWM`` is the
    own peak alone, so the smaller of the two is this process's peak.
    """
    hwm = sample.get("hwm_kib")
    return int(sample["maxrss_kib"] if hwm is None else min(sample["maxrss_kib"], hwm))


def _report(
    size: int,
    cases: list[str],
    samples: list[dict[str, Any]],
    per_round: list[dict[str, float]],
    verified: dict[str, bool],
    imports: dict[str, list[float]],
    import_tree: list[tuple[int, int, str]],
    fs_type: str,
) -> dict[str, Any]:
    summary: dict[str, Any] = {"cases": {}, "targets": []}
    rows = []
    inherited_rss = False
    for case in cases:
        mine = [sample for sample in samples if sample["case"] == case]
        speeds = [mbps(size, sample["seconds"]) for sample in mine]
        peak = max(_peak_kib(sample) for sample in mine) / 1024
        growth = max(_peak_kib(sample) - sample["rss_after_imports_kib"] for sample in mine)
        growth_mib = growth / 1024
        inherited_rss |= any(sample["maxrss_kib"] > _peak_kib(sample) for sample in mine)
        reference = REFERENCE_OF.get(case)
        vs_reference = paired_ratios(per_round, case, reference) if reference else []
        vs_copy = paired_ratios(per_round, case, "copy") if case != "copy" else []
        best = {name: _best(samples, name) for name in (case, reference, "copy")}
        best_vs_reference = _ratio(best[case], best[reference])
        best_vs_copy = _ratio(best[case], best["copy"]) if case != "copy" else None
        summary["cases"][case] = {
            "mbps": speeds,
            "mbps_median": median(speeds),
            "vs_reference": vs_reference,
            "vs_copy": vs_copy,
            "best_vs_reference": best_vs_reference,
            "best_vs_copy": best_vs_copy,
            "peak_rss_mib": peak,
            "rss_growth_mib": growth_mib,
        }
        rows.append(
            [
                case,
                _fmt_range(speeds, 0),
                _fmt_range(vs_reference, 2) if vs_reference else "-",
                _fmt_range(vs_copy, 2) if vs_copy else "-",
                f"{_fmt_ratio(best_vs_reference)} / {_fmt_ratio(best_vs_copy)}",
                f"{peak:.1f}",
                f"{growth_mib:+.1f}",
                _verified_cell(verified.get(case)) if case in VERIFIED else "-",
            ]
        )
    print(f"\n### Throughput, {format_size(size)}, {len(per_round)} rounds ({fs_type})\n")
    print_table(
        [
            "case",
            "MB/s median (min-max)",
            "time ÷ ref, same round",
            "time ÷ copy, same round",
            "best ÷ best: ref / copy",
            "peak RSS MiB",
            "growth MiB",
            "byte-exact",
        ],
        rows,
    )
    print()
    for case in cases:
        print(f"- `{case}`: {CASES[case]}")
    print(
        "- ratios: median (min-max) over rounds of (case time ÷ other case's time, same "
        "round); < 1 is faster. best ÷ best: fastest time of the case ÷ fastest of the "
        "other (the noise here only ever slows a run down). Peak RSS: the child's "
        "ru_maxrss, max over rounds; growth: peak - RSS after imports (max over rounds)."
    )
    if inherited_rss:
        print(
            "- some children's ru_maxrss started from the driver's peak RSS (Linux keeps "
            "it across exec); their VmHWM, the peak of their own memory, is used instead."
        )

    import_rows = []
    baseline = imports["cryptography"]
    differences: dict[str, list[float]] = {}
    for name, code in IMPORT_COMMANDS.items():
        differences[name] = [
            mine - theirs for mine, theirs in zip(imports[name], baseline, strict=True)
        ]
        import_rows.append(
            [
                f"python -c {code!r}" if len(code) < 40 else "python -c (cobblestone + AESGCM)",
                _fmt_range(imports[name], 3),
                f"{median(differences[name]):+.3f}",
            ]
        )
    print(f"\n### Import time: fresh processes, {len(baseline)} runs each, interleaved\n")
    print_table(["command", "wall s median (min-max)", "- import cryptography, s"], import_rows)
    print("\n`-X importtime -c 'import kmsnb'`, top entries by cumulative time:\n")
    print_table(
        ["self ms", "cumulative ms", "module"],
        [[f"{own / 1000:.1f}", f"{total / 1000:.1f}", name] for own, total, name in import_tree],
        align="rrl",
    )

    targets: list[tuple[str, float | None, float, str, str]] = []
    on_disk = fs_type not in ("tmpfs", "ramfs")
    disk_note = (
        f"on {fs_type}" if on_disk else f"on {fs_type}: fsync is a no-op, not the disk target"
    )
    size_note = (
        "at 1 GiB"
        if size == 1024 * MIB
        else f"at {format_size(size)} (the target is for 1 GiB; run --size 1G)"
    )
    for case in KMSNB_CASES:
        if case not in summary["cases"]:
            continue
        data = summary["cases"][case]
        reference = REFERENCE_OF[case]
        if data["vs_reference"]:
            targets.append(
                (
                    f"{case} time ÷ {reference}",
                    median(data["vs_reference"]),
                    TARGET_VS_REFERENCE,
                    "x",
                    "median of same-round ratios",
                )
            )
        if data["vs_copy"]:
            targets.append(
                (
                    f"{case} time ÷ copy",
                    median(data["vs_copy"]),
                    TARGET_VS_COPY,
                    "x",
                    disk_note,
                )
            )
        targets.append(
            (
                f"{case} RSS growth (max)",
                data["rss_growth_mib"],
                TARGET_RSS_GROWTH_MIB,
                " MiB",
                size_note,
            )
        )
    targets.append(
        (
            "import kmsnb - import cryptography",
            median(differences["kmsnb"]),
            TARGET_IMPORT_S,
            " s",
            "median of same-round differences",
        )
    )
    target_rows = []
    for name, value, limit, unit, note in targets:
        result = verdict(value, limit) if value is not None else "n/a"
        target_rows.append([name, f"{value:.2f}{unit}", f"≤ {limit:.2f}{unit}", result, note])
        summary["targets"].append(
            {"target": name, "value": value, "limit": limit, "result": result, "note": note}
        )
    print("\n### Targets\n")
    print_table(["target", "measured", "limit", "result", "note"], target_rows, align="lrrll")
    return summary


# --- profiling ----------------------------------------------------------------------------


def profile_main(args: argparse.Namespace) -> int:
    """One ``encrypt_file`` and one ``decrypt_file`` under cProfile, in this process."""
    import cProfile
    import pstats

    from kmsnb import decrypt_file, encrypt_file
    from kmsnb.testing import InMemoryKms

    base = Path(args.dir) if args.dir else DEFAULT_OUT
    base.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench_files-profile-", dir=base))
    try:
        src, ciphertext, plaintext = work / "plain.bin", work / "cipher.kmsnb", work / "out.bin"
        write_random_file(src, args.size)
        kms = InMemoryKms()
        key_id = kms.create_key()
        steps: list[tuple[str, Callable[[], object]]] = [
            ("encrypt_file", lambda: encrypt_file(src, ciphertext, key_id, kms=kms)),
            ("decrypt_file", lambda: decrypt_file(ciphertext, plaintext, kms=kms)),
        ]
        for label, step in steps:
            profiler = cProfile.Profile()
            start = time.perf_counter()
            profiler.enable()
            step()
            profiler.disable()
            elapsed = time.perf_counter() - start
            print(
                f"\n### {label}: {format_size(args.size)} in {elapsed:.3f} s under cProfile "
                f"({mbps(args.size, elapsed):,.0f} MB/s), top 15 by cumulative time\n"
            )
            stats = pstats.Stats(profiler, stream=sys.stdout)
            stats.strip_dirs().sort_stats("cumulative").print_stats(15)
        if not files_equal(src, plaintext):
            print("error: the decrypted file differs from the source", file=sys.stderr)
            return 1
        return 0
    finally:
        _clean_up(work, None if args.dir else base)


# --- command line -------------------------------------------------------------------------


def _parse_cases(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in CASES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown case(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(CASES)}"
        )
    return [name for name in CASES if name in names]  # canonical order, no duplicates


def _parse_size_arg(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=(
            "Throughput, time ratios and peak RSS of kmsnb.encrypt_file/decrypt_file "
            "against a reference AESGCM loop and a plain copy (all fsync their output)."
        ),
        epilog=(
            "--dir /dev/shm puts the files on tmpfs, which takes the disk out (fsync "
            "becomes a no-op). Exit status 0 whatever the targets say; 1 on errors."
        ),
    )
    parser.add_argument(
        "--size", type=_parse_size_arg, default=None, help="file size: 256M (default), 1G..."
    )
    parser.add_argument("--rounds", type=int, default=None, help="rounds (default 5)")
    parser.add_argument(
        "--cases",
        type=_parse_cases,
        default=list(CASES),
        help=f"comma-separated subset of: {', '.join(CASES)} (default: all)",
    )
    parser.add_argument(
        "--dir", default=None, help="where files go (default: a temp folder in bench/out/)"
    )
    parser.add_argument("--json", metavar="OUT", default=None, help="save raw results as JSON")
    parser.add_argument("--seed", type=int, default=1, help="seed of the case order (1)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 16 MiB, 3 rounds")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="instead: one encrypt and one decrypt under cProfile, top 15 cumulative",
    )
    child = parser.add_argument_group("child mode (used by the driver)")
    child.add_argument("--case", choices=list(CASES), default=None, help=argparse.SUPPRESS)
    child.add_argument("--src", default=None, help=argparse.SUPPRESS)
    child.add_argument("--dst", default=None, help=argparse.SUPPRESS)
    child.add_argument("--key-file", default=None, help=argparse.SUPPRESS)
    child.add_argument("--save-key", action="store_true", help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.case is not None:
        if args.src is None or args.dst is None:
            parser.error("--case needs --src and --dst")
        return child_main(args)
    if args.size is None:
        args.size = 16 * MIB if args.quick else 256 * MIB
    if args.rounds is None:
        args.rounds = 3 if args.quick else 5
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if args.profile:
        return profile_main(args)
    return driver_main(args)


if __name__ == "__main__":
    sys.exit(main())
