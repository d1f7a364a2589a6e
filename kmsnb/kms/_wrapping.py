"""Encrypt and Decrypt of a caller's small key (:class:`~kmsnb.kms.WrappingKms`), written
once for both backends.

:class:`WrappingCalls` builds each request as the wire parameters (``KeyId``,
``Plaintext``, ``CiphertextBlob``, ``EncryptionContext``) and reads the answer as the wire's
PascalCase map, so one code path serves :class:`~kmsnb.kms.local.LocalKms` (the in-process
emulator takes those maps as they are) and :class:`~kmsnb.kms.aliyun.AliyunKms` (the
official SDK's request models are built from them, its answers turned back with
``to_map()``).

The KMS encrypts the **base64 text** of the bytes: the API documents ``Plaintext`` as
base64, Alibaba Cloud's SDKs send it so, and a GenerateDataKey blob holds its data key the
same way, so a Java or Spark ``KmsClient`` unwraps what this wraps with
``Base64.decode(Decrypt(blob).Plaintext)``.

Each backend also says which KMS it is, for the ``kmsInstanceID`` and ``kmsInstanceURL``
that Parquet key material records (``docs/column-keys.md``).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from kmsnb.errors import KmsError
from kmsnb.kms._base import (
    MAX_WRAPPED_PLAINTEXT_SIZE,
    UnwrappedKey,
    canonical_context,
    wipe,
)

if TYPE_CHECKING:
    from kmsnb.kms._info import WrappedKey

__all__ = ["AliyunWrapping", "LocalWrapping", "WrappingCalls"]


class WrappingCalls:
    """:meth:`encrypt` and :meth:`decrypt` over :meth:`_wrapping_call`."""

    def _wrapping_call(self, action: str, params: dict[str, Any]) -> dict[str, Any]:
        """Send ``action`` with wire parameters; return the answer's body as a map."""
        raise NotImplementedError

    def encrypt(
        self,
        key_id: str,
        plaintext: bytes | bytearray,
        encryption_context: Mapping[str, str] | None = None,
    ) -> WrappedKey:
        """Wrap a small key under ``key_id`` with the KMS's Encrypt.

        Raises:
            TypeError: ``plaintext`` is not bytes.
            ValueError: ``plaintext`` is empty or longer than 4096 bytes.
            KmsError: the KMS refused (a disabled or unknown key:
                ``KmsAccessDeniedError``) or failed.
        """
        if not isinstance(plaintext, bytes | bytearray):
            raise TypeError(f"plaintext must be bytes, not {type(plaintext).__name__}")
        if not 0 < len(plaintext) <= MAX_WRAPPED_PLAINTEXT_SIZE:
            raise ValueError(
                f"encrypt wraps 1 to {MAX_WRAPPED_PLAINTEXT_SIZE} bytes (a key), not "
                f"{len(plaintext)}; encrypt data with kmsnb.encrypt_bytes"
            )
        # The base64 text is an immutable str the SDK needs; it lives as long as the call.
        params: dict[str, Any] = {
            "KeyId": key_id,
            "Plaintext": base64.b64encode(plaintext).decode("ascii"),
        }
        context = canonical_context(encryption_context)
        if context:
            params["EncryptionContext"] = context
        body = self._wrapping_call("Encrypt", params)
        from kmsnb.kms._info import WrappedKey  # here: a file's encryption never wraps a key

        return WrappedKey(
            key_id=str(body["KeyId"]),
            key_version_id=str(body.get("KeyVersionId") or ""),
            ciphertext_blob=str(body["CiphertextBlob"]),
        )

    def decrypt(
        self, ciphertext_blob: str, encryption_context: Mapping[str, str] | None = None
    ) -> UnwrappedKey:
        """Unwrap what :meth:`encrypt` wrapped: the bytes, and the master key the answer
        names. The caller wipes the returned key.

        Raises:
            WrongKeyError: the KMS refused the blob under this encryption context.
            KmsError: the answer's plaintext is not base64, or it names no KeyId.
        """
        params: dict[str, Any] = {"CiphertextBlob": ciphertext_blob}
        context = canonical_context(encryption_context)
        if context:
            params["EncryptionContext"] = context
        body = self._wrapping_call("Decrypt", params)
        encoded = body.pop("Plaintext", None) or ""
        try:
            plaintext = bytearray(base64.b64decode(encoded, validate=True))
        except (binascii.Error, ValueError):
            raise KmsError("the KMS returned a key that is not base64") from None
        key_id = body.get("KeyId")
        if not key_id or not isinstance(key_id, str):
            wipe(plaintext)
            raise KmsError(
                "the KMS's Decrypt answer names no master key (KeyId), so kmsnb cannot check "
                "which key unwrapped the key",
                request_id=body.get("RequestId") or None,
            )
        return UnwrappedKey(key_id, str(body.get("KeyVersionId") or ""), plaintext)


class LocalWrapping(WrappingCalls):
    """For :class:`~kmsnb.kms.local.LocalKms`: the in-process emulator takes wire maps."""

    #: Parquet key material's ``kmsInstanceID`` and ``kmsInstanceURL`` for this KMS.
    kms_instance_id = "local"
    kms_instance_url = "local"

    def _call(self, action: str, params: Mapping[str, str]) -> dict[str, Any]:
        raise NotImplementedError

    def _wrapping_call(self, action: str, params: dict[str, Any]) -> dict[str, Any]:
        wire = {
            name: _context_json(value) if name == "EncryptionContext" else value
            for name, value in params.items()
        }
        return self._call(action, wire)


class AliyunWrapping(WrappingCalls):
    """For :class:`~kmsnb.kms.aliyun.AliyunKms`: through the SDK's request models."""

    _sdk: Any
    endpoint: str
    region_id: str | None

    def _call(self, method: str, request: Any) -> Any:
        raise NotImplementedError

    def _wrapping_call(self, action: str, params: dict[str, Any]) -> dict[str, Any]:
        request = getattr(self._sdk.models, f"{action}Request")().from_map(params)
        body: dict[str, Any] = self._call(action.lower(), request).to_map()
        return body

    @property
    def kms_instance_id(self) -> str:
        """The region, or ``emulator`` for an emulator on this machine."""
        from urllib.parse import urlsplit  # here, as ipaddress: a local KMS needs neither

        from kmsnb.kms._endpoint import is_loopback

        host = urlsplit(self.endpoint).hostname or ""
        if is_loopback(host):
            return "emulator"
        return self.region_id or "DEFAULT"

    @property
    def kms_instance_url(self) -> str:
        """The endpoint, ``https://kms.<region>.aliyuncs.com`` or ``http://127.0.0.1:PORT``."""
        return self.endpoint


def _context_json(context: Mapping[str, str]) -> str:
    return json.dumps(dict(context), ensure_ascii=False, separators=(",", ":"))
