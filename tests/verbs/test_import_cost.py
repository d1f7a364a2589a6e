"""The verbs are exported from ``kmsnb`` without making ``import kmsnb`` heavy."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.unit]

HEAVY = (
    "pandas",
    "pyarrow",
    "polars",
    "fsspec",
    "alibabacloud_kms20160120",
    "IPython",
    "tqdm",
)


def test_import_kmsnb_and_reaching_the_verbs_loads_nothing_heavy() -> None:
    code = (
        "import json, sys, kmsnb; "
        "kmsnb.save, kmsnb.load, kmsnb.keys, kmsnb.connect, kmsnb.Saved, kmsnb.connection; "
        f"print(json.dumps(sorted(m for m in {list(HEAVY)!r} if m in sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert json.loads(result.stdout) == []


def test_the_verbs_are_exported() -> None:
    import kmsnb
    from kmsnb._load import load
    from kmsnb._save import Saved, save

    assert (kmsnb.save, kmsnb.load, kmsnb.Saved) == (save, load, Saved)
    assert {"save", "load", "keys", "connect", "Saved", "connection"} <= set(kmsnb.__all__)
    assert kmsnb.keys.create_key.__module__ == "kmsnb.keys"
