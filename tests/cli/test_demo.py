"""``make demo`` (python -m kmsnb.demo): the tutorial's steps, twice in a row."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kmsnb import demo
from kmsnb.connection import connect


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


@pytest.mark.unit
def test_printed_commands_run_in_a_new_shell(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``make demo``'s kmsnb is in .venv/bin, not on PATH: the demo says so and prints the path."""
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "kmsnb").write_text("#!/bin/sh\n")
    (bin_dir / "kmsnb").chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(bin_dir / "python"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert demo.shell_command() == (
        ".venv/bin/kmsnb",
        " (or `source .venv/bin/activate` first, then just `kmsnb`)",
    )
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")  # activated
    assert demo.shell_command() == ("kmsnb", "")
    (bin_dir / "kmsnb").unlink()  # kmsnb run from a source tree, not installed
    assert demo.shell_command() == (f"{bin_dir / 'python'} -m kmsnb", "")
