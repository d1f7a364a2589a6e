"""A notebook names its own KMS whether or not the extension was loaded before it; and
comments after a magic's arguments.

Binder loads kmsnb in every kernel (binder/postBuild) before a notebook's first cell. The
tutorials run ``%load_ext kmsnb`` (a no-op there) and then ``%config Kmsnb.kms = ...``,
which must switch a preloaded kernel to the notebook's own keystore, must not open it a
second time in a fresh kernel, and must switch again when the notebook runs again.
"""

from __future__ import annotations

import subprocess

import pytest
from traitlets.config import Config

from kmsnb import session
from kmsnb.ipython._actions import management_client
from kmsnb.ipython._magic_support import split

pytestmark = pytest.mark.notebook

SETUP = 'import os\n%load_ext kmsnb\n%config Kmsnb.kms = os.environ["KMSNB_KMS"]\n'


def _location() -> str:
    return str(management_client(session.get_kms()).location)


def test_a_preloaded_extension_switches_to_the_notebooks_keystore(
    make_shell, tmp_path, monkeypatch, capsys
):
    preloaded = Config()
    preloaded.InteractiveShellApp.extensions = ["kmsnb"]  # what postBuild writes
    shell = make_shell(preloaded)
    shell.run("%load_ext kmsnb")  # as the kernel did, with Binder's KMSNB_KMS
    capsys.readouterr()
    binder = _location()

    store = tmp_path / "notebook"
    monkeypatch.setenv("KMSNB_KMS", f"local:{store}")  # the tutorial's setup cell
    shell.run(SETUP)
    out = capsys.readouterr().out
    assert "The kmsnb extension is already loaded" in out
    assert out.count("kmsnb: local emulator at") == 1
    assert _location() == f"local emulator at {store}" != binder


def test_a_fresh_kernel_opens_the_keystore_once_and_a_rerun_switches(
    bare_shell, tmp_path, monkeypatch, capsys
):
    first = tmp_path / "first"
    monkeypatch.setenv("KMSNB_KMS", f"local:{first}")
    bare_shell.run(SETUP)
    assert capsys.readouterr().out.count("\n") == 1  # the load line only
    opened = session.get_kms()
    assert _location() == f"local emulator at {first}"

    bare_shell.run('%config Kmsnb.kms = os.environ["KMSNB_KMS"]')  # the same again
    assert (capsys.readouterr().out, session.get_kms()) == ("", opened)

    second = tmp_path / "second"  # Run All again: the setup cell made a new keystore
    monkeypatch.setenv("KMSNB_KMS", f"local:{second}")
    bare_shell.run(SETUP)
    assert capsys.readouterr().out.count(f"kmsnb: local emulator at {second} (a new keystore") == 1
    assert _location() == f"local emulator at {second}"


def test_the_same_uri_reconnects_when_the_session_kms_was_replaced(
    shell, keystore, tmp_path, capsys
):
    from kmsnb.kms.local import LocalKms

    other = LocalKms(tmp_path / "other")
    session.set_kms(other)
    shell.run(f"%config Kmsnb.kms = 'local:{keystore}'")
    assert "kmsnb: local emulator at" in capsys.readouterr().out
    assert _location() == f"local emulator at {keystore}"
    other.close()


def test_a_comment_may_follow_a_magics_arguments(shell, tmp_path, capsys):
    shell.run("%kms create-key --alias sales  # the team's key")
    shell.run("%kms use alias/sales  # the session's default key")
    assert session.get_default_key() == "alias/sales"
    receipt = shell.run(f"%%encrypt {tmp_path / 'a.kms'}  # the cell's last value\nb'x'\n")
    assert receipt is not None
    assert (tmp_path / "a.kms").exists()


LINES = [
    "use alias/x  # it's ours",
    "a#b c",
    '"#x" y',
    "a \\#b # c",
    "a\\ #b",
    "'it''s' # x",
    '--description "a # b" # the key\'s',
    "# all of it",
    "--description 'a \"b\" c' -k x#y",
    'x "\\"#" y',
]


@pytest.mark.unit
@pytest.mark.parametrize("line", LINES)
def test_split_agrees_with_bash(line):
    """bash itself is the reference: its words for ``printf '%s\\0' LINE``."""
    words = subprocess.run(
        ["bash", "-c", f"printf '%s\\0' {line}"], capture_output=True, check=True, timeout=10
    ).stdout
    expected = words.decode().split("\0")[:-1] if words != b"\0" else []
    assert split(line) == expected


@pytest.mark.unit
def test_split_drops_a_silencing_semicolon_before_a_comment():
    assert split("use alias/x ;  # quiet") == ["use", "alias/x"]
