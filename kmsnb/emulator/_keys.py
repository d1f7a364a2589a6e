"""Master keys: lifecycle, versions and rotation, tags (``docs/kms-api.md``, "Keys").

Choices where the documentation leaves room, made for an emulator:

* CreateKey accepts the symmetric specs ``Aliyun_AES_256`` and ``Aliyun_SM4`` (SM4-GCM
  from ``cryptography``, :mod:`._sm4`) and ``ENCRYPT/DECRYPT`` usage; other (asymmetric)
  specs are ``InvalidParameter``. ``ProtectionLevel=HSM`` is recorded, not
  emulated. ``Origin=EXTERNAL`` makes a key in PendingImport with no version until its
  material is imported (:mod:`._import`); such a key cannot rotate.
* CreateKeyVersion works for symmetric keys, without the 7-day spacing of older docs.
* CancelKeyDeletion leaves the key Enabled, as Alibaba documents (a key still waiting for
  its material, or whose material was deleted meanwhile, goes back to PendingImport).
* ``DKMSInstanceId`` (of a key or a secret) is recorded as sent, up to 128 characters.
* Tags: at most 20 per key, keys and values 1-128 characters, not starting with
  ``aliyun`` or ``acs:``.
"""

from __future__ import annotations

from typing import Any, Final

from kmsnb.emulator._engine import (
    ANY_STATE,
    CANCEL_RULE,
    DISABLED,
    ENABLED,
    MODIFY_RULE,
    PENDING_DELETION,
    PENDING_IMPORT,
    SCHEDULE_RULE,
    TOGGLE_RULE,
    USE_RULE,
    Engine,
    format_time,
)
from kmsnb.emulator._errors import (
    ServiceError,
    invalid,
    key_version_not_found,
    limit_exceeded,
    missing,
)
from kmsnb.emulator._params import Params, page_of
from kmsnb.emulator._record_checks import MAX_INSTANCE_ID_LENGTH
from kmsnb.emulator._records import KeyRecord, StoreState

__all__ = [
    "cancel_key_deletion",
    "create_key",
    "create_key_version",
    "describe_key",
    "describe_key_version",
    "disable_key",
    "dkms_instance_id",
    "enable_key",
    "list_key_versions",
    "list_keys",
    "list_resource_tags",
    "merged_tags",
    "schedule_key_deletion",
    "tag_resource",
    "untag_resource",
    "update_key_description",
    "update_rotation_policy",
]

DAY: Final = 86400
MAX_DESCRIPTION_LENGTH: Final = 8192
MAX_TAG_COUNT: Final = 20
MAX_TAG_PART_LENGTH: Final = 128
_RESERVED_TAG_PREFIXES: Final = ("aliyun", "acs:")
_FILTER_FIELDS: Final = {
    "KeyState": "key_state",
    "KeySpec": "key_spec",
    "KeyUsage": "key_usage",
    "ProtectionLevel": "protection_level",
    "CreatorType": "creator_type",
    "DKMSInstanceId": "dkms_instance_id",
    "KeyId": "key_id",
    "keyId": "key_id",  # as the SDK's docstring spells it
}
# Filters that are not a field of the key: aliases, tags, the creator (the account).
_OTHER_FILTERS: Final = ("AliasName", "TagKey", "TagValue", "Creator")
_MAX_FILTER_COUNT: Final = 10


def create_key(engine: Engine, params: Params) -> dict[str, Any]:
    key_spec = params.choice("KeySpec", ("Aliyun_AES_256", "Aliyun_SM4"), "Aliyun_AES_256")
    key_usage = params.choice("KeyUsage", ("ENCRYPT/DECRYPT",), "ENCRYPT/DECRYPT")
    origin = params.choice("Origin", ("Aliyun_KMS", "EXTERNAL"), "Aliyun_KMS")
    protection_level = params.choice("ProtectionLevel", ("SOFTWARE", "HSM"), "SOFTWARE")
    description = _description(params.optional("Description") or "")
    rotation_interval = _rotation_policy(params, required=False)
    if rotation_interval is not None and origin == "EXTERNAL":
        raise invalid("EnableAutomaticRotation")
    tags = merged_tags(params, {}) if params.optional("Tags") else {}
    instance_id = dkms_instance_id(params)
    with engine.transaction() as draft:
        if len(draft.keys) >= engine.limits.keys:
            raise limit_exceeded(f"{engine.limits.keys} CMKs per region")
        now = engine.clock()
        import uuid  # here, not at the top: it imports platform

        key = KeyRecord(
            key_id=str(uuid.uuid4()),
            description=description,
            key_state=PENDING_IMPORT if origin == "EXTERNAL" else ENABLED,
            creation_time=now,
            key_spec=key_spec,
            key_usage=key_usage,
            origin=origin,
            protection_level=protection_level,
            rotation_interval=rotation_interval,
            last_rotation_time=now,
            tags=tags,
            dkms_instance_id=instance_id,
        )
        draft.keys[key.key_id] = key
        if origin != "EXTERNAL":
            _check_version_quota(engine, draft)
            engine.add_primary_version(draft, key, now)
    return {"KeyMetadata": engine.key_metadata(key)}


def describe_key(engine: Engine, params: Params) -> dict[str, Any]:
    _, key = engine.read(params.required("KeyId"), ANY_STATE)
    return {"KeyMetadata": engine.key_metadata(key)}


def list_keys(engine: Engine, params: Params) -> dict[str, Any]:
    number, size = params.page(max_size=100)
    filters = _filters(params)
    state = engine.read_all()
    matched = [
        key
        for key in sorted(state.keys.values(), key=lambda k: (k.creation_time, k.key_id))
        if all(_matches(engine, state, key, field, values) for field, values in filters)
    ]
    page = [
        {"KeyId": key.key_id, "KeyArn": engine.key_arn(key.key_id)}
        for key in page_of(matched, number, size)
    ]
    return {
        "Keys": {"Key": page},
        "TotalCount": len(matched),
        "PageNumber": number,
        "PageSize": size,
    }


def update_key_description(engine: Engine, params: Params) -> dict[str, Any]:
    key_ref = params.required("KeyId")
    description = _description(params.required("Description", allow_empty=True))
    with engine.transaction() as draft:
        engine.key_in(draft, key_ref, MODIFY_RULE).description = description
    return {}


def enable_key(engine: Engine, params: Params) -> dict[str, Any]:
    return _set_state(engine, params, ENABLED)


def disable_key(engine: Engine, params: Params) -> dict[str, Any]:
    return _set_state(engine, params, DISABLED)


def _set_state(engine: Engine, params: Params, key_state: str) -> dict[str, Any]:
    key_ref = params.required("KeyId")
    with engine.transaction() as draft:
        engine.key_in(draft, key_ref, TOGGLE_RULE).key_state = key_state
    return {}


def schedule_key_deletion(engine: Engine, params: Params) -> dict[str, Any]:
    key_ref = params.required("KeyId")
    days = params.integer("PendingWindowInDays", default=None, low=7, high=366)
    with engine.transaction() as draft:
        key = engine.key_in(draft, key_ref, SCHEDULE_RULE)
        key.key_state = PENDING_DELETION
        key.deletion_time = engine.clock() + days * DAY
    return {}


def cancel_key_deletion(engine: Engine, params: Params) -> dict[str, Any]:
    key_ref = params.required("KeyId")
    with engine.transaction() as draft:
        key = engine.key_in(draft, key_ref, CANCEL_RULE)
        primary = draft.versions.get(key.primary_version_id)
        has_material = primary is not None and bool(primary.wrapped_material)
        key.key_state = ENABLED if has_material else PENDING_IMPORT
        key.deletion_time = None
    return {}


def create_key_version(engine: Engine, params: Params) -> dict[str, Any]:
    key_ref = params.required("KeyId")
    with engine.transaction() as draft:
        key = engine.key_in(draft, key_ref, USE_RULE)
        _refuse_external(key)
        _check_version_quota(engine, draft)
        now = engine.clock()
        version_id = engine.add_primary_version(draft, key, now)
    return {"KeyVersion": _version_item(key.key_id, version_id, now)}


def list_key_versions(engine: Engine, params: Params) -> dict[str, Any]:
    key_ref = params.required("KeyId")
    number, size = params.page(max_size=101, min_size=0)
    state, key = engine.read(key_ref, ANY_STATE)
    page = [
        _version_item(key.key_id, version_id, state.versions[version_id].creation_time)
        for version_id in page_of(key.version_ids, number, size)
    ]
    return {
        "KeyVersions": {"KeyVersion": page},
        "TotalCount": len(key.version_ids),
        "PageNumber": number,
        "PageSize": size,
    }


def describe_key_version(engine: Engine, params: Params) -> dict[str, Any]:
    key_ref = params.required("KeyId")
    version_id = params.required("KeyVersionId")
    state, key = engine.read(key_ref, ANY_STATE)
    if version_id not in key.version_ids:
        raise key_version_not_found()
    creation_time = state.versions[version_id].creation_time
    return {"KeyVersion": _version_item(key.key_id, version_id, creation_time)}


def update_rotation_policy(engine: Engine, params: Params) -> dict[str, Any]:
    key_ref = params.required("KeyId")
    rotation_interval = _rotation_policy(params, required=True)
    with engine.transaction() as draft:
        key = engine.key_in(draft, key_ref, USE_RULE)
        if rotation_interval is not None:
            _refuse_external(key)
        key.rotation_interval = rotation_interval
    return {}


def tag_resource(engine: Engine, params: Params) -> dict[str, Any]:
    key_ref = _tagged_key(params)
    with engine.transaction() as draft:
        key = engine.key_in(draft, key_ref, MODIFY_RULE)
        key.tags = merged_tags(params, key.tags)
    return {}


def untag_resource(engine: Engine, params: Params) -> dict[str, Any]:
    key_ref = _tagged_key(params)
    tag_keys = params.string_list("TagKeys")
    with engine.transaction() as draft:
        key = engine.key_in(draft, key_ref, MODIFY_RULE)
        for tag_key in tag_keys:
            key.tags.pop(tag_key, None)
    return {}


def list_resource_tags(engine: Engine, params: Params) -> dict[str, Any]:
    _, key = engine.read(params.required("KeyId"), ANY_STATE)
    tags = [
        {"KeyId": key.key_id, "TagKey": tag_key, "TagValue": key.tags[tag_key]}
        for tag_key in sorted(key.tags)
    ]
    return {"Tags": {"Tag": tags}}


# -- parameter helpers ---------------------------------------------------------------


def dkms_instance_id(params: Params) -> str:
    """The ``DKMSInstanceId`` of a new key or secret ("" when absent), bounded."""
    value = params.optional("DKMSInstanceId") or ""
    if len(value) > MAX_INSTANCE_ID_LENGTH:
        raise invalid("DKMSInstanceId")
    return value


def _description(description: str) -> str:
    if len(description) > MAX_DESCRIPTION_LENGTH:
        raise invalid("Description")
    return description


def _rotation_policy(params: Params, *, required: bool) -> int | None:
    """The rotation interval in seconds if automatic rotation is to be on, else None."""
    enabled = params.boolean("EnableAutomaticRotation", default=False, required=required)
    interval = params.interval("RotationInterval", low_days=7, high_days=365)
    if not enabled:
        return None
    if interval is None:
        raise missing("RotationInterval")
    return interval


def _refuse_external(key: KeyRecord) -> None:
    # Imported material is the user's: the service makes no new versions of it.
    if key.origin == "EXTERNAL":
        raise ServiceError("Unsupported.Origin", "The key origin does not support this.", 400)


def _check_version_quota(engine: Engine, state: StoreState) -> None:
    if len(state.versions) >= engine.limits.versions:
        raise limit_exceeded(f"{engine.limits.versions} key versions per region")


def _version_item(key_id: str, version_id: str, creation_time: float) -> dict[str, str]:
    return {"KeyId": key_id, "KeyVersionId": version_id, "CreationDate": format_time(creation_time)}


def _matches(
    engine: Engine, state: StoreState, key: KeyRecord, field: str, values: set[str]
) -> bool:
    """Whether ``key`` passes one filter: any of ``values`` (ORed) matches."""
    if field == "AliasName":
        return any(state.aliases.get(name) == key.key_id for name in values)
    if field == "TagKey":
        return bool(values & key.tags.keys())
    if field == "TagValue":
        return bool(values & set(key.tags.values()))
    if field == "Creator":
        return engine.account_id in values
    return getattr(key, field) in values


def _filters(params: Params) -> list[tuple[str, set[str]]]:
    """ListKeys ``Filters``: record field (or filter name) and accepted values, per filter."""
    value = params.json("Filters")
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > _MAX_FILTER_COUNT:
        raise invalid("Filters")
    filters = []
    for item in value:
        name = item.get("Key") if isinstance(item, dict) else None
        if not Params.is_text(name) or (name not in _FILTER_FIELDS and name not in _OTHER_FILTERS):
            raise invalid("Filters")
        values = item.get("Values")
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise invalid("Filters")
        filters.append((_FILTER_FIELDS.get(name, name), set(values)))
    return filters


def _tagged_key(params: Params) -> str:
    # The API also tags secrets and certificates; the emulator only has keys.
    if params.optional("SecretName") or params.optional("CertificateId"):
        raise invalid("KeyId")
    return params.required("KeyId")


def merged_tags(params: Params, existing: dict[str, str]) -> dict[str, str]:
    """``existing`` updated with the ``Tags`` parameter, a JSON list of TagKey/TagValue."""
    value = params.json("Tags")
    if value is None:
        raise missing("Tags")
    if not isinstance(value, list):
        raise invalid("Tags")
    tags = dict(existing)
    for item in value:
        if not isinstance(item, dict):
            raise invalid("Tags")
        tag_key, tag_value = item.get("TagKey"), item.get("TagValue")
        if not (Params.is_text(tag_key) and Params.is_text(tag_value)):
            raise invalid("Tags")
        if not (_valid_tag_part(tag_key) and _valid_tag_part(tag_value)):
            raise invalid("Tags")
        tags[tag_key] = tag_value
    if len(tags) > MAX_TAG_COUNT:
        raise invalid("Tags")
    return tags


def _valid_tag_part(part: str) -> bool:
    return 1 <= len(part) <= MAX_TAG_PART_LENGTH and not part.lower().startswith(
        _RESERVED_TAG_PREFIXES
    )
