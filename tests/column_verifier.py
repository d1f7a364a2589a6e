"""An independent reader of kmsnb's column-level Parquet keys, from docs/column-keys.md.

It imports nothing from kmsnb: Python's standard library and ``cryptography``'s AESGCM and
HKDF only. It finds the footer's key material at the end of the file, unwraps the footer's
data key (DEK) with a KMS Decrypt given as a function, decrypts the footer (or checks its
signature), and unwraps every column's DEK the same way; it returns what it found. It is
what a Spark ``KmsClient`` plus parquet-java's key tools do, written out.

A :class:`Kms` gives it the KMS's Decrypt (``decrypt(blob, context) -> (KeyId,
Plaintext)``) and DescribeKey (``resolve(name) -> KeyId``, for a ``masterKeyID`` that is an
alias): the official SDK against the emulator's HTTP server in the engine tests, an
emulation of the Alibaba blob layout from a vector's master keys otherwise.
"""

from __future__ import annotations

import base64
import hmac
import json
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_legacy_contexts: list[dict[str, str]] = []  # what the last read's envelopes named


class Kms(NamedTuple):
    decrypt: Callable[[str, Mapping[str, str] | None], tuple[str, str]]
    resolve: Callable[[str], str]


class VerifierError(Exception):
    """The file is not what the spec allows; ``kind`` is the kmsnb error class expected."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind


@dataclass
class Result:
    footer_encrypted: bool
    footer_master_key: str
    kms_instance: tuple[str | None, str | None]
    footer_dek: bytes
    #: leaf path -> (master key, DEK); the footer's key for columns under it, None in clear
    columns: dict[str, tuple[str | None, bytes | None]] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)
    num_rows: int = 0
    #: kmsnb's kmsnb.encryption_context metadata, else a legacy envelope's, else {}
    encryption_context: dict[str, str] = field(default_factory=dict)


# -- Thrift compact protocol (parquet.thrift's structures) ----------------------------------


class _Thrift:
    def __init__(self, data: bytes, position: int = 0) -> None:
        self.data, self.pos = data, position

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise VerifierError("FormatError", "thrift: out of data")
        self.pos += 1
        return self.data[self.pos - 1]

    def varint(self) -> int:
        shift = result = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            if b < 0x80:
                return result
            shift += 7
            if shift > 63:
                raise VerifierError("FormatError", "thrift: varint too long")

    def zigzag(self) -> int:
        n = self.varint()
        return (n >> 1) ^ -(n & 1)

    def value(self, kind: int) -> Any:
        if kind in (1, 2):
            return self.byte() == 1
        if kind == 3:
            return self.byte()
        if kind in (4, 5, 6):
            return self.zigzag()
        if kind == 7:
            self.pos += 8
            return struct.unpack_from("<d", self.data, self.pos - 8)[0]
        if kind == 8:
            n = self.varint()
            if self.pos + n > len(self.data):
                raise VerifierError("FormatError", "thrift: binary past the end")
            self.pos += n
            return self.data[self.pos - n : self.pos]
        if kind in (9, 10):
            header = self.byte()
            n = header >> 4 if header >> 4 != 15 else self.varint()
            return [self.value(header & 15) for _ in range(n)]
        if kind == 11:
            n = self.varint()
            if not n:
                return {}
            types = self.byte()
            return {self.value(types >> 4): self.value(types & 15) for _ in range(n)}
        if kind == 12:
            return self.struct()
        raise VerifierError("FormatError", f"thrift: type {kind}")

    def struct(self) -> dict[int, Any]:
        fields: dict[int, Any] = {}
        last = 0
        while (header := self.byte()) != 0:
            delta, kind = header >> 4, header & 15
            last = last + delta if delta else self.zigzag()
            fields[last] = kind == 1 if kind in (1, 2) else self.value(kind)
        return fields


# -- key material and the wraps ---------------------------------------------------------------


def _material(raw: bytes) -> dict[str, Any]:
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError):
        raise VerifierError("FormatError", "key material is not JSON") from None
    if not isinstance(document, dict) or document.get("keyMaterialType") != "PKMT1":
        raise VerifierError("FormatError", "not PKMT1 key material")
    return document


def _flag(value: object) -> bool:
    return value is True or value == "true"


def _legacy_kek(document: dict[str, Any], master_key: str, kms: Kms) -> bytes:
    """kmsnb 0.1 (v 1) and the development build (v 2): a data key's AES-GCM seal."""
    version = document.get("v")
    if version not in (1, 2):
        raise VerifierError("FormatError", f"legacy version {version!r}")
    context = document["context"]
    _legacy_contexts.append(context)
    key_id, text = kms.decrypt(document["blob"], context)
    data_key = base64.b64decode(text)
    if version == 2:
        info = b"kmsnb/v2 column key wrap"
        data_key = HKDF(hashes.SHA256(), 32, salt=None, info=info).derive(data_key)
    aad = (
        f"kmsnb-pme-kek-v{version}\x00{master_key}\x00".encode()
        + json.dumps(dict(sorted(context.items())), separators=(",", ":")).encode()
    )
    try:
        kek = AESGCM(data_key).decrypt(
            base64.b64decode(document["nonce"]), base64.b64decode(document["sealed"]), aad
        )
    except InvalidTag:
        raise VerifierError("IntegrityError", "legacy seal") from None
    _check_key(kms, key_id, master_key)
    return kek


def _check_key(kms: Kms, found: str, claimed: str) -> None:
    if found != claimed and found != kms.resolve(claimed):
        raise VerifierError("WrongKeyError", f"unwrapped by {found}, file names {claimed}")


def unwrap_kms_wrapped(wrapped: str, master_key: str, kms: Kms) -> bytes:
    """What the KMS wrapped, as a Spark KmsClient's unwrapKey(wrapped, masterKeyID) does,
    plus the check of which master key the KMS says unwrapped it."""
    raw = base64.b64decode(wrapped)
    if raw.startswith(b"{"):
        key = _legacy_kek(json.loads(raw), master_key, kms)
    else:
        key_id, text = kms.decrypt(wrapped, None)  # no encryption context
        key = base64.b64decode(text)
        _check_key(kms, key_id, master_key)
    if len(key) not in (16, 24, 32):
        raise VerifierError("IntegrityError", f"a {len(key)}-byte key")
    return key


def dek_of(material: dict[str, Any], kms: Kms) -> bytes:
    """A key's DEK from its key material: unwrap the KEK, then AES-GCM open wrappedDEK."""
    master_key = material["masterKeyID"]
    if not _flag(material.get("doubleWrapping")):
        return unwrap_kms_wrapped(material["wrappedDEK"], master_key, kms)
    kek = unwrap_kms_wrapped(material["wrappedKEK"], master_key, kms)
    wrapped = base64.b64decode(material["wrappedDEK"])
    kek_id = base64.b64decode(material["keyEncryptionKeyID"])
    try:
        return AESGCM(kek).decrypt(wrapped[:12], wrapped[12:], kek_id)
    except InvalidTag:
        raise VerifierError("IntegrityError", "wrappedDEK") from None


# -- the file ---------------------------------------------------------------------------------


def _file_aad(algorithm: dict[int, Any]) -> bytes:
    ((_, fields),) = algorithm.items()
    return fields.get(1, b"") + fields.get(2, b"")


def _leaf_paths(schema: list[dict[int, Any]]) -> list[str]:
    paths: list[str] = []
    position = 1

    def walk(prefix: str, count: int) -> None:
        nonlocal position
        for _ in range(count):
            element = schema[position]
            position += 1
            name = prefix + element[4].decode()
            if element.get(5):
                walk(name + ".", element[5])
            else:
                paths.append(name)

    walk("", schema[0].get(5, 0))
    return paths


def read(data: bytes, kms: Kms, expected_context: Mapping[str, str] | None = None) -> Result:
    """Unwrap every key of a column-encrypted Parquet file; see the module docstring.

    With ``expected_context``, the file's context (docs/column-keys.md, "The encryption
    context") must equal it.
    """
    _legacy_contexts.clear()
    magic = data[-4:]
    if magic not in (b"PAR1", b"PARE") or data[:4] != magic:
        raise VerifierError("FormatError", "not Parquet")
    (size,) = struct.unpack_from("<I", data, len(data) - 8)
    footer = data[len(data) - 8 - size : len(data) - 8]
    reader = _Thrift(footer)
    if magic == b"PARE":
        crypto = reader.struct()
        aad = _file_aad(crypto[1]) + b"\x00"  # the footer's module type
        footer_material = _material(crypto[2])
        footer_dek = dek_of(footer_material, kms)
        module = footer[reader.pos :]
        try:
            plaintext = AESGCM(footer_dek).decrypt(module[4:16], module[16:], aad)
        except InvalidTag:
            raise VerifierError("IntegrityError", "footer") from None
        metadata = _Thrift(plaintext).struct()
    else:
        metadata = reader.struct()
        signature = footer[reader.pos :]
        aad = _file_aad(metadata[8]) + b"\x00"
        footer_material = _material(metadata[9])
        footer_dek = dek_of(footer_material, kms)
        sealed = AESGCM(footer_dek).encrypt(signature[:12], footer[: reader.pos], aad)
        if not hmac.compare_digest(sealed[-16:], signature[12:]):
            raise VerifierError("IntegrityError", "footer signature")
    footer_key = footer_material["masterKeyID"]
    result = Result(
        footer_encrypted=magic == b"PARE",
        footer_master_key=footer_key,
        kms_instance=(footer_material.get("kmsInstanceID"), footer_material.get("kmsInstanceURL")),
        footer_dek=footer_dek,
        metadata={kv[1].decode(): kv.get(2, b"").decode() for kv in metadata.get(5, [])},
        num_rows=metadata.get(3, 0),
    )
    stored = result.metadata.get("kmsnb.encryption_context")
    if stored is not None:
        result.encryption_context = json.loads(stored)
    elif _legacy_contexts:
        result.encryption_context = _legacy_contexts[0]
    if expected_context is not None and dict(expected_context) != result.encryption_context:
        raise VerifierError("ContextMismatchError", "another encryption context")
    paths = _leaf_paths(metadata[2])
    chunks = metadata[4][0][1] if metadata.get(4) else []
    for path, chunk in zip(paths, chunks, strict=True):
        crypto_metadata = chunk.get(8)
        if crypto_metadata is None:
            result.columns[path] = (None, None)
        elif 1 in crypto_metadata:
            result.columns[path] = (footer_key, footer_dek)
        else:
            material = _material(crypto_metadata[2][2])
            result.columns[path] = (material["masterKeyID"], dek_of(material, kms))
    return result


def vector_kms(master_keys: Mapping[str, Mapping[str, Any]]) -> Kms:
    """The KMS of a vector: blobs are key version id (36 bytes) || IV (12) || AES-GCM of the
    plaintext's text || tag, the AAD the context as sorted ``k=v`` joined by ``&``."""
    versions = {
        version: (key_id, bytes.fromhex(material))
        for key_id, key in master_keys.items()
        for version, material in key["versions"].items()
    }
    aliases = {key["alias"]: key_id for key_id, key in master_keys.items() if key.get("alias")}

    def decrypt(blob: str, context: Mapping[str, str] | None) -> tuple[str, str]:
        raw = base64.b64decode(blob)
        found = versions.get(raw[:36].decode("ascii", "replace"))
        if found is None:
            raise VerifierError("KmsAccessDeniedError", "no such key version")
        aad = "&".join(f"{k}={v}" for k, v in sorted((context or {}).items())).encode()
        try:
            return found[0], AESGCM(found[1]).decrypt(raw[36:48], raw[48:], aad).decode()
        except InvalidTag:
            raise VerifierError("WrongKeyError", "the KMS refused the blob") from None

    return Kms(decrypt, lambda name: aliases.get(name, name))
