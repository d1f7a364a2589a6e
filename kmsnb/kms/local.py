"""``LocalKms``: the zero-configuration backend, the KMS emulator running in-process.

It speaks to :class:`kmsnb.emulator.KmsService` with the same action names and string
parameters the HTTP API uses, so it exercises the very code the emulator's server runs,
and its errors carry the same codes an Alibaba Cloud KMS would send.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Final

from kmsnb._wipe import wipe
from kmsnb.emulator import KeyStore, KmsService, ServiceError
from kmsnb.errors import KmsAccessDeniedError, KmsError
from kmsnb.kms._base import DATA_KEY_SIZE, DataKey, UnwrappedKey, canonical_context
from kmsnb.kms._secret_calls import LocalSecrets
from kmsnb.kms._wrapping import LocalWrapping

if TYPE_CHECKING:
    from kmsnb.kms._errors import error_from_response
    from kmsnb.kms._info import AliasInfo, KeyInfo, KeyVersionInfo, WrappedKey

# error_from_response stays importable from here: it is how this backend maps errors.
__all__ = ["LocalKms", "error_from_response"]


def __getattr__(name: str) -> Any:
    # error_from_response is imported at its first use (start-up): only a refused call needs
    # the error table.
    if name == "error_from_response":
        from kmsnb.kms._errors import error_from_response

        return error_from_response
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_PAGE_SIZE: Final = 100


# Mixins: the Secrets Manager calls (kmsnb.kms._secret_calls); Encrypt/Decrypt of a caller's
# small key (kmsnb.kms._wrapping).
class LocalKms(LocalSecrets, LocalWrapping):
    """A :class:`kmsnb.kms.KmsClient` backed by a local keystore, no server needed.

    Args:
        path: the keystore directory; by default ``$KMSNB_EMULATOR_DIR`` or the user
            data directory (see :func:`kmsnb.emulator.default_store_dir`).
        service: an existing engine to use instead (tests pass one with a fake clock or
            small quotas).

    Every method may raise :class:`kmsnb.errors.KmsError` (or a subclass) with the code
    the KMS API defines. Safe to use from several threads and processes at once.
    """

    def __init__(
        self, path: str | os.PathLike[str] | None = None, *, service: KmsService | None = None
    ) -> None:
        if service is not None and path is not None:
            raise ValueError("pass either a keystore path or a service, not both")
        self._service = service if service is not None else KmsService(KeyStore(path))
        self.location = f"local emulator at {self._service.store.directory}"

    def __repr__(self) -> str:
        return f"LocalKms({self._service.store.directory!r})"

    @property
    def created_keystore(self) -> bool:
        """True when opening found no keystore at the path and started a new, empty one
        (:func:`kmsnb.connect` warns of it: a mistyped path makes one too)."""
        return self._service.store.created

    def close(self) -> None:
        """Wipe the key material cached in memory."""
        self._service.store.close()

    def __enter__(self) -> LocalKms:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- the envelope's interface ----------------------------------------------------

    def generate_data_key(
        self, key_id: str, encryption_context: Mapping[str, str] | None = None
    ) -> DataKey:
        """Return a fresh 32-byte data key, in plaintext and wrapped by ``key_id``."""
        params = {"KeyId": key_id, "KeySpec": "AES_256", **_context_param(encryption_context)}
        body = self._call("GenerateDataKey", params)
        plaintext = _decode_key(body.pop("Plaintext"))
        if len(plaintext) != DATA_KEY_SIZE:
            wipe(plaintext)
            raise AssertionError("kmsnb: internal error: the emulator made a wrong-size key")
        return DataKey(body["KeyId"], body["KeyVersionId"], plaintext, body["CiphertextBlob"])

    def decrypt_data_key(
        self, ciphertext_blob: str, encryption_context: Mapping[str, str] | None = None
    ) -> UnwrappedKey:
        """Unwrap a ``CiphertextBlob``: the key, and the master key the answer names.

        The caller wipes the returned key.

        Raises:
            WrongKeyError: the blob does not open under this encryption context.
            KmsError: the answer's plaintext is not base64.
        """
        # The same Decrypt as for a key of the caller's: kmsnb.kms._wrapping.
        return self.decrypt(ciphertext_blob, encryption_context)

    def re_encrypt(
        self,
        ciphertext_blob: str,
        destination_key_id: str,
        *,
        source_encryption_context: Mapping[str, str] | None = None,
        destination_encryption_context: Mapping[str, str] | None = None,
    ) -> WrappedKey:
        """Rewrap a blob under ``destination_key_id`` without exposing its plaintext."""
        params = {
            "CiphertextBlob": ciphertext_blob,
            "DestinationKeyId": destination_key_id,
            **_context_param(source_encryption_context, "SourceEncryptionContext"),
            **_context_param(destination_encryption_context, "DestinationEncryptionContext"),
        }
        body = self._call("ReEncrypt", params)
        from kmsnb.kms._info import WrappedKey  # here: see kmsnb.kms._info

        return WrappedKey(body["KeyId"], body["KeyVersionId"], body["CiphertextBlob"])

    # -- key management --------------------------------------------------------------

    def create_key(self, description: str = "") -> KeyInfo:
        return _key_info(self._call("CreateKey", {"Description": description})["KeyMetadata"])

    def describe_key(self, key_id: str) -> KeyInfo:
        return _key_info(self._call("DescribeKey", {"KeyId": key_id})["KeyMetadata"])

    def list_keys(self) -> list[KeyInfo]:
        key_ids = [item["KeyId"] for item in self._pages("ListKeys", {}, "Keys", "Key")]
        keys = []
        for key_id in key_ids:
            try:
                keys.append(self.describe_key(key_id))
            except KmsAccessDeniedError as exc:
                if exc.code != "Forbidden.KeyNotFound":
                    raise
                # Deleted since it was listed (its pending window ended): not a key any more.
        return keys

    def enable_key(self, key_id: str) -> None:
        self._call("EnableKey", {"KeyId": key_id})

    def disable_key(self, key_id: str) -> None:
        self._call("DisableKey", {"KeyId": key_id})

    def schedule_key_deletion(self, key_id: str, pending_window_in_days: int) -> None:
        params = {"KeyId": key_id, "PendingWindowInDays": str(pending_window_in_days)}
        self._call("ScheduleKeyDeletion", params)

    def cancel_key_deletion(self, key_id: str) -> None:
        self._call("CancelKeyDeletion", {"KeyId": key_id})

    def create_alias(self, alias_name: str, key_id: str) -> None:
        self._call("CreateAlias", {"AliasName": alias_name, "KeyId": key_id})

    def update_alias(self, alias_name: str, key_id: str) -> None:
        self._call("UpdateAlias", {"AliasName": alias_name, "KeyId": key_id})

    def delete_alias(self, alias_name: str) -> None:
        self._call("DeleteAlias", {"AliasName": alias_name})

    def list_aliases(self, key_id: str | None = None) -> list[AliasInfo]:
        if key_id is None:
            items = self._pages("ListAliases", {}, "Aliases", "Alias")
        else:
            items = self._pages("ListAliasesByKeyId", {"KeyId": key_id}, "Aliases", "Alias")
        from kmsnb.kms._info import AliasInfo

        return [AliasInfo(i["AliasName"], i["KeyId"], i["AliasArn"]) for i in items]

    def create_key_version(self, key_id: str) -> KeyVersionInfo:
        return _version_info(self._call("CreateKeyVersion", {"KeyId": key_id})["KeyVersion"])

    def list_key_versions(self, key_id: str) -> list[KeyVersionInfo]:
        items = self._pages("ListKeyVersions", {"KeyId": key_id}, "KeyVersions", "KeyVersion")
        return [_version_info(item) for item in items]

    # -- plumbing --------------------------------------------------------------------

    def _call(self, action: str, params: Mapping[str, str]) -> dict[str, Any]:
        try:
            return self._service.call(action, params)
        except ServiceError as exc:
            # The in-process engine has no request id; make one so errors look alike.
            import uuid  # here, not at the top: it imports platform

            from kmsnb.kms._errors import error_from_response  # here: see __getattr__

            request_id = str(uuid.uuid4())
            raise error_from_response(
                action, exc.code, exc.message, exc.http_status, request_id
            ) from None

    def _pages(
        self, action: str, params: Mapping[str, str], outer: str, inner: str
    ) -> Iterator[dict[str, Any]]:
        page_number = 1
        while True:
            page = {**params, "PageNumber": str(page_number), "PageSize": str(_PAGE_SIZE)}
            body = self._call(action, page)
            items: list[dict[str, Any]] = body[outer][inner]
            yield from items
            if not items or page_number * _PAGE_SIZE >= body["TotalCount"]:
                return
            page_number += 1


def _context_param(
    encryption_context: Mapping[str, str] | None, name: str = "EncryptionContext"
) -> dict[str, str]:
    context = canonical_context(encryption_context)
    if not context:
        return {}
    return {name: json.dumps(context, ensure_ascii=False, separators=(",", ":"))}


def _decode_key(encoded: str) -> bytearray:
    # The bytes object from b64decode cannot be wiped; drop it at once.
    try:
        return bytearray(base64.b64decode(encoded, validate=True))
    except (binascii.Error, ValueError):
        raise KmsError("the KMS returned a data key that is not base64") from None


def _key_info(metadata: Mapping[str, Any]) -> KeyInfo:
    from kmsnb.kms._info import KeyInfo

    return KeyInfo(
        key_id=metadata["KeyId"],
        arn=metadata["Arn"],
        key_state=metadata["KeyState"],
        description=metadata["Description"],
        creation_date=metadata["CreationDate"],
        primary_key_version=metadata["PrimaryKeyVersion"],
        key_spec=metadata["KeySpec"],
        key_usage=metadata["KeyUsage"],
        deletion_date=metadata.get("DeleteDate") or None,
        automatic_rotation=metadata["AutomaticRotation"],
        rotation_interval=metadata.get("RotationInterval") or None,
    )


def _version_info(item: Mapping[str, str]) -> KeyVersionInfo:
    from kmsnb.kms._info import KeyVersionInfo

    return KeyVersionInfo(item["KeyId"], item["KeyVersionId"], item["CreationDate"])
