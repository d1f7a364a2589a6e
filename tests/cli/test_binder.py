"""binder/: the requirements, the build-time kernel config and the launch script."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from traitlets.config import Config

BINDER = Path(__file__).resolve().parents[2] / "binder"
REPO = BINDER.parent


def _environment(home: Path) -> dict[str, str]:
    """A clean launch environment: a fresh $HOME, this venv's python first on PATH."""
    keep = ("PATH", "LANG", "LC_ALL", "SYSTEMROOT", "TMPDIR")
    env = {name: os.environ[name] for name in keep if name in os.environ}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["HOME"] = str(home)
    return env


@pytest.mark.unit
@pytest.mark.parametrize("name", ["postBuild", "start"])
def test_scripts_are_executable_and_parse(name: str) -> None:
    script = BINDER / name
    assert os.access(script, os.X_OK)
    assert script.read_text().startswith("#!/usr/bin/env bash\n")
    subprocess.run(["bash", "-n", str(script)], check=True, timeout=30)


@pytest.mark.unit
def test_start_ends_by_handing_over() -> None:
    lines = [line for line in (BINDER / "start").read_text().splitlines() if line.strip()]
    assert lines[-1] == 'exec "$@"'


@pytest.mark.unit
def test_requirements_install_the_project_and_pinned_versions() -> None:
    """A local requirement first (installed after the copy), then exact pins from uv.lock."""
    requirements = [
        line.strip()
        for line in (BINDER / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert requirements[0] == "-e ."
    assert all("==" in line for line in requirements[1:])
    assert (BINDER / "runtime.txt").read_text() == "python-3.11\n"


@pytest.mark.unit
def test_post_build_preloads_the_extension_and_disables_history(tmp_path: Path) -> None:
    subprocess.run(
        [str(BINDER / "postBuild")], cwd=REPO, env=_environment(tmp_path), check=True, timeout=30
    )
    profile = tmp_path / ".ipython" / "profile_default"
    settings = Config()
    for name in ("ipython_config.py", "ipython_kernel_config.py"):
        exec(  # noqa: S102 - the config files postBuild wrote, run as IPython would
            (profile / name).read_text(), {"get_config": lambda: settings}
        )
    assert settings.InteractiveShellApp.extensions == ["kmsnb"]
    assert settings.HistoryManager.enabled is False


def _running(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie left for an init that does not reap counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def _emulator_pid(home: Path) -> int:
    """The pid of the emulator that binder/start started with ``$HOME`` = ``home``."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                arguments = (entry / "cmdline").read_bytes().split(b"\0")
                if b"serve" in arguments and str(home).encode() in b" ".join(arguments):
                    return int(entry.name)
    raise AssertionError("no emulator process found")


def _wait_until_gone(pid: int) -> bool:
    deadline = time.monotonic() + 20
    while _running(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not _running(pid)


def _start(home: Path, code: str) -> subprocess.Popen[str]:
    # A session of its own, so that a failing test can stop whatever is left.
    return subprocess.Popen(
        [str(BINDER / "start"), sys.executable, "-c", code],
        cwd=REPO,
        env=_environment(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _stop_group(process: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(30)


@pytest.mark.integration
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_start_serves_the_emulator_and_stops_it_when_the_server_exits(tmp_path: Path) -> None:
    check = (
        "import os; from kmsnb.connection import connect; "
        "kms = connect(); key = kms.create_key('binder'); "
        "print(os.getpid(), os.environ['KMSNB_KMS'], os.environ['KMSNB_EMULATOR_PID'], "
        "key.key_state, os.environ['ALIBABA_CLOUD_ACCESS_KEY_SECRET'])"
    )
    process = _start(tmp_path, check)
    try:
        out, err = process.communicate(timeout=60)
        server_pid, endpoint, pid, state, secret = out.split()
        assert (process.returncode, state) == (0, "Enabled"), err
        assert int(server_pid) == process.pid  # exec "$@": the server replaced the script
        assert endpoint.startswith("http://127.0.0.1:")
        log = (tmp_path / ".kmsnb-emulator" / "serve.log").read_text()
        assert f"serving at {endpoint}" in log
        assert len(secret) >= 20
        assert secret not in log
        # Nobody stopped it but the end of the server; it shut down cleanly.
        assert _wait_until_gone(int(pid))
        log = (tmp_path / ".kmsnb-emulator" / "serve.log").read_text()
        assert log.rstrip().endswith("kmsnb emulator stopped")
    finally:
        _stop_group(process)


@pytest.mark.integration
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_emulator_stops_when_the_server_is_killed(tmp_path: Path, how: signal.Signals) -> None:
    """Only the server gets the signal (as from repo2docker's entrypoint), even SIGKILL."""
    process = _start(tmp_path, "import time; print('up', flush=True); time.sleep(600)")
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == "up\n"
        emulator = _emulator_pid(tmp_path)
        assert _running(emulator)
        os.kill(process.pid, how)
        process.wait(30)
        assert _wait_until_gone(emulator)
    finally:
        _stop_group(process)


@pytest.mark.notebook
def test_kernels_load_kmsnb_without_history(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real kernel, started after postBuild, has kmsnb's magics and no history database."""
    import nbformat
    from nbclient import NotebookClient

    subprocess.run(
        [str(BINDER / "postBuild")], cwd=REPO, env=_environment(tmp_path), check=True, timeout=30
    )
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("IPYTHONDIR", raising=False)
    monkeypatch.setenv("KMSNB_KMS", f"local:{tmp_path / 'kms'}")
    source = (
        "shell = get_ipython()\n"
        "print('kms' in shell.magics_manager.magics['line'], shell.history_manager.enabled)"
    )
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    NotebookClient(notebook, timeout=60, kernel_name="python3").execute()
    assert notebook.cells[0].outputs[0]["text"] == "True False\n"
