"""The suite asserts no speed: no throughput floor, no elapsed-time ceiling (speed is
measured by bench/, against a baseline in the same run).

An assertion that depends on a clock reading is refused unless it is a lower bound on an
elapsed time, ``clock() - start >= bound``, which proves that a wait happened and holds
however busy the machine is.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

TESTS = Path(__file__).parent
CLOCKS = {"perf_counter", "perf_counter_ns", "monotonic", "monotonic_ns", "time", "time_ns"}
CLOCKS |= {"process_time", "process_time_ns", "thread_time", "default_timer"}


def _reads_a_clock(node: ast.AST, timed: set[str]) -> bool:
    for inner in ast.walk(node):
        if isinstance(inner, ast.Call):
            function = inner.func
            name = function.attr if isinstance(function, ast.Attribute) else None
            if isinstance(function, ast.Name):
                name = function.id
            if name in CLOCKS:
                return True
        if isinstance(inner, ast.Name) and inner.id in timed:
            return True
    return False


def _is_elapsed_lower_bound(test: ast.expr, timed: set[str]) -> bool:
    if not isinstance(test, ast.Compare) or len(test.ops) != 1:
        return False
    left, op = test.left, test.ops[0]
    return (
        isinstance(op, ast.GtE | ast.Gt)
        and isinstance(left, ast.BinOp)
        and isinstance(left.op, ast.Sub)
        and _reads_a_clock(left, timed)
        and not _reads_a_clock(test.comparators[0], timed)
    )


def timed_assertions(source: str) -> list[int]:
    """The line numbers of assertions that depend on a clock, elapsed lower bounds aside."""
    found = []
    for function in ast.walk(ast.parse(source)):
        if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        timed: set[str] = set()
        changed = True
        while changed:  # names computed from clock readings, however indirectly
            changed = False
            for node in ast.walk(function):
                if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign) and node.value:
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    names = {t.id for t in targets if isinstance(t, ast.Name)} - timed
                    if names and _reads_a_clock(node.value, timed):
                        timed |= names
                        changed = True
        for node in ast.walk(function):
            if (
                isinstance(node, ast.Assert)
                and _reads_a_clock(node.test, timed)
                and not _is_elapsed_lower_bound(node.test, timed)
            ):
                found.append(node.lineno)
    return found


def test_the_checker_tells_floors_and_ceilings_from_waits() -> None:
    floor = "def t():\n s = time.perf_counter()\n r = 300 / (time.perf_counter() - s)\n"
    floor += " best = max(0, r)\n assert best >= 2000\n"
    ceiling = "def t():\n s = monotonic()\n work()\n assert monotonic() - s < 1.0\n"
    wait = "def t():\n s = time.perf_counter()\n assert time.perf_counter() - s >= 0.2\n"
    assert timed_assertions(floor) == [5]
    assert timed_assertions(ceiling) == [4]
    assert timed_assertions(wait) == []


def test_no_test_asserts_speed() -> None:
    offenders = [
        f"{path.relative_to(TESTS)}:{line}"
        for path in sorted(TESTS.rglob("*.py"))
        for line in timed_assertions(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []
