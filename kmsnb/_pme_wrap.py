"""Column keys: Parquet key material, and how its key-encryption key (KEK) is wrapped.

Parquet modular encryption encrypts each column, and the footer, with a random data key
(DEK). In parquet-java's double-wrapping layout, which pyarrow writes too, each DEK is
wrapped locally by a KEK, and the KEK by the KMS; what a reader needs sits in a flat JSON
object, the *key material* (``docs/column-keys.md`` is the spec)::

    wrappedDEK = base64(nonce ‖ AES-GCM(KEK, nonce, DEK, aad = keyEncryptionKeyID bytes) ‖ tag)
    wrappedKEK = the KMS's Encrypt(KeyId = masterKeyID, Plaintext = base64(KEK)).CiphertextBlob

kmsnb writes the KEK exactly as Spark's or parquet-java's ``KmsClient.wrapKey(key,
masterKeyIdentifier)`` would, with no encryption context, so any engine with a ~20-line
Alibaba Cloud KMS client reads kmsnb's files. Unwrapping asks the KMS's Decrypt and then
checks that the master key its answer names is ``masterKeyID`` and one of the reader's
``allowed_keys`` (:mod:`kmsnb._key_check`), before the KEK is used.

Older kmsnb builds wrapped the KEK in an envelope of their own, which this module still
reads (the KMS binds their encryption context): ``wrappedKEK`` = base64 of JSON
``{"v": 1 or 2, "blob", "context", "nonce", "sealed"}``, where ``sealed`` is AES-256-GCM of
the KEK under the data key of ``blob`` (version 1, kmsnb 0.1) or under an HKDF-SHA-256
subkey of it (version 2, a development build). A ``wrappedKEK`` whose base64 decodes to a
JSON object is such an envelope; anything else is a KMS ``CiphertextBlob``, which begins
with the 36-character key version id.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from kmsnb._context import check_context_matches
from kmsnb._key_check import AllowedKeys, unwrap_data_key
from kmsnb.errors import FormatError, IntegrityError
from kmsnb.kms._base import Kms, WrappingKms, canonical_context

__all__ = [
    "KEY_MATERIAL_TYPE",
    "KeyMaterial",
    "kek_wrap_format",
    "legacy_associated_data",
    "legacy_context",
    "open_wrapped_dek",
    "parse_key_material",
    "unwrap_dek",
    "unwrap_kek",
    "wrap_kek",
]

KEY_MATERIAL_TYPE: Final = "PKMT1"
#: Sizes of the AES keys Parquet uses (KEK and DEK: 128, 192 or 256 bits).
KEY_SIZES: Final = (16, 24, 32)
MAX_KEY_MATERIAL_SIZE: Final = 65536
MAX_WRAPPED_KEY_SIZE: Final = 16384  # a KMS blob is ~150 chars, a legacy envelope ~600
_NONCE_SIZE: Final = 12
_TAG_SIZE: Final = 16
# Legacy envelopes: version -> (AAD label, HKDF info of the wrapping subkey or None).
_LEGACY: Final = {
    1: (b"kmsnb-pme-kek-v1\x00", None),
    2: (b"kmsnb-pme-kek-v2\x00", b"kmsnb/v2 column key wrap"),
}


def _malformed(what: str) -> FormatError:
    return FormatError(f"malformed column key material: {what}; the file was damaged")


@dataclass(frozen=True)
class KeyMaterial:
    """One key's PKMT1 key material, parsed but unverified: what the file claims.

    Attributes:
        is_footer_key: the footer's key (else a column's).
        master_key_id: the master key, as the writer named it (``masterKeyID``).
        wrapped_dek: the wrapped data key, decoded from base64.
        double_wrapping: the DEK is wrapped by a KEK (else by the KMS itself).
        key_encryption_key_id: the KEK's 16-byte id, decoded (double wrapping only).
        wrapped_kek: the wrapped KEK as stored (double wrapping only).
        kms_instance_id, kms_instance_url: the KMS the writer used (footer key only).
    """

    is_footer_key: bool
    master_key_id: str
    wrapped_dek: bytes
    double_wrapping: bool
    key_encryption_key_id: bytes | None = None
    wrapped_kek: str | None = None
    kms_instance_id: str | None = None
    kms_instance_url: str | None = None

    @property
    def kms_wrapped(self) -> str:
        """What the KMS wrapped: the KEK, or the DEK itself with single wrapping."""
        if self.double_wrapping:
            if self.wrapped_kek is None:
                raise AssertionError("kmsnb: internal error: double wrapping without a KEK")
            return self.wrapped_kek
        return self.wrapped_dek.decode("utf-8")

    @property
    def key_wrap(self) -> str:
        """How the KMS wrapped it: ``kms-encrypt``, ``kmsnb-wrap-v1`` or ``kmsnb-wrap-v2``."""
        return kek_wrap_format(self.kms_wrapped)


def _flag(document: Mapping[str, Any], name: str) -> bool:
    # pyarrow writes JSON booleans; parquet-java writes the strings "true" and "false".
    value = document.get(name, False)
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return bool(value == "true")
    raise _malformed(f"{name} is {value!r}, not a boolean")


def _text(document: Mapping[str, Any], name: str, *, required: bool = True) -> str | None:
    value = document.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise _malformed(f"{name} is missing or not a string")
    return value


def _base64(value: str, name: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise _malformed(f"{name} is not base64") from None


def parse_key_material(raw: bytes | str) -> KeyMaterial:
    """Parse the key material a Parquet file stores for one key (``key_metadata``).

    Raises:
        FormatError: not PKMT1 key material, stored outside the file, or malformed.
    """
    if len(raw) > MAX_KEY_MATERIAL_SIZE:
        raise _malformed(f"{len(raw)} bytes of key material")
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError):
        raise _malformed("the key material is not JSON") from None
    if not isinstance(document, dict) or document.get("keyMaterialType") != KEY_MATERIAL_TYPE:
        raise FormatError(
            "this Parquet file's keys are not described by PKMT1 key material (the key "
            "tools of parquet-java and pyarrow); kmsnb cannot tell which keys it needs"
        )
    if not _flag(document, "internalStorage"):
        raise FormatError(
            "this Parquet file keeps its key material in separate files (external key "
            "material), which kmsnb does not read"
        )
    is_footer_key = _flag(document, "isFooterKey")
    double_wrapping = _flag(document, "doubleWrapping")
    wrapped_dek = _text(document, "wrappedDEK") or ""
    material = KeyMaterial(
        is_footer_key=is_footer_key,
        master_key_id=_text(document, "masterKeyID") or "",
        wrapped_dek=_base64(wrapped_dek, "wrappedDEK") if double_wrapping else wrapped_dek.encode(),
        double_wrapping=double_wrapping,
        key_encryption_key_id=(
            _base64(_text(document, "keyEncryptionKeyID") or "", "keyEncryptionKeyID")
            if double_wrapping
            else None
        ),
        wrapped_kek=_text(document, "wrappedKEK") if double_wrapping else None,
        kms_instance_id=_text(document, "kmsInstanceID", required=False),
        kms_instance_url=_text(document, "kmsInstanceURL", required=False),
    )
    kek_wrap_format(material.kms_wrapped)  # refuse what no unwrap could read, now
    return material


# -- the KEK wrap ---------------------------------------------------------------------------


def wrap_kek(kms: WrappingKms, kek: bytes, master_key_id: str) -> str:
    """``wrappedKEK``: the KMS's Encrypt of the KEK's base64 text, with no context."""
    return kms.encrypt(master_key_id, kek).ciphertext_blob


def _legacy_document(wrapped: str) -> dict[str, Any] | None:
    """A legacy envelope's JSON, or ``None`` for a KMS ``CiphertextBlob`` (unverified)."""
    if not isinstance(wrapped, str) or not wrapped or len(wrapped) > MAX_WRAPPED_KEY_SIZE:
        raise _malformed("the wrapped key is empty or too long")
    raw = _base64("".join(wrapped.split()), "the wrapped key")
    if not raw.startswith(b"{"):
        return None
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError):
        # RecursionError: crafted JSON nested deeper than the parser's recursion limit.
        raise _malformed("the wrapped key does not parse") from None
    if not isinstance(document, dict):
        raise _malformed("the wrapped key does not parse")
    return document


def kek_wrap_format(wrapped: str) -> str:
    """``kms-encrypt`` (a KMS blob), ``kmsnb-wrap-v1`` or ``kmsnb-wrap-v2`` (legacy).

    Raises:
        FormatError: malformed, or a legacy version this kmsnb does not know.
    """
    document = _legacy_document(wrapped)
    if document is None:
        return "kms-encrypt"
    version = document.get("v")
    if version not in _LEGACY or isinstance(version, bool):
        raise FormatError(f"unsupported column key wrapping version {version!r}; upgrade kmsnb")
    return f"kmsnb-wrap-v{version}"


def legacy_context(wrapped: str) -> dict[str, str] | None:
    """The encryption context a legacy envelope names (``None`` for a KMS blob)."""
    document = _legacy_document(wrapped)
    if document is None:
        return None
    return _parse_legacy(document)[1]


def _parse_legacy(document: Mapping[str, Any]) -> tuple[int, dict[str, str], str, bytes, bytes]:
    try:
        version = document["v"]
        blob = document["blob"]
        context = canonical_context(document["context"])
        nonce = base64.b64decode(document["nonce"], validate=True)
        sealed = base64.b64decode(document["sealed"], validate=True)
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise _malformed("the wrapped key does not parse (not written by kmsnb?)") from None
    if version not in _LEGACY or isinstance(version, bool):
        raise FormatError(f"unsupported column key wrapping version {version!r}; upgrade kmsnb")
    if not isinstance(blob, str) or not blob or len(nonce) != _NONCE_SIZE:
        raise _malformed("bad blob or nonce")
    if len(sealed) - _TAG_SIZE not in KEY_SIZES:
        raise _malformed("bad sealed key size")
    return version, context, blob, nonce, sealed


def legacy_associated_data(version: int, master_key_id: str, context: Mapping[str, str]) -> bytes:
    """The AAD of a legacy envelope: label, master key id and context JSON."""
    encoded_context = json.dumps(dict(sorted(context.items())), separators=(",", ":"))
    label = _LEGACY[version][0]
    return label + master_key_id.encode("utf-8") + b"\x00" + encoded_context.encode("utf-8")


def _legacy_wrapping_key(version: int, data_key: bytearray) -> bytes:
    info = _LEGACY[version][1]
    if info is None:
        return bytes(data_key)  # version 1 used the data key itself
    derive = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info)
    return derive.derive(bytes(data_key))


def unwrap_kek(
    kms: Kms,
    wrapped: str,
    master_key_id: str,
    *,
    expected_context: Mapping[str, str] | None = None,
    allowed: AllowedKeys | None = None,
) -> bytes:
    """Unwrap what the KMS wrapped (a KEK, or a DEK with single wrapping), once the KMS's
    Decrypt answer shows it is under ``master_key_id`` (and one of ``allowed``).

    ``expected_context`` is checked against a legacy envelope's context, which the KMS
    binds; a KMS blob carries none (the file's metadata does: :mod:`kmsnb._pme_io`).

    Raises:
        FormatError: malformed key material.
        ContextMismatchError: a legacy envelope names another context.
        IntegrityError: the unwrapped key has the wrong size, or a legacy seal fails.
        WrongKeyError, KmsError: see :func:`kmsnb._key_check.unwrap_data_key`.
    """
    document = _legacy_document(wrapped)
    if document is None:
        if not isinstance(kms, WrappingKms):
            raise TypeError(
                f"this file's column keys are wrapped by the KMS's Encrypt, so reading it "
                f"needs a KMS with decrypt (kmsnb.kms.WrappingKms); {type(kms).__name__} has none"
            )
        with unwrap_data_key(
            kms,
            "".join(wrapped.split()),
            None,
            claimed_key_id=master_key_id,
            allowed=allowed,
            key_sizes=KEY_SIZES,
            unwrap=kms.decrypt,
        ) as unwrapped:
            return bytes(unwrapped.plaintext)
    version, context, blob, nonce, sealed = _parse_legacy(document)
    check_context_matches(expected_context, context)
    opened: list[bytes] = []

    def open_sealed(data_key: bytearray) -> None:
        # The tag is checked before the key checks (damage is an IntegrityError, a forgery
        # a WrongKeyError); the KEK is returned only after both.
        aad = legacy_associated_data(version, master_key_id, context)
        try:
            opened.append(
                AESGCM(_legacy_wrapping_key(version, data_key)).decrypt(nonce, sealed, aad)
            )
        except InvalidTag:
            raise IntegrityError(
                f"the wrapped column key for {master_key_id!r} failed authentication; "
                "the file's key material was altered"
            ) from None

    with unwrap_data_key(
        kms, blob, context, claimed_key_id=master_key_id, allowed=allowed, authenticate=open_sealed
    ):
        return opened[0]


def open_wrapped_dek(material: KeyMaterial, kek: bytes) -> bytearray:
    """The DEK, from ``wrappedDEK`` and its KEK (double wrapping).

    Raises:
        IntegrityError: the tag fails: the key material was altered, or the KEK is wrong.
    """
    if material.key_encryption_key_id is None:
        raise AssertionError("kmsnb: internal error: no KEK id in single wrapping")
    wrapped = material.wrapped_dek
    if len(wrapped) - _NONCE_SIZE - _TAG_SIZE not in KEY_SIZES:
        raise _malformed(f"a wrapped data key of {len(wrapped)} bytes")
    try:
        return bytearray(
            AESGCM(kek).decrypt(
                wrapped[:_NONCE_SIZE], wrapped[_NONCE_SIZE:], material.key_encryption_key_id
            )
        )
    except InvalidTag:
        raise IntegrityError(
            f"the wrapped data key for {material.master_key_id!r} failed authentication; "
            "the file's key material was altered"
        ) from None


def unwrap_dek(
    kms: Kms,
    material: KeyMaterial,
    *,
    expected_context: Mapping[str, str] | None = None,
    allowed: AllowedKeys | None = None,
) -> bytearray:
    """A key's DEK, as pyarrow would recover it: one KMS call; the caller wipes it."""
    unwrapped = unwrap_kek(
        kms,
        material.kms_wrapped,
        material.master_key_id,
        expected_context=expected_context,
        allowed=allowed,
    )
    if not material.double_wrapping:
        return bytearray(unwrapped)
    return open_wrapped_dek(material, unwrapped)
