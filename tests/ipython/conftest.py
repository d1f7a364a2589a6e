"""Fixtures for the IPython extension: a real ``InteractiveShell``, a local KMS, a recorder.

The shell follows the pattern of the notebook-ecosystem notes (§1.3): one fresh
``InteractiveShell`` per test, history in memory, ``IPYTHONDIR`` in the test's temporary
folder, and a ``run`` helper that fails the test on any error unless it is expected.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell
from traitlets.config import Config

from kmsnb import _progress, session
from kmsnb.kms._base import DataKey, UnwrappedKey
from kmsnb.kms.local import LocalKms

#: A fake AccessKey secret: present in the environment, never to be shown anywhere.
FAKE_ACCESS_KEY_SECRET = "kmsnbFakeSecret0LTAIq7ZxW3vB9tR2yK"


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class Shell(InteractiveShell):
    """An InteractiveShell whose ``run`` raises what the cell raised, and which remembers
    the text it showed for the last error (``shown``)."""

    last_shown: str | None = None

    def _showtraceback(self, etype: Any, evalue: Any, stb: Any) -> None:
        self.last_shown = _ANSI.sub("", self.InteractiveTB.stb2text(stb))
        super()._showtraceback(etype, evalue, stb)

    def show_usage_error(self, exc: BaseException) -> None:
        self.last_shown = f"UsageError: {exc}"
        super().show_usage_error(exc)

    def shown(self, cell: str) -> str:
        """Run ``cell``, which must fail; return the text shown for its error."""
        self.last_shown = None
        self.fails(cell)
        assert self.last_shown is not None, f"no error shown for {cell!r}"
        return self.last_shown

    def one_line_error(self, cell: str, *words: str, head: str | None = None) -> str:
        """Run ``cell``, which must fail, and check what the user sees: one line, headed by
        ``head`` (a class name) when given, saying each of ``words``; no traceback."""
        shown = self.shown(cell).strip()
        assert "\n" not in shown, shown
        assert "Traceback" not in shown
        if head is not None:
            assert shown.startswith(f"{head}: "), shown
        for word in words:
            assert word in shown, (word, shown)
        return shown

    def run(self, cell: str) -> Any:
        """Run ``cell`` as a user would; return its value, or raise its error."""
        result = self.run_cell(cell, store_history=True)
        result.raise_error()
        return result.result

    def fails(self, cell: str) -> BaseException:
        """Run ``cell``, which must fail; return the error."""
        result = self.run_cell(cell, store_history=True)
        error = result.error_in_exec or result.error_before_exec
        assert error is not None, f"expected {cell!r} to fail"
        return error


class RecordingKms:
    """A KMS wrapper that remembers every plaintext data key it hands out.

    The secret-hygiene tests look for these keys, raw and encoded, wherever they must
    never appear. Management calls and ``location`` go to the wrapped client.
    """

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.data_keys: list[bytes] = []

    def generate_data_key(
        self, key_id: str, encryption_context: Mapping[str, str] | None = None, **options: Any
    ) -> DataKey:
        data_key: DataKey = self._inner.generate_data_key(key_id, encryption_context, **options)
        self.data_keys.append(bytes(data_key.plaintext))
        return data_key

    def decrypt_data_key(
        self, ciphertext_blob: str, encryption_context: Mapping[str, str] | None = None
    ) -> UnwrappedKey:
        key: UnwrappedKey = self._inner.decrypt_data_key(ciphertext_blob, encryption_context)
        self.data_keys.append(bytes(key.plaintext))
        return key

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._inner, name)


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """IPython and the KMS keep their files in the test's folder; global state is reset."""
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    monkeypatch.setenv("KMSNB_KMS", f"local:{tmp_path / 'keys'}")
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", FAKE_ACCESS_KEY_SECRET)
    session.reset()
    yield
    session.reset()
    _progress.set_progress_threshold(_progress.DEFAULT_PROGRESS_THRESHOLD)


def _make_shell(config: Config | None) -> Shell:
    config = config if config is not None else Config()
    config.HistoryManager.hist_file = ":memory:"
    Shell.clear_instance()
    shell = Shell.instance(config=config)
    # As jupysql's TestingShell does: flushing the display hook runs gc.collect(), which
    # can hang at the end of a session full of shells.
    shell.displayhook.flush = lambda: None  # type: ignore[method-assign]
    return shell


@pytest.fixture
def make_shell() -> Iterator[Callable[[Config | None], Shell]]:
    """Make the test's shell (a fresh singleton, history in memory) from a config."""
    made: list[Shell] = []

    def make(config: Config | None = None) -> Shell:
        made.append(_make_shell(config))
        return made[-1]

    yield make
    for shell in made:
        if "kmsnb" in shell.extension_manager.loaded:
            shell.run_line_magic("unload_ext", "kmsnb")  # closes the KMS it opened
        shell.history_manager.end_session()
    Shell.clear_instance()


@pytest.fixture
def bare_shell(make_shell: Callable[[Config | None], Shell]) -> Shell:
    """A shell without the extension loaded."""
    return make_shell(None)


@pytest.fixture
def shell(bare_shell: Shell, capsys: pytest.CaptureFixture[str]) -> Shell:
    """A shell with ``%load_ext kmsnb`` done (its status line already read)."""
    bare_shell.run("%load_ext kmsnb")
    capsys.readouterr()
    return bare_shell


@pytest.fixture
def keystore(tmp_path: Path) -> Path:
    """The folder of the local KMS that ``KMSNB_KMS`` names."""
    return tmp_path / "keys"


@pytest.fixture
def key(shell: Shell) -> str:
    """A key made through the magics, as ``alias/test``, and the session's default."""
    shell.run("%kms create-key --alias test --description 'test key'")
    shell.run("%kms use alias/test")
    return "alias/test"


@pytest.fixture
def local_kms(keystore: Path) -> Iterator[LocalKms]:
    """The KMS that ``KMSNB_KMS`` names, opened directly (for checks behind the magics)."""
    client = LocalKms(keystore)
    yield client
    client.close()


@pytest.fixture
def recording(shell: Shell) -> RecordingKms:
    """The session's KMS (the extension's cache) wrapped to record every data key."""
    recorder = RecordingKms(session.get_kms())
    session.set_kms(recorder, cache=False)  # type: ignore[arg-type]
    return recorder


@pytest.fixture
def access_key_secret() -> str:
    """The fake AccessKey secret set in the environment."""
    return os.environ["ALIBABA_CLOUD_ACCESS_KEY_SECRET"]
