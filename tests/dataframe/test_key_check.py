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
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from forgery import ForgingKms, forge_bytes

import kmsnb
from kmsnb import _pme
from kmsnb.errors import FormatError, WrongKeyError
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


def test_one_cached_data_key_derives_different_keys_for_its_two_uses(kms: InMemoryKms) -> None:
    """Item 4: the data-key cache hands the same data key to a column-key wrap and to a
    whole file; the wrap uses an HKDF subkey, never the data key itself (which Cobblestone
    takes as its own HKDF input), and the whole-file format is unchanged."""
    from c2sp_verifier import verify

    recorder = _RecordingKms(CachingKms(kms))
    kek = os.urandom(16)
    wrapped = _pme.ParquetKmsClient(recorder).wrap_key(kek, MAIN_KEY)  # type: ignore[arg-type]
    message = kmsnb.encrypt_bytes(kek, MAIN_KEY, kms=recorder)  # type: ignore[arg-type]
    first, second = recorder.plaintexts
    assert first == second  # the same data key served both uses
    document = json.loads(base64.b64decode(wrapped))
    assert document["v"] == 2
    nonce, sealed = base64.b64decode(document["nonce"]), base64.b64decode(document["sealed"])
    aad = _pme._associated_data(MAIN_KEY, {})
    with pytest.raises(InvalidTag):
        AESGCM(first).decrypt(nonce, sealed, aad)  # not the raw data key
    subkey = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"kmsnb/v2 column key wrap"
    ).derive(first)
    assert subkey != first
    assert kek == AESGCM(subkey).decrypt(nonce, sealed, aad)
    assert kek == verify(message, first)  # the whole file: Cobblestone on the data key


def test_crafted_column_key_material_gets_kmsnb_errors(kms: InMemoryKms) -> None:
    """Item 8: deeply nested JSON (readable without any key) and the retired version 1."""
    client = _pme.ParquetKmsClient(kms)
    nested = base64.b64encode(b"[" * 5000 + b"]" * 5000).decode()
    with pytest.raises(FormatError, match="malformed"):
        client.unwrap_key(nested, MAIN_KEY)
    honest = json.loads(base64.b64decode(client.wrap_key(b"k" * 16, MAIN_KEY)))
    version_1 = base64.b64encode(json.dumps({**honest, "v": 1}).encode()).decode()
    with pytest.raises(FormatError, match="version 1"):
        client.unwrap_key(version_1, MAIN_KEY)


def test_forged_bytes_helper_matches_the_column_forgery(kms: InMemoryKms, scratch: str) -> None:
    """The whole-file forgery of tests/forgery.py, read back through the DataFrame layer's KMS."""
    forged = forge_bytes(kms, scratch_key_id=scratch, claimed_key_id=MAIN_KEY, plaintext=b"x")
    with pytest.raises(WrongKeyError):
        kmsnb.decrypt_bytes(forged, kms=kms)
