"""A fake KMS for users' tests: in memory, no network, no keystore on disk.

``InMemoryKms`` implements the :class:`kmsnb.kms.Kms` interface with the same wrapped-key
layout as Alibaba Cloud KMS (key version id ‖ IV ‖ AES-GCM ciphertext ‖ tag, base64) and
the same encryption-context rule (compared by content). Decrypt names the master key and
version that unwrapped the key, and ``describe_key`` resolves ids and aliases, so readers
can check which key opened a file. ``encrypt``/``decrypt`` wrap a caller's small key as the
API's Encrypt does (the base64 text of the bytes), for column-level encryption. It counts
its calls, so tests can check how often the KMS was asked. Not for production: keys vanish
with the process.
"""

from __future__ import annotations

import base64
import binascii
import os
import threading
import uuid
from collections import Counter
from collections.abc import Mapping

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kmsnb.errors import KmsAccessDeniedError, WrongKeyError
from kmsnb.kms._base import (
    DATA_KEY_SIZE,
    MAX_WRAPPED_PLAINTEXT_SIZE,
    DataKey,
    KeyInfo,
    UnwrappedKey,
    WrappedKey,
    canonical_context,
    wipe,
)

__all__ = ["InMemoryKms"]

_VERSION_ID_SIZE = 36  # a UUID in text, as the real service puts it in front of the blob
_IV_SIZE = 12


def _associated_data(encryption_context: Mapping[str, str] | None) -> bytes:
    context = canonical_context(encryption_context)
    return "&".join(f"{key}={context[key]}" for key in sorted(context)).encode("utf-8")


class InMemoryKms:
    """An in-memory KMS with master keys you create, disable and forget at will."""

    location = "in-memory test KMS"
    #: Parquet key material's ``kmsInstanceID`` and ``kmsInstanceURL`` for this KMS.
    kms_instance_id = "in-memory"
    kms_instance_url = "in-memory"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._versions: dict[str, tuple[str, bytes]] = {}  # version id -> (key id, material)
        self._primary: dict[str, str] = {}  # key id -> primary version id
        self._aliases: dict[str, str] = {}
        self._disabled: set[str] = set()
        #: How many times each operation was called.
        self.calls: Counter[str] = Counter()

    def create_key(self, alias: str | None = None) -> str:
        """Create a master key (optionally with an ``alias/...``) and return its id."""
        key_id = str(uuid.uuid4())
        with self._lock:
            self._add_version(key_id)
            if alias is not None:
                self._aliases[alias] = key_id
        return key_id

    def add_key(
        self, key_id: str, material: bytes, *, version_id: str, alias: str | None = None
    ) -> None:
        """Add a master key with known key material, for test vectors and golden files.

        Args:
            key_id: the key's id.
            material: its 32-byte AES-256 key material (its only version, the primary).
            version_id: the version's id: 36 characters, a UUID in text, which blobs start
                with.
            alias: an ``alias/...`` for it.
        """
        if len(material) != 32 or len(version_id) != _VERSION_ID_SIZE:
            raise ValueError("material is 32 bytes and version_id a 36-character UUID")
        with self._lock:
            self._versions[version_id] = (key_id, bytes(material))
            self._primary[key_id] = version_id
            if alias is not None:
                self._aliases[alias] = key_id

    def rotate_key(self, key_id: str) -> str:
        """Give a key a new primary version; older blobs still decrypt. Returns its id."""
        with self._lock:
            return self._add_version(self._resolve(key_id))

    def disable_key(self, key_id: str) -> None:
        with self._lock:
            self._disabled.add(self._resolve(key_id))

    def enable_key(self, key_id: str) -> None:
        with self._lock:
            self._disabled.discard(self._aliases.get(key_id, key_id))

    def _add_version(self, key_id: str) -> str:
        version_id = str(uuid.uuid4())
        self._versions[version_id] = (key_id, AESGCM.generate_key(bit_length=256))
        self._primary[key_id] = version_id
        return version_id

    def describe_key(self, key_id: str) -> KeyInfo:
        """What the KMS says of a key (an id or an alias), in any state."""
        self.calls["describe_key"] += 1
        with self._lock:
            resolved = self._find(key_id)
            state = "Disabled" if resolved in self._disabled else "Enabled"
            return KeyInfo(
                key_id=resolved,
                arn="",
                key_state=state,
                description="",
                creation_date="",
                primary_key_version=self._primary[resolved],
            )

    def _find(self, key_id: str) -> str:
        if key_id.startswith("alias/") and key_id not in self._aliases:
            raise KmsAccessDeniedError(
                "the specified alias is not found", code="Forbidden.AliasNotFound", http_status=404
            )
        resolved = self._aliases.get(key_id, key_id)
        if resolved not in self._primary:
            raise KmsAccessDeniedError(
                "the specified key is not found", code="Forbidden.KeyNotFound", http_status=404
            )
        return resolved

    def _resolve(self, key_id: str) -> str:
        resolved = self._find(key_id)
        if resolved in self._disabled:
            raise KmsAccessDeniedError(
                "the key is disabled", code="Rejected.Disabled", http_status=409
            )
        return resolved

    def generate_data_key(
        self, key_id: str, encryption_context: Mapping[str, str] | None = None
    ) -> DataKey:
        self.calls["generate_data_key"] += 1
        plaintext = bytearray(os.urandom(DATA_KEY_SIZE))
        resolved, version_id, blob = self._seal(key_id, plaintext, encryption_context)
        return DataKey(resolved, version_id, plaintext, blob)

    def encrypt(
        self,
        key_id: str,
        plaintext: bytes | bytearray,
        encryption_context: Mapping[str, str] | None = None,
    ) -> WrappedKey:
        """Wrap a caller's small key, as the API's Encrypt does."""
        self.calls["encrypt"] += 1
        if not isinstance(plaintext, bytes | bytearray):
            raise TypeError(f"plaintext must be bytes, not {type(plaintext).__name__}")
        if not 0 < len(plaintext) <= MAX_WRAPPED_PLAINTEXT_SIZE:
            raise ValueError(f"encrypt wraps 1 to {MAX_WRAPPED_PLAINTEXT_SIZE} bytes")
        return WrappedKey(*self._seal(key_id, plaintext, encryption_context))

    def _seal(
        self,
        key_id: str,
        plaintext: bytes | bytearray,
        encryption_context: Mapping[str, str] | None,
    ) -> tuple[str, str, str]:
        aad = _associated_data(encryption_context)
        with self._lock:
            resolved = self._resolve(key_id)
            version_id = self._primary[resolved]
            material = self._versions[version_id][1]
        # The real service wraps the base64 text of the key, not its raw bytes.
        encoded = bytearray(base64.b64encode(plaintext))
        iv = os.urandom(_IV_SIZE)
        sealed = AESGCM(material).encrypt(iv, bytes(encoded), aad)
        wipe(encoded)
        blob = base64.b64encode(version_id.encode("ascii") + iv + sealed).decode("ascii")
        return resolved, version_id, blob

    def decrypt_data_key(
        self, ciphertext_blob: str, encryption_context: Mapping[str, str] | None = None
    ) -> UnwrappedKey:
        self.calls["decrypt_data_key"] += 1
        return self._open(ciphertext_blob, encryption_context)

    def decrypt(
        self, ciphertext_blob: str, encryption_context: Mapping[str, str] | None = None
    ) -> UnwrappedKey:
        """Unwrap what :meth:`encrypt` wrapped (the same Decrypt, counted apart)."""
        self.calls["decrypt"] += 1
        return self._open(ciphertext_blob, encryption_context)

    def _open(
        self, ciphertext_blob: str, encryption_context: Mapping[str, str] | None
    ) -> UnwrappedKey:
        aad = _associated_data(encryption_context)
        try:
            raw = base64.b64decode("".join(ciphertext_blob.split()), validate=True)
        except (binascii.Error, ValueError):
            raw = b""
        version_id = raw[:_VERSION_ID_SIZE].decode("ascii", errors="replace")
        with self._lock:
            entry = self._versions.get(version_id)
            if entry is None:
                raise KmsAccessDeniedError(
                    "the key of this ciphertext is not found",
                    code="Forbidden.KeyNotFound",
                    http_status=404,
                )
            key_id, material = entry
            self._resolve(key_id)
        iv = raw[_VERSION_ID_SIZE : _VERSION_ID_SIZE + _IV_SIZE]
        try:
            encoded = bytearray(
                AESGCM(material).decrypt(iv, raw[_VERSION_ID_SIZE + _IV_SIZE :], aad)
            )
        except (InvalidTag, ValueError):
            raise WrongKeyError(
                "the KMS could not decrypt the data key: the encryption context differs "
                "or the wrapped key is damaged",
                code="InvalidParameter",
                http_status=400,
            ) from None
        try:
            return UnwrappedKey(key_id, version_id, bytearray(base64.b64decode(encoded)))
        finally:
            wipe(encoded)
