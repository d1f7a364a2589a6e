"""The tutorials as Binder runs them: kmsnb preloaded in every kernel (binder/postBuild),
KMSNB_KMS naming the HTTP emulator that binder/start launched.

Each tutorial must run against its own temporary keystore all the same, and run again:
Run All twice in one kernel, then once more in a fresh kernel of the same environment,
with no error but those of the cells tagged ``raises-exception``. Binder's own keystore
stays empty, so nothing (``alias/sales exists``, a disabled ``alias/pii``) reaches the
next notebook. ``make test-browser`` does the same in JupyterLab and Chromium.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = [pytest.mark.notebook, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
#: What the kernels inherit from binder/start (printed by the stand-in for the server).
LAUNCH_ENV = (
    "KMSNB_KMS",
    "KMSNB_EMULATOR_PID",
    "ALIBABA_CLOUD_ACCESS_KEY_ID",
    "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
    "ALIBABA_CLOUD_ECS_METADATA_DISABLED",
)
SERVER = (
    "import json, os, sys, time\n"
    f"print(json.dumps({{name: os.environ[name] for name in {LAUNCH_ENV!r}}}), flush=True)\n"
    "sys.stdin.read()\n"  # until the test closes it: then the 'server' exits
)


def unexpected_output(notebook: nbformat.NotebookNode) -> list[str]:
    """Errors and stderr text of the cells that are not tagged ``raises-exception``."""
    found = []
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code" or "raises-exception" in cell.metadata.get("tags", []):
            continue
        for output in cell.outputs:
            if output.output_type == "error":
                found.append(f"cell {index}: {output.ename}: {output.evalue}")
            elif output.output_type == "stream" and output.name == "stderr":
                found.append(f"cell {index} stderr: {output.text}")
    return found


def _environment(home: Path) -> dict[str, str]:
    keep = ("PATH", "LANG", "LC_ALL", "TMPDIR")
    env = {name: os.environ[name] for name in keep if name in os.environ}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["HOME"] = str(home)
    return env


@pytest.fixture(scope="module")
def binder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A Binder session: postBuild's profile in ``$HOME``, binder/start's emulator running.

    Yields the environment a kernel of that session has; stops the emulator after.
    """
    home = tmp_path_factory.mktemp("binder-home")
    env = _environment(home)
    subprocess.run([str(REPO / "binder" / "postBuild")], cwd=REPO, env=env, check=True, timeout=60)
    server = subprocess.Popen(
        [str(REPO / "binder" / "start"), sys.executable, "-c", SERVER],
        cwd=REPO,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert server.stdout is not None and server.stdin is not None
        launched = json.loads(server.stdout.readline())
        yield {**env, **launched}
        server.stdin.close()
        assert server.wait(30) == 0
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGKILL)


@contextlib.contextmanager
def _environ(env: dict[str, str]) -> Iterator[None]:
    """Kernels started here inherit ``env`` (and nothing else of this process's)."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _load_cell_output(notebook: nbformat.NotebookNode) -> str:
    code = (cell for cell in notebook.cells if cell.cell_type == "code")
    cell = next(cell for cell in code if cell.source.startswith("%load_ext kmsnb"))
    return "".join(output.get("text", "") for output in cell.outputs)


def _run(path: Path, env: dict[str, str], *, times: int) -> list[list[str]]:
    """Run all of ``path`` ``times`` times in one fresh kernel; what each run showed wrong.

    Also checks, each time, that the kernel had kmsnb loaded already and that the
    notebook's setup switched it to the notebook's own keystore.
    """
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    problems = []
    with _environ(env), client.setup_kernel():
        for _ in range(times):
            for index, cell in enumerate(notebook.cells):
                client.execute_cell(cell, index)
            problems.append(unexpected_output(notebook))
            loaded = _load_cell_output(notebook)
            assert "The kmsnb extension is already loaded" in loaded
            assert loaded.count("kmsnb: local emulator at /") == 1, loaded
    return problems


def _binder_keys(env: dict[str, str]) -> list[str]:
    with _environ(env):
        from kmsnb.connection import connect

        kms = connect(env["KMSNB_KMS"])
        return [key.key_id for key in kms.list_keys()] + [
            alias.alias_name for alias in kms.list_aliases()
        ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_tutorial_runs_twice_in_a_preloaded_kernel_then_in_a_fresh_one(
    binder: dict[str, str], path: Path
) -> None:
    assert binder["KMSNB_KMS"].startswith("http://127.0.0.1:")
    assert _run(path, binder, times=2) == [[], []]
    assert _run(path, binder, times=1) == [[]]
    assert _binder_keys(binder) == []  # every key went to the notebook's own keystore
