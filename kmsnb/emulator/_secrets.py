"""Secrets Manager, the values: CreateSecret, PutSecretValue, GetSecretValue,
BatchGetSecretValue, GetRandomPassword (alibaba-clients §9; request and response fields as
in the ``alibabacloud_kms20160120`` models).

Choices where the documentation leaves room, made for an emulator:

* Only ``Generic`` secrets: the other types (Rds, Redis, RAMCredentials, ECS, PolarDB) are
  bound to cloud resources that rotate them, and are refused with ``InvalidParameter``;
  so are ``EnableAutomaticRotation`` (not for Generic), ``Policy`` and ``Recipient``
  (attested enclaves), which are not emulated.
* A ``binary`` value is base64 text, checked and returned as sent.
* ``VersionStages`` of PutSecretValue is a JSON list of stages (or one bare stage); moving
  ACSCurrent to the new version moves the old ACSCurrent to ACSPrevious.

Values are sealed under the secret's master key as soon as they arrive
(:func:`._secret_common.seal_value`); nothing here logs or keeps them in the clear.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets as random_source
import string
from typing import Any, Final

from kmsnb.emulator._engine import Engine, format_time
from kmsnb.emulator._errors import ServiceError, invalid, missing
from kmsnb.emulator._keys import dkms_instance_id, merged_tags
from kmsnb.emulator._params import Params, check_dry_run
from kmsnb.emulator._secret_common import (
    ACS_CURRENT,
    GENERIC,
    attach_stage,
    check_not_deleted,
    default_key_id,
    read_secret,
    resource_exist,
    resource_not_found,
    seal_value,
    secret_arn,
    secret_name,
    stages_field,
    transaction,
    unseal_value,
    valid_new_name,
    version_of,
)
from kmsnb.emulator._secret_records import (
    MAX_DESCRIPTION_LENGTH,
    MAX_SECRET_DATA_SIZE,
    MAX_STAGE_LENGTH,
    MAX_VERSION_ID_LENGTH,
    SECRET_DATA_TYPES,
    SecretRecord,
    SecretVersionRecord,
)

__all__ = [
    "batch_get_secret_value",
    "create_secret",
    "get_random_password",
    "get_secret_value",
    "put_secret_value",
]

MAX_BATCH_SIZE: Final = 20
_PUNCTUATION: Final = string.punctuation


def create_secret(engine: Engine, params: Params) -> dict[str, Any]:
    name = valid_new_name(params.required("SecretName"))
    data, data_type = _secret_data(params)
    version_id = _version_id(params)
    params.choice("SecretType", (GENERIC,), GENERIC)
    if params.boolean("EnableAutomaticRotation", default=False):
        raise invalid("EnableAutomaticRotation")  # Generic secrets do not rotate
    _refuse(params, "RotationInterval", "Policy", "ExtendedConfig")
    description = params.optional("Description") or ""
    if len(description) > MAX_DESCRIPTION_LENGTH:
        raise invalid("Description")
    tags = merged_tags(params, {}) if params.optional("Tags") else {}
    key_ref = params.optional("EncryptionKeyId")
    instance_id = dkms_instance_id(params)
    with transaction(engine) as draft:
        existing = draft.secrets.get(name)
        if existing is not None:
            check_not_deleted(existing)
            raise resource_exist()
        key_id = engine.resolve(draft, key_ref) if key_ref else default_key_id(engine, draft)
        now = engine.clock()
        secret = SecretRecord(
            name=name,
            encryption_key_id=key_id,
            creation_time=now,
            update_time=now,
            description=description,
            dkms_instance_id=instance_id,
            tags=tags,
        )
        sealed = seal_value(engine, draft, key_id, name, version_id, data)
        secret.versions[version_id] = SecretVersionRecord(version_id, now, data_type, sealed)
        secret.stages[ACS_CURRENT] = version_id
        draft.secrets[name] = secret
    body: dict[str, Any] = {
        "Arn": secret_arn(engine, name),
        "SecretName": name,
        "SecretType": GENERIC,
        "VersionId": version_id,
    }
    if instance_id:
        body["DKMSInstanceId"] = instance_id
    return body


def put_secret_value(engine: Engine, params: Params) -> dict[str, Any]:
    name = secret_name(engine, params)
    data, data_type = _secret_data(params)
    version_id = _version_id(params)
    stages = _version_stages(params)
    with transaction(engine) as draft:
        secret = draft.secrets.get(name)
        if secret is None:
            raise resource_not_found()
        check_not_deleted(secret)
        if version_id in secret.versions:
            raise resource_exist()
        now = engine.clock()
        sealed = seal_value(engine, draft, secret.encryption_key_id, name, version_id, data)
        secret.versions[version_id] = SecretVersionRecord(version_id, now, data_type, sealed)
        for stage in stages:
            attach_stage(secret, stage, version_id)
        secret.update_time = now
    return {
        "SecretName": name,
        "VersionId": version_id,
        "VersionStages": stages_field(secret, version_id),
    }


def get_secret_value(engine: Engine, params: Params) -> dict[str, Any]:
    name = secret_name(engine, params)
    version_id = params.optional("VersionId")
    stage = params.optional("VersionStage")
    _refuse(params, "Recipient")
    params.boolean("FetchExtendedConfig", default=False)  # Generic secrets have none
    _, secret = read_secret(engine, name)
    check_not_deleted(secret)
    target = version_of(secret, version_id, stage)
    check_dry_run(params)
    return _value_body(engine, secret, target)


def batch_get_secret_value(engine: Engine, params: Params) -> dict[str, Any]:
    requests = _secrets_list(params)
    values, errors = [], []
    for item in requests:
        item_name = item["SecretName"]
        try:
            _, secret = read_secret(engine, item_name)
            check_not_deleted(secret)
            target = version_of(secret, item.get("VersionId"), item.get("VersionStage"))
            values.append(_value_body(engine, secret, target))
        except ServiceError as error:
            errors.append(
                {
                    "SecretName": item_name,
                    "Code": error.code,
                    "HttpStatus": str(error.http_status),
                    "Message": error.message,
                }
            )
    return {"SecretValues": values, "Errors": errors}


def get_random_password(engine: Engine, params: Params) -> dict[str, Any]:
    length = params.integer("PasswordLength", default=32, low=8, high=128)
    excluded = set(params.optional("ExcludeCharacters") or "")
    classes = [
        chars
        for chars, flag in (
            (string.ascii_lowercase, "ExcludeLowercase"),
            (string.ascii_uppercase, "ExcludeUppercase"),
            (string.digits, "ExcludeNumbers"),
            (_PUNCTUATION, "ExcludePunctuation"),
        )
        if not params.boolean(flag, default=False)
    ]
    pools = [[c for c in chars if c not in excluded] for chars in classes]
    pools = [pool for pool in pools if pool]
    if not pools:
        raise invalid("ExcludeCharacters")
    require_each = params.boolean("RequireEachIncludedType", default=True)
    if require_each and len(pools) > length:
        raise invalid("PasswordLength")
    alphabet = [c for pool in pools for c in pool]
    chosen = [random_source.choice(pool) for pool in pools] if require_each else []
    chosen += [random_source.choice(alphabet) for _ in range(length - len(chosen))]
    # Shuffled with the system's CSPRNG, so the required characters sit anywhere.
    for index in range(len(chosen) - 1, 0, -1):
        other = random_source.randbelow(index + 1)
        chosen[index], chosen[other] = chosen[other], chosen[index]
    return {"RandomPassword": "".join(chosen)}


# -- helpers -----------------------------------------------------------------------------


def _value_body(engine: Engine, secret: SecretRecord, version_id: str) -> dict[str, Any]:
    version = secret.versions[version_id]
    return {
        "SecretName": secret.name,
        "SecretType": secret.secret_type,
        "SecretData": unseal_value(engine, secret, version_id),
        "SecretDataType": version.data_type,
        "VersionId": version_id,
        "VersionStages": stages_field(secret, version_id),
        "CreateTime": format_time(version.creation_time),
    }


def _secret_data(params: Params) -> tuple[str, str]:
    data = params.required("SecretData")
    data_type = params.choice("SecretDataType", SECRET_DATA_TYPES, "text")
    if len(data.encode("utf-8")) > MAX_SECRET_DATA_SIZE:
        raise invalid("SecretData")
    if data_type == "binary":
        try:
            base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise invalid("SecretData") from None
    return data, data_type


def _version_id(params: Params) -> str:
    version_id = params.required("VersionId")
    if len(version_id) > MAX_VERSION_ID_LENGTH:
        raise invalid("VersionId")
    return version_id


def _version_stages(params: Params) -> list[str]:
    raw = params.optional("VersionStages")
    if raw is None:
        return [ACS_CURRENT]
    try:
        value: Any = json.loads(raw)
    except ValueError:
        value = [raw]  # one bare stage label
    except RecursionError:  # nested too deeply: no stage label either
        raise invalid("VersionStages") from None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise invalid("VersionStages")
    if not all(Params.is_text(stage) and 0 < len(stage) <= MAX_STAGE_LENGTH for stage in value):
        raise invalid("VersionStages")
    return list(dict.fromkeys(value))


def _secrets_list(params: Params) -> list[dict[str, str]]:
    value = params.json("SecretsList")
    if value is None:
        raise missing("SecretsList")
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_BATCH_SIZE:
        raise invalid("SecretsList")
    items = []
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("SecretName"), str):
            raise invalid("SecretsList")
        fields = {k: v for k, v in item.items() if k in ("SecretName", "VersionId", "VersionStage")}
        if not all(Params.is_text(v) and v for v in fields.values()):  # names are echoed
            raise invalid("SecretsList")
        items.append(fields)
    return items


def _refuse(params: Params, *names: str) -> None:
    """Parameters the emulator does not implement: refused rather than ignored."""
    for name in names:
        if params.optional(name) is not None:
            raise invalid(name)
