"""Shared helpers for the benchmarks in ``bench/``: sizes, statistics, child processes, tables.

Standard library only, so that a driver importing it stays small. That matters on Linux:
a child's ``ru_maxrss`` starts from the peak RSS its parent had when it spawned it (the
high-water mark survives ``exec``), so a big driver would hide its children's real peaks.
Children therefore also report ``VmHWM`` (the peak of their own address space), and
:func:`memory_snapshot` returns both.

Method: run each case in a fresh child
process, interleave the cases in a shuffled order each round, and compare cases through
ratios taken within the same round; the machine is shared and noisy, so absolute MB/s
swing by ±30 % while same-round ratios stay readable.

Fresh memory, on a VM: this machine's balloon device reports free memory to its host
about two seconds after it was freed (virtio-balloon free page reporting), and the host
takes it back. A page cache allocated from such memory costs host faults: a 256 MiB
write into the page cache took 210-270 ms instead of 80 ms whenever the last large free
was more than two seconds old (after the small-file cases, or a slow start-up), so each
case was fast or three times slower by the order it ran in. Children therefore call
:func:`warm_page_cache` before their clock starts: it writes and drops an unnamed file
as large as what the case will write, so that every case finds recently freed memory
(anonymous memory does not do it: the page cache takes large folios, which come from
the reported blocks). It costs the child that time, untimed, and no RSS.
"""

from __future__ import annotations

import json
import os
import random
import re
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "KIB",
    "MB",
    "MIB",
    "RESULT_MARKER",
    "ChildError",
    "emit_result",
    "files_equal",
    "filesystem_type",
    "floor_command",
    "format_size",
    "mbps",
    "median",
    "memory_snapshot",
    "paired_ratios",
    "parse_size",
    "print_table",
    "run_child",
    "spread",
    "time_command",
    "verdict",
    "warm_page_cache",
    "write_random_file",
]

KIB = 1024
MIB = 1024 * KIB
#: Throughput unit: 10**6 bytes, as in the anchors.
MB = 1_000_000

#: Prefix of the one stdout line where a child process reports its result as JSON.
RESULT_MARKER = "BENCH-RESULT "

_SIZE_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": KIB, "m": MIB, "g": 1024 * MIB, "t": 1024 * 1024 * MIB}


def parse_size(text: str) -> int:
    """Parse ``"256M"``, ``"1G"``, ``"1GiB"``, ``"512k"`` or ``"1048576"`` into bytes.

    K, M, G and T are powers of 1024 (with or without a trailing ``B``/``iB``).

    Raises:
        ValueError: the text is not a size.
    """
    match = _SIZE_PATTERN.match(text)
    if match is None:
        raise ValueError(f"not a size: {text!r} (try 256M, 1G, 1048576)")
    number, unit = match.groups()
    size = int(float(number) * _SIZE_UNITS[unit.lower()])
    if size <= 0:
        raise ValueError(f"size must be positive: {text!r}")
    return size


def format_size(size: int) -> str:
    """``268435456`` → ``"256 MiB"``; exact binary units when they fit, else bytes."""
    for unit, factor in (("GiB", 1024 * MIB), ("MiB", MIB), ("KiB", KIB)):
        if size >= factor and size % factor == 0:
            return f"{size // factor} {unit}"
    return f"{size:,} B"


def median(values: Iterable[float]) -> float:
    """The median; raises ``ValueError`` on no values."""
    data = list(values)
    if not data:
        raise ValueError("median of no values")
    return float(statistics.median(data))


def spread(values: Iterable[float]) -> tuple[float, float]:
    """``(min, max)`` of the values."""
    data = list(values)
    if not data:
        raise ValueError("spread of no values")
    return min(data), max(data)


def mbps(size: int, seconds: float) -> float:
    """Throughput in MB/s (10**6 bytes per second)."""
    return size / seconds / MB


def paired_ratios(
    rounds: Sequence[Mapping[str, float]], numerator: str, denominator: str
) -> list[float]:
    """Per-round ``numerator ÷ denominator`` over the rounds that have both cases."""
    return [
        values[numerator] / values[denominator]
        for values in rounds
        if numerator in values and denominator in values and values[denominator] > 0
    ]


def interleaved_rounds(
    cases: Mapping[str, Callable[[], float]], rounds: int, *, seed: int
) -> dict[str, list[float]]:
    """Each case's results, one per round, every round running every case once in a
    shuffled (seeded) order; progress on stderr."""
    results: dict[str, list[float]] = {name: [] for name in cases}
    order = random.Random(seed)
    for round_number in range(rounds):
        names = list(cases)
        order.shuffle(names)
        for name in names:
            results[name].append(cases[name]())
        print(f"round {round_number + 1}/{rounds} done", file=sys.stderr)
    return results


def verdict(value: float, limit: float) -> str:
    """``"PASS"`` if ``value <= limit``, else ``"FAIL"``."""
    return "PASS" if value <= limit else "FAIL"


def _proc_status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def memory_snapshot() -> dict[str, int | None]:
    """This process's memory now, in KiB.

    ``rss_kib``: current RSS (``VmRSS``); ``maxrss_kib``: ``getrusage(RUSAGE_SELF)
    .ru_maxrss`` (peak, possibly inherited from the parent, see the module docstring);
    ``hwm_kib``: ``VmHWM``, the peak of this process's own address space (Linux only).
    """
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if sys.platform == "darwin":
        maxrss //= KIB  # bytes there, KiB on Linux
    return {
        "rss_kib": _proc_status_kib("VmRSS"),
        "maxrss_kib": maxrss,
        "hwm_kib": _proc_status_kib("VmHWM"),
    }


def emit_result(result: Mapping[str, Any]) -> None:
    """Print a child's result as one JSON line that :func:`run_child` picks up."""
    sys.stdout.write(RESULT_MARKER + json.dumps(dict(result), sort_keys=True) + "\n")
    sys.stdout.flush()


class ChildError(RuntimeError):
    """A child process failed, timed out or reported no result."""


def run_child(
    argv: Sequence[str], *, timeout: float, cwd: str | os.PathLike[str] | None = None
) -> dict[str, Any]:
    """Run ``argv`` and return the JSON its :func:`emit_result` printed.

    Raises:
        ChildError: non-zero exit, timeout, or no result line (stderr's tail is included).
    """
    try:
        completed = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=timeout, cwd=cwd, check=False
        )
    except subprocess.TimeoutExpired as error:
        raise ChildError(f"timed out after {timeout:.0f} s: {' '.join(argv)}") from error
    if completed.returncode != 0:
        tail = completed.stderr.strip()[-2000:]
        raise ChildError(f"exit {completed.returncode}: {' '.join(argv)}\n{tail}")
    for line in reversed(completed.stdout.splitlines()):
        if line.startswith(RESULT_MARKER):
            result: dict[str, Any] = json.loads(line[len(RESULT_MARKER) :])
            return result
    raise ChildError(f"no result line from: {' '.join(argv)}\n{completed.stderr[-2000:]}")


def time_command(
    argv: Sequence[str], *, timeout: float = 60.0, cwd: str | os.PathLike[str] | None = None
) -> float:
    """Wall seconds to run ``argv`` to completion (e.g. a fresh ``python -c``).

    Raises:
        ChildError: non-zero exit or timeout.
    """
    start = time.perf_counter()
    try:
        completed = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=timeout, cwd=cwd, check=False
        )
    except subprocess.TimeoutExpired as error:
        raise ChildError(f"timed out after {timeout:.0f} s: {' '.join(argv)}") from error
    elapsed = time.perf_counter() - start
    if completed.returncode != 0:
        raise ChildError(f"exit {completed.returncode}: {' '.join(argv)}\n{completed.stderr}")
    return elapsed


#: bench/_startup_floor.py, the floor under ``kmsnb encrypt`` (see there).
FLOOR_SCRIPT = Path(__file__).resolve().parent / "_startup_floor.py"


def floor_command(src: Path, dst: Path) -> list[str]:
    """The command that runs the floor under ``kmsnb encrypt`` on ``src`` into ``dst``.

    Imported from its compiled bytecode, as the ``kmsnb`` script imports kmsnb's: run as
    a script, Python compiles a ``__main__`` every time (0.6 M instructions for this one,
    callgrind), and ``-m`` imports ``runpy`` (15 M); either would overstate the floor. The
    caller compiles it first (``compileall``, which bench_startup.py and
    bench_instructions.py run on it and on kmsnb).
    """
    launch = (
        f"import sys; sys.path.insert(0, {str(FLOOR_SCRIPT.parent)!r}); "
        "from _startup_floor import main; sys.exit(main())"
    )
    return [sys.executable, "-c", launch, str(src), "-o", str(dst)]


def write_random_file(path: Path, size: int, *, block_size: int = MIB) -> None:
    """Write ``size`` random bytes to ``path`` block by block (constant memory), fsynced."""
    with open(path, "wb") as output:
        remaining = size
        while remaining:
            count = min(block_size, remaining)
            output.write(os.urandom(count))
            remaining -= count
        output.flush()
        os.fsync(output.fileno())


def warm_page_cache(folder: Path, size: int, *, block_size: int = MIB) -> None:
    """Write ``size`` bytes (rounded up to blocks) to an unnamed file in ``folder`` and drop
    it, without fsync: the page cache it frees is the memory the next writes get (see
    the module docstring). A named file, removed at once, where there is no O_TMPFILE."""
    zeros = memoryview(bytes(block_size))
    try:
        fd = os.open(folder, os.O_TMPFILE | os.O_WRONLY | os.O_CLOEXEC, 0o600)
        named = None
    except (AttributeError, OSError):
        named = folder / f".warm-page-cache.{os.getpid()}"
        fd = os.open(named, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        for _ in range(-(-size // block_size)):
            os.write(fd, zeros)
    finally:
        os.close(fd)
        if named is not None:
            named.unlink()


def files_equal(first: Path, second: Path, *, block_size: int = MIB) -> bool:
    """Whether two files have the same bytes (constant memory)."""
    if first.stat().st_size != second.stat().st_size:
        return False
    with open(first, "rb") as one, open(second, "rb") as other:
        while True:
            block = one.read(block_size)
            if block != other.read(block_size):
                return False
            if not block:
                return True


def filesystem_type(path: Path) -> str:
    """The type of the file system holding ``path`` (``"ext4"``, ``"tmpfs"``...), from
    ``/proc/mounts``; ``"unknown"`` elsewhere."""
    target = os.path.realpath(path)
    best, best_type = "", "unknown"
    try:
        with open("/proc/mounts", encoding="utf-8") as mounts:
            for line in mounts:
                fields = line.split()
                if len(fields) < 3:
                    continue
                mount_point = fields[1].replace("\\040", " ")
                inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
                if inside and len(mount_point) >= len(best):
                    best, best_type = mount_point, fields[2]
    except OSError:
        pass
    return best_type


def print_table(
    headers: Sequence[str], rows: Iterable[Sequence[str]], *, align: str | None = None
) -> None:
    """Print a Markdown table padded to aligned columns.

    ``align`` has one letter per column, ``l`` or ``r`` (default: first left, rest right).
    """
    body = [list(row) for row in rows]
    widths = [len(header) for header in headers]
    for row in body:
        if len(row) != len(headers):
            raise ValueError(f"row has {len(row)} cells, the table {len(headers)} columns")
        widths = [max(width, len(cell)) for width, cell in zip(widths, row, strict=True)]
    if align is None:
        align = "l" + "r" * (len(headers) - 1)

    def line(cells: Sequence[str]) -> str:
        padded = (
            cell.ljust(width) if side == "l" else cell.rjust(width)
            for cell, width, side in zip(cells, widths, align, strict=True)
        )
        return "| " + " | ".join(padded) + " |"

    print(line(headers))
    print(
        "|"
        + "|".join(
            "-" * (width + 1) + ":" if side == "r" else "-" * (width + 2)
            for width, side in zip(widths, align, strict=True)
        )
        + "|"
    )
    for row in body:
        print(line(row))
