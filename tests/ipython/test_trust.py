"""The magics and issue 9: forged files, ``--allowed-key`` and ``Kmsnb.allowed_keys``,
hostile headers in ``%kms inspect``."""

from __future__ import annotations

import re

import pandas as pd
import pytest
from forgery import ForgingKms, forge_bytes, hostile_file

from kmsnb.ipython._display import Details

pytestmark = pytest.mark.notebook

RAW_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f]")


@pytest.fixture
def keys(shell, local_kms):
    """(trusted, scratch): the session's default key and another one."""
    trusted = shell.run("%kms create-key --alias trusted").key_id
    shell.run("%kms use alias/trusted")
    scratch = shell.run("%kms create-key --alias scratch").key_id
    return trusted, scratch


@pytest.mark.parametrize("kind", ["bytes", "parquet", "columns"])
def test_decrypt_refuses_forged_files(shell, local_kms, keys, tmp_path, kind):
    trusted, scratch = keys
    path = tmp_path / f"forged.{kind}"
    if kind == "bytes":
        path.write_bytes(
            forge_bytes(local_kms, scratch_key_id=scratch, claimed_key_id=trusted, plaintext=b"x")
        )
    else:
        frame = pd.DataFrame({"name": ["ann"], "ssn": ["123"]})
        forger = ForgingKms(local_kms, scratch, "alias/trusted")
        columns = {"ssn": "alias/trusted"} if kind == "columns" else None
        frame.kms.to_parquet(path, "alias/trusted", kms=forger, columns=columns)
    for line in (f"%decrypt {path} -o loaded", f"%decrypt {path} --allowed-key alias/trusted"):
        shell.one_line_error(line, "forged", scratch)
    assert "loaded" not in shell.user_ns


def test_allowed_keys_config_and_option(shell, keys, tmp_path):
    trusted, scratch = keys
    shell.user_ns["blob"] = b"under scratch"
    path = tmp_path / "s.kms"
    shell.run(f"%encrypt blob {path} -k alias/scratch")
    assert shell.run(f"%decrypt {path}") == b"under scratch"  # nothing pinned yet
    shell.run("%config Kmsnb.allowed_keys = ['alias/trusted']")
    shell.one_line_error(f"%decrypt {path}", "allowed_keys", scratch)
    # The option replaces the setting for one call.
    assert shell.run(f"%decrypt {path} --allowed-key alias/scratch") == b"under scratch"
    assert shell.run(f"%decrypt {path} --allowed-key {trusted} alias/scratch") == b"under scratch"
    shell.one_line_error(f"%kms rewrap {path} --key alias/trusted", "allowed_keys")
    assert shell.run(f"%kms rewrap {path} --key alias/trusted --allowed-key {scratch}").key_id == (
        trusted
    )
    assert shell.run(f"%decrypt {path}") == b"under scratch"  # now under the pinned key
    shell.one_line_error(f"%decrypt {path} --allowed-key alias/nobody", "allowed_keys entry")


def test_kms_inspect_escapes_a_hostile_header(shell, local_kms, keys, tmp_path):
    trusted, _ = keys
    path = tmp_path / "hostile.kms"
    path.write_bytes(hostile_file(local_kms, trusted))
    details = shell.run(f"%kms inspect {path}")
    assert isinstance(details, Details)
    for text in (str(details), repr(details), details._repr_html_()):
        assert not RAW_CONTROL.search(text)
        assert "evil\\x1b[2J" in text
