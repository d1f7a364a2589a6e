"""Column-level encryption that other engines can read (issue 14, item 4): the KEK wrapped
by the KMS's Encrypt, the KMS recorded in the key material, the encryption context in the
footer, uniform mode, and errors that name the columns a refused key protects."""

from __future__ import annotations

import base64
import io
import json
import os
from pathlib import Path

import pandas as pd  # type: ignore[import-untyped,unused-ignore]
import pyarrow as pa
import pyarrow.parquet as pq
import pyarrow.parquet.encryption as pe
import pytest

import kmsnb
import kmsnb.kms.aliyun
import kmsnb.kms.local
from kmsnb import _pme
from kmsnb._column_keys import parse_column_keys
from kmsnb._pme_footer import read_tail
from kmsnb.errors import ContextMismatchError, KmsAccessDeniedError
from kmsnb.kms import CachingKms
from kmsnb.testing import InMemoryKms

from .conftest import MAIN_KEY, PII_KEY
from .test_columns import people

pytestmark = pytest.mark.unit


def _write(path: Path, kms: object, **options: object) -> Path:
    people().kms.to_parquet(path, MAIN_KEY, kms=kms, **options)
    return path


def test_the_kek_is_the_kmss_encrypt_of_its_base64_text(tmp_path: Path, kms: InMemoryKms) -> None:
    path = _write(tmp_path / "p.parquet", kms, columns={"ssn": PII_KEY})
    tail = read_tail(path)
    assert tail is not None
    material = tail.footer_key
    assert (material.master_key_id, material.double_wrapping) == (MAIN_KEY, True)
    assert (material.kms_instance_id, material.kms_instance_url) == ("in-memory", "in-memory")
    assert material.key_wrap == "kms-encrypt"
    with kms.decrypt(material.wrapped_kek or "") as kek:  # no encryption context
        assert len(kek.plaintext) == 16
        assert kek.key_id == kms.describe_key(MAIN_KEY).key_id
    assert kms.calls["generate_data_key"] == 0


@pytest.mark.parametrize(
    ("kms_factory", "expected"),
    [
        (lambda path: kmsnb.kms.local.LocalKms(path), ("local", "local")),
        (
            lambda path: kmsnb.kms.aliyun.AliyunKms("cn-hangzhou", credential=object()),
            ("cn-hangzhou", "https://kms.cn-hangzhou.aliyuncs.com"),
        ),
        (
            lambda path: kmsnb.kms.aliyun.AliyunKms(
                endpoint="http://127.0.0.1:1", credential=object()
            ),
            ("emulator", "http://127.0.0.1:1"),
        ),
    ],
)
def test_each_backend_names_its_kms_instance(tmp_path: Path, kms_factory, expected) -> None:  # type: ignore[no-untyped-def]

    client = kms_factory(tmp_path / "store")
    assert _pme.kms_instance(client) == expected
    assert _pme.kms_instance(CachingKms(client)) == expected
    assert _pme.kms_instance(object()) == ("DEFAULT", "DEFAULT")


def test_the_context_is_in_the_encrypted_footer(tmp_path: Path, kms: InMemoryKms) -> None:
    path = _write(tmp_path / "p.parquet", kms, columns=["ssn"], encryption_context={"k": "v1"})
    assert b"kmsnb.encryption_context" not in path.read_bytes()
    factory = pe.CryptoFactory(lambda _config: _pme.ParquetKmsClient(kms))
    properties = factory.file_decryption_properties(
        pe.KmsConnectionConfig(), pe.DecryptionConfiguration()
    )
    metadata = pq.read_metadata(path, decryption_properties=properties).metadata
    assert json.loads(metadata[b"kmsnb.encryption_context"]) == {"k": "v1"}
    with pytest.raises(ContextMismatchError, match="'k'"):
        kmsnb.read_parquet(path, kms=kms, encryption_context={"k": "v2"})
    with pytest.raises(ContextMismatchError, match="'k'"):
        kmsnb.read_parquet(path, kms=kms, encryption_context={})
    pd.testing.assert_frame_equal(
        people(), kmsnb.read_parquet(path, kms=kms, encryption_context={"k": "v1"})
    )


def test_a_file_another_engine_wrote_has_the_empty_context(
    tmp_path: Path, kms: InMemoryKms
) -> None:
    """pyarrow with kmsnb's client writes no context metadata: the file claims {}."""
    path = tmp_path / "by-pyarrow.parquet"
    factory = pe.CryptoFactory(lambda _config: _pme.ParquetKmsClient(kms))
    encryption = pe.EncryptionConfiguration(footer_key=MAIN_KEY, uniform_encryption=True)
    properties = factory.file_encryption_properties(pe.KmsConnectionConfig(), encryption)
    pq.write_table(pa.Table.from_pandas(people()), path, encryption_properties=properties)
    pd.testing.assert_frame_equal(
        people(), kmsnb.read_parquet(path, kms=kms, encryption_context={})
    )
    with pytest.raises(ContextMismatchError):
        kmsnb.read_parquet(path, kms=kms, encryption_context={"k": "v"})


def test_plaintext_footer_files_read_and_show_their_columns(
    tmp_path: Path, kms: InMemoryKms
) -> None:
    path = tmp_path / "plain-footer.parquet"
    factory = pe.CryptoFactory(lambda _config: _pme.ParquetKmsClient(kms))
    encryption = pe.EncryptionConfiguration(
        footer_key=MAIN_KEY, column_keys={PII_KEY: ["ssn"]}, plaintext_footer=True
    )
    properties = factory.file_encryption_properties(pe.KmsConnectionConfig(), encryption)
    pq.write_table(pa.Table.from_pandas(people()), path, encryption_properties=properties)
    assert path.read_bytes()[:4] == b"PAR1"
    info = kmsnb.inspect(path)  # no KMS: the schema and the keys are in clear
    assert isinstance(info, kmsnb.ParquetInfo)
    assert not info.verified
    assert info.keys == {PII_KEY: ["ssn"]}
    assert {c.path: c.master_key_id for c in info.columns or ()}["name"] is None
    pd.testing.assert_frame_equal(people(), kmsnb.read_parquet(path, kms=kms))
    kms.disable_key(PII_KEY)
    _pme.clear_factories()
    got = kmsnb.read_parquet(path, kms=kms, columns=["name", "age"])  # the footer key checks
    pd.testing.assert_frame_equal(people()[["name", "age"]], got)
    with pytest.raises(KmsAccessDeniedError, match="footer key"):
        kmsnb.read_parquet(path, kms=InMemoryKms(), columns=["name"])  # unverified: refused


def test_uniform_puts_everything_under_one_key(tmp_path: Path, kms: InMemoryKms) -> None:
    path = _write(tmp_path / "u.parquet", kms, uniform=True)
    info = kmsnb.inspect(path, kms=kms)
    assert isinstance(info, kmsnb.ParquetInfo)
    assert info.uniform is True
    assert info.keys == {MAIN_KEY: ["name", "ssn", "age", "id"]}
    pd.testing.assert_frame_equal(people(), kmsnb.read_parquet(path, kms=kms))
    with pytest.raises(ValueError, match="uniform=True"):
        _write(tmp_path / "bad.parquet", kms, uniform=True, columns=["ssn"])
    assert not (tmp_path / "bad.parquet").exists()
    columns = _write(tmp_path / "c.parquet", kms, columns={"ssn": PII_KEY})
    assert kmsnb.inspect(columns, kms=kms).uniform is False


def test_a_refused_column_key_names_its_columns(tmp_path: Path, kms: InMemoryKms) -> None:
    path = _write(tmp_path / "p.parquet", kms, columns={"ssn": PII_KEY})
    kms.disable_key(PII_KEY)
    with pytest.raises(KmsAccessDeniedError) as caught:
        kmsnb.read_parquet(path, kms=kms)
    message = str(caught.value)
    assert "master key 'alias/pii' protects column(s) 'ssn'" in message
    assert "columns=['name', 'age', 'id']" in message
    assert caught.value.code == "Rejected.Disabled"
    kms.enable_key(PII_KEY)
    _pme.clear_factories()
    kms.disable_key(MAIN_KEY)
    with pytest.raises(KmsAccessDeniedError, match="footer key: kmsnb reads nothing"):
        kmsnb.read_parquet(path, kms=kms)


def test_a_kms_that_cannot_encrypt_writes_nothing(tmp_path: Path, kms: InMemoryKms) -> None:
    class DataKeysOnly:
        def generate_data_key(self, key_id, encryption_context=None):  # type: ignore[no-untyped-def]
            return kms.generate_data_key(key_id, encryption_context)

        def decrypt_data_key(self, blob, encryption_context=None):  # type: ignore[no-untyped-def]
            return kms.decrypt_data_key(blob, encryption_context)

    with pytest.raises(TypeError, match="WrappingKms"):
        _write(tmp_path / "p.parquet", DataKeysOnly(), columns=["ssn"])
    assert os.listdir(tmp_path) == []


def test_file_objects_keep_their_position(kms: InMemoryKms) -> None:
    buffer = io.BytesIO()
    people().kms.to_parquet(buffer, MAIN_KEY, kms=kms, columns={"ssn": PII_KEY})
    buffer.seek(0)
    assert read_tail(buffer) is not None
    assert buffer.tell() == 0
    pd.testing.assert_frame_equal(people(), kmsnb.read_parquet(buffer, kms=kms))


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        (["ssn=alias/pii", "email"], {"ssn": "alias/pii", "email": "alias/main"}),
        (["ssn=alias/pii,email=alias/pii"], {"ssn": "alias/pii", "email": "alias/pii"}),
        (["a=b=acs:kms:cn-hangzhou:1:key/k"], {"a=b": "acs:kms:cn-hangzhou:1:key/k"}),
        ([], {}),
    ],
)
def test_parse_column_keys(items: list[str], expected: dict[str, str]) -> None:
    assert parse_column_keys(items, "alias/main") == expected


@pytest.mark.parametrize(("items", "match"), [(["=k"], "COL=KEY"), (["a=k", "a"], "twice")])
def test_parse_column_keys_refuses(items: list[str], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        parse_column_keys(items, "alias/main")


def test_wrapped_keys_in_the_file_are_not_the_keks(tmp_path: Path, kms: InMemoryKms) -> None:
    """What the file stores is the KMS's blob: the KEK is neither in it raw nor base64."""
    keks: list[bytes] = []
    original = kms.encrypt

    def recording(key_id, plaintext, encryption_context=None):  # type: ignore[no-untyped-def]
        keks.append(bytes(plaintext))
        return original(key_id, plaintext, encryption_context)

    kms.encrypt = recording  # type: ignore[method-assign]
    path = _write(tmp_path / "p.parquet", kms, columns={"ssn": PII_KEY})
    data = path.read_bytes()
    assert len(keks) == 2
    for kek in keks:
        assert kek not in data
        assert base64.b64encode(kek) not in data
