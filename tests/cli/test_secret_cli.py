"""``kmsnb secret ...``: values from stdin or a file, never argv; out to a pipe or a file."""

from __future__ import annotations

import io
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from kmsnb.kms._base import KmsClient

from .conftest import Run

pytestmark = pytest.mark.unit

VALUE = "s3cret-from-stdin"


class FakeStdin(io.TextIOWrapper):
    def __init__(self, data: bytes, *, tty: bool = False) -> None:
        super().__init__(io.BytesIO(data), encoding="utf-8")
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


def test_create_reads_stdin_and_drops_one_newline(
    run: Run, kms: KmsClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", FakeStdin(f"{VALUE}\n".encode()))
    result = run("secret", "create", "db/password", "--description", "app db")
    assert result.status == 0, result.err
    assert VALUE not in result.out + result.err
    secret = kms.get_secret_value("db/password")  # type: ignore[attr-defined]
    assert secret.reveal() == VALUE
    assert kms.describe_secret("db/password").description == "app db"  # type: ignore[attr-defined]


def test_put_reads_a_value_file_and_binary_is_kept_exactly(
    run: Run, kms: KmsClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", FakeStdin(b"first\r\n"))
    assert run("secret", "create", "blob").status == 0
    value_file = tmp_path / "value.bin"
    value_file.write_bytes(b"\x00\xffbytes\n")
    assert run("secret", "put", "blob", "--value-file", str(value_file), "--binary").status == 0
    current = kms.get_secret_value("blob")  # type: ignore[attr-defined]
    assert (current.data_type, current.reveal_bytes()) == ("binary", b"\x00\xffbytes\n")
    previous = kms.get_secret_value("blob", version_stage="ACSPrevious")  # type: ignore[attr-defined]
    assert previous.reveal() == "first"


def test_no_value_on_the_command_line(run: Run) -> None:
    assert run("secret", "create", "db/password", VALUE).status == 2


def test_a_terminal_prompts_without_echo(
    run: Run, kms: KmsClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", FakeStdin(b"", tty=True))
    monkeypatch.setattr("getpass.getpass", lambda prompt: VALUE)
    assert run("secret", "create", "typed").status == 0
    assert kms.get_secret_value("typed").reveal() == VALUE  # type: ignore[attr-defined]


def test_empty_or_undecodable_values_are_refused(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", FakeStdin(b"\n"))
    assert "the value is empty" in run("secret", "create", "a").err
    monkeypatch.setattr(sys, "stdin", FakeStdin(b"\xff\xfe"))
    assert "pass --binary" in run("secret", "create", "a").err


def test_get_refuses_a_terminal_unless_reveal(
    run: Run, kms: KmsClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    kms.create_secret("db/password", VALUE)  # type: ignore[attr-defined]
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    refused = run("secret", "get", "db/password")
    assert refused.status == 1
    assert "refusing to print a secret on a terminal" in refused.err
    assert VALUE not in refused.out
    revealed = run("secret", "get", "db/password", "--reveal")
    assert (revealed.status, revealed.out) == (0, VALUE + "\n")


def test_get_writes_to_a_pipe_or_a_file(
    run: Run, kms: KmsClient, kms_uri: str, tmp_path: Path
) -> None:
    kms.create_secret("db/password", VALUE)  # type: ignore[attr-defined]
    piped = subprocess.run(
        [sys.executable, "-m", "kmsnb", "--kms", kms_uri, "secret", "get", "db/password"],
        capture_output=True,
        check=False,
    )
    assert (piped.returncode, piped.stdout) == (0, VALUE.encode())
    revealed = subprocess.run(
        [
            sys.executable,
            "-m",
            "kmsnb",
            "--kms",
            kms_uri,
            "secret",
            "get",
            "db/password",
            "--reveal",
        ],
        capture_output=True,
        check=False,
    )
    assert revealed.stdout == VALUE.encode()  # not a terminal: no newline added
    out = tmp_path / "pw.txt"
    assert run("secret", "get", "db/password", "-o", str(out)).status == 0
    assert out.read_bytes() == VALUE.encode()
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    assert run("secret", "get", "db/password", "-o", str(out)).status == 1  # exists
    assert run("secret", "get", "db/password", "-o", str(out), "--overwrite").status == 0


def test_list_delete_restore(run: Run, kms: KmsClient) -> None:
    kms.create_secret("a", VALUE)  # type: ignore[attr-defined]
    listed = run("secret", "list")
    assert listed.out.splitlines()[0].split() == ["NAME", "CREATED", "UPDATED", "DELETION"]
    assert "a " in listed.out
    assert VALUE not in listed.out
    deleted = run("secret", "delete", "a", "--recovery-days", "7")
    assert "kmsnb secret restore a" in deleted.out
    gone = run("secret", "get", "a", "-o", os.devnull, "--overwrite")
    assert gone.status == 1
    assert "Rejected.ResourceInDeleteWindow" in gone.err
    assert run("secret", "restore", "a").status == 0
    assert run("secret", "delete", "a", "--force").out == "secret a deleted\n"
    missing = run("secret", "get", "a", "-o", os.devnull, "--overwrite")
    assert "Forbidden.ResourceNotFound" in missing.err


def test_a_missing_secret_is_named_and_the_hint_is_about_secrets(run: Run, kms: KmsClient) -> None:
    result = run("secret", "get", "db/nope", "-o", "-")
    assert result.status == 1
    assert "secret 'db/nope' in local emulator at " in result.err
    assert "kmsnb: hint: this KMS has no such secret" in result.err
    assert "kmsnb secret list" in result.err
    assert "key describe" not in result.err
