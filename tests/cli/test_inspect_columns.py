"""``kmsnb inspect`` on column-encrypted Parquet (issue 14, item 5)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

import kmsnb.dataframe  # noqa: F401  (registers df.kms)
from kmsnb.kms._base import KmsClient

from .conftest import Run

pytestmark = pytest.mark.unit


@pytest.fixture
def column_file(tmp_path: Path, kms: KmsClient) -> Path:
    for alias in ("alias/main", "alias/pii"):
        kms.create_alias(alias, kms.create_key().key_id)
    frame = pd.DataFrame({"name": ["ann"], "ssn": ["1-2"], "age": [31]})
    path = tmp_path / "people.parquet"
    frame.kms.to_parquet(
        path, "alias/main", kms=kms, columns={"ssn": "alias/pii"}, encryption_context={"t": "x"}
    )
    return path


def test_without_the_kms_only_the_footer_key_shows(run: Run, column_file: Path) -> None:
    result = run("inspect", str(column_file))
    assert result.status == 0, result.err
    assert "footer key:" in result.out
    assert "alias/main" in result.out
    assert "kms:                local (local)" in result.out
    assert "kms-encrypt" in result.out
    assert "ssn" not in result.out
    assert "alias/pii" not in result.out
    document = json.loads(run("inspect", str(column_file), "--json").out)
    assert document["footer"] == "encrypted"
    assert document["columns"] is None
    assert document["encryption_context"] is None


def test_with_the_kms_every_column_and_its_key(run: Run, column_file: Path) -> None:
    result = run("inspect", str(column_file), "--with-kms")
    assert result.status == 0, result.err
    assert "column ssn:" in result.out
    assert "BYTE_ARRAY (STRING); key alias/pii" in result.out
    document = json.loads(run("inspect", str(column_file), "--with-kms", "--json").out)
    assert document["keys"] == {"alias/main": ["name", "age"], "alias/pii": ["ssn"]}
    assert document["encryption_context"] == {"t": "x"}
    assert document["verified"] is True
    assert document["num_rows"] == 1


def test_allowed_keys_and_stdin(run: Run, column_file: Path) -> None:
    refused = run("inspect", str(column_file), "--with-kms", "--allowed-key", "alias/pii")
    assert refused.status == 1
    assert "allowed_keys" in refused.err
    assert run("inspect", "-").status == 1  # an empty stdin is not a kmsnb file


def test_plain_parquet_is_named(run: Run, tmp_path: Path) -> None:
    path = tmp_path / "plain.parquet"
    pd.DataFrame({"a": [1]}).to_parquet(path)
    result = run("inspect", str(path))
    assert result.status == 1
    assert "plain, unencrypted Parquet" in result.err
