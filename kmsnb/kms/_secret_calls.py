"""The Secrets Manager calls, written once for both backends.

:class:`SecretCalls` builds each request as the wire parameters (``SecretName``,
``SecretData``, ...) and reads the response body as the wire's PascalCase map, so the same
code serves :class:`~kmsnb.kms.local.LocalKms` (the in-process emulator takes those maps
as they are) and :class:`~kmsnb.kms.aliyun.AliyunKms` (the official SDK's request models
are built from them, and its response models turned back with ``to_map()``): against
Alibaba Cloud and against the emulator, one code path.

A ``str`` value is stored as ``SecretDataType=text``; ``bytes`` as ``binary``, whose
``SecretData`` is the base64 text of the bytes, as the API requires.

Over the network (:class:`AliyunSecrets`) the calls follow :mod:`kmsnb.kms._retry`: reads
and RestoreSecret are sent again after any failure worth retrying. CreateSecret and
PutSecretValue always carry a ``VersionId`` (a new UUID unless the caller names one), so a
repeat of one that took effect answers ``Rejected.ResourceExist``: after an uncertain try
that answer is checked (the version is read back and compared with the value sent, in
constant time) and, if it is ours, the call succeeds. A DeleteSecret repeated after it took
effect answers ``Rejected.ResourceInDeleteWindow`` (checked: the secret is pending
deletion) or, when forced, ``Forbidden.ResourceNotFound`` (the secret is gone, as asked).
A write whose every try may have been carried out raises ``outcome_unknown=True``.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Final

from kmsnb._wipe import wipe
from kmsnb.errors import KmsError

if TYPE_CHECKING:
    from kmsnb.kms._retry import AlreadyDone
    from kmsnb.kms._secrets import Secret, SecretInfo, SecretVersionInfo

# The secret records (kmsnb.kms._secrets) and the retry rules (kmsnb.kms._retry) are
# imported by the calls that use them: LocalKms inherits these calls, and a file's
# encryption should not pay for three more dataclasses and the random module.

__all__ = ["AliyunSecrets", "LocalSecrets", "SecretCalls"]

_PAGE_SIZE: Final = 100


class SecretCalls:
    """The :class:`~kmsnb.kms._secrets.SecretsClient` methods over :meth:`_secret_call`."""

    def _secret_call(self, action: str, params: dict[str, str]) -> dict[str, Any]:
        """Send ``action`` with wire parameters; return the response body as a map."""
        raise NotImplementedError

    def create_secret(
        self,
        name: str,
        value: str | bytes,
        *,
        version_id: str | None = None,
        description: str = "",
        encryption_key_id: str | None = None,
    ) -> SecretVersionInfo:
        """Create secret ``name`` whose first version (ACSCurrent) holds ``value``.

        Args:
            version_id: the first version's id (default: a new UUID).
            encryption_key_id: the master key that protects it (default: the service's).
        """
        from kmsnb.kms._secrets import SecretVersionInfo

        params = {"SecretName": name, **_data(value), "VersionId": version_id or _new_id()}
        if description:
            params["Description"] = description
        if encryption_key_id:
            params["EncryptionKeyId"] = encryption_key_id
        body = self._secret_call("CreateSecret", params)
        return SecretVersionInfo(str(body["SecretName"]), str(body["VersionId"]), ("ACSCurrent",))

    def put_secret_value(
        self, name: str, value: str | bytes, *, version_id: str | None = None
    ) -> SecretVersionInfo:
        """Store ``value`` as a new version of ``name`` and make it ACSCurrent."""
        from kmsnb.kms._secrets import SecretVersionInfo

        params = {"SecretName": name, **_data(value), "VersionId": version_id or _new_id()}
        body = self._secret_call("PutSecretValue", params)
        return SecretVersionInfo(str(body["SecretName"]), str(body["VersionId"]), _stages(body))

    def get_secret_value(
        self, name: str, *, version_id: str | None = None, version_stage: str | None = None
    ) -> Secret:
        """The value of ``name`` (ACSCurrent unless a version or stage is named), masked."""
        from kmsnb.kms._secrets import Secret

        params = {"SecretName": name}
        if version_id:
            params["VersionId"] = version_id
        if version_stage:
            params["VersionStage"] = version_stage
        body = self._secret_call("GetSecretValue", params)
        data_type = str(body.get("SecretDataType") or "text")
        data = str(body.get("SecretData") or "")
        if data_type == "binary":
            try:
                value = bytearray(base64.b64decode(data, validate=True))
            except ValueError:
                raise KmsError(
                    f"the KMS returned a binary secret {name!r} that is not base64"
                ) from None
        else:
            value = bytearray(data.encode("utf-8"))
        del data, body["SecretData"]  # only the Secret keeps a copy
        return Secret(
            str(body["SecretName"]),
            value,
            version_id=str(body.get("VersionId") or ""),
            version_stages=_stages(body),
            data_type=data_type,
            create_time=str(body.get("CreateTime") or ""),
        )

    def describe_secret(self, name: str) -> SecretInfo:
        return _info(self._secret_call("DescribeSecret", {"SecretName": name}))

    def list_secrets(self) -> list[SecretInfo]:
        """Every secret, those waiting out a recovery window included (names and dates)."""
        return [_info(item) for item in self._secret_pages()]

    def delete_secret(
        self, name: str, *, recovery_window_in_days: int | None = None, force: bool = False
    ) -> str | None:
        """Delete ``name`` after its recovery window (default 30 days), or now if ``force``.

        Returns:
            The planned deletion time, or None when it was deleted at once.
        """
        params = {"SecretName": name}
        if force:
            params["ForceDeleteWithoutRecovery"] = "true"
        elif recovery_window_in_days is not None:
            params["RecoveryWindowInDays"] = str(recovery_window_in_days)
        body = self._secret_call("DeleteSecret", params)
        planned = body.get("PlannedDeleteTime")
        return str(planned) if planned else None

    def restore_secret(self, name: str) -> None:
        """Cancel the deletion of ``name`` during its recovery window."""
        self._secret_call("RestoreSecret", {"SecretName": name})

    def _secret_pages(self) -> Iterator[dict[str, Any]]:
        page_number = 1
        while True:
            params = {"PageNumber": str(page_number), "PageSize": str(_PAGE_SIZE)}
            body = self._secret_call("ListSecrets", params)
            items: list[dict[str, Any]] = (body.get("SecretList") or {}).get("Secret") or []
            yield from items
            if not items or page_number * _PAGE_SIZE >= int(body.get("TotalCount") or 0):
                return
            page_number += 1


class LocalSecrets(SecretCalls):
    """For :class:`~kmsnb.kms.local.LocalKms`: the engine takes the wire maps as they are."""

    def _call(self, action: str, params: Mapping[str, str]) -> dict[str, Any]:
        raise NotImplementedError

    def _secret_call(self, action: str, params: dict[str, str]) -> dict[str, Any]:
        return self._call(action, params)


class AliyunSecrets(SecretCalls):
    """For :class:`~kmsnb.kms.aliyun.AliyunKms`: through the SDK's request models."""

    _sdk: Any

    def _call(self, method: str, request: Any, *, already_done: AlreadyDone | None = None) -> Any:
        raise NotImplementedError

    def _secret_call(self, action: str, params: dict[str, str]) -> dict[str, Any]:
        request_type = getattr(self._sdk.models, f"{action}Request")
        request = request_type(**{_snake_case(name): value for name, value in params.items()})
        # What the write's answer would have said, filled in by the check that finds it done.
        found: dict[str, Any] = {}
        already_done = self._already_done(action, params, found)
        response = self._call(_snake_case(action), request, already_done=already_done)
        if response is None:  # an earlier try, whose answer was lost, took effect
            return found
        body: dict[str, Any] = response.to_map()
        return body

    def _already_done(
        self, action: str, params: Mapping[str, str], found: dict[str, Any]
    ) -> AlreadyDone | None:
        """How to recognise that a lost try of a write took effect (module docstring)."""
        from kmsnb.kms._retry import refused_as_done

        name = params.get("SecretName", "")
        if action in ("CreateSecret", "PutSecretValue"):
            return refused_as_done(
                "Rejected.ResourceExist", lambda: self._version_stored(params, found)
            )
        if action == "DeleteSecret" and params.get("ForceDeleteWithoutRecovery") == "true":
            found["SecretName"] = name
            return refused_as_done("Forbidden.ResourceNotFound", lambda: True)
        if action == "DeleteSecret":

            def pending_deletion() -> bool:
                planned = self.describe_secret(name).planned_delete_time
                found.update(SecretName=name, PlannedDeleteTime=planned)
                return planned is not None

            return refused_as_done("Rejected.ResourceInDeleteWindow", pending_deletion)
        return None

    def _version_stored(self, params: Mapping[str, str], found: dict[str, Any]) -> bool:
        """Whether the version that CreateSecret/PutSecretValue sent is stored, as sent."""
        from kmsnb.kms._secrets import holds_value

        name, version_id = params["SecretName"], params["VersionId"]
        data_type = params["SecretDataType"]
        sent = bytearray(
            base64.b64decode(params["SecretData"])
            if data_type == "binary"
            else params["SecretData"].encode("utf-8")
        )
        try:
            with self.get_secret_value(name, version_id=version_id) as stored:
                if not holds_value(stored, data_type, sent):
                    return False
                stages = {"VersionStage": list(stored.version_stages)}
        finally:
            wipe(sent)
        found.update(SecretName=name, VersionId=version_id, VersionStages=stages)
        return True


def _data(value: str | bytes) -> dict[str, str]:
    if isinstance(value, str):
        return {"SecretData": value, "SecretDataType": "text"}
    if isinstance(value, bytes | bytearray | memoryview):
        encoded = base64.b64encode(value).decode("ascii")
        return {"SecretData": encoded, "SecretDataType": "binary"}
    raise TypeError(f"a secret value is str or bytes, not {type(value).__name__}")


def _new_id() -> str:
    import uuid  # here, not at the top: it imports platform

    return str(uuid.uuid4())


def _stages(body: Mapping[str, Any]) -> tuple[str, ...]:
    stages = (body.get("VersionStages") or {}).get("VersionStage") or []
    return tuple(str(stage) for stage in stages)


def _info(body: Mapping[str, Any]) -> SecretInfo:
    from kmsnb.kms._secrets import SecretInfo

    return SecretInfo(
        name=str(body["SecretName"]),
        secret_type=str(body.get("SecretType") or "Generic"),
        create_time=str(body.get("CreateTime") or ""),
        update_time=str(body.get("UpdateTime") or ""),
        planned_delete_time=str(body["PlannedDeleteTime"])
        if body.get("PlannedDeleteTime")
        else None,
        description=str(body.get("Description") or ""),
        encryption_key_id=str(body.get("EncryptionKeyId") or ""),
        arn=str(body.get("Arn") or ""),
    )


def _snake_case(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
