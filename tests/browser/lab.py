"""JupyterLab on 127.0.0.1, as Binder or a user starts it, and a driver for its page.

:class:`LabServer` starts ``jupyter lab`` (through ``binder/start`` after
``binder/postBuild`` in Binder mode) with a free port, a token and a fresh ``$HOME``, over a
copy of the notebooks (JupyterLab autosaves what it runs), and stops it. :class:`Lab`
drives one Chromium page through ``window.jupyterapp`` (``--expose-app-in-browser``):
open a notebook, Run All, restart its kernel, read its cells from the notebook model.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
#: How long a notebook may run, open or restart before the test fails (seconds).
STEP_TIMEOUT = 300
#: Chromium as the machine notes start it: no sandbox (root), no GPU, no traffic of its own.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class LabServer:
    """``jupyter lab`` over ``root``, in Binder mode or plain, with ``$HOME`` = ``home``."""

    root: Path
    home: Path
    binder: bool
    token: str = field(default_factory=lambda: secrets.token_hex(16))
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.home / "jupyter.log"

    def environment(self) -> dict[str, str]:
        keep = ("LANG", "LC_ALL", "TMPDIR")
        env = {name: os.environ[name] for name in keep if name in os.environ}
        # binder/start runs `python -m kmsnb emulator serve`: this venv's python first.
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
        env["HOME"] = str(self.home)
        env["ALIBABA_CLOUD_ECS_METADATA_DISABLED"] = "true"
        return env

    def start(self) -> None:
        env = self.environment()
        # No news or update checks (they would reach the internet), no announcement toast.
        labconfig = self.home / ".jupyter" / "labconfig"
        labconfig.mkdir(parents=True)
        disabled = {"@jupyterlab/apputils-extension:announcements": True}
        (labconfig / "page_config.json").write_text(json.dumps({"disabledExtensions": disabled}))
        command = [
            "jupyter",
            "lab",
            "--no-browser",
            "--allow-root",
            "--ip=127.0.0.1",
            f"--port={self.port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}",
            "--expose-app-in-browser",
            f"--ServerApp.root_dir={self.root}",
        ]
        if self.binder:
            subprocess.run(
                [str(REPO / "binder" / "postBuild")], cwd=REPO, env=env, check=True, timeout=60
            )
            command = [str(REPO / "binder" / "start"), *command]
        with self.log.open("wb") as log:
            # A session of its own, so that whatever is left can be stopped at the end.
            self.process = subprocess.Popen(
                command,
                cwd=self.root,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_ready()

    def _wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"jupyter lab exited:\n{self.log.read_text()}")
            with contextlib.suppress(OSError):
                status = f"{self.url}/api/status?token={self.token}"
                with urllib.request.urlopen(status, timeout=5) as response:  # noqa: S310
                    if response.status == 200:
                        return
            time.sleep(0.25)
        raise AssertionError(f"jupyter lab did not answer in 120 s:\n{self.log.read_text()}")

    def stop(self) -> int | None:
        """SIGTERM to the server alone (as repo2docker's entrypoint relays it); its exit
        status. What else it started must then stop by itself (see :meth:`kill_leftovers`)."""
        if self.process is None:
            return None
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(60)

    def kill_leftovers(self) -> None:
        """Kill whatever of the server's session still runs (after a failed test)."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)


def copy_notebooks(destination: Path) -> list[str]:
    """The tutorials, copied into ``destination``; their names."""
    destination.mkdir(parents=True, exist_ok=True)
    names = []
    for path in sorted((REPO / "notebooks").glob("*.ipynb")):
        shutil.copy2(path, destination / path.name)
        names.append(path.name)
    return names


# JavaScript run in the page. `panel` is the notebook open in the main area.
_OPEN = """async (path) => {
  const app = window.jupyterapp;
  const panel = await app.commands.execute('docmanager:open', {path, factory: 'Notebook'});
  app.shell.activateById(panel.id);
  await panel.context.ready;
  await panel.sessionContext.ready;
  return panel.id;
}"""
_KERNEL_STATUS = """() => {
  const kernel = window.jupyterapp.shell.currentWidget.sessionContext.session?.kernel;
  return kernel ? kernel.status : 'none';
}"""
_RUN_ALL = """async () => {
  const app = window.jupyterapp;
  return await app.commands.execute('notebook:run-all-cells');
}"""
# Done: the kernel idle and no code cell running or queued (JupyterLab marks both
# "running"), seen twice 250 ms apart, in case one cell is queued only after another ends.
_SETTLED = """() => {
  const panel = window.jupyterapp.shell.currentWidget;
  const kernel = panel.sessionContext.session?.kernel;
  return kernel?.status === 'idle' && panel.content.widgets.every(
    (cell) => cell.model.type !== 'code' || cell.model.executionState !== 'running');
}"""
_RUN_CELL = """async (index) => {
  const app = window.jupyterapp;
  const notebook = app.shell.currentWidget.content;
  notebook.activeCellIndex = index;
  return await app.commands.execute('notebook:run-cell');
}"""
_CELLS = """() => window.jupyterapp.shell.currentWidget.content.widgets.map((cell) => ({
  type: cell.model.type,
  source: cell.model.sharedModel.getSource(),
  tags: cell.model.getMetadata('tags') || [],
  count: cell.model.type === 'code' ? cell.model.executionCount : null,
  outputs: cell.model.type === 'code' ? cell.model.outputs.toJSON() : [],
}))"""
_RESTART = """async () => {
  await window.jupyterapp.shell.currentWidget.sessionContext.restartKernel();
}"""
_CLOSE = """async () => {
  const panel = window.jupyterapp.shell.currentWidget;
  await panel.sessionContext.shutdown();
  panel.context.model.dirty = false;
  panel.dispose();
}"""


class Lab:
    """One Chromium page on a :class:`LabServer`."""

    def __init__(self, page: Any, server: LabServer, shots: Path) -> None:
        self.page = page
        self.server = server
        self.shots = shots
        self.page_errors: list[str] = []
        page.on("pageerror", lambda error: self.page_errors.append(str(error)))
        page.set_default_timeout(STEP_TIMEOUT * 1000)
        page.goto(f"{server.url}/lab?token={server.token}&reset")
        page.wait_for_function("() => window.jupyterapp !== undefined")
        page.evaluate("async () => { await window.jupyterapp.restored; }")
        page.wait_for_function("() => window.jupyterapp.commands.hasCommand('docmanager:open')")

    def open(self, name: str) -> None:
        self.page.evaluate(_OPEN, name)
        self.wait_idle()

    def wait_idle(self) -> None:
        self.page.wait_for_function(f"() => ({_KERNEL_STATUS})() === 'idle'")

    def wait_settled(self) -> None:
        for _ in range(2):
            self.page.wait_for_function(_SETTLED, polling=250)
            self.page.wait_for_timeout(250)

    def run_all(self) -> list[dict[str, Any]]:
        """Run All; the cells once it has finished (or stopped at an error)."""
        self.page.evaluate(_RUN_ALL)
        self.wait_settled()
        cells: list[dict[str, Any]] = self.page.evaluate(_CELLS)
        return cells

    def run_cell(self, index: int) -> dict[str, Any]:
        self.page.evaluate(_RUN_CELL, index)
        self.wait_settled()
        cell: dict[str, Any] = self.page.evaluate(_CELLS)[index]
        return cell

    def cells(self) -> list[dict[str, Any]]:
        cells: list[dict[str, Any]] = self.page.evaluate(_CELLS)
        return cells

    def restart(self) -> None:
        self.page.evaluate(_RESTART)
        self.wait_idle()

    def close(self) -> None:
        self.page.evaluate(_CLOSE)

    def screenshot(self, name: str) -> Path:
        self.shots.mkdir(parents=True, exist_ok=True)
        path = self.shots / f"{name}.png"
        self.page.screenshot(path=str(path))
        return path


def problems(cells: list[dict[str, Any]]) -> list[str]:
    """What a run showed that it should not: a cell not run, an error or stderr text in a
    cell not tagged ``raises-exception``, or neither in one that is (a magic's one-line
    error is stderr text)."""
    found = []
    for index, cell in enumerate(cells):
        if cell["type"] != "code":
            continue
        expected = "raises-exception" in cell["tags"]
        if cell["count"] is None:
            found.append(f"cell {index} did not run: {cell['source'][:60]!r}")
        errors = [out for out in cell["outputs"] if out["output_type"] == "error"]
        stderr = [
            out["text"]
            for out in cell["outputs"]
            if out["output_type"] == "stream" and out["name"] == "stderr"
        ]
        if expected and not (errors or stderr):
            found.append(f"cell {index} is tagged raises-exception but showed no error")
        if not expected:
            found += [f"cell {index}: {out['ename']}: {out['evalue']}" for out in errors]
            found += [f"cell {index} stderr: {text}" for text in stderr]
    return found
