"""Cryptographic operations: data keys, Encrypt, Decrypt, ReEncrypt (``docs/kms-api.md``,
"Data keys, Encrypt and Decrypt" and "CiphertextBlob").

Encrypting calls use the key's primary version; Decrypt uses the version named in the
blob. A data key is sealed as the base64 *string* of its bytes, so Decrypt of a data-key
blob returns the same ``Plaintext`` that GenerateDataKey did. ``DryRun=true`` runs every
check and then answers ``DryRunOperation`` (400) instead of a result.

These run on every envelope encryption: they read the in-memory snapshot and the cached
cipher, and touch neither the lock nor the disk unless housekeeping is due.
"""

from __future__ import annotations

import base64
import os
from typing import Any, Final

from kmsnb.emulator._blob import associated_data, open_blob, seal, split_blob
from kmsnb.emulator._engine import USE_RULE, Engine
from kmsnb.emulator._errors import invalid, key_not_found
from kmsnb.emulator._params import Params, check_dry_run
from kmsnb.emulator._records import KeyRecord, StoreState

__all__ = [
    "decrypt",
    "encrypt",
    "generate_data_key",
    "generate_data_key_without_plaintext",
    "re_encrypt",
]

DEFAULT_DATA_KEY_SIZE: Final = 32
MAX_DATA_KEY_SIZE: Final = 1024
MAX_PLAINTEXT_SIZE: Final = 6144
_KEY_SPEC_SIZES: Final = {"AES_256": 32, "AES_128": 16}


def generate_data_key(engine: Engine, params: Params) -> dict[str, Any]:
    return _generate_data_key(engine, params, include_plaintext=True)


def generate_data_key_without_plaintext(engine: Engine, params: Params) -> dict[str, Any]:
    return _generate_data_key(engine, params, include_plaintext=False)


def encrypt(engine: Engine, params: Params) -> dict[str, Any]:
    key_ref = params.required("KeyId")
    try:
        plaintext = params.required("Plaintext").encode("utf-8")
    except UnicodeEncodeError:
        raise invalid("Plaintext") from None
    if len(plaintext) > MAX_PLAINTEXT_SIZE:
        raise invalid("Plaintext")
    aad = associated_data(params.context())
    state, key = engine.read(key_ref, USE_RULE)
    check_dry_run(params)
    return _seal_with_primary(engine, state, key, plaintext, aad)


def decrypt(engine: Engine, params: Params) -> dict[str, Any]:
    _refuse_recipient(params)
    blob = params.required("CiphertextBlob")
    aad = associated_data(params.context())
    key, version_id, plaintext = _open(engine, blob, aad)
    check_dry_run(params)
    try:
        text = plaintext.decode("utf-8")
    except UnicodeDecodeError:  # only a blob this emulator did not make could get here
        raise invalid("CiphertextBlob") from None
    return {"KeyId": key.key_id, "KeyVersionId": version_id, "Plaintext": text}


def re_encrypt(engine: Engine, params: Params) -> dict[str, Any]:
    blob = params.required("CiphertextBlob")
    destination_ref = params.required("DestinationKeyId")
    source_aad = associated_data(params.context("SourceEncryptionContext"))
    destination_aad = associated_data(params.context("DestinationEncryptionContext"))
    _, _, plaintext = _open(engine, blob, source_aad)
    state, destination = engine.read(destination_ref, USE_RULE)
    check_dry_run(params)
    # The docs leave open whose KeyId the response names; like AWS, the destination's.
    return _seal_with_primary(engine, state, destination, plaintext, destination_aad)


def _generate_data_key(
    engine: Engine, params: Params, *, include_plaintext: bool
) -> dict[str, Any]:
    _refuse_recipient(params)
    key_ref = params.required("KeyId")
    size = _data_key_size(params)
    aad = associated_data(params.context())
    state, key = engine.read(key_ref, USE_RULE)
    check_dry_run(params)
    encoded_key = base64.b64encode(os.urandom(size))
    body = _seal_with_primary(engine, state, key, encoded_key, aad)
    if include_plaintext:
        body["Plaintext"] = encoded_key.decode("ascii")
    return body


def _refuse_recipient(params: Params) -> None:
    # Recipient (an enclave's attestation document) asks for CiphertextForRecipient instead
    # of Plaintext; that is not emulated, so it is refused rather than ignored.
    if params.optional("Recipient") is not None:
        raise invalid("Recipient")


def _data_key_size(params: Params) -> int:
    # NumberOfBytes wins over KeySpec, which is then not even looked at.
    if params.optional("NumberOfBytes") is not None:
        return params.integer("NumberOfBytes", default=None, low=1, high=MAX_DATA_KEY_SIZE)
    key_spec = params.optional("KeySpec")
    if key_spec is None:
        return DEFAULT_DATA_KEY_SIZE
    if key_spec not in _KEY_SPEC_SIZES:
        raise invalid("KeySpec")
    return _KEY_SPEC_SIZES[key_spec]


def _seal_with_primary(
    engine: Engine, state: StoreState, key: KeyRecord, plaintext: bytes, aad: bytes
) -> dict[str, Any]:
    version = state.versions.get(key.primary_version_id)
    if version is None:
        raise AssertionError("kmsnb: internal error: an Enabled key without its primary version")
    blob = seal(version.version_id, engine.store.aead(version), plaintext, aad)
    return {"KeyId": key.key_id, "KeyVersionId": version.version_id, "CiphertextBlob": blob}


def _open(engine: Engine, ciphertext_blob: str, aad: bytes) -> tuple[KeyRecord, str, bytes]:
    """Find the blob's key version, check its key's state, verify and decrypt."""
    version_id, unverified = split_blob(ciphertext_blob)
    state = engine.store.snapshot()
    version = state.versions.get(version_id)
    if version is None:
        raise key_not_found()
    # Housekeeping may purge the key here, and its versions with it: KeyNotFound. The
    # same snapshot: the version and its key from one state, and one look at the keystore
    # (a stat of its file) a Decrypt, not two (issue 16).
    _, key = engine.read(version.key_id, USE_RULE, state=state)
    plaintext = open_blob(engine.store.aead(version), unverified, aad)
    return key, version_id, plaintext
