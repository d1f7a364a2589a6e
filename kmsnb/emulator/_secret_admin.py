"""Secrets Manager, the metadata: DescribeSecret, ListSecrets, ListSecretVersionIds,
UpdateSecret, UpdateSecretVersionStage, DeleteSecret, RestoreSecret.

Choices where the documentation leaves room, made for an emulator:

* ListSecrets ``Filters`` compare exactly, values of one key ORed, keys ANDed; ``Creator``
  is the account id. Secrets are listed oldest first, those pending deletion included.
* DeleteSecret takes a recovery window of 7 to 30 days (default 30);
  ``ForceDeleteWithoutRecovery=true`` deletes at once and cannot be combined with a window.
  A second DeleteSecret without force, while the window runs, answers
  ``Rejected.ResourceInDeleteWindow``.
* RestoreSecret of a secret that is not pending deletion succeeds and changes nothing.
* UpdateSecretVersionStage attaching a stage that marks another version moves it there;
  ACSCurrent and ACSPrevious can only be moved (``MoveToVersion``), never just removed.
"""

from __future__ import annotations

from typing import Any, Final

from kmsnb.emulator._engine import Engine, format_time
from kmsnb.emulator._errors import invalid, missing
from kmsnb.emulator._keys import DAY
from kmsnb.emulator._params import Params, page_of
from kmsnb.emulator._secret_common import (
    ACS_CURRENT,
    ACS_PREVIOUS,
    attach_stage,
    check_not_deleted,
    in_delete_window,
    optional_time,
    read_secret,
    resource_not_found,
    secret_arn,
    secret_name,
    stages_field,
    tags_field,
    transaction,
)
from kmsnb.emulator._secret_records import MAX_DESCRIPTION_LENGTH, MAX_STAGE_LENGTH, SecretRecord

__all__ = [
    "delete_secret",
    "describe_secret",
    "list_secret_version_ids",
    "list_secrets",
    "restore_secret",
    "update_secret",
    "update_secret_version_stage",
]

_RESERVED_STAGES: Final = (ACS_CURRENT, ACS_PREVIOUS)
_MAX_FILTER_COUNT: Final = 10
_FILTER_KEYS: Final = (
    "SecretName",
    "Description",
    "TagKey",
    "TagValue",
    "DKMSInstanceId",
    "SecretType",
    "Creator",
)


def describe_secret(engine: Engine, params: Params) -> dict[str, Any]:
    name = secret_name(engine, params)
    fetch_tags = params.boolean("FetchTags", default=False)
    _, secret = read_secret(engine, name)
    body: dict[str, Any] = {
        "Arn": secret_arn(engine, secret.name),
        "SecretName": secret.name,
        "SecretType": secret.secret_type,
        "Description": secret.description,
        "EncryptionKeyId": secret.encryption_key_id,
        "CreateTime": format_time(secret.creation_time),
        "UpdateTime": format_time(secret.update_time),
    }
    if secret.planned_delete_time is not None:
        body["PlannedDeleteTime"] = format_time(secret.planned_delete_time)
    if secret.dkms_instance_id:
        body["DKMSInstanceId"] = secret.dkms_instance_id
    if fetch_tags:
        body["Tags"] = tags_field(secret)
    return body


def list_secrets(engine: Engine, params: Params) -> dict[str, Any]:
    fetch_tags = params.boolean("FetchTags", default=False)
    filters = _filters(params)
    number, size = params.page(max_size=100)
    state = engine.store.snapshot()
    now = engine.clock()
    matched = [
        secret
        for secret in sorted(state.secrets.values(), key=lambda s: (s.creation_time, s.name))
        if not (secret.planned_delete_time is not None and now >= secret.planned_delete_time)
        and all(_matches(engine, secret, key, values) for key, values in filters)
    ]
    page = []
    for secret in page_of(matched, number, size):
        item: dict[str, Any] = {
            "SecretName": secret.name,
            "SecretType": secret.secret_type,
            "CreateTime": format_time(secret.creation_time),
            "UpdateTime": format_time(secret.update_time),
        }
        if secret.planned_delete_time is not None:
            item["PlannedDeleteTime"] = format_time(secret.planned_delete_time)
        if fetch_tags:
            item["Tags"] = tags_field(secret)
        page.append(item)
    return {
        "SecretList": {"Secret": page},
        "TotalCount": len(matched),
        "PageNumber": number,
        "PageSize": size,
    }


def list_secret_version_ids(engine: Engine, params: Params) -> dict[str, Any]:
    name = secret_name(engine, params)
    include_deprecated = params.boolean("IncludeDeprecated", default=False)
    number = params.integer("PageNumber", default=1, low=1, high=2**31 - 1)
    size = params.integer("PageSize", default=20, low=1, high=100)
    _, secret = read_secret(engine, name)
    version_ids = [
        version_id
        for version_id in secret.versions
        if include_deprecated or secret.stages_of(version_id)
    ]
    page = [
        {
            "VersionId": version_id,
            "CreateTime": format_time(secret.versions[version_id].creation_time),
            "VersionStages": stages_field(secret, version_id),
        }
        for version_id in page_of(version_ids, number, size)
    ]
    return {
        "SecretName": secret.name,
        "VersionIds": {"VersionId": page},
        "TotalCount": len(version_ids),
        "PageNumber": number,
        "PageSize": size,
    }


def update_secret(engine: Engine, params: Params) -> dict[str, Any]:
    name = secret_name(engine, params)
    description = params.required("Description", allow_empty=True)
    if len(description) > MAX_DESCRIPTION_LENGTH:
        raise invalid("Description")
    # ExtendedConfig (CustomData) exists only for the secret types bound to cloud resources.
    if any(key.startswith("ExtendedConfig") for key in params.names()):
        raise invalid("ExtendedConfig")
    with transaction(engine) as draft:
        secret = _secret_in(draft.secrets, name)
        check_not_deleted(secret)
        secret.description = description
        secret.update_time = engine.clock()
    return {"SecretName": name}


def update_secret_version_stage(engine: Engine, params: Params) -> dict[str, Any]:
    name = secret_name(engine, params)
    stage = params.required("VersionStage")
    if len(stage) > MAX_STAGE_LENGTH:
        raise invalid("VersionStage")
    move_to = params.optional("MoveToVersion")
    remove_from = params.optional("RemoveFromVersion")
    if move_to is None and remove_from is None:
        raise missing("MoveToVersion")
    if stage in _RESERVED_STAGES and move_to is None:
        raise invalid("RemoveFromVersion")  # a reserved stage can only be moved
    with transaction(engine) as draft:
        secret = _secret_in(draft.secrets, name)
        check_not_deleted(secret)
        if remove_from is not None and secret.stages.get(stage) != remove_from:
            raise invalid("RemoveFromVersion")
        if move_to is not None:
            if move_to not in secret.versions:
                raise resource_not_found()
            attach_stage(secret, stage, move_to)
        else:
            del secret.stages[stage]
        secret.update_time = engine.clock()
    return {"SecretName": name}


def delete_secret(engine: Engine, params: Params) -> dict[str, Any]:
    name = secret_name(engine, params)
    force = params.boolean("ForceDeleteWithoutRecovery", default=False)
    if force and params.optional("RecoveryWindowInDays") is not None:
        raise invalid("RecoveryWindowInDays")
    days = params.integer("RecoveryWindowInDays", default=30, low=7, high=30)
    with transaction(engine) as draft:
        secret = _secret_in(draft.secrets, name)
        if force:
            del draft.secrets[name]
            return {"SecretName": name}
        if secret.planned_delete_time is not None:
            raise in_delete_window()
        secret.planned_delete_time = engine.clock() + days * DAY
    return {"SecretName": name, "PlannedDeleteTime": optional_time(secret.planned_delete_time)}


def restore_secret(engine: Engine, params: Params) -> dict[str, Any]:
    name = secret_name(engine, params)
    with transaction(engine) as draft:
        secret = _secret_in(draft.secrets, name)
        secret.planned_delete_time = None
    return {"SecretName": name}


# -- helpers -----------------------------------------------------------------------------


def _secret_in(secrets: dict[str, SecretRecord], name: str) -> SecretRecord:
    secret = secrets.get(name)
    if secret is None:
        raise resource_not_found()
    return secret


def _filters(params: Params) -> list[tuple[str, set[str]]]:
    value = params.json("Filters")
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > _MAX_FILTER_COUNT:
        raise invalid("Filters")
    filters = []
    for item in value:
        if not isinstance(item, dict) or item.get("Key") not in _FILTER_KEYS:
            raise invalid("Filters")
        values = item.get("Values")
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise invalid("Filters")
        filters.append((str(item["Key"]), set(values)))
    return filters


def _matches(engine: Engine, secret: SecretRecord, key: str, values: set[str]) -> bool:
    if key == "TagKey":
        return bool(values & secret.tags.keys())
    if key == "TagValue":
        return bool(values & set(secret.tags.values()))
    field = {
        "SecretName": secret.name,
        "Description": secret.description,
        "DKMSInstanceId": secret.dkms_instance_id,
        "SecretType": secret.secret_type,
        "Creator": engine.account_id,
    }[key]
    return field in values
