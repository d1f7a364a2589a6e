"""Which master key opened a DataFrame file (issue 9, items 1, 4 and 8), in both modes.

Column mode: pyarrow hands each wrapped KEK to ``ParquetKmsClient.unwrap_key`` with the
master key its key material names; a forged file names the trusted key while its data key
came from GenerateDataKey on a scratch key.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pandas as pd  # type: ignore[import-untyped,unused-ignore]
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from forgery import ForgingKms, forge_bytes

import kmsnb
from kmsnb import _pme
from kmsnb.errors import FormatError, IntegrityError, WrongKeyError
from kmsnb.kms import CachingKms, DataKey
from kmsnb.testing import InMemoryKms

from .conftest import MAIN_KEY, PII_KEY
from .test_columns import people

pytestmark = pytest.mark.unit


@pytest.fixture
def scratch(kms: InMemoryKms) -> str:
    return kms.create_key(alias="alias/scratch")


def _write_columns(path: Path, kms: object, **options: object) -> Path:
    people().kms.to_parquet(path, MAIN_KEY, kms=kms, columns={"ssn": PII_KEY}, **options)
    return path


@pytest.mark.parametrize("allowed", [None, [MAIN_KEY, PII_KEY]])
@pytest.mark.parametrize("forged_key", [MAIN_KEY, PII_KEY])
def test_a_forged_column_file_is_refused(
    tmp_path: Path, kms: InMemoryKms, scratch: str, forged_key: str, allowed: list[str] | None
) -> None:
    """Footer key or column key forged: WrongKeyError naming the scratch key, with and
    without allowed_keys."""
    forger = ForgingKms(kms, scratch, forged_key)
    path = _write_columns(tmp_path / "forged.parquet", forger)
    assert forger.forged_count == 1
    with pytest.raises(WrongKeyError) as caught:
        kmsnb.read_parquet(path, kms=kms, allowed_keys=allowed)
    assert caught.value.found_key_id == scratch
    assert caught.value.expected_key_ids == (forged_key,)
    assert scratch in str(caught.value)
    assert forged_key in str(caught.value)


def test_only_the_forged_keys_are_refused(tmp_path: Path, kms: InMemoryKms, scratch: str) -> None:
    """A forged column key stops reads of that column; the others stay readable."""
    path = _write_columns(tmp_path / "forged.parquet", ForgingKms(kms, scratch, PII_KEY))
    expected = people()[["name", "age"]]
    pd.testing.assert_frame_equal(
        expected, kmsnb.read_parquet(path, kms=kms, columns=["name", "age"])
    )
    with pytest.raises(WrongKeyError, match="forged"):
        kmsnb.read_parquet(path, kms=kms, columns=["ssn"])


def test_allowed_keys_pin_column_keys(tmp_path: Path, kms: InMemoryKms) -> None:
    """An honest file whose ssn column is under alias/pii: refused when only alias/main is
    allowed, even after a read without allowed_keys filled pyarrow's KEK cache."""
    path = _write_columns(tmp_path / "p.parquet", kms)
    pd.testing.assert_frame_equal(people(), kmsnb.read_parquet(path, kms=kms))  # caches KEKs
    with pytest.raises(WrongKeyError, match="allowed_keys") as caught:
        kmsnb.read_parquet(path, kms=kms, allowed_keys=[MAIN_KEY])
    assert caught.value.found_key_id == kms.describe_key(PII_KEY).key_id
    only_main = kmsnb.read_parquet(path, kms=kms, columns=["name"], allowed_keys=[MAIN_KEY])
    pd.testing.assert_frame_equal(people()[["name"]], only_main)
    by_id = [kms.describe_key(MAIN_KEY).key_id, kms.describe_key(PII_KEY).key_id]
    pd.testing.assert_frame_equal(people(), kmsnb.read_parquet(path, kms=kms, allowed_keys=by_id))


def test_an_unresolvable_allowed_key_is_an_error_in_column_mode(
    tmp_path: Path, kms: InMemoryKms
) -> None:
    path = _write_columns(tmp_path / "p.parquet", kms)
    with pytest.raises(kmsnb.KmsAccessDeniedError, match="allowed_keys entry 'alias/nobody'"):
        kmsnb.read_parquet(path, kms=kms, allowed_keys=[MAIN_KEY, "alias/nobody"])


def test_the_parquet_kms_client_checks_too(kms: InMemoryKms, scratch: str) -> None:
    """Plain pyarrow users get the check through ParquetKmsClient itself."""
    forged = _pme.ParquetKmsClient(ForgingKms(kms, scratch, MAIN_KEY)).wrap_key(
        os.urandom(16), MAIN_KEY
    )
    with pytest.raises(WrongKeyError, match="forged"):
        _pme.ParquetKmsClient(kms).unwrap_key(forged, MAIN_KEY)
    honest = _pme.ParquetKmsClient(kms).wrap_key(b"k" * 16, PII_KEY)
    with pytest.raises(WrongKeyError, match="allowed_keys"):
        _pme.ParquetKmsClient(kms, allowed_keys=[MAIN_KEY]).unwrap_key(honest, PII_KEY)
    assert (
        _pme.ParquetKmsClient(kms, allowed_keys=[PII_KEY]).unwrap_key(honest, PII_KEY) == b"k" * 16
    )


@pytest.mark.parametrize("reader", ["parquet", "csv"])
def test_a_forged_whole_file_frame_is_refused(
    tmp_path: Path, kms: InMemoryKms, scratch: str, reader: str
) -> None:
    source = tmp_path / "frame"
    if reader == "parquet":
        people().kms.to_parquet(source, MAIN_KEY, kms=ForgingKms(kms, scratch, MAIN_KEY))
        read = kmsnb.read_parquet
    else:
        people().kms.to_csv(source, MAIN_KEY, kms=ForgingKms(kms, scratch, MAIN_KEY))
        read = kmsnb.read_csv
    for allowed in (None, [MAIN_KEY]):
        with pytest.raises(WrongKeyError) as caught:
            read(source, kms=kms, allowed_keys=allowed)
        assert caught.value.found_key_id == scratch
    if reader == "parquet":
        # A projection takes the seekable reader: the same check applies there.
        for allowed in (None, [MAIN_KEY]):
            with pytest.raises(WrongKeyError) as caught:
                kmsnb.read_parquet(source, kms=kms, columns=["name"], allowed_keys=allowed)
            assert caught.value.found_key_id == scratch


def test_allowed_keys_on_whole_file_frames(tmp_path: Path, kms: InMemoryKms) -> None:
    parquet, csv = tmp_path / "f.parquet.kms", tmp_path / "f.csv.kms"
    people().kms.to_parquet(parquet, PII_KEY, kms=kms)
    people().kms.to_csv(csv, PII_KEY, kms=kms)
    for path, read in ((parquet, kmsnb.read_parquet), (csv, kmsnb.read_csv)):
        with pytest.raises(WrongKeyError, match="allowed_keys"):
            read(path, kms=kms, allowed_keys=[MAIN_KEY])
        assert len(read(path, kms=kms, allowed_keys=[PII_KEY])) == 3


class _RecordingKms:
    """Keeps a copy of every plaintext data key handed out (to see what was reused)."""

    def __init__(self, inner: CachingKms[InMemoryKms]) -> None:
        self._inner = inner
        self.plaintexts: list[bytes] = []

    def generate_data_key(self, key_id: str, encryption_context: object = None) -> DataKey:
        data_key = self._inner.generate_data_key(
            key_id,
            encryption_context,
            plaintext_size=16,  # type: ignore[arg-type]
        )
        self.plaintexts.append(bytes(data_key.plaintext))
        return data_key

    def decrypt_data_key(self, blob: str, encryption_context: object = None) -> object:
        return self._inner.decrypt_data_key(blob, encryption_context)  # type: ignore[arg-type]

    def encrypt(self, key_id: str, plaintext: bytes, encryption_context: object = None) -> object:
        return self._inner.encrypt(key_id, plaintext, encryption_context)  # type: ignore[arg-type]

    def decrypt(self, blob: str, encryption_context: object = None) -> object:
        return self._inner.decrypt(blob, encryption_context)  # type: ignore[arg-type]


def legacy_envelope(
    kms: InMemoryKms, version: int, kek: bytes, master_key: str, context: dict[str, str]
) -> str:
    """A wrapped KEK as kmsnb 0.1 (version 1) or the development build (version 2) wrote
    it, built from docs/column-keys.md with cryptography alone."""
    data_key = kms.generate_data_key(master_key, context)
    key = bytes(data_key.plaintext)
    if version == 2:
        key = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"kmsnb/v2 column key wrap"
        ).derive(key)
    aad = (
        f"kmsnb-pme-kek-v{version}".encode()
        + b"\x00"
        + master_key.encode()
        + b"\x00"
        + json.dumps(dict(sorted(context.items())), separators=(",", ":")).encode()
    )
    nonce = os.urandom(12)
    document = {
        "v": version,
        "blob": data_key.ciphertext_blob,
        "context": context,
        "nonce": base64.b64encode(nonce).decode(),
        "sealed": base64.b64encode(AESGCM(key).encrypt(nonce, kek, aad)).decode(),
    }
    return base64.b64encode(json.dumps(document, separators=(",", ":")).encode()).decode()


def test_column_keys_never_take_a_data_key(tmp_path: Path, kms: InMemoryKms) -> None:
    """Item 4: the data-key cache can no longer hand one data key to a column-key wrap and
    to a whole file: column keys go through the KMS's Encrypt, never GenerateDataKey."""
    recorder = _RecordingKms(CachingKms(kms))
    people().kms.to_parquet(
        tmp_path / "c.parquet",
        MAIN_KEY,
        kms=recorder,  # type: ignore[arg-type]
        columns={"ssn": PII_KEY},
    )
    assert recorder.plaintexts == []
    assert kms.calls["generate_data_key"] == 0
    assert kms.calls["encrypt"] == 2


@pytest.mark.parametrize("version", [1, 2])
def test_older_envelopes_still_read(kms: InMemoryKms, version: int) -> None:
    """kmsnb 0.1's wrap (version 1: the data key itself) and the development build's
    (version 2: an HKDF subkey) still unwrap, with the key check and the context."""
    kek = os.urandom(16)
    context = {"project": "apollo"}
    wrapped = legacy_envelope(kms, version, kek, MAIN_KEY, context)
    assert kek == _pme.ParquetKmsClient(kms).unwrap_key(wrapped, MAIN_KEY)
    assert kek == _pme.ParquetKmsClient(kms, context).unwrap_key(wrapped, MAIN_KEY)
    with pytest.raises(kmsnb.ContextMismatchError, match="'project'"):
        _pme.ParquetKmsClient(kms, {"project": "zeus"}).unwrap_key(wrapped, MAIN_KEY)
    with pytest.raises(WrongKeyError, match="allowed_keys"):
        _pme.ParquetKmsClient(kms, allowed_keys=[PII_KEY]).unwrap_key(wrapped, MAIN_KEY)


def test_crafted_column_key_material_gets_kmsnb_errors(kms: InMemoryKms) -> None:
    """Item 8: deeply nested JSON (readable without any key), an unknown version, a bad
    seal, and a KEK of the wrong size."""
    client = _pme.ParquetKmsClient(kms)
    nested = base64.b64encode(b'{"a":' + b"[" * 5000 + b"]" * 5000 + b"}").decode()
    with pytest.raises(FormatError, match="malformed"):
        client.unwrap_key(nested, MAIN_KEY)
    honest = json.loads(base64.b64decode(legacy_envelope(kms, 1, b"k" * 16, MAIN_KEY, {})))
    version_3 = base64.b64encode(json.dumps({**honest, "v": 3}).encode()).decode()
    with pytest.raises(FormatError, match="version 3"):
        client.unwrap_key(version_3, MAIN_KEY)
    sealed = bytearray(base64.b64decode(honest["sealed"]))
    sealed[0] ^= 1
    tampered = {**honest, "sealed": base64.b64encode(sealed).decode()}
    with pytest.raises(IntegrityError, match="failed authentication"):
        client.unwrap_key(base64.b64encode(json.dumps(tampered).encode()).decode(), MAIN_KEY)
    five_bytes = kms.encrypt(MAIN_KEY, b"short").ciphertext_blob
    with pytest.raises(IntegrityError, match="5 bytes"):
        client.unwrap_key(five_bytes, MAIN_KEY)


def test_forged_bytes_helper_matches_the_column_forgery(kms: InMemoryKms, scratch: str) -> None:
    """The whole-file forgery of tests/forgery.py, read back through the DataFrame layer's KMS."""
    forged = forge_bytes(kms, scratch_key_id=scratch, claimed_key_id=MAIN_KEY, plaintext=b"x")
    with pytest.raises(WrongKeyError):
        kmsnb.decrypt_bytes(forged, kms=kms)
