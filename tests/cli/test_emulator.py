"""``kmsnb emulator serve`` and ``exec`` say a keystore that opening created, as every
other command does (issue 12: one rule, ``kmsnb.cli._run.note_new_keystore``).

The server runs in a child process on 127.0.0.1 with a free port (``--port 0``), stopped
with SIGTERM as ``docker stop`` would.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def _note(path: Path) -> str:
    return (
        f"kmsnb: note: a new keystore at {path}: no keys yet (a mistyped local: path makes one too)"
    )


def _serve(store: Path) -> tuple[str, str]:
    """Serve ``store`` until the banner is out, stop the server; its stdout and stderr."""
    process = subprocess.Popen(
        [sys.executable, "-m", "kmsnb", "emulator", "serve", "--port", "0", "--data", str(store)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    watchdog = threading.Timer(120, process.kill)  # a server that never starts fails the test
    watchdog.start()
    try:
        assert process.stdout is not None
        banner = []
        for line in process.stdout:
            banner.append(line)
            if line.startswith("Press Ctrl-C to stop."):
                break
        assert banner[0].startswith("kmsnb KMS emulator serving at http://127.0.0.1:"), banner
        process.send_signal(signal.SIGTERM)
        rest, err = process.communicate(timeout=60)
    finally:
        watchdog.cancel()
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    return "".join(banner) + rest, err


def test_serve_says_a_new_keystore_once_and_an_existing_one_never(tmp_path: Path) -> None:
    """A fresh ``--data`` (a typo makes one) is said once on stderr; served again, not."""
    store = tmp_path / "kesytore"
    out, err = _serve(store)
    assert err == _note(store) + "\n"
    assert f"  keystore:       {store}\n" in out  # the banner stays on stdout, unchanged
    assert "kmsnb emulator stopped" in out
    out, err = _serve(store)
    assert "new keystore" not in out + err


def test_a_relative_store_is_named_by_its_absolute_path(tmp_path: Path) -> None:
    """As ``kmsnb --kms local:REL`` names it: the note says where the keystore really is."""
    process = subprocess.run(
        [sys.executable, "-m", "kmsnb", "emulator", "exec", "--store", "rel", "--",
         sys.executable, "-c", "pass"],
        capture_output=True, text=True, cwd=tmp_path, timeout=120, check=False,
    )  # fmt: skip
    assert process.returncode == 0, process.stderr
    assert process.stderr.count(_note(tmp_path / "rel")) == 1


def test_exec_says_a_new_keystore_once_and_an_existing_one_never(tmp_path: Path) -> None:
    """``emulator exec --store`` starts an emulator on a keystore too: the same note."""
    store = tmp_path / "exec-store"
    command = [sys.executable, "-m", "kmsnb", "emulator", "exec", "--store", str(store), "--"]
    child = [sys.executable, "-c", "print('child ran')"]
    first = subprocess.run([*command, *child], capture_output=True, text=True, timeout=120)
    assert (first.returncode, first.stdout) == (0, "child ran\n"), first.stderr
    assert first.stderr == _note(store) + "\n"
    second = subprocess.run([*command, *child], capture_output=True, text=True, timeout=120)
    assert (second.returncode, second.stderr) == (0, "")
