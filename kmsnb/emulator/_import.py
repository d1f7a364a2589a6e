"""Key import for ``Origin=EXTERNAL`` keys: GetParametersForImport, ImportKeyMaterial,
DeleteKeyMaterial (``docs/emulator.md``, "Actions"; the ``alibabacloud_kms20160120`` models).

* GetParametersForImport makes an RSA-2048 key pair for one key and one wrapping algorithm
  (``RSAES_PKCS1_V1_5``, ``RSAES_OAEP_SHA_1`` or ``RSAES_OAEP_SHA_256``) and returns its
  public key (base64 DER) with an import token valid 24 hours of the emulator's clock. The
  private key and the token live in the memory of the emulator that issued them, never on
  disk: a token does not survive a restart (import again). ``EC_SM2`` / ``SM2PKE``, which
  need an SM2 implementation ``cryptography`` lacks, are refused with
  ``InvalidParameter``.
* ImportKeyMaterial unwraps the material (32 bytes for ``Aliyun_AES_256``, 16 for
  ``Aliyun_SM4``) and makes the key Enabled (a Disabled key stays Disabled). A key can
  only ever hold the material first imported into it: a check value of it is kept (a
  GCM tag over nothing under a fixed nonce, which reveals nothing of the key), and other
  material is ``InvalidKeyMaterial``. ``KeyMaterialExpireUnix`` (seconds; 0 or absent:
  never) makes the key go back to PendingImport when it passes.
* DeleteKeyMaterial forgets the material: the key goes to PendingImport (a key pending
  deletion keeps its state), blobs made under it answer ``Rejected.PendingImport``, and
  re-importing the same material makes them decrypt again.

Codes: ``Unsupported.Origin`` for a key that is not EXTERNAL, ``InvalidImportToken``,
``ExpiredImportToken``, ``InvalidKeyMaterial`` (the documented common codes, 400).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
import threading
import weakref
from dataclasses import dataclass
from typing import Any, Final

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kmsnb._wipe import wipe
from kmsnb.emulator._engine import (
    ENABLED,
    PENDING_DELETION,
    PENDING_IMPORT,
    Engine,
    format_time,
)
from kmsnb.emulator._errors import ServiceError, invalid
from kmsnb.emulator._params import Params
from kmsnb.emulator._records import KeyRecord
from kmsnb.emulator._sm4 import SM4_KEY_SIZE, SM4GCM

__all__ = ["delete_key_material", "get_parameters_for_import", "import_key_material"]

TOKEN_LIFETIME_S: Final = 24 * 3600
MAX_PENDING_IMPORTS: Final = 256  # per emulator; the oldest are forgotten past it
_CHECK_NONCE: Final = bytes(12)
_CHECK_AAD: Final = b"kmsnb emulator imported key material check"
_IMPORT_RULE: Final = {PENDING_DELETION: "Rejected.PendingDeletion"}
# The wrapping algorithms the API documents. SHA-1 in OAEP is Alibaba's choice for one of
# them; its collision weakness does not touch OAEP's security.
_SHA1 = hashes.SHA1()  # noqa: S303
_PADDINGS: Final[dict[str, padding.AsymmetricPadding]] = {
    "RSAES_PKCS1_V1_5": padding.PKCS1v15(),
    "RSAES_OAEP_SHA_1": padding.OAEP(padding.MGF1(_SHA1), _SHA1, None),
    "RSAES_OAEP_SHA_256": padding.OAEP(padding.MGF1(hashes.SHA256()), hashes.SHA256(), None),
}


@dataclass(frozen=True)
class _PendingImport:
    key_id: str
    algorithm: str
    private_key: rsa.RSAPrivateKey
    expires_at: float


# Import parameters per engine, in memory only (see the module docstring).
_pending: weakref.WeakKeyDictionary[Engine, dict[str, _PendingImport]] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def get_parameters_for_import(engine: Engine, params: Params) -> dict[str, Any]:
    key_ref = params.required("KeyId")
    params.required("WrappingAlgorithm")
    algorithm = params.choice("WrappingAlgorithm", tuple(_PADDINGS), "")
    params.required("WrappingKeySpec")
    params.choice("WrappingKeySpec", ("RSA_2048",), "")  # EC_SM2: see the module docstring
    _, key = engine.read(key_ref, _IMPORT_RULE)
    _check_external(key)
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_der = private_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    token = base64.b64encode(os.urandom(32)).decode("ascii")
    expires_at = engine.clock() + TOKEN_LIFETIME_S
    with _lock:
        pending = _pending.setdefault(engine, {})
        now = engine.clock()
        for stale in [t for t, p in pending.items() if p.expires_at <= now]:
            del pending[stale]
        while len(pending) >= MAX_PENDING_IMPORTS:
            del pending[next(iter(pending))]
        pending[token] = _PendingImport(key.key_id, algorithm, private_key, expires_at)
    return {
        "KeyId": key.key_id,
        "ImportToken": token,
        "PublicKey": base64.b64encode(public_der).decode("ascii"),
        "TokenExpireTime": format_time(expires_at),
    }


def import_key_material(engine: Engine, params: Params) -> dict[str, Any]:
    key_ref = params.required("KeyId")
    token = params.required("ImportToken")
    wrapped_text = params.required("EncryptedKeyMaterial")
    expire = params.integer("KeyMaterialExpireUnix", default=0, low=0, high=2**40)
    with engine.transaction() as draft:
        key = engine.key_in(draft, key_ref, _IMPORT_RULE)
        _check_external(key)
        pending = _take_token(engine, token, key.key_id)
        material = _unwrap(pending, wrapped_text, key)
        try:
            now = engine.clock()
            if expire and expire <= now:
                raise invalid("KeyMaterialExpireUnix")
            check = _material_check(material)
            if key.material_check and not hmac.compare_digest(key.material_check, check):
                raise ServiceError("InvalidKeyMaterial", "The key material is invalid.", 400)
            key.material_check = check
            if key.version_ids:  # the same material again: refill the versions
                for version_id in key.version_ids:
                    engine.store.add_version(
                        draft, key.key_id, now, material=material, version_id=version_id
                    )
            else:
                version = engine.store.add_version(draft, key.key_id, now, material=material)
                key.primary_version_id = version.version_id
                key.last_rotation_time = now
        finally:
            wipe(material)
        key.material_expire_time = float(expire) if expire else None
        if key.key_state == PENDING_IMPORT:
            key.key_state = ENABLED
    return {}


def delete_key_material(engine: Engine, params: Params) -> dict[str, Any]:
    key_ref = params.required("KeyId")
    with engine.transaction() as draft:
        key = engine.key_in(draft, key_ref, {})
        _check_external(key)
        engine.drop_key_material(draft, key)
    return {}


def _check_external(key: KeyRecord) -> None:
    if key.origin != "EXTERNAL":
        raise ServiceError(
            "Unsupported.Origin", "Only keys whose Origin is EXTERNAL take imported material.", 400
        )


def _take_token(engine: Engine, token: str, key_id: str) -> _PendingImport:
    with _lock:
        pending = _pending.get(engine, {}).get(token)
        if pending is None or pending.key_id != key_id:
            raise ServiceError("InvalidImportToken", "The import token is invalid.", 400)
        if engine.clock() >= pending.expires_at:
            raise ServiceError("ExpiredImportToken", "The import token has expired.", 400)
        return pending


def _unwrap(pending: _PendingImport, wrapped_text: str, key: KeyRecord) -> bytearray:
    size = SM4_KEY_SIZE if key.key_spec == "Aliyun_SM4" else 32
    try:
        wrapped = base64.b64decode("".join(wrapped_text.split()), validate=True)
        material = bytearray(pending.private_key.decrypt(wrapped, _PADDINGS[pending.algorithm]))
    except (binascii.Error, ValueError):
        raise ServiceError("InvalidKeyMaterial", "The key material is invalid.", 400) from None
    if len(material) != size:
        wipe(material)
        raise ServiceError("InvalidKeyMaterial", "The key material is invalid.", 400)
    return material


def _material_check(material: bytearray) -> str:
    cipher: AESGCM | SM4GCM = AESGCM(material) if len(material) == 32 else SM4GCM(material)
    return cipher.encrypt(_CHECK_NONCE, b"", _CHECK_AAD).hex()
