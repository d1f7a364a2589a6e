"""uv.lock, binder/requirements.txt and pyproject.toml agree, so Binder runs what CI tested.

``make test`` checks uv.lock against pyproject.toml (``uv lock --check``) before it runs
this; these tests read the files only (no network).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from .binder_requirements import EXTRAS, REQUIREMENTS, render

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]


def _lock() -> dict:
    return tomllib.loads((REPO / "uv.lock").read_text(encoding="utf-8"))


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def test_binder_requirements_are_exported_from_the_lock() -> None:
    assert REQUIREMENTS.read_text(encoding="utf-8") == render(), "run make lock"


def test_binder_requirements_pin_every_package() -> None:
    lines = [
        line
        for line in REQUIREMENTS.read_text(encoding="utf-8").splitlines()
        if line and not line.startswith("#")
    ]
    assert lines[0] == "-e ."  # repo2docker installs it after copying the repository
    pinned = re.compile(r"[A-Za-z0-9._-]+==[^\s;]+( ; .+)?")
    assert [line for line in lines[1:] if not pinned.fullmatch(line)] == []
    names = {line.split("==")[0] for line in lines[1:]}
    # The runtime of every Binder extra is there: the SDK, DataFrames, magics, Dask.
    expected = {"alibabacloud-kms20160120", "pandas", "pyarrow", "ipython", "ipywidgets"}
    assert expected | {"dask", "distributed", "cryptography"} <= names
    # ... and no test tool: Binder is for users.
    assert names.isdisjoint({"pytest", "nbval", "mypy", "ruff", "hypothesis"})


def test_binder_extras_exist() -> None:
    assert set(EXTRAS) <= set(_pyproject()["project"]["optional-dependencies"])


def test_lock_pins_the_python_binder_uses() -> None:
    """binder/runtime.txt names a Python the lock (and requires-python) accept."""
    runtime = (REPO / "binder" / "runtime.txt").read_text(encoding="utf-8").strip()
    match = re.fullmatch(r"python-3\.(\d+)", runtime)
    assert match, runtime
    assert int(match.group(1)) >= 11
    assert _lock()["requires-python"] == _pyproject()["project"]["requires-python"] == ">=3.11"


def test_lock_holds_the_project_with_every_extra_and_group() -> None:
    project = next(item for item in _lock()["package"] if item["name"] == "kmsnb")
    assert project["source"] == {"editable": "."}
    pyproject = _pyproject()
    assert set(project["optional-dependencies"]) == set(
        pyproject["project"]["optional-dependencies"]
    )
    assert set(project["dev-dependencies"]) == set(pyproject["dependency-groups"])


def test_makefile_installs_from_the_lock_with_the_uv_that_wrote_it() -> None:
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^UV_VERSION := 0\.\d+\.\d+$", makefile, flags=re.M)
    assert re.search(r"^SYNC := \$\(UV\) sync --locked ", makefile, flags=re.M)
    # pip only bootstraps uv; everything else comes from the lock, but for test-lowest,
    # whose point is the oldest versions pyproject.toml allows.
    pip = [line.strip() for line in makefile.splitlines() if "pip install" in line]
    bootstrap = "$(PY) -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)"
    lowest = (
        "$(UV) pip install --python $(VENV_LOWEST)/bin/python --no-progress "
        "--resolution lowest-direct -e '.[test]'"
    )
    assert pip == [f"$(if $(UV_ON_PATH),,{bootstrap})", lowest]


def test_ci_runs_the_tests_on_the_floors_too() -> None:
    """After the locked versions, CI runs the tiers on the lowest direct versions."""
    commands = [
        line
        for line in (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()
        if line.startswith("make ")
    ]
    assert commands == ["make test", "make test-browser", "make test-lowest"]
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    recipe = makefile.split("\ntest-lowest: $(STAMP_LOWEST)\n", 1)[1].split("\n\n", 1)[0]
    assert '-m "unit or integration or notebook"' in recipe
    # Failures fail: no command make is told to ignore ("-"), none whose status is dropped.
    assert "|| true" not in recipe
    assert not re.search(r"^\t-", recipe, flags=re.M)
    assert ".venv-lowest/" in (REPO / ".gitignore").read_text(encoding="utf-8").splitlines()


def test_license_and_project_urls() -> None:
    project = _pyproject()["project"]
    assert project["license"] == "Apache-2.0"
    text = (REPO / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License\n                           Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text
    assert {"Homepage", "Source", "Issues", "Changelog"} <= set(project["urls"])
