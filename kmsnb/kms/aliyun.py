"""Alibaba Cloud KMS through the official SDK (``alibabacloud_kms20160120``).

The same class talks to the real service (``kms.<region>.aliyuncs.com`` over HTTPS) and to
the kmsnb emulator's HTTP server (``http://127.0.0.1:PORT``), so that code tested against
the emulator runs unchanged against the cloud.

Credentials come from ``alibabacloud_credentials``' default chain (environment, CLI
profile, ``~/.alibabacloud/credentials.ini``, ECS RAM role, ...) unless a ``credential`` is
passed; AccessKeys never need to appear in code. The SDK is imported on first use, with a
clear message when the ``kmsnb[aliyun]`` extra is missing.

Neither SDK retries KMS calls by default, so this module does: bounded attempts with
exponential backoff and full jitter on throttling, 5xx and transport failures, never
sending a CreateKey or CreateKeyVersion twice (:mod:`kmsnb.kms._retry`). Every failure
becomes a :class:`~kmsnb.errors.KmsError` subclass keeping the service's ``Code``,
``RequestId`` and HTTP status. The SDK's own log records (tracebacks of each credential
provider that failed) are kept off stderr during kmsnb's calls (:mod:`kmsnb.kms._sdk_logs`).
"""

from __future__ import annotations

import base64
import binascii
import os
import socket
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from kmsnb._wipe import wipe
from kmsnb.errors import KmsError, WrongKeyError
from kmsnb.kms._base import (
    DATA_KEY_SIZE,
    AliasInfo,
    DataKey,
    KeyInfo,
    KeyVersionInfo,
    UnwrappedKey,
    WrappedKey,
    canonical_context,
)
from kmsnb.kms._endpoint import (
    ALLOW_INSECURE_HTTP_ENV,
    check_transport,
    describe_location,
    split_endpoint,
)
from kmsnb.kms._errors import error_from_sdk
from kmsnb.kms._retry import AlreadyDone, RetryPolicy, call_with_retries, refused_as_done
from kmsnb.kms._sdk_logs import quiet_sdk_logs
from kmsnb.kms._secret_calls import AliyunSecrets
from kmsnb.kms._wrapping import AliyunWrapping

# ALLOW_INSECURE_HTTP_ENV stays importable from here: it is this backend's opt-in.
__all__ = ["ALLOW_INSECURE_HTTP_ENV", "AliyunKms"]

DEFAULT_MAX_ATTEMPTS = 4
DEFAULT_BACKOFF_BASE_S = 0.1
DEFAULT_BACKOFF_CAP_S = 5.0
PAGE_SIZE = 100

_INSTALL_HINT = (
    "the Alibaba Cloud SDK is not installed; did you forget to pip install 'kmsnb[aliyun]'?"
)


# Mixins: the Secrets Manager calls (kmsnb.kms._secret_calls); Encrypt/Decrypt of a caller's
# small key (kmsnb.kms._wrapping).
class AliyunKms(AliyunSecrets, AliyunWrapping):
    """A :class:`~kmsnb.kms.KmsClient` backed by Alibaba Cloud KMS or the kmsnb emulator.

    Args:
        region_id: the region, e.g. ``cn-hangzhou``; default ``$ALIBABA_CLOUD_REGION_ID``.
            Needed unless ``endpoint`` is given.
        endpoint: ``https://kms.<region>.aliyuncs.com`` (the default), a VPC or private
            endpoint, or an emulator's ``http://127.0.0.1:PORT``.
        credential: an ``alibabacloud_credentials.client.Client`` (or anything with
            ``get_credential()``); default: the SDK's default credential chain.
        max_attempts: tries per call, the first included, on throttling, 5xx and
            transport errors. CreateKey and CreateKeyVersion are not sent again once they
            may have reached the KMS: they raise ``KmsUnavailableError`` with
            ``outcome_unknown=True`` instead.
        backoff_base_s: the first retry waits up to this long; each later one twice more.
        backoff_cap_s: bound on one wait.
        connect_timeout_s: TCP connect timeout of one attempt.
        read_timeout_s: response timeout of one attempt.
        allow_insecure_http: allow a plain ``http://`` endpoint on a host other than the
            loopback interface (127.0.0.0/8, ``::1``, ``localhost``), as does
            ``$KMSNB_ALLOW_INSECURE_HTTP=1``. GenerateDataKey and Decrypt answers carry
            plaintext data keys, so by default such an endpoint is refused here, before
            any request is sent.

    Raises:
        ImportError: when the ``kmsnb[aliyun]`` extra is not installed.
        ValueError: on a malformed endpoint, no region, or plain HTTP to a remote host.
    """

    def __init__(
        self,
        region_id: str | None = None,
        *,
        endpoint: str | None = None,
        credential: Any = None,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        backoff_base_s: float = DEFAULT_BACKOFF_BASE_S,
        backoff_cap_s: float = DEFAULT_BACKOFF_CAP_S,
        connect_timeout_s: float = 5.0,
        read_timeout_s: float = 10.0,
        allow_insecure_http: bool = False,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        region_id = region_id or os.environ.get("ALIBABA_CLOUD_REGION_ID") or None
        if endpoint is None:
            if not region_id:
                raise ValueError(
                    "AliyunKms needs a region_id (or ALIBABA_CLOUD_REGION_ID) or an endpoint"
                )
            endpoint = f"https://kms.{region_id}.aliyuncs.com"
        scheme, netloc = split_endpoint(endpoint)
        check_transport(scheme, netloc, allow_insecure_http=allow_insecure_http)
        self.endpoint = f"{scheme}://{netloc}"
        self.region_id = region_id
        self.location = describe_location(scheme, netloc, region_id)
        self._retry = RetryPolicy(max_attempts, backoff_base_s, backoff_cap_s)
        self._sdk = _import_sdk()
        with quiet_sdk_logs():
            config = self._sdk.Config(
                credential=credential if credential is not None else _default_credential(),
                region_id=region_id or "cn-hangzhou",  # only signs ACS4, which we do not use
                endpoint=netloc,
                protocol=scheme,
                connect_timeout=int(connect_timeout_s * 1000),
                read_timeout=int(read_timeout_s * 1000),
            )
            self._client = self._sdk.Client(config)

    def __repr__(self) -> str:
        return f"AliyunKms({self.location!r})"

    # --- the envelope's two calls ----------------------------------------------------------------

    def generate_data_key(
        self, key_id: str, encryption_context: Mapping[str, str] | None = None
    ) -> DataKey:
        """Return a fresh AES-256 data key, in plaintext and wrapped by ``key_id``."""
        request = self._sdk.models.GenerateDataKeyRequest(
            key_id=key_id,
            key_spec="AES_256",
            encryption_context=_context_or_none(encryption_context),
        )
        body = self._call("generate_data_key", request)
        plaintext = _decode_key(body.plaintext)
        if len(plaintext) != DATA_KEY_SIZE:
            wipe(plaintext)
            raise KmsError(
                f"the KMS returned a {len(plaintext)}-byte data key for KeySpec AES_256",
                request_id=getattr(body, "request_id", None),
            )
        return DataKey(
            key_id=body.key_id,
            key_version_id=body.key_version_id,
            plaintext=plaintext,
            ciphertext_blob=body.ciphertext_blob,
        )

    def decrypt_data_key(
        self, ciphertext_blob: str, encryption_context: Mapping[str, str] | None = None
    ) -> UnwrappedKey:
        """Unwrap a ``CiphertextBlob``: the key, and the master key the answer names.

        The caller wipes the returned key.

        Raises:
            WrongKeyError: the KMS refused the blob under this encryption context.
            KmsError: the answer's plaintext is not base64, or it names no KeyId.
        """
        # The same Decrypt as for a key of the caller's: kmsnb.kms._wrapping.
        return self.decrypt(ciphertext_blob, encryption_context)

    # --- key management --------------------------------------------------------------------------

    def create_key(self, description: str = "") -> KeyInfo:
        request = self._sdk.models.CreateKeyRequest(
            description=description,
            key_spec="Aliyun_AES_256",
            key_usage="ENCRYPT/DECRYPT",
            origin="Aliyun_KMS",
        )
        return _key_info(self._call("create_key", request).key_metadata)

    def describe_key(self, key_id: str) -> KeyInfo:
        request = self._sdk.models.DescribeKeyRequest(key_id=key_id)
        return _key_info(self._call("describe_key", request).key_metadata)

    def list_keys(self) -> list[KeyInfo]:
        """Every key in the region, described (one DescribeKey per key)."""
        entries = self._pages("list_keys", self._sdk.models.ListKeysRequest, "keys", "key")
        return [self.describe_key(entry.key_id) for entry in list(entries)]

    def enable_key(self, key_id: str) -> None:
        self._call("enable_key", self._sdk.models.EnableKeyRequest(key_id=key_id))

    def disable_key(self, key_id: str) -> None:
        self._call("disable_key", self._sdk.models.DisableKeyRequest(key_id=key_id))

    def schedule_key_deletion(self, key_id: str, pending_window_in_days: int) -> None:
        request = self._sdk.models.ScheduleKeyDeletionRequest(
            key_id=key_id, pending_window_in_days=pending_window_in_days
        )
        # A repeat of one that took effect is refused: the key is already PendingDeletion.
        done = refused_as_done(
            "Rejected.StateModifiedFailed",
            lambda: self.describe_key(key_id).key_state == "PendingDeletion",
        )
        self._call("schedule_key_deletion", request, already_done=done)

    def cancel_key_deletion(self, key_id: str) -> None:
        request = self._sdk.models.CancelKeyDeletionRequest(key_id=key_id)
        done = refused_as_done(
            "Rejected.StateModifiedFailed",
            lambda: self.describe_key(key_id).key_state != "PendingDeletion",
        )
        self._call("cancel_key_deletion", request, already_done=done)

    def create_alias(self, alias_name: str, key_id: str) -> None:
        request = self._sdk.models.CreateAliasRequest(alias_name=alias_name, key_id=key_id)
        # A repeat of one that took effect finds the alias there: ours if it names our key.
        done = refused_as_done(
            "AliasAlreadyExists",
            lambda: self.describe_key(alias_name).key_id == self.describe_key(key_id).key_id,
        )
        self._call("create_alias", request, already_done=done)

    def update_alias(self, alias_name: str, key_id: str) -> None:
        request = self._sdk.models.UpdateAliasRequest(alias_name=alias_name, key_id=key_id)
        self._call("update_alias", request)

    def delete_alias(self, alias_name: str) -> None:
        request = self._sdk.models.DeleteAliasRequest(alias_name=alias_name)
        done = refused_as_done("Forbidden.AliasNotFound", lambda: True)
        self._call("delete_alias", request, already_done=done)

    def list_aliases(self, key_id: str | None = None) -> list[AliasInfo]:
        """Every alias, or only those of ``key_id``."""
        models = self._sdk.models
        if key_id is None:
            entries = self._pages("list_aliases", models.ListAliasesRequest, "aliases", "alias")
        else:
            entries = self._pages(
                "list_aliases_by_key_id",
                models.ListAliasesByKeyIdRequest,
                "aliases",
                "alias",
                key_id=key_id,
            )
        return [
            AliasInfo(alias_name=entry.alias_name, key_id=entry.key_id, alias_arn=entry.alias_arn)
            for entry in entries
        ]

    def create_key_version(self, key_id: str) -> KeyVersionInfo:
        request = self._sdk.models.CreateKeyVersionRequest(key_id=key_id)
        return _version_info(self._call("create_key_version", request).key_version)

    def list_key_versions(self, key_id: str) -> list[KeyVersionInfo]:
        entries = self._pages(
            "list_key_versions",
            self._sdk.models.ListKeyVersionsRequest,
            "key_versions",
            "key_version",
            key_id=key_id,
        )
        return [_version_info(entry) for entry in entries]

    def re_encrypt(
        self,
        ciphertext_blob: str,
        destination_key_id: str,
        *,
        source_encryption_context: Mapping[str, str] | None = None,
        destination_encryption_context: Mapping[str, str] | None = None,
    ) -> WrappedKey:
        """Re-wrap a blob under ``destination_key_id``'s primary version, server side."""
        request = self._sdk.models.ReEncryptRequest(
            ciphertext_blob=ciphertext_blob,
            destination_key_id=destination_key_id,
            source_encryption_context=_context_or_none(source_encryption_context),
            destination_encryption_context=_context_or_none(destination_encryption_context),
        )
        body = self._call("re_encrypt", request)
        return WrappedKey(
            key_id=body.key_id,
            key_version_id=body.key_version_id,
            ciphertext_blob=body.ciphertext_blob,
        )

    # --- calling the SDK -------------------------------------------------------------------------

    def _pages(
        self, method: str, request_type: Callable[..., Any], outer: str, inner: str, **fields: str
    ) -> Iterator[Any]:
        """The entries of every page: ``body.<outer>.<inner>`` (the XML-style nesting)."""
        page_number = 1
        while True:
            request = request_type(page_number=page_number, page_size=PAGE_SIZE, **fields)
            body = self._call(method, request)
            entries = getattr(getattr(body, outer, None), inner, None) or []
            yield from entries
            # An empty page ends it too, whatever TotalCount claims.
            if not entries or page_number * PAGE_SIZE >= int(body.total_count or 0):
                return
            page_number += 1

    def _call(self, method: str, request: Any, *, already_done: AlreadyDone | None = None) -> Any:
        """One SDK call with retries; return the response body or raise a KmsError."""
        action = getattr(self._client, method)
        with quiet_sdk_logs():  # the credential chain's tracebacks: kmsnb's error says it
            return call_with_retries(
                lambda: action(request).body,
                lambda exc: self._translate(method, exc),
                action=_action_name(method),
                policy=self._retry,
                already_done=already_done,
            )

    def _translate(self, method: str, exc: Exception) -> tuple[KmsError | WrongKeyError, bool]:
        return error_from_sdk(self._sdk, self.location, _action_name(method), exc)


def _action_name(method: str) -> str:
    # The SDK's method names are the API's actions in snake case.
    return "".join(part.capitalize() for part in method.split("_"))


def _decode_key(plaintext: str | None) -> bytearray:
    try:
        return bytearray(base64.b64decode(plaintext or "", validate=True))
    except (binascii.Error, ValueError):
        raise KmsError("the KMS returned a data key that is not base64") from None


def _context_or_none(encryption_context: Mapping[str, str] | None) -> dict[str, str] | None:
    return canonical_context(encryption_context) or None


def _key_info(metadata: Any) -> KeyInfo:
    return KeyInfo(
        key_id=metadata.key_id,
        arn=metadata.arn or "",
        key_state=metadata.key_state,
        description=metadata.description or "",
        creation_date=metadata.creation_date or "",
        primary_key_version=metadata.primary_key_version or "",
        key_spec=metadata.key_spec or "Aliyun_AES_256",
        key_usage=metadata.key_usage or "ENCRYPT/DECRYPT",
        deletion_date=metadata.delete_date or None,
        automatic_rotation=metadata.automatic_rotation or "Disabled",
        rotation_interval=metadata.rotation_interval or None,
    )


def _version_info(version: Any) -> KeyVersionInfo:
    return KeyVersionInfo(
        key_id=version.key_id,
        key_version_id=version.key_version_id,
        creation_date=version.creation_date or "",
    )


class _Sdk:
    """The SDK names this module uses, imported on first use."""

    def __init__(self) -> None:
        try:
            from alibabacloud_credentials.exceptions import CredentialException
            from alibabacloud_kms20160120 import models
            from alibabacloud_kms20160120.client import Client
            from alibabacloud_tea_openapi.models import Config
            from darabonba.exceptions import UnretryableException
            from Tea.exceptions import TeaException
            from urllib3.exceptions import ConnectTimeoutError
        except ImportError as exc:
            raise ImportError(_INSTALL_HINT) from exc
        # What the HTTP stack raises when a connection could not even be made: the request
        # was never sent (urllib3's NewConnectionError and NameResolutionError are
        # ConnectTimeoutErrors too).
        self.unsent_errors: tuple[type[BaseException], ...] = (
            ConnectTimeoutError,
            ConnectionRefusedError,
            socket.gaierror,
        )
        self.Client = Client
        self.Config = Config
        self.models = models
        self.CredentialException = CredentialException
        self.TeaException = TeaException
        self.UnretryableException = UnretryableException


_sdk_cache: list[_Sdk] = []


def _import_sdk() -> _Sdk:
    if not _sdk_cache:
        _sdk_cache.append(_Sdk())
    return _sdk_cache[0]


def _default_credential() -> Any:
    """The default credential chain, reading AccessKey variables from the live environment.

    ``alibabacloud_credentials`` snapshots ``os.environ`` when it is first imported, so
    variables set afterwards (say, in a notebook cell) would be missed. The chain tries
    them first anyway, so checking them here is the same order, only fresher.
    """
    from alibabacloud_credentials.client import Client
    from alibabacloud_credentials.models import Config

    access_key_id = os.environ.get("ALIBABA_CLOUD_ACCESS_KEY_ID")
    access_key_secret = os.environ.get("ALIBABA_CLOUD_ACCESS_KEY_SECRET")
    token = os.environ.get("ALIBABA_CLOUD_SECURITY_TOKEN")
    if access_key_id and access_key_secret:
        return Client(
            Config(
                type="sts" if token else "access_key",
                access_key_id=access_key_id,
                access_key_secret=access_key_secret,
                security_token=token or None,
            )
        )
    return Client()
