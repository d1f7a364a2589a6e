"""The command line and issue 9: forged files, --allowed-key, hostile headers, the legacy
reader's bound."""

from __future__ import annotations

import json
import os
import re
import threading
from pathlib import Path

import pytest
from forgery import HOSTILE_TEXT, forge_bytes, hostile_file

from kmsnb.errors import FormatError
from kmsnb.kms._base import KmsClient
from kmsnb.legacy import read_legacy

from .conftest import Run, tutorial_cipher

pytestmark = pytest.mark.unit

RAW_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f]")  # all but the newline ending lines
SALES = b"region,units\ncn-hangzhou,1200\n"


@pytest.fixture
def scratch(kms: KmsClient) -> str:
    return kms.create_key("scratch").key_id


@pytest.fixture
def forged(tmp_path: Path, kms: KmsClient, key_id: str, scratch: str) -> Path:
    path = tmp_path / "forged.kms"
    path.write_bytes(
        forge_bytes(kms, scratch_key_id=scratch, claimed_key_id=key_id, plaintext=SALES)
    )
    return path


@pytest.mark.parametrize("allowed", [[], ["--allowed-key", "KEY"]])
@pytest.mark.parametrize("output", ["-", "plain.csv"])
def test_decrypt_refuses_a_forged_file(
    run: Run,
    forged: Path,
    key_id: str,
    scratch: str,
    tmp_path: Path,
    output: str,
    allowed: list[str],
) -> None:
    arguments = [item.replace("KEY", key_id) for item in allowed]
    result = run(
        "decrypt", str(forged), "-o", str(tmp_path / output) if output != "-" else "-", *arguments
    )
    assert result.status == 1
    assert "forged" in result.err
    assert scratch in result.err
    assert key_id in result.err
    assert result.out == ""  # not one byte on stdout
    assert not (tmp_path / "plain.csv").exists()


def test_allowed_key_is_repeatable_and_takes_aliases(
    run: Run, kms: KmsClient, key_id: str, scratch: str, tmp_path: Path
) -> None:
    (tmp_path / "sales.csv").write_bytes(SALES)
    assert (
        run(
            "encrypt", str(tmp_path / "sales.csv"), "-o", str(tmp_path / "s.kms"), "--key", scratch
        ).status
        == 0
    )
    kms.create_alias("alias/scratch", scratch)
    refused = run("decrypt", str(tmp_path / "s.kms"), "-o", "-", "--allowed-key", key_id)
    assert refused.status == 1
    assert "allowed_keys" in refused.err
    assert scratch in refused.err
    accepted = run(
        "decrypt",
        str(tmp_path / "s.kms"),
        "-o",
        "-",
        "--allowed-key",
        key_id,
        "--allowed-key",
        "alias/scratch",
    )
    assert accepted.status == 0
    assert accepted.out == SALES.decode()
    missing = run("decrypt", str(tmp_path / "s.kms"), "-o", "-", "--allowed-key", "alias/no")
    assert missing.status == 1
    assert "allowed_keys entry 'alias/no'" in missing.err


def test_rewrap_checks_the_source_key(
    run: Run, forged: Path, key_id: str, scratch: str, tmp_path: Path
) -> None:
    before = forged.read_bytes()
    result = run("rewrap", str(forged), "--key", key_id)
    assert result.status == 1
    assert scratch in result.err
    assert forged.read_bytes() == before
    (tmp_path / "sales.csv").write_bytes(SALES)
    run("encrypt", str(tmp_path / "sales.csv"), "-o", str(tmp_path / "s.kms"), "--key", scratch)
    refused = run("rewrap", str(tmp_path / "s.kms"), "--key", key_id, "--allowed-key", key_id)
    assert refused.status == 1
    assert "allowed_keys" in refused.err
    assert (
        run("rewrap", str(tmp_path / "s.kms"), "--key", key_id, "--allowed-key", scratch).status
        == 0
    )


def test_legacy_files_honour_allowed_key(
    run: Run, kms: KmsClient, key_id: str, scratch: str, tmp_path: Path
) -> None:
    cipher = tmp_path / "sales.cipher"
    cipher.write_bytes(tutorial_cipher(kms, scratch, SALES))
    for command in (
        ["decrypt", str(cipher), "-o", "-"],
        ["convert", str(cipher), "-o", str(tmp_path / "new.kms")],
    ):
        refused = run(*command, "--allowed-key", key_id)
        assert refused.status == 1
        assert "allowed_keys" in refused.err
    assert not (tmp_path / "new.kms").exists()
    assert run("decrypt", str(cipher), "-o", "-", "--allowed-key", scratch).out == SALES.decode()


@pytest.mark.parametrize("as_json", [False, True])
def test_inspect_escapes_what_a_hostile_header_holds(
    run: Run, kms: KmsClient, key_id: str, tmp_path: Path, as_json: bool
) -> None:
    path = tmp_path / "hostile.kms"
    path.write_bytes(hostile_file(kms, key_id))
    result = run("inspect", str(path), *(["--json"] if as_json else []))
    assert result.status == 0
    assert not RAW_CONTROL.search(result.out)
    if as_json:
        document = json.loads(result.out)
        assert document["key_id"] == HOSTILE_TEXT  # escaped in the encoding, exact in the data
        assert document["encryption_context"] == {"note": HOSTILE_TEXT}
    else:
        assert "evil\\x1b[2J" in result.out


def test_the_legacy_reader_reads_at_most_max_size_plus_one_from_a_fifo(tmp_path: Path) -> None:
    """fstat says 0 for a FIFO: the bound must hold by counting, not by trusting it."""
    fifo = tmp_path / "big.cipher"
    os.mkfifo(fifo)
    max_size = 1 << 20
    offered = 16 * max_size
    written = [0]
    block = b"A" * 65536

    def feed() -> None:
        try:
            with open(fifo, "wb") as sink:
                while written[0] < offered:
                    sink.write(block)
                    written[0] += len(block)
        except BrokenPipeError:
            pass  # the reader stopped, as it should

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    with pytest.raises(FormatError, match=str(max_size)):
        read_legacy(fifo, max_size=max_size)
    feeder.join(timeout=30)
    assert not feeder.is_alive()
    # What the reader took, plus what the pipe and the writer's buffer held when it stopped.
    assert written[0] <= max_size + 1 + 4 * 65536 + len(block)
