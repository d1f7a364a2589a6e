"""Static checks of the tutorial notebooks; nbval executes them (see the Makefile).

These need no kernel: they check that each notebook is ready for nbval (outputs committed,
an isolated emulator store set up before the extension loads) and holds nothing it must not
(widget state, credentials, temporary paths the sanitisers would hide).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
PATHS = sorted(NOTEBOOKS.glob("*.ipynb"))
SANITIZE = NOTEBOOKS / "nbval_sanitize.cfg"
EXPECTED = [
    "01-quickstart.ipynb",
    "02-dataframes.ipynb",
    "03-column-level.ipynb",
    "04-keys-and-rotation.ipynb",
    "05-scaling-with-dask.ipynb",
]


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _code_cells(notebook: dict) -> list[dict]:
    return [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]


def _source(cell: dict) -> str:
    source = cell["source"]
    return source if isinstance(source, str) else "".join(source)


def test_all_tutorials_present() -> None:
    assert [path.name for path in PATHS] == EXPECTED


def test_sanitizers_parse() -> None:
    # nbval's own reader: a "regex:" line followed by a "replace:" line.
    pairs = re.findall(r"^regex: (.*)$\n^replace: (.*)$", SANITIZE.read_text(), flags=re.M)
    assert len(pairs) >= 5
    for regex, _ in pairs:
        re.compile(regex)


@pytest.mark.parametrize("path", PATHS, ids=lambda path: path.name)
def test_isolated_store_before_extension(path: Path) -> None:
    """A new keystore and folder each run; the session switched to it even where kmsnb
    was loaded before the notebook (Binder), which tests/notebooks/test_binder_tutorials.py
    runs."""
    cells = _code_cells(_load(path))
    first = _source(cells[0])
    assert 'STORE = tempfile.mkdtemp(prefix="kmsnb-nb-")' in first
    assert 'os.environ["KMSNB_KMS"] = "local:" + STORE' in first
    assert "os.chdir(WORK)" in first
    load = _source(cells[1]).splitlines()
    assert load[:2] == ["%load_ext kmsnb", '%config Kmsnb.kms = os.environ["KMSNB_KMS"]']
    assert "shutil.rmtree(STORE)" in _source(cells[-1])


@pytest.mark.parametrize("path", PATHS, ids=lambda path: path.name)
def test_outputs_committed_from_a_clean_run(path: Path) -> None:
    notebook = _load(path)
    assert "widgets" not in notebook["metadata"]
    counts = [cell["execution_count"] for cell in _code_cells(notebook)]
    assert counts == list(range(1, len(counts) + 1)), "re-run the notebook top to bottom"
    for cell in _code_cells(notebook):
        tags = cell["metadata"].get("tags", [])
        errors = [out for out in cell["outputs"] if out["output_type"] == "error"]
        assert not errors or "raises-exception" in tags


@pytest.mark.parametrize("path", PATHS, ids=lambda path: path.name)
def test_no_secrets_in_outputs(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert "LTAI" not in text  # AccessKey ids start with LTAI
    assert "ALIBABA_CLOUD_ACCESS_KEY_SECRET=" not in text
    assert not re.search(r"(?i)plaintext[_ ]?(data[_ ]?)?key\W+[A-Za-z0-9+/=]{16,}", text)
