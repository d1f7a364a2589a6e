"""The kmsnb command line, run in-process through main() and, where it matters, as
``python -m kmsnb`` in a subprocess."""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from pending_output import wait_for_pending_output

import kmsnb.cli._display as display
from kmsnb import errors
from kmsnb._format.header import read_header
from kmsnb._progress import get_progress_threshold, set_progress_threshold
from kmsnb.cli import main
from kmsnb.kms._base import KmsClient

from .conftest import Run, tutorial_cipher

RunBinary = Callable[..., tuple[int, bytes, str]]

SALES = b"region,units\ncn-hangzhou,1200\ncn-shanghai,980\n"
BIG = os.urandom(5 * 16384 + 123)  # several payload chunks


@pytest.fixture
def sales(tmp_path: Path) -> Path:
    path = tmp_path / "sales.csv"
    path.write_bytes(SALES)
    return path


@pytest.fixture
def run_binary(
    kms_uri: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> RunBinary:
    """Run in-process with ``stdin`` bytes; return status, stdout bytes and stderr text."""

    def run_(stdin: bytes, *args: str) -> tuple[int, bytes, str]:
        stdout = io.BytesIO()
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
        monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(stdout, write_through=True))
        capsys.readouterr()
        status = main(["--kms", kms_uri, *args])
        sys.stdout.flush()
        return status, stdout.getvalue(), capsys.readouterr().err

    return run_


def _subprocess(*args: str, **kwargs: object) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(  # type: ignore[call-overload, no-any-return]
        [sys.executable, "-m", "kmsnb", *args], capture_output=True, timeout=60, **kwargs
    )  # kwargs: input= or env=


def _data_key_texts(kms: KmsClient, path: Path) -> list[str]:
    """The data key of a file, as base64 and hex: what must never be printed."""
    with open(path, "rb") as fileobj:
        header = read_header(fileobj)
    key = bytes(kms.decrypt_data_key(header.wrapped_key, header.encryption_context).plaintext)
    return [base64.b64encode(key).decode(), key.hex()]


# --- encrypt, decrypt, inspect ---------------------------------------------------------


@pytest.mark.unit
def test_round_trip_through_files(run: Run, sales: Path, tmp_path: Path, key_id: str) -> None:
    encrypted, decrypted = tmp_path / "sales.csv.kms", tmp_path / "out.csv"
    result = run("encrypt", str(sales), "-o", str(encrypted), "--key", key_id)
    assert (result.status, result.err) == (0, "")
    assert key_id in result.out
    result = run("decrypt", str(encrypted), "-o", str(decrypted))
    assert (result.status, decrypted.read_bytes()) == (0, SALES)


@pytest.mark.unit
def test_inspect_human_and_json(run: Run, sales: Path, tmp_path: Path, key_id: str) -> None:
    encrypted = tmp_path / "x.kms"
    run("encrypt", str(sales), "-o", str(encrypted), "--key", key_id, "--context", "team=apollo")
    human = run("inspect", str(encrypted))
    assert human.status == 0
    assert f"key_id:             {key_id}" in human.out
    assert '{"team": "apollo"}' in human.out
    fields = json.loads(run("inspect", "--json", str(encrypted)).out)
    assert (key_id, {"team": "apollo"}, len(SALES)) == (
        fields["key_id"],
        fields["encryption_context"],
        fields["plaintext_size"],
    )


@pytest.mark.unit
def test_context_is_checked_with_a_hint(run: Run, sales: Path, tmp_path: Path, key_id: str) -> None:
    encrypted = tmp_path / "x.kms"
    run("encrypt", str(sales), "-o", str(encrypted), "--key", key_id, "--context", "a=1")
    result = run("decrypt", str(encrypted), "-o", str(tmp_path / "o"), "--context", "a=2")
    assert result.status == 1
    assert result.err.startswith("kmsnb: error: the file's encryption context differs")
    assert "kmsnb: hint: pass the context the file was made with (--context" in result.err
    assert "Traceback" not in result.err
    assert not (tmp_path / "o").exists()
    assert run("decrypt", str(encrypted), "-o", str(tmp_path / "o"), "--context", "a=1").status == 0


@pytest.mark.unit
def test_existing_output_needs_overwrite(
    run: Run, sales: Path, tmp_path: Path, key_id: str
) -> None:
    encrypted = tmp_path / "x.kms"
    encrypted.write_bytes(b"keep me")
    result = run("encrypt", str(sales), "-o", str(encrypted), "--key", key_id)
    assert (result.status, encrypted.read_bytes()) == (1, b"keep me")
    assert "kmsnb: hint: pass --overwrite" in result.err
    args = ("encrypt", str(sales), "-o", str(encrypted), "--key", key_id, "--overwrite")
    assert run(*args).status == 0
    assert run("encrypt", str(sales), "-o", str(sales), "--key", key_id, "--overwrite").status == 1


@pytest.mark.unit
@pytest.mark.parametrize(
    "args",
    [
        ["encrypt", "in", "--key", "k"],  # no -o
        ["encrypt", "in", "-o", "out"],  # no --key
        ["encrypt", "in", "-o", "out", "--key", "k", "--context", "novalue"],
        ["encrypt", "in", "-o", "out", "--key", "k", "--context", "a=1", "--context", "a=2"],
        ["encrypt", "in", "-o", "out", "--key", "k", "--chunk-size", "0"],
        ["decrypt", "in", "-o", "out", "--chunk-size", "lots"],
        ["key", "schedule-deletion", "k"],  # no --days
        ["frobnicate"],
    ],
)
def test_usage_errors_exit_2(run: Run, args: list[str]) -> None:
    assert run(*args).status == 2


@pytest.mark.unit
def test_group_without_command_prints_usage(run: Run) -> None:
    result = run("alias")
    assert result.status == 2
    assert "usage: kmsnb alias" in result.err


@pytest.mark.unit
@pytest.mark.parametrize("chunk_size", ["16K", "20000", "1M"])
def test_chunk_size_is_only_a_buffer_size(
    run: Run, tmp_path: Path, key_id: str, chunk_size: str
) -> None:
    source, encrypted, decrypted = tmp_path / "big", tmp_path / "big.kms", tmp_path / "big.out"
    source.write_bytes(BIG)
    run("encrypt", str(source), "-o", str(encrypted), "--key", key_id, "--chunk-size", chunk_size)
    assert run("decrypt", str(encrypted), "-o", str(decrypted), "--chunk-size", "64K").status == 0
    assert decrypted.read_bytes() == BIG
    assert json.loads(run("inspect", "--json", str(encrypted)).out)["chunk_size"] == 16384


@pytest.mark.unit
def test_streams_stdin_to_stdout(run_binary: RunBinary, key_id: str) -> None:
    status, ciphertext, err = run_binary(BIG, "encrypt", "-", "-o", "-", "--key", key_id)
    assert (status, err) == (0, "")
    assert ciphertext.startswith(b"\x89KMSNB\r\n")
    status, plaintext, err = run_binary(ciphertext, "decrypt", "-", "-o", "-")
    assert (status, plaintext, err) == (0, BIG, "")
    status, out, err = run_binary(ciphertext, "inspect", "--json", "-")
    assert json.loads(out)["plaintext_size"] is None  # written as a stream


@pytest.mark.unit
def test_decrypting_to_stdout_releases_only_verified_chunks(
    run_binary: RunBinary, key_id: str
) -> None:
    _, ciphertext, _ = run_binary(BIG, "encrypt", "-", "-o", "-", "--key", key_id)
    tampered = bytearray(ciphertext)
    tampered[-20] ^= 0x01  # in the final chunk
    status, plaintext, err = run_binary(
        bytes(tampered), "decrypt", "-", "-o", "-", "--chunk-size", "16K"
    )
    assert status == 1
    assert "failed authentication" in err
    assert 0 < len(plaintext) < len(BIG)  # the chunks before the bad one, as with age
    assert BIG.startswith(plaintext)


@pytest.mark.unit
def test_refuses_ciphertext_to_a_terminal(
    run: Run, sales: Path, key_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    result = run("encrypt", str(sales), "-o", "-", "--key", key_id)
    assert result.status == 1
    assert "terminal" in result.err


@pytest.mark.unit
def test_not_an_encrypted_file(run: Run, sales: Path, tmp_path: Path) -> None:
    result = run("decrypt", str(sales), "-o", str(tmp_path / "out"))
    assert result.status == 1
    assert "kmsnb: error: not a kmsnb file" in result.err
    assert "kmsnb: hint: check that this is a kmsnb file (kmsnb inspect PATH)" in result.err
    assert run("inspect", str(tmp_path / "missing")).status == 1


@pytest.mark.unit
def test_progress_bar_on_a_terminal(
    run: Run, tmp_path: Path, key_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "big"
    source.write_bytes(BIG)
    threshold = get_progress_threshold()
    set_progress_threshold(len(BIG))
    try:
        monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
        result = run("encrypt", str(source), "-o", str(tmp_path / "b.kms"), "--key", key_id)
        assert "encrypt big" in result.err
        result = run("decrypt", str(tmp_path / "b.kms"), "-o", str(tmp_path / "b.out"))
        assert "decrypt b.kms" in result.err
        monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
        args = ("decrypt", str(tmp_path / "b.kms"), "-o", str(tmp_path / "b.out"), "--overwrite")
        assert run(*args).err == ""
    finally:
        set_progress_threshold(threshold)


@pytest.mark.unit
def test_key_material_is_never_printed(
    run: Run, sales: Path, tmp_path: Path, kms: KmsClient, key_id: str
) -> None:
    encrypted = tmp_path / "x.kms"
    results = [run("encrypt", str(sales), "-o", str(encrypted), "--key", key_id)]
    results += [run("inspect", str(encrypted)), run("inspect", "--json", str(encrypted))]
    results += [run("rewrap", str(encrypted), "--key", key_id)]
    results += [run("decrypt", str(encrypted), "-o", str(tmp_path / "o"))]
    printed = "".join(result.out + result.err for result in results)
    for secret in _data_key_texts(kms, encrypted):
        assert secret not in printed


@pytest.mark.unit
def test_keyboard_interrupt_exits_130(
    run: Run, sales: Path, tmp_path: Path, key_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import kmsnb.envelope

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(kmsnb.envelope, "open_encrypt", interrupted)
    result = run("encrypt", str(sales), "-o", str(tmp_path / "x.kms"), "--key", key_id)
    assert (result.status, result.err) == (130, "kmsnb: interrupted\n")
    assert [sales.name] == sorted(p.name for p in tmp_path.iterdir() if p.is_file())


@pytest.mark.unit
@pytest.mark.parametrize(
    ("error", "hint"),
    [
        (errors.TruncatedError("t"), "cut short"),
        (errors.IntegrityError("i"), "good copy"),
        (errors.WrongKeyError("w"), "the context and the KMS the file was made with"),
        (errors.KmsAccessDeniedError("d", code="Rejected.Disabled"), "key's state"),
        (errors.KmsUnavailableError("u"), "retry"),
        (errors.KmsError("k", code="Odd"), "API documentation"),
        (errors.FormatError("f"), "kmsnb inspect PATH"),
        (ImportError("no module named alibabacloud_kms20160120"), "pip install 'kmsnb["),
    ],
)
def test_each_error_class_has_a_hint(
    error: Exception, hint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert display.report_error(error) == 1
    first, second = capsys.readouterr().err.splitlines()
    assert first.startswith("kmsnb: error: ")
    assert second.startswith("kmsnb: hint: ")
    assert hint in second


# --- rewrap, convert, legacy files ----------------------------------------------------


@pytest.mark.unit
def test_rewrap(run: Run, sales: Path, tmp_path: Path, kms: KmsClient, key_id: str) -> None:
    encrypted = tmp_path / "x.kms"
    run("encrypt", str(sales), "-o", str(encrypted), "--key", key_id)
    payload = encrypted.read_bytes()[-100:]
    other = kms.create_key("the new key").key_id
    result = run("rewrap", str(encrypted), "--key", other)
    assert (result.status, other in result.out) == (0, True)
    assert other == json.loads(run("inspect", "--json", str(encrypted)).out)["key_id"]
    assert payload == encrypted.read_bytes()[-100:]
    kms.disable_key(key_id)  # the old key is no longer needed
    assert run("decrypt", str(encrypted), "-o", str(tmp_path / "o")).status == 0


@pytest.mark.unit
def test_decrypt_and_convert_tutorial_files(
    run: Run,
    run_binary: RunBinary,
    tmp_path: Path,
    kms: KmsClient,
    key_id: str,
) -> None:
    legacy = tmp_path / "sales.csv.cipher"
    legacy.write_bytes(tutorial_cipher(kms, key_id, SALES))
    result = run("decrypt", str(legacy), "-o", str(tmp_path / "d.csv"))
    assert (result.status, (tmp_path / "d.csv").read_bytes()) == (0, SALES)
    assert "kmsnb convert" in result.out
    assert "alibaba-tutorial-eax" in run("inspect", str(legacy)).out

    converted = tmp_path / "sales.csv.kms"
    result = run("convert", str(legacy), "-o", str(converted))
    assert (0, key_id) == (
        result.status,
        json.loads(run("inspect", "--json", str(converted)).out)["key_id"],
    )
    result = run("convert", str(converted), "-o", str(tmp_path / "again.kms"))
    assert result.status == 1
    assert "kmsnb rewrap" in result.err
    assert run_binary(legacy.read_bytes(), "decrypt", "-", "-o", "-") == (0, SALES, "")


@pytest.mark.unit
def test_tampered_tutorial_file(run: Run, tmp_path: Path, kms: KmsClient, key_id: str) -> None:
    legacy = tmp_path / "sales.csv.cipher"
    lines = tutorial_cipher(kms, key_id, SALES).split(b"\n")
    lines[3] = base64.b64encode(bytes(16))
    legacy.write_bytes(b"\n".join(lines))
    result = run("decrypt", str(legacy), "-o", str(tmp_path / "d.csv"))
    assert result.status == 1
    assert "EAX tag" in result.err
    assert "kmsnb: hint: restore the file" in result.err
    assert not (tmp_path / "d.csv").exists()


# --- key and alias management ---------------------------------------------------------


@pytest.mark.unit
def test_key_lifecycle(run: Run, sales: Path, tmp_path: Path) -> None:
    result = run("key", "create", "--alias", "Apollo/WorkKey", "--description", "work")
    key_id = result.out.strip()
    assert (result.status, len(result.out.splitlines())) == (0, 1)
    listing = run("key", "list").out
    assert key_id in listing
    assert "alias/Apollo/WorkKey" in listing
    assert "Enabled" in listing
    described = run("key", "describe", "alias/Apollo/WorkKey").out
    assert f"key_id:              {key_id}" in described

    encrypted = tmp_path / "x.kms"
    run("encrypt", str(sales), "-o", str(encrypted), "--key", "alias/Apollo/WorkKey")
    assert run("key", "disable", key_id).status == 0
    result = run("decrypt", str(encrypted), "-o", str(tmp_path / "o"))
    assert result.status == 1
    assert "kmsnb: hint: check the key's state" in result.err
    assert run("key", "enable", key_id).status == 0

    rotated = run("key", "rotate", key_id)
    assert rotated.status == 0
    assert "new primary version" in rotated.out
    versions = next(
        line
        for line in run("key", "describe", key_id).out.splitlines()
        if line.startswith("versions:")
    )
    assert len(versions.split(",")) == 2
    assert run("key", "schedule-deletion", key_id, "--days", "7").status == 0
    assert "PendingDeletion" in run("key", "describe", key_id).out
    assert run("key", "cancel-deletion", key_id).status == 0
    assert "Enabled" in run("key", "describe", key_id).out
    assert run("decrypt", str(encrypted), "-o", str(tmp_path / "o")).status == 0


@pytest.mark.unit
def test_alias_commands(run: Run, kms: KmsClient) -> None:
    first, second = kms.create_key("one").key_id, kms.create_key("two").key_id
    assert run("alias", "create", "team/data", first).status == 0
    taken = run("alias", "create", "alias/team/data", second)
    assert taken.status == 1
    assert f"points to key {first}; it was not moved" in taken.err
    assert "kmsnb alias update alias/team/data KEY" in taken.err
    # The one naming rule: a bare name that looks like a key id must be written alias/NAME.
    looks_like_a_key = run("alias", "create", "key-0123456789abcdef", second)
    assert looks_like_a_key.status == 1
    assert "write alias/NAME" in looks_like_a_key.err
    assert first in run("alias", "list").out
    assert run("alias", "update", "team/data", second).status == 0
    assert "alias/team/data" in run("alias", "list", "--key", second).out
    assert "alias/team/data" not in run("alias", "list", "--key", first).out
    assert run("alias", "delete", "team/data").status == 0
    assert "alias/team/data" not in run("alias", "list").out
    assert run("alias", "delete", "team/data").status == 1


# --- as a real process ----------------------------------------------------------------


@pytest.mark.integration
def test_python_m_kmsnb_pipes(tmp_path: Path, kms_uri: str, key_id: str) -> None:
    encrypted = _subprocess("--kms", kms_uri, "encrypt", "-", "-o", "-", "--key", key_id, input=BIG)
    assert (encrypted.returncode, encrypted.stderr) == (0, b"")
    decrypted = _subprocess("--kms", kms_uri, "decrypt", "-", "-o", "-", input=encrypted.stdout)
    assert (decrypted.returncode, decrypted.stdout) == (0, BIG)
    failed = _subprocess("--kms", kms_uri, "decrypt", "-", "-o", "-", input=b"\x89KMSNB\r\n")
    assert failed.returncode == 1
    assert failed.stderr.startswith(b"kmsnb: error: ")
    assert b"Traceback" not in failed.stderr


@pytest.mark.integration
@pytest.mark.integration
def test_ctrl_c_exits_130_without_a_traceback(tmp_path: Path, kms_uri: str, key_id: str) -> None:
    output = tmp_path / "out.kms"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kmsnb",
            "--kms",
            kms_uri,
            "encrypt",
            "-",
            "-o",
            str(output),
            "--key",
            key_id,
        ],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        # The unfinished output exists once the command is waiting for stdin.
        assert wait_for_pending_output(process, tmp_path)  # it waits for stdin meanwhile
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
    assert (process.returncode, stderr) == (130, b"kmsnb: interrupted\n")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith((".", "out"))] == []
