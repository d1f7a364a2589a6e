"""What a fresh process imports to open a ``LocalKms`` and use a data key (issue 16 item 3).

Not a timer (``bench/bench_startup.py`` measures): a subprocess opens a keystore, does one
GenerateDataKey and one Decrypt, and reports the modules it holds. Whatever only another
call needs stays unimported, and the emulator's modules on this path define no dataclass,
hold no compiled regular expression and use neither ``hmac`` nor ``hashlib`` (which load
OpenSSL a second time) nor ``threading``, whatever other modules of kmsnb may import.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kmsnb.kms.local import LocalKms

pytestmark = pytest.mark.integration

#: Modules only other calls need: key administration and aliases, key import, Secrets
#: Manager, SM4, the HTTP server and its parts, faults, the admin and retry helpers, the
#: table of error codes (only a refused call needs it).
LAZY = frozenset({
    "kmsnb.emulator._keys", "kmsnb.emulator._aliases", "kmsnb.emulator._import",
    "kmsnb.emulator._secrets", "kmsnb.emulator._secret_admin", "kmsnb.emulator._secret_common",
    "kmsnb.emulator._secret_records", "kmsnb.emulator._sm4", "kmsnb.emulator.server",
    "kmsnb.emulator._http", "kmsnb.emulator._dispatch", "kmsnb.emulator.auth",
    "kmsnb.emulator.faults", "kmsnb.emulator.execute", "kmsnb.emulator.admin",
    "kmsnb.kms._secrets", "kmsnb.kms._retry", "kmsnb.kms._info", "kmsnb.kms._emulator_admin",
    "kmsnb.kms.caching", "kmsnb.kms.aliyun", "kmsnb.kms._errors", "uuid", "platformdirs",
})  # fmt: skip

#: Run in the subprocess: the work, then what each module of the emulator and of the local
#: backend loaded holds.
_SCRIPT = """
import json, re, sys, types
from kmsnb.kms.local import LocalKms

with LocalKms(sys.argv[1]) as kms:
    data_key = kms.generate_data_key("alias/imports", {"purpose": "test"})
    kms.decrypt_data_key(data_key.ciphertext_blob, {"purpose": "test"})
local = ("kmsnb.kms.local", "kmsnb.kms._errors", "kmsnb.kms._secret_calls", "kmsnb.kms._wrapping")
ours = [name for name in sys.modules if name.startswith("kmsnb.emulator") or name in local]
report = {"modules": sorted(sys.modules), "holds": {}}
for name in ours:
    held = report["holds"][name] = []
    for attribute, value in vars(sys.modules[name]).items():
        if isinstance(value, re.Pattern):
            held.append(f"pattern {attribute}")
        elif isinstance(value, type) and "__dataclass_fields__" in vars(value):
            held.append(f"dataclass {attribute}")
        elif isinstance(value, types.ModuleType) and value.__name__ in (
            "dataclasses", "hmac", "hashlib", "threading"
        ):
            held.append(f"module {value.__name__}")
print(json.dumps(report))
"""


@pytest.fixture
def report(tmp_path: Path) -> dict[str, object]:
    """What the subprocess imported and what its modules hold."""
    path = tmp_path / "kms"
    with LocalKms(path) as kms:
        kms.create_alias("alias/imports", kms.create_key().key_id)
    env = {name: value for name, value in os.environ.items() if not name.startswith("KMSNB_")}
    completed = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    result: dict[str, object] = json.loads(completed.stdout)
    return result


def test_a_data_key_imports_nothing_another_call_needs(report: dict[str, object]) -> None:
    modules = report["modules"]
    assert isinstance(modules, list)
    assert {"kmsnb.emulator._crypto", "kmsnb.emulator.store"} <= set(modules)  # it did the work
    assert sorted(LAZY & set(modules)) == []


def test_the_modules_on_its_path_hold_no_dataclass_pattern_hmac_or_threading(
    report: dict[str, object],
) -> None:
    holds = report["holds"]
    assert isinstance(holds, dict)
    assert "kmsnb.emulator._records" in holds
    assert {name: held for name, held in holds.items() if held} == {}
