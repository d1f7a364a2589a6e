"""The column-key vectors of docs/column-keys.md: kmsnb and an independent reader agree on
each, and polars reads every success vector with the data keys the independent reader
recovered (no kmsnb code between the file and polars)."""

from __future__ import annotations

import base64
import importlib.util
import io
import json
from pathlib import Path
from typing import Any

import pandas as pd  # type: ignore[import-untyped,unused-ignore]
import polars as pl
import pytest
from column_verifier import VerifierError, read, vector_kms

import kmsnb
from kmsnb import errors
from kmsnb.testing import InMemoryKms

pytestmark = pytest.mark.unit

VECTOR_DIR = Path(__file__).resolve().parents[1] / "column_vectors"
VECTORS = sorted(VECTOR_DIR.glob("*.json"))
SUCCESS = [path for path in VECTORS if json.loads(path.read_text())["expect"] == "success"]


def _load(path: Path) -> dict[str, Any]:
    vector: dict[str, Any] = json.loads(path.read_text())
    return vector


def _kms(vector: dict[str, Any]) -> InMemoryKms:
    kms = InMemoryKms()
    for key_id, key in vector["master_keys"].items():
        ((version_id, material),) = key["versions"].items()
        kms.add_key(key_id, bytes.fromhex(material), version_id=version_id, alias=key["alias"])
    return kms


def _expected_frame(vector: dict[str, Any]) -> pd.DataFrame:
    return pd.DataFrame(vector["rows"])


def _error(name: str) -> type[BaseException]:
    error: type[BaseException] = getattr(errors, name)
    return error


def test_the_vectors_cover_every_scenario() -> None:
    names = {path.stem for path in VECTORS}
    assert {"columns", "uniform", "plaintext_footer", "legacy_v1", "legacy_v2"} <= names
    assert len(VECTORS) == 16
    assert {_load(path)["expect"] for path in VECTORS} == {
        "success",
        "ContextMismatchError",
        "WrongKeyError",
        "IntegrityError",
        "FormatError",
    }


@pytest.mark.parametrize("path", VECTORS, ids=lambda path: path.stem)
def test_kmsnb_reads_each_vector_as_it_says(path: Path) -> None:
    vector = _load(path)
    data = base64.b64decode(vector["file"])
    kms = _kms(vector)

    def read_frame() -> pd.DataFrame:
        return kmsnb.read_parquet(
            io.BytesIO(data), kms=kms, encryption_context=vector["reader_context"]
        )

    if vector["expect"] == "success":
        pd.testing.assert_frame_equal(_expected_frame(vector), read_frame())
    else:
        with pytest.raises(_error(vector["expect"])):
            read_frame()
    if vector["expect_inspect_unverified"] == "success":
        unverified = kmsnb.inspect(io.BytesIO(data))  # no KMS: what the file shows in clear
        assert isinstance(unverified, kmsnb.ParquetInfo)
        assert not unverified.verified
        assert unverified.footer_key_id == vector["footer_key"]
    else:
        with pytest.raises(_error(vector["expect_inspect_unverified"])):
            kmsnb.inspect(io.BytesIO(data))
    if vector["expect_inspect"] != "success":
        with pytest.raises(_error(vector["expect_inspect"])):
            kmsnb.inspect(io.BytesIO(data), kms=kms)
        return
    info = kmsnb.inspect(io.BytesIO(data), kms=kms)
    assert isinstance(info, kmsnb.ParquetInfo)
    assert info.footer_key_id == vector["footer_key"]
    assert info.verified
    if vector["columns"] is not None:
        assert {c.path: c.master_key_id for c in info.columns or ()} == vector["columns"]
        assert info.encryption_context == vector["encryption_context"]
        assert info.key_wrap == vector["key_wrap"]
        assert info.num_rows == len(vector["rows"])


@pytest.mark.parametrize("path", VECTORS, ids=lambda path: path.stem)
def test_the_independent_reader_agrees(path: Path) -> None:
    vector = _load(path)
    data = base64.b64decode(vector["file"])
    kms = vector_kms(vector["master_keys"])
    if vector["expect"] != "success":
        with pytest.raises(VerifierError) as caught:
            read(data, kms, vector["reader_context"])
        assert issubclass(_error(caught.value.kind), _error(vector["expect"]))
        return
    result = read(data, kms, vector["reader_context"])
    assert result.footer_master_key == vector["footer_key"]
    assert {path: key for path, (key, _) in result.columns.items()} == vector["columns"]
    assert result.encryption_context == vector["encryption_context"]
    assert result.num_rows == len(vector["rows"])


@pytest.mark.parametrize("path", SUCCESS, ids=lambda path: path.stem)
def test_polars_reads_with_the_keys_the_independent_reader_found(path: Path) -> None:
    vector = _load(path)
    data = base64.b64decode(vector["file"])
    result = read(data, vector_kms(vector["master_keys"]))
    column_keys = {name: dek for name, (_, dek) in result.columns.items() if dek is not None}
    frame = pl.read_parquet(
        io.BytesIO(data),
        decryption=pl.ParquetDecryptionProperties(
            footer_key=result.footer_dek, column_keys=column_keys
        ),
    )
    assert frame.to_dicts() == vector["rows"]


def test_the_generator_still_writes_vectors_that_verify(tmp_path: Path) -> None:
    """pyarrow draws keys and nonces at random: what the generator writes today must
    verify as the committed files do."""
    spec = importlib.util.spec_from_file_location("generate", VECTOR_DIR / "generate.py")
    assert spec is not None
    assert spec.loader is not None
    generate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generate)
    written = generate.write(tmp_path)
    assert sorted(path.name for path in written) == sorted(path.name for path in VECTORS)
    for path in written:
        vector = _load(path)
        data = base64.b64decode(vector["file"])
        committed = _load(VECTOR_DIR / path.name)
        assert {k: v for k, v in vector.items() if k != "file"} == {
            k: v for k, v in committed.items() if k != "file"
        }
        if vector["expect"] == "success":
            read(data, vector_kms(vector["master_keys"]), vector["reader_context"])
        else:
            with pytest.raises(VerifierError):
                read(data, vector_kms(vector["master_keys"]), vector["reader_context"])
