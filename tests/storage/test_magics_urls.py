"""``%encrypt``/``%%encrypt``, ``%decrypt`` and ``%kms inspect`` on s3:// URLs in a real
``InteractiveShell``, against a real S3-protocol server (moto, 127.0.0.1): configured by
fsspec's environment (``AWS_ENDPOINT_URL``) or ``--storage-option``; an unwritable URL is
one line with a hint, and nothing is written."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from IPython.core.interactiveshell import InteractiveShell
from traitlets.config import Config

from kmsnb import session
from kmsnb.errors import UnsupportedStorageError

from .conftest import object_keys

pytestmark = pytest.mark.integration


@pytest.fixture
def shell(
    tmp_path: Path, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[InteractiveShell]:
    """A fresh shell with ``%load_ext kmsnb``, a local emulator KMS and a default key, AWS
    credentials in the environment, and the working directory a fresh folder."""
    monkeypatch.setenv("KMSNB_KMS", f"local:{tmp_path / 'kms'}")
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    for name, value in (
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
    ):
        monkeypatch.setenv(name, value)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    InteractiveShell.clear_instance()
    made = InteractiveShell.instance(config=config)
    made.displayhook.flush = lambda: None  # type: ignore[method-assign]
    _run(made, "%load_ext kmsnb")
    _run(made, "%kms create-key --alias s3test")
    _run(made, "%kms use alias/s3test")
    yield made
    made.run_line_magic("unload_ext", "kmsnb")
    made.history_manager.end_session()
    InteractiveShell.clear_instance()
    session.reset()


def _run(shell: InteractiveShell, cell: str) -> Any:
    result = shell.run_cell(cell, store_history=True)
    result.raise_error()
    return result.result


def test_encrypt_decrypt_and_inspect_through_the_environment(
    shell: InteractiveShell,
    bucket: str,
    s3_endpoint: str,
    s3_client: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    shell.user_ns["df"] = pd.DataFrame({"region": ["north", "south"], "amount": [1.5, 2.0]})
    url = f"s3://{bucket}/sales.parquet.kms"
    saved = _run(shell, f"%encrypt df {url}")
    assert saved.path == url
    assert object_keys(s3_client, bucket) == ["sales.parquet.kms"]
    _run(shell, f"%decrypt {url} -o back")
    pd.testing.assert_frame_equal(shell.user_ns["df"], shell.user_ns["back"])
    details = _run(shell, f"%kms inspect {url}")
    assert url in str(details)
    _run(shell, f"%%encrypt s3://{bucket}/note.kms\n'a note, not typed secrets'")
    assert _run(shell, f"%decrypt s3://{bucket}/note.kms") == "a note, not typed secrets"


def test_storage_options_on_the_magics(
    shell: InteractiveShell, bucket: str, s3_endpoint: str, s3_client: Any
) -> None:
    option = f"--storage-option endpoint_url={s3_endpoint}"
    shell.user_ns["blob"] = b"\x00some bytes"
    url = f"s3://{bucket}/blob.kms"
    _run(shell, f"%encrypt blob {url} {option}")
    assert _run(shell, f"%decrypt {url} {option}") == b"\x00some bytes"
    assert "blob.kms" in str(_run(shell, f"%kms inspect {url} {option}"))
    result = shell.run_cell(f"%encrypt blob {url} {option} --storage-option secret=hunter2")
    assert isinstance(result.error_in_exec, ValueError)
    assert "hunter2" not in str(result.error_in_exec)
    assert object_keys(s3_client, bucket) == ["blob.kms"]


def test_an_unwritable_url_is_refused_and_nothing_is_written(
    shell: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    shell.user_ns["blob"] = b"bytes"
    capsys.readouterr()
    result = shell.run_cell("%encrypt blob ftp://127.0.0.1:9/blob.kms")
    assert isinstance(result.error_in_exec, UnsupportedStorageError)
    shown = capsys.readouterr()
    text = shown.out + shown.err
    assert "UnsupportedStorageError: cannot write ftp://127.0.0.1:9/blob.kms" in text
    assert "--storage-option KEY=VALUE" in text  # the hint, in the magics' words
    assert "Traceback" not in text
    assert os.listdir(".") == []
