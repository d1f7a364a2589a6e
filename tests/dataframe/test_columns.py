"""Column-level encryption (Parquet modular encryption keyed by kmsnb's KMS)."""

from __future__ import annotations

import base64
import io
import os
from pathlib import Path
from typing import Any

import pandas as pd  # type: ignore[import-untyped,unused-ignore]
import pyarrow.parquet as pq
import pyarrow.parquet.encryption as pe
import pytest

import kmsnb
from kmsnb import _pme
from kmsnb.errors import (
    ContextMismatchError,
    FormatError,
    IntegrityError,
    KmsAccessDeniedError,
    WrongKeyError,
)
from kmsnb.kms import CachingKms
from kmsnb.testing import InMemoryKms

from .conftest import MAIN_KEY, PII_KEY
from .test_dataframe import SECRET_COLUMN, SECRET_VALUE, dtype_zoo

pytestmark = pytest.mark.unit


def people() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "name": ["ann", "bob", "cy"],
            "ssn": ["123-45-6789", "987-65-4321", "555-55-5555"],
            "age": pd.array([31, None, 45], dtype="Int64"),
        },
        index=pd.Index([7, 8, 9], name="id"),
    )


@pytest.mark.parametrize("index", ["range", "named", "multi"])
def test_round_trip_keeps_the_dtype_zoo(tmp_path: Path, kms: InMemoryKms, index: str) -> None:
    df = dtype_zoo(index)
    path = tmp_path / "zoo.parquet"
    df.kms.to_parquet(path, MAIN_KEY, kms=kms, columns={"text": PII_KEY})
    data = path.read_bytes()
    assert data.startswith(b"PARE")
    assert data.endswith(b"PARE")
    for needle in (SECRET_COLUMN.encode(), SECRET_VALUE.encode(), b"pandas"):
        assert needle not in data
    pd.testing.assert_frame_equal(df, kmsnb.read_parquet(path, kms=kms))


def test_list_protects_under_key_id(tmp_path: Path, kms: InMemoryKms) -> None:
    path = tmp_path / "p.parquet"
    people().kms.to_parquet(path, MAIN_KEY, kms=kms, columns=["ssn"])
    kms.disable_key(PII_KEY)  # not needed for anything in this file
    pd.testing.assert_frame_equal(people(), kmsnb.read_parquet(path, kms=kms))


def test_reader_without_the_pii_key_reads_the_other_columns(
    tmp_path: Path, kms: InMemoryKms
) -> None:
    path = tmp_path / "p.parquet"
    people().kms.to_parquet(path, MAIN_KEY, kms=kms, columns={"ssn": PII_KEY})
    kms.disable_key(PII_KEY)
    reader = CachingKms(kms)  # what the session would hold
    result = kmsnb.read_parquet(path, kms=reader, columns=["name", "age"])
    pd.testing.assert_frame_equal(people()[["name", "age"]], result)
    for columns in (["ssn"], None):
        with pytest.raises(KmsAccessDeniedError, match="disabled") as caught:
            kmsnb.read_parquet(path, kms=reader, columns=columns)
        assert caught.value.code == "Rejected.Disabled"


def test_a_key_from_another_kms(tmp_path: Path, kms: InMemoryKms) -> None:
    path = tmp_path / "p.parquet"
    people().kms.to_parquet(path, MAIN_KEY, kms=kms, columns={"ssn": PII_KEY})
    with pytest.raises(KmsAccessDeniedError, match="not found"):
        kmsnb.read_parquet(path, kms=InMemoryKms(), columns=["name"])


def test_plain_pyarrow_reads_it_with_the_kms_client(tmp_path: Path, kms: InMemoryKms) -> None:
    path = tmp_path / "p.parquet"
    people().kms.to_parquet(path, MAIN_KEY, kms=kms, columns={"ssn": PII_KEY})
    factory = pe.CryptoFactory(lambda config: kmsnb.dataframe.ParquetKmsClient(kms))
    properties = factory.file_decryption_properties(
        pe.KmsConnectionConfig(), pe.DecryptionConfiguration()
    )
    table = pq.read_table(path, decryption_properties=properties)
    assert people()["ssn"].tolist() == table.column("ssn").to_pylist()
    pd.testing.assert_frame_equal(people(), table.to_pandas())
    with pytest.raises(OSError, match="no decryption"):
        pq.read_table(path)


def test_kek_cache_saves_kms_calls(tmp_path: Path, kms: InMemoryKms) -> None:
    """Double wrapping with one factory per KMS: 30 files, one wrap per master key."""
    for i in range(30):
        people().kms.to_parquet(
            tmp_path / f"{i}.parquet", MAIN_KEY, kms=kms, columns={"ssn": PII_KEY}
        )
    assert kms.calls["encrypt"] == 2  # each KEK wrapped by the KMS's Encrypt
    assert kms.calls["generate_data_key"] == 0
    for i in range(30):
        kmsnb.read_parquet(tmp_path / f"{i}.parquet", kms=kms)
    assert kms.calls["decrypt"] == 2


def test_encryption_context(tmp_path: Path, kms: InMemoryKms) -> None:
    path = tmp_path / "p.parquet"
    context = {"project": "apollo"}
    people().kms.to_parquet(path, MAIN_KEY, kms=kms, columns=["ssn"], encryption_context=context)
    with pytest.raises(ContextMismatchError, match="'project'"):
        kmsnb.read_parquet(path, kms=kms, encryption_context={"project": "zeus"})
    pd.testing.assert_frame_equal(
        people(), kmsnb.read_parquet(path, kms=kms, encryption_context=context)
    )
    pd.testing.assert_frame_equal(people(), kmsnb.read_parquet(path, kms=kms))


def test_nested_columns_are_named_by_their_top_level_name(tmp_path: Path, kms: InMemoryKms) -> None:
    df = pd.DataFrame(
        {
            "point": [{"x": 1, "y": 2}, {"x": 3, "y": 4}],
            "tags": [["a", "b"], []],
            "plain": [1, 2],
        }
    )
    path = tmp_path / "nested.parquet"
    df.kms.to_parquet(path, MAIN_KEY, kms=kms, columns={"point": PII_KEY, "tags": PII_KEY})
    kms_reader = CachingKms(kms)
    result = kmsnb.read_parquet(path, kms=kms_reader)
    assert df["point"].tolist() == result["point"].tolist()
    assert [list(t) for t in df["tags"]] == [list(t) for t in result["tags"]]
    kms.disable_key(PII_KEY)
    with pytest.raises(KmsAccessDeniedError):
        kmsnb.read_parquet(path, kms=InMemoryKms(), columns=["point"])


def test_fsspec_memory_and_file_objects(kms: InMemoryKms) -> None:
    import fsspec

    url = "memory://pme/p.parquet"
    people().kms.to_parquet(url, MAIN_KEY, kms=kms, columns={"ssn": PII_KEY})
    assert fsspec.filesystem("memory").cat_file("/pme/p.parquet").startswith(b"PARE")
    pd.testing.assert_frame_equal(people(), kmsnb.read_parquet(url, kms=kms))
    buffer = io.BytesIO()
    people().kms.to_parquet(buffer, MAIN_KEY, kms=kms, columns=["ssn"])
    buffer.seek(0)
    pd.testing.assert_frame_equal(people(), kmsnb.read_parquet(buffer, kms=kms))
    fsspec.filesystem("memory").rm("/pme", recursive=True)


def test_tampering_is_an_integrity_error(tmp_path: Path, kms: InMemoryKms) -> None:
    path = tmp_path / "p.parquet"
    people().kms.to_parquet(path, MAIN_KEY, kms=kms, columns=["ssn"])
    data = bytearray(path.read_bytes())
    data[40] ^= 1  # inside the first column chunk
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError):
        kmsnb.read_parquet(path, kms=kms)


def test_modes_are_told_apart(tmp_path: Path, kms: InMemoryKms) -> None:
    columns, whole = tmp_path / "c.parquet", tmp_path / "w.kms"
    people().kms.to_parquet(columns, MAIN_KEY, kms=kms, columns=["ssn"])
    people().kms.to_parquet(whole, MAIN_KEY, kms=kms)
    with pytest.raises(FormatError, match="column-encrypted"):
        kmsnb.read_parquet(columns, kms=kms, mode="file")
    with pytest.raises(FormatError, match="whole-file"):
        kmsnb.read_parquet(whole, kms=kms, mode="columns")
    with pytest.raises(FormatError, match="read_parquet"):
        kmsnb.read_csv(columns, kms=kms)
    with pytest.raises(FormatError, match="not a kmsnb file"):
        kmsnb.decrypt_file(columns, tmp_path / "out", kms=kms)
    assert len(kmsnb.read_parquet(columns, kms=kms, mode="columns").columns) == 3


@pytest.mark.parametrize(
    ("columns", "error", "match"),
    [
        (["nope"], ValueError, "'nope' not in the DataFrame"),
        ({"ssn": ""}, ValueError, "non-empty"),
        ("ssn", TypeError, "list of column names"),
        ({1: PII_KEY}, TypeError, "must be str"),
    ],
)
def test_bad_column_plans_write_nothing(
    tmp_path: Path, kms: InMemoryKms, columns: Any, error: type, match: str
) -> None:
    with pytest.raises(error, match=match):
        people().kms.to_parquet(tmp_path / "p.parquet", MAIN_KEY, kms=kms, columns=columns)
    assert os.listdir(tmp_path) == []
    assert kms.calls["generate_data_key"] == 0


def test_disabled_footer_or_column_key_writes_nothing(tmp_path: Path, kms: InMemoryKms) -> None:
    kms.disable_key(PII_KEY)
    with pytest.raises(KmsAccessDeniedError):
        people().kms.to_parquet(tmp_path / "a.parquet", MAIN_KEY, kms=kms, columns={"ssn": PII_KEY})
    with pytest.raises(KmsAccessDeniedError):
        people().kms.to_parquet(tmp_path / "b.parquet", PII_KEY, kms=kms, columns=["ssn"])
    assert os.listdir(tmp_path) == []


def test_wrapped_keys_are_bound_to_their_master_key(kms: InMemoryKms) -> None:
    client = kmsnb.dataframe.ParquetKmsClient(kms)
    kek = os.urandom(16)
    wrapped = client.wrap_key(kek, MAIN_KEY)
    assert kek == client.unwrap_key(wrapped, MAIN_KEY)
    assert kek.hex() not in wrapped
    assert base64.b64encode(kek).decode() not in wrapped
    assert kek.hex() not in repr(client)
    with pytest.raises(WrongKeyError, match="forged or altered"):
        client.unwrap_key(wrapped, PII_KEY)  # same blob, another claim: the KMS names MAIN
    with pytest.raises(FormatError, match="malformed"):
        client.unwrap_key("not base64 json", MAIN_KEY)


def test_a_kms_error_hidden_in_an_oserror_is_raised_again() -> None:
    """Builds that turn a KmsClient exception into OSError text still give the kmsnb error."""
    original = WrongKeyError("the KMS refused")

    def pyarrow_hiding_the_error() -> None:
        with _pme.translated_errors():
            _pme._record(original)  # what ParquetKmsClient does before raising
            raise OSError("Python exception in unwrap_key")

    def pyarrow_failing_a_tag() -> None:
        with _pme.translated_errors():
            raise OSError("Failed decryption finalization")

    with pytest.raises(WrongKeyError) as caught:
        pyarrow_hiding_the_error()
    assert caught.value is original
    with pytest.raises(IntegrityError, match="failed authentication"):
        pyarrow_failing_a_tag()


def test_missing_pme_support_is_an_import_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise OSError("Parquet encryption is not supported in this build")

    monkeypatch.setattr(pq, "write_table", broken)
    with pytest.raises(ImportError, match="PARQUET_REQUIRE_ENCRYPTION"):
        _pme.check_support.__wrapped__()


def test_the_schema_needs_the_footer_key(tmp_path: Path, kms: InMemoryKms) -> None:
    """The footer is encrypted: without keys not even the column names can be read."""
    path = tmp_path / "p.parquet"
    people().kms.to_parquet(path, MAIN_KEY, kms=kms, columns=["ssn"])
    with pytest.raises(OSError, match="encrypted"):
        pq.read_metadata(path)


def test_frames_without_columns_or_rows(tmp_path: Path, kms: InMemoryKms) -> None:
    for df in (pd.DataFrame(), pd.DataFrame({"a": pd.Series([], dtype="int64")})):
        df.kms.to_parquet(tmp_path / "e.parquet", MAIN_KEY, kms=kms, columns=[], overwrite=True)
        result = kmsnb.read_parquet(tmp_path / "e.parquet", kms=kms)
        assert df.shape == result.shape
        assert list(df.columns) == list(result.columns)


def test_column_mode_writers_refuse_control_characters(kms: InMemoryKms) -> None:
    """Issue 9, item 8: no control character in a column's master key or the context."""
    key = MAIN_KEY
    frame = pd.DataFrame({"a": [1], "b": ["x"]})
    sink = io.BytesIO()
    with pytest.raises(ValueError, match="control character"):
        frame.kms.to_parquet(sink, key, kms=kms, columns={"b": "alias/\x1b[31m"})
    with pytest.raises(ValueError, match="control character"):
        frame.kms.to_parquet(sink, key, kms=kms, columns=["b"], encryption_context={"k": "\x9b"})
    assert kms.calls["generate_data_key"] == 0
