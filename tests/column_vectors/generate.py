"""Write the column-key test vectors of docs/column-keys.md ("Test vectors").

    python tests/column_vectors/generate.py [OUT_DIR]

Each vector is a small Parquet file with column-level encryption, written by kmsnb (or by
pyarrow with a KMS client of the kind another engine would use, or, for kmsnb 0.1's
envelopes, with the wrap those versions made), and the master keys its blobs open under:
fixed key material in :class:`kmsnb.testing.InMemoryKms`, whose blobs have the Alibaba
layout. pyarrow draws the data keys, KEKs and nonces at random, so the files differ on
every run; ``tests/dataframe/test_column_vectors.py`` checks that what this writes now
verifies as the committed files do.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd  # type: ignore[import-untyped,unused-ignore]
import pyarrow as pa
import pyarrow.parquet as pq
import pyarrow.parquet.encryption as pe
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: forgery.py

from forgery import ForgingKms

import kmsnb
import kmsnb.dataframe  # noqa: F401
from kmsnb import _pme
from kmsnb.testing import InMemoryKms

HERE = Path(__file__).resolve().parent
MAIN, PII, SCRATCH = "alias/main", "alias/pii", "alias/scratch"
KEYS = {
    MAIN: "key-main-0000000000000000",
    PII: "key-pii-00000000000000000",
    SCRATCH: "key-scratch-0000000000000",
}
CONTEXT = {"team": "sales"}
LEGACY_CONTEXT = {"project": "apollo"}


def _derived(label: str, size: int) -> bytes:
    return hashlib.shake_128(f"kmsnb column vectors: {label}".encode()).digest(size)


def _version_id(alias: str) -> str:
    raw = _derived(f"version {alias}", 16).hex()
    return f"{raw[:8]}-{raw[8:12]}-{raw[12:16]}-{raw[16:20]}-{raw[20:]}"


def vector_kms() -> InMemoryKms:
    kms = InMemoryKms()
    for alias, key_id in KEYS.items():
        kms.add_key(
            key_id, _derived(f"material {alias}", 32), version_id=_version_id(alias), alias=alias
        )
    return kms


def master_keys() -> dict[str, Any]:
    return {
        key_id: {
            "alias": alias,
            "versions": {_version_id(alias): _derived(f"material {alias}", 32).hex()},
        }
        for alias, key_id in KEYS.items()
    }


def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "name": ["ann", "bob", "cy"],
            "ssn": ["123-45-6789", "987-65-4321", "555-55-5555"],
            "age": [31, 40, 45],
            "point": [{"x": 1, "y": 2}, {"x": 3, "y": 4}, {"x": 5, "y": 6}],
        }
    )


class LegacyClient(pe.KmsClient):  # type: ignore[misc]
    """Wraps KEKs as kmsnb 0.1 (version 1) and its development build (version 2) did."""

    def __init__(self, kms: InMemoryKms, version: int, context: dict[str, str]) -> None:
        super().__init__()
        self._kms, self._version, self._context = kms, version, context

    def wrap_key(self, key_bytes: bytes, master_key_identifier: str) -> str:
        data_key = self._kms.generate_data_key(master_key_identifier, self._context)
        key = bytes(data_key.plaintext)
        if self._version == 2:
            info = b"kmsnb/v2 column key wrap"
            key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(key)
        aad = (
            f"kmsnb-pme-kek-v{self._version}\x00{master_key_identifier}\x00".encode()
            + json.dumps(dict(sorted(self._context.items())), separators=(",", ":")).encode()
        )
        nonce = os.urandom(12)
        document = {
            "v": self._version,
            "blob": data_key.ciphertext_blob,
            "context": self._context,
            "nonce": base64.b64encode(nonce).decode(),
            "sealed": base64.b64encode(AESGCM(key).encrypt(nonce, key_bytes, aad)).decode(),
        }
        return base64.b64encode(json.dumps(document, separators=(",", ":")).encode()).decode()

    def unwrap_key(self, wrapped_key: str, master_key_identifier: str) -> bytes:
        raise NotImplementedError


class ShortKekClient(pe.KmsClient):  # type: ignore[misc]
    """Wraps 5 bytes instead of the KEK: a blob no reader may accept as a key."""

    def __init__(self, kms: InMemoryKms) -> None:
        super().__init__()
        self._kms = kms

    def wrap_key(self, key_bytes: bytes, master_key_identifier: str) -> str:
        return self._kms.encrypt(master_key_identifier, b"short").ciphertext_blob

    def unwrap_key(self, wrapped_key: str, master_key_identifier: str) -> bytes:
        raise NotImplementedError


def _pyarrow_write(client: Callable[[], pe.KmsClient], **configuration: Any) -> bytes:
    factory = pe.CryptoFactory(lambda _config: client())
    properties = factory.file_encryption_properties(
        pe.KmsConnectionConfig(kms_instance_id="in-memory", kms_instance_url="in-memory"),
        pe.EncryptionConfiguration(footer_key=MAIN, data_key_length_bits=256, **configuration),
    )
    sink = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame()), sink, encryption_properties=properties)
    return sink.getvalue()


def _kmsnb_write(kms: Any, **options: Any) -> bytes:
    sink = io.BytesIO()
    frame().kms.to_parquet(sink, MAIN, kms=kms, **options)
    _pme.clear_factories()  # a forging KMS must not leave KEKs for the honest writers
    return sink.getvalue()


def _flip(data: bytes, position: int) -> bytes:
    """``data`` with the low bit of byte ``position`` flipped."""
    return data[:position] + bytes([data[position] ^ 1]) + data[position + 1 :]


def _other_base64_character(data: bytes, position: int) -> bytes:
    """``data`` with the base64 character at ``position`` replaced by another one."""
    replacement = b"B" if data[position : position + 1] != b"B" else b"C"
    return data[:position] + replacement + data[position + 1 :]


def _swap(data: bytes, old: bytes, new: bytes) -> bytes:
    if len(old) != len(new) or data.count(old) != 1:
        raise AssertionError("a same-size, unique replacement")
    return data.replace(old, new)


ALL_LEAVES = ("name", "ssn", "age", "point.x", "point.y")


def scenarios(kms: InMemoryKms) -> dict[str, dict[str, Any]]:
    columns = {"ssn": PII, "point": PII}
    mode = {"name": MAIN, "ssn": PII, "age": MAIN, "point.x": PII, "point.y": PII}
    uniform = dict.fromkeys(ALL_LEAVES, MAIN)
    written = _kmsnb_write(kms, columns=columns, encryption_context=CONTEXT)
    plaintext_footer = _pyarrow_write(
        lambda: _pme.ParquetKmsClient(kms),
        column_keys={PII: ["ssn"]},
        plaintext_footer=True,
    )
    every_leaf = {PII: ["ssn"], MAIN: ["name", "age", "point.x", "point.y"]}
    legacy_v1 = _pyarrow_write(lambda: LegacyClient(kms, 1, LEGACY_CONTEXT), column_keys=every_leaf)
    clear = {"name": None, "ssn": PII, "age": None, "point.x": None, "point.y": None}
    legacy = {"name": MAIN, "ssn": PII, "age": MAIN, "point.x": MAIN, "point.y": MAIN}
    return {
        "columns": {
            "description": "kmsnb's column mode: ssn and point under alias/pii, the footer "
            "and the other columns under alias/main, a context, the KEKs wrapped by Encrypt",
            "file": written,
            "columns": mode,
            "encryption_context": CONTEXT,
            "key_wrap": "kms-encrypt",
        },
        "uniform": {
            "description": "uniform=True: one key, alias/main, for the footer and every column",
            "file": _kmsnb_write(kms, uniform=True),
            "columns": uniform,
            "encryption_context": {},
            "key_wrap": "kms-encrypt",
        },
        "plaintext_footer": {
            "description": "written by pyarrow with a plaintext, signed footer and only ssn "
            "encrypted (as parquet.encryption.plaintext.footer=true does in Spark)",
            "file": plaintext_footer,
            "columns": clear,
            "encryption_context": {},
            "key_wrap": "kms-encrypt",
        },
        "single_wrapping": {
            "description": "written by pyarrow without double wrapping: the KMS wraps each DEK",
            "file": _pyarrow_write(
                lambda: _pme.ParquetKmsClient(kms),
                column_keys=every_leaf,
                double_wrapping=False,
            ),
            "columns": legacy,
            "encryption_context": {},
            "key_wrap": "kms-encrypt",
        },
        "legacy_v1": {
            "description": "kmsnb 0.1: each KEK sealed with AES-GCM under a data key of "
            "GenerateDataKey with the context, envelope version 1",
            "file": legacy_v1,
            "columns": legacy,
            "encryption_context": LEGACY_CONTEXT,
            "key_wrap": "kmsnb-wrap-v1",
        },
        "legacy_v2": {
            "description": "kmsnb's development build: envelope version 2, an HKDF subkey",
            "file": _pyarrow_write(
                lambda: LegacyClient(kms, 2, LEGACY_CONTEXT),
                column_keys=every_leaf,
            ),
            "columns": legacy,
            "encryption_context": LEGACY_CONTEXT,
            "key_wrap": "kmsnb-wrap-v2",
        },
        "context_mismatch": {
            "description": "the columns vector read by a reader demanding another context",
            "file": written,
            "reader_context": {"team": "ops"},
            "expect": "ContextMismatchError",
        },
        "legacy_context_mismatch": {
            "description": "kmsnb 0.1's file read by a reader demanding another context",
            "file": legacy_v1,
            "reader_context": {"project": "zeus"},
            "expect": "ContextMismatchError",
        },
        "forged_footer_key": {
            "description": "the footer's KEK wrapped under alias/scratch, its key material "
            "naming alias/main",
            "file": _kmsnb_write(ForgingKms(kms, SCRATCH, MAIN), columns=columns),
            "expect": "WrongKeyError",
        },
        "forged_column_key": {
            "description": "the ssn column's KEK wrapped under alias/scratch, its key "
            "material naming alias/pii: the footer opens, the ssn column must not",
            "file": _kmsnb_write(ForgingKms(kms, SCRATCH, PII), columns=columns),
            "expect": "WrongKeyError",
            "expect_inspect": "success",
        },
        "kek_wrong_size": {
            "description": "the KMS blob of the footer's KEK holds 5 bytes",
            "file": _pyarrow_write(lambda: ShortKekClient(kms), uniform_encryption=True),
            "expect": "IntegrityError",
        },
        "tampered_footer": {
            "description": "one bit of the encrypted footer's ciphertext flipped",
            "file": _flip(written, len(written) - 8 - 30),
            "expect": "IntegrityError",
        },
        "tampered_wrapped_dek": {
            "description": "one character of the footer key material's wrappedDEK changed "
            "(still base64): AES-GCM under the KEK fails",
            "file": _other_base64_character(written, written.index(b'"wrappedDEK":"') + 20),
            "expect": "IntegrityError",
        },
        "bad_signature": {
            "description": "the plaintext footer's signature tag with one bit flipped",
            "file": _flip(plaintext_footer, len(plaintext_footer) - 9),
            "expect": "IntegrityError",
        },
        "not_pkmt1": {
            "description": "the footer's key material says keyMaterialType PKMT2",
            "file": _swap(written, b'"PKMT1"', b'"PKMT2"'),
            "expect": "FormatError",
        },
        "unknown_envelope_version": {
            "description": "a kmsnb envelope of version 9",
            "file": _pyarrow_write(
                lambda: LegacyClient(kms, 9, LEGACY_CONTEXT), uniform_encryption=True
            ),
            "expect": "FormatError",
        },
    }


def write(out: Path) -> list[Path]:
    kms = vector_kms()
    paths = []
    for name, scenario in scenarios(kms).items():
        expect = scenario.get("expect", "success")
        malformed = expect == "FormatError"
        vector = {
            "description": scenario["description"],
            # what a read, kmsnb.inspect(kms=...) and kmsnb.inspect() (no KMS) must do
            "expect": expect,
            "expect_inspect": scenario.get(
                "expect_inspect", "success" if expect == "ContextMismatchError" else expect
            ),
            "expect_inspect_unverified": "FormatError" if malformed else "success",
            "reader_context": scenario.get("reader_context"),
            "footer_key": MAIN,
            "columns": scenario.get("columns"),
            "encryption_context": scenario.get("encryption_context"),
            "key_wrap": scenario.get("key_wrap"),
            "rows": json.loads(frame().to_json(orient="records")),
            "master_keys": master_keys(),
            "file": base64.b64encode(scenario["file"]).decode(),
        }
        path = out / f"{name}.json"
        path.write_text(json.dumps(vector, indent=2) + "\n")
        paths.append(path)
    _pme.clear_factories()
    return paths


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE
    for written_path in write(target):
        print(written_path)
