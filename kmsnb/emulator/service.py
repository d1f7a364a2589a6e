"""The KMS engine: Alibaba Cloud KMS 2016-01-20 semantics over a :class:`KeyStore`.

:class:`KmsService` takes an action name and the request's raw string parameters, as the
HTTP server receives them or :class:`kmsnb.kms.local.LocalKms` builds them, and returns
the JSON response body without ``RequestId``, or raises :class:`ServiceError` carrying the
service's error code, message and HTTP status. It is safe to share between threads, and
several services (in several processes) may share one store.

What is emulated, and the choices made where the documentation is silent, are written
where they are implemented: key lifecycle in :mod:`._keys`, aliases in :mod:`._aliases`,
cryptographic operations and the CiphertextBlob in :mod:`._crypto` and :mod:`._blob`, the
key-state matrix and lazy deletion and rotation in :mod:`._engine`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

from kmsnb.emulator._engine import Engine, Limits
from kmsnb.emulator._errors import ServiceError
from kmsnb.emulator._params import Params
from kmsnb.emulator.store import KeyStore, KeyStoreError

__all__ = ["ACTIONS", "SECRET_ACTIONS", "KmsService", "Limits", "ServiceError"]

_Handler = Callable[[Engine, Params], dict[str, Any]]

#: Each action's handler, as (module in this package, function). The modules are imported
#: at an action's first call, not here: ``kmsnb encrypt`` with a ``local:`` KMS needs only
#: ``_crypto``, and key import's RSA and serialization code (``_import``) or Secrets
#: Manager's (``_secrets``, ``_secret_admin``) would be most of the emulator's start-up.
_HANDLERS: Final[dict[str, tuple[str, str]]] = {
    "CancelKeyDeletion": ("_keys", "cancel_key_deletion"),
    "CreateAlias": ("_aliases", "create_alias"),
    "CreateKey": ("_keys", "create_key"),
    "CreateKeyVersion": ("_keys", "create_key_version"),
    "Decrypt": ("_crypto", "decrypt"),
    "DeleteAlias": ("_aliases", "delete_alias"),
    "DescribeKey": ("_keys", "describe_key"),
    "DescribeKeyVersion": ("_keys", "describe_key_version"),
    "DisableKey": ("_keys", "disable_key"),
    "EnableKey": ("_keys", "enable_key"),
    "Encrypt": ("_crypto", "encrypt"),
    "GenerateDataKey": ("_crypto", "generate_data_key"),
    "GenerateDataKeyWithoutPlaintext": ("_crypto", "generate_data_key_without_plaintext"),
    "ListAliases": ("_aliases", "list_aliases"),
    "ListAliasesByKeyId": ("_aliases", "list_aliases_by_key_id"),
    "ListKeyVersions": ("_keys", "list_key_versions"),
    "ListKeys": ("_keys", "list_keys"),
    "ListResourceTags": ("_keys", "list_resource_tags"),
    "ReEncrypt": ("_crypto", "re_encrypt"),
    "ScheduleKeyDeletion": ("_keys", "schedule_key_deletion"),
    "TagResource": ("_keys", "tag_resource"),
    "UntagResource": ("_keys", "untag_resource"),
    "UpdateAlias": ("_aliases", "update_alias"),
    "UpdateKeyDescription": ("_keys", "update_key_description"),
    "UpdateRotationPolicy": ("_keys", "update_rotation_policy"),
    # -- key import, Origin=EXTERNAL (issue 15) -----------------------------------------------
    "DeleteKeyMaterial": ("_import", "delete_key_material"),
    "GetParametersForImport": ("_import", "get_parameters_for_import"),
    "ImportKeyMaterial": ("_import", "import_key_material"),
    # -- Secrets Manager (issue 15) ----------------------------------------------------------
    "BatchGetSecretValue": ("_secrets", "batch_get_secret_value"),
    "CreateSecret": ("_secrets", "create_secret"),
    "DeleteSecret": ("_secret_admin", "delete_secret"),
    "DescribeSecret": ("_secret_admin", "describe_secret"),
    "GetRandomPassword": ("_secrets", "get_random_password"),
    "GetSecretValue": ("_secrets", "get_secret_value"),
    "ListSecretVersionIds": ("_secret_admin", "list_secret_version_ids"),
    "ListSecrets": ("_secret_admin", "list_secrets"),
    "PutSecretValue": ("_secrets", "put_secret_value"),
    "RestoreSecret": ("_secret_admin", "restore_secret"),
    "UpdateSecret": ("_secret_admin", "update_secret"),
    "UpdateSecretVersionStage": ("_secret_admin", "update_secret_version_stage"),
}

#: The actions the emulator implements.
ACTIONS: Final = frozenset(_HANDLERS)
#: Those of Secrets Manager (the rest act on keys and aliases).
SECRET_ACTIONS: Final = frozenset(
    action for action, (module, _) in _HANDLERS.items() if module in ("_secrets", "_secret_admin")
)


def _handler(action: str) -> _Handler | None:
    """The function that answers ``action`` (its module imported now if not yet)."""
    where = _HANDLERS.get(action)
    if where is None:
        return None
    module, function = where
    # importlib.import_module's work without the importlib package, one module fewer for
    # every call (start-up): __import__ returns the top package, sys.modules the module.
    qualified = f"kmsnb.emulator.{module}"
    __import__(qualified)
    handler: _Handler = getattr(sys.modules[qualified], function)
    return handler


class KmsService:
    """Answers KMS API calls from a keystore.

    Args:
        store: where the keys live.
        region_id: the region written into ARNs and accepted in them.
        account_id: the account written into ARNs and ``Creator``, and accepted in ARNs.
        clock: returns the current POSIX time; tests pass a fake one to reach deletion
            and rotation dates.
        limits: quotas on keys, aliases and key versions (default: the service's).
    """

    def __init__(
        self,
        store: KeyStore,
        *,
        region_id: str = "cn-hangzhou",
        account_id: str = "1234567890123456",
        clock: Callable[[], float] = time.time,
        limits: Limits | None = None,
    ) -> None:
        self._engine = Engine(
            store,
            region_id=region_id,
            account_id=account_id,
            clock=clock,
            limits=limits or Limits(),
        )

    @property
    def store(self) -> KeyStore:
        return self._engine.store

    @property
    def region_id(self) -> str:
        return self._engine.region_id

    @property
    def account_id(self) -> str:
        return self._engine.account_id

    def __repr__(self) -> str:
        return f"KmsService({self.store!r}, region_id={self.region_id!r})"

    def call(self, action: str, params: Mapping[str, str]) -> dict[str, Any]:
        """Run one API action.

        Args:
            action: the API action, such as ``GenerateDataKey``.
            params: its parameters as strings, as they arrive on the wire; maps and lists
                (``EncryptionContext``, ``Filters``, ``Tags``) as JSON strings.

        Returns:
            The JSON response body, without ``RequestId``.

        Raises:
            ServiceError: the error response to send, for example 404
                ``Forbidden.KeyNotFound``; 404 ``InvalidAction.NotFound`` for an action
                not emulated.
            KeyStoreError: the keystore cannot be used (corrupted, read-only for a
                change, disk full...), with a message naming it. Not a KMS answer: the
                in-process client raises it as it is, the HTTP server answers 500.
        """
        handler = _handler(action)
        if handler is None:
            raise ServiceError(
                "InvalidAction.NotFound",
                "Specified api is not found, please check your url and method.",
                404,
            )
        try:
            return handler(self._engine, Params(params))
        except OSError as exc:  # the store turns its own into KeyStoreErrors: a last net
            raise KeyStoreError(
                f"the keystore {self.store.directory} failed: {exc.strerror or type(exc).__name__}"
            ) from None
