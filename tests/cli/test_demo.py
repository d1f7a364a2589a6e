"""``make demo`` (python -m kmsnb.demo): the tutorial's steps, twice in a row."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kmsnb import demo
from kmsnb._connect import connect


@pytest.mark.unit
def test_runs_twice_reusing_its_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert demo.main() == 0
    first = capsys.readouterr().out
    assert "created master key" in first
    assert "data/decrypted_sales.csv matches data/sales.csv" in first
    assert demo.main() == 0
    second = capsys.readouterr().out
    assert "reusing master key" in second
    data = tmp_path / "data"
    assert {"sales.csv", "sales.csv.kms", "decrypted_sales.csv"} == {p.name for p in data.iterdir()}
    assert (data / "sales.csv").read_bytes() == (data / "decrypted_sales.csv").read_bytes()
    assert b"cn-hangzhou" not in (data / "sales.csv.kms").read_bytes()
    kms = connect(f"local:{tmp_path / '.kmsnb-demo' / 'kms'}")
    assert [alias.alias_name for alias in kms.list_aliases()] == [demo.ALIAS]
    assert len(kms.list_keys()) == 1


@pytest.mark.unit
def test_replaces_a_disabled_work_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    demo.main()
    kms = connect(f"local:{tmp_path / '.kmsnb-demo' / 'kms'}")
    kms.disable_key(demo.ALIAS)
    assert demo.main() == 0
    assert "is Disabled" in capsys.readouterr().out
    assert kms.describe_key(demo.ALIAS).key_state == "Enabled"


@pytest.mark.integration
def test_python_m_kmsnb_demo(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "kmsnb.demo"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stderr) == (0, "")
    assert "kmsnb inspect data/sales.csv.kms" in result.stdout
