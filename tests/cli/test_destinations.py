"""What the CLI says about its inputs and outputs: errors that name the destination (never a
temporary file), destinations checked before the KMS, closed stdin and stdout, names and
contexts that are not UTF-8, --expect-size, and what --help says about pipes."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import kmsnb
from kmsnb.cli import main
from kmsnb.kms.local import LocalKms

from .conftest import Run

PLAINTEXT = os.urandom(200_000)


@pytest.fixture
def plain(tmp_path: Path) -> Path:
    path = tmp_path / "plain.bin"
    path.write_bytes(PLAINTEXT)
    return path


@pytest.fixture
def encrypted(run: Run, plain: Path, tmp_path: Path, key_id: str) -> Path:
    path = tmp_path / "plain.bin.kms"
    assert run("encrypt", str(plain), "-o", str(path), "--key", key_id).status == 0
    return path


@pytest.fixture
def no_kms_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any data-key call fails the test: the destination must be refused first."""

    def asked(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the KMS was asked before the destination was checked")

    monkeypatch.setattr(LocalKms, "generate_data_key", asked)
    monkeypatch.setattr(LocalKms, "decrypt_data_key", asked)


def _kmsnb(kms_uri: str, *args: str | bytes, **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(  # type: ignore[call-overload, no-any-return]
        [sys.executable, "-m", "kmsnb", "--kms", kms_uri, *args], timeout=60, **kwargs
    )


def _closing(fd: int) -> Callable[[], None]:
    return lambda: os.close(fd)


# -- the destination is checked first ------------------------------------------------------


@pytest.mark.unit
@pytest.mark.parametrize("command", ["encrypt", "decrypt"])
def test_a_directory_destination_is_refused_before_the_kms(
    run: Run, plain: Path, encrypted: Path, tmp_path: Path, key_id: str, command: str,
    no_kms_calls: None,
) -> None:  # fmt: skip
    """``-o DIR`` means DIR/NAME (cp's rule); a directory at that name is refused."""
    folder = tmp_path / "folder"
    source = plain if command == "encrypt" else encrypted
    taken = folder / ("plain.bin.kms" if command == "encrypt" else "plain.bin")
    taken.mkdir(parents=True)
    key = ["--key", key_id] if command == "encrypt" else []
    result = run(command, str(source), "-o", str(folder), "--overwrite", *key)
    assert result.status == 1
    assert f"kmsnb: error: {taken} is a directory" in result.err
    assert "kmsnb: hint: name a file" in result.err
    assert os.listdir(taken) == []
    assert os.listdir(folder) == [taken.name]


@pytest.mark.unit
def test_destination_errors_name_the_destination(
    run: Run, encrypted: Path, tmp_path: Path, no_kms_calls: None
) -> None:
    for destination, says in (
        (tmp_path / "missing" / "out.bin", "No such file or directory"),
        (tmp_path / ("x" * 256), "File name too long"),
    ):
        result = run("decrypt", str(encrypted), "-o", str(destination))
        assert result.status == 1
        assert result.err.startswith("kmsnb: error: [Errno ")
        assert says in result.err
        assert repr(str(destination)) in result.err
        assert "kmsnb-tmp" not in result.err
        assert "Traceback" not in result.err


@pytest.mark.unit
def test_decrypting_to_dev_null_needs_no_overwrite(run: Run, encrypted: Path) -> None:
    """Checking a file decrypts (every chunk authenticated) without keeping the plaintext."""
    result = run("decrypt", str(encrypted), "-o", os.devnull)
    assert (result.status, result.err) == (0, "")


# -- stdin, stdout and text that is not UTF-8 ---------------------------------------------------


@pytest.mark.integration
def test_closed_stdin_and_stdout_are_clear_errors(
    kms_uri: str, plain: Path, encrypted: Path, tmp_path: Path, key_id: str
) -> None:
    """``<&-`` and ``>&-``: one line saying so, not an AttributeError traceback."""
    closed_in = _kmsnb(
        kms_uri, "encrypt", "-", "-o", str(tmp_path / "x.kms"), "--key", key_id,
        preexec_fn=_closing(0), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    closed_out = _kmsnb(
        kms_uri, "decrypt", str(encrypted), "-o", "-", preexec_fn=_closing(1),
        stderr=subprocess.PIPE,
    )  # fmt: skip
    for result, name in ((closed_in, "stdin"), (closed_out, "stdout")):
        assert result.returncode == 1
        assert result.stderr.decode().startswith(f"kmsnb: error: [Errno {errno.EBADF}] {name}")
        assert b"Traceback" not in result.stderr
    assert not (tmp_path / "x.kms").exists()


@pytest.mark.integration
def test_a_name_that_is_not_utf8_succeeds_with_pythonioencoding(
    kms_uri: str, plain: Path, tmp_path: Path, key_id: str
) -> None:
    """The message names the file escaped; the command succeeds once the file is written."""
    destination = os.path.join(os.fsencode(tmp_path), b"\xff\xfe.kms")
    result = _kmsnb(
        kms_uri, "encrypt", str(plain), "-o", destination, "--key", key_id,
        capture_output=True, env={**os.environ, "PYTHONIOENCODING": "utf-8"},
    )  # fmt: skip
    assert (result.returncode, result.stderr) == (0, b"")
    assert b"\\udcff\\udcfe.kms" in result.stdout
    with open(destination, "rb") as written:
        assert kmsnb.inspect(written).key_id == key_id


@pytest.mark.integration
def test_a_context_that_is_not_utf8_is_a_usage_error(
    kms_uri: str, plain: Path, tmp_path: Path, key_id: str
) -> None:
    result = _kmsnb(
        kms_uri, "encrypt", str(plain), "-o", str(tmp_path / "x.kms"), "--key", key_id,
        "--context", b"team=\xff", capture_output=True,
    )  # fmt: skip
    assert result.returncode == 2
    assert b"--context: encryption context pairs must be UTF-8 text" in result.stderr
    assert b"codec" not in result.stderr
    assert not (tmp_path / "x.kms").exists()


# -- --expect-size ----------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize(
    ("stream_size", "expected", "status"),
    [(1000, "1000", 0), (999, "1000", 1), (1001, "1000", 1), (0, "0", 0), (0, "1K", 1)],
)
def test_expect_size_refuses_a_short_or_long_stream(
    kms_uri: str, tmp_path: Path, key_id: str, stream_size: int, expected: str, status: int
) -> None:
    """A killed producer gives a short stream: with --expect-size it is an error, and
    nothing is written."""
    output = tmp_path / "out.kms"
    result = _kmsnb(
        kms_uri, "encrypt", "-", "-o", str(output), "--key", key_id, "--expect-size", expected,
        input=PLAINTEXT[:stream_size], capture_output=True,
    )  # fmt: skip
    assert result.returncode == status, result.stderr
    assert output.exists() == (status == 0)
    if status:
        assert b"--expect-size" in result.stderr
        assert b"; nothing was written" in result.stderr
    else:
        assert kmsnb.inspect(output).plaintext_size == stream_size


@pytest.mark.unit
def test_expect_size_checks_a_file_before_the_kms(
    run: Run, plain: Path, tmp_path: Path, key_id: str, no_kms_calls: None
) -> None:
    result = run(
        "encrypt", str(plain), "-o", str(tmp_path / "x"), "--key", key_id, "--expect-size", "7"
    )
    assert result.status == 1
    assert f"is {len(PLAINTEXT)} bytes, not the 7 of --expect-size" in result.err


@pytest.mark.unit
def test_help_says_what_a_killed_producer_does(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["encrypt", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "makes a shorter, valid file, with status 0, if the producer is killed" in text
    assert "Pass --expect-size N to refuse any other length" in text


# -- --no-fsync --------------------------------------------------------------------------------


@pytest.mark.unit
@pytest.mark.parametrize("no_fsync", [False, True], ids=["default", "no-fsync"])
def test_no_fsync_skips_the_fsyncs_of_the_output_and_nothing_else(
    run: Run, plain: Path, tmp_path: Path, key_id: str, monkeypatch: pytest.MonkeyPatch,
    no_fsync: bool,
) -> None:  # fmt: skip
    """The same library verb with durable=False: no fsync of DST or its folder; DST still
    appears whole, and an existing one needs --overwrite."""
    fsynced, real_fsync = [], os.fsync

    def fsync(fd: int) -> None:
        fsynced.append(os.fstat(fd).st_ino)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    out = tmp_path / "out"
    out.mkdir()
    encrypted, decrypted = out / "plain.bin.kms", out / "plain.bin"
    flag = ["--no-fsync"] if no_fsync else []
    assert run("encrypt", str(plain), "-o", str(encrypted), "--key", key_id, *flag).status == 0
    assert run("decrypt", str(encrypted), "-o", str(decrypted), *flag).status == 0
    assert decrypted.read_bytes() == PLAINTEXT
    outputs = {path.stat().st_ino for path in (out, encrypted, decrypted)}
    if no_fsync:
        assert outputs.isdisjoint(fsynced)
    else:
        assert outputs <= set(fsynced)
    assert sorted(os.listdir(out)) == ["plain.bin", "plain.bin.kms"]
    result = run("decrypt", str(encrypted), "-o", str(decrypted), *flag)
    assert result.status != 0
    assert "--overwrite" in result.err
