"""Importing kmsnb stays cheap: no heavy optional dependency is pulled in."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.unit]

# Optional extras that only kmsnb.dataframe, kmsnb.ipython and kmsnb.kms.aliyun may import.
HEAVY_PREFIXES = (
    "pandas",
    "pyarrow",
    "IPython",
    "ipywidgets",
    "dask",
    "distributed",
    "alibabacloud_",
    "aliyunsdk",
    "Tea",
    "darabonba",
    "duckdb",
    "polars",
)


@pytest.mark.parametrize(
    "module", ["kmsnb", "kmsnb.envelope", "kmsnb.kms", "kmsnb.testing", "kmsnb.duckdb"]
)
def test_import_pulls_in_no_heavy_dependency(module: str) -> None:
    """In a fresh interpreter, ``import <module>`` leaves no heavy module in sys.modules."""
    script = f"import json, sys, {module}; print(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    loaded = json.loads(result.stdout)
    heavy = [name for name in loaded if name.split(".")[0].startswith(HEAVY_PREFIXES)]
    assert heavy == []
