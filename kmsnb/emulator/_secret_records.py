"""The emulator's Secrets Manager records and their JSON form in ``keystore.json``.

Secrets live in the keystore document under ``"secrets"``, one object per secret::

    {"name": "db/password", "secret_type": "Generic", "description": "",
     "encryption_key_id": "<key id>", "dkms_instance_id": "",
     "creation_time": 1700000000.0, "update_time": 1700000000.0,
     "planned_delete_time": null, "tags": {"team": "data"},
     "stages": {"ACSCurrent": "v2", "ACSPrevious": "v1"},
     "versions": [{"version_id": "v1", "creation_time": ..., "data_type": "text",
                   "sealed_value": "<base64>"}, ...]}

``sealed_value`` is the value encrypted under the secret's master key exactly as Encrypt
would seal it (:mod:`kmsnb.emulator._blob`: key version id, IV, AES-GCM ciphertext and
tag), with the secret's name and the version id as encryption context, so a sealed value
cannot be moved to another secret or version. The value is never written in the clear.
A keystore of format 1 without ``"secrets"`` (kmsnb 0.1) has none.

:func:`decode_secrets` checks every field's type and range and every reference inside a
secret (each stage marks one of its versions, ``ACSCurrent`` always marks one), as
:mod:`kmsnb.emulator._records` does for keys; the bounds are those the service enforces
on the way in, so that whatever the emulator stored it can read back.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from kmsnb.emulator import _record_checks as check
from kmsnb.emulator._record_checks import MalformedKeyStore

__all__ = [
    "MAX_DESCRIPTION_LENGTH",
    "MAX_SECRET_DATA_SIZE",
    "MAX_STAGE_LENGTH",
    "MAX_VERSION_ID_LENGTH",
    "SECRET_DATA_TYPES",
    "SECRET_NAME",
    "SecretRecord",
    "SecretVersionRecord",
    "decode_secrets",
    "encode_secrets",
    "sealing_key_version",
]

MAX_SECRET_DATA_SIZE: Final = 30_720
MAX_VERSION_ID_LENGTH: Final = 64
MAX_STAGE_LENGTH: Final = 64
MAX_DESCRIPTION_LENGTH: Final = 8192
SECRET_DATA_TYPES: Final = ("text", "binary")
# Letters, digits and _ / + = . @ -, as the console allows; acs/ is the services' prefix.
SECRET_NAME: Final = re.compile(r"[A-Za-z0-9_/+=.@-]{1,192}")
_SECRET_TYPES: Final = ("Generic",)
_KEY_VERSION_ID: Final = re.compile(
    rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
)
# A sealed value (kmsnb.emulator._blob): key version id (36), IV (12), ciphertext, tag (16).
_SEAL_OVERHEAD: Final = 36 + 12 + 16
_MAX_SEALED_TEXT: Final = 4 * ((_SEAL_OVERHEAD + MAX_SECRET_DATA_SIZE) // 3 + 1)


@dataclass(frozen=True)
class SecretVersionRecord:
    """One version of a secret's value, sealed; immutable once stored."""

    version_id: str
    creation_time: float
    data_type: str  # "text" or "binary" (the value is then base64 text)
    sealed_value: str


@dataclass
class SecretRecord:
    """A secret's metadata and versions. Mutated only on a transaction's private copy."""

    name: str
    encryption_key_id: str
    creation_time: float
    update_time: float
    secret_type: str = "Generic"  # noqa: S105 (a type name, not a password)
    description: str = ""
    dkms_instance_id: str = ""
    # Set while the secret waits out its recovery window (DeleteSecret), else None.
    planned_delete_time: float | None = None
    tags: dict[str, str] = field(default_factory=dict)
    # Stage label (ACSCurrent, ACSPrevious or a custom one) -> the version it marks.
    stages: dict[str, str] = field(default_factory=dict)
    # Version id -> version, in the order the versions were stored.
    versions: dict[str, SecretVersionRecord] = field(default_factory=dict)

    def copy(self) -> SecretRecord:
        return dataclasses.replace(
            self, tags=dict(self.tags), stages=dict(self.stages), versions=dict(self.versions)
        )

    def stages_of(self, version_id: str) -> list[str]:
        """The stage labels attached to ``version_id``, sorted."""
        return sorted(stage for stage, target in self.stages.items() if target == version_id)


_SECRET_FIELDS: Final = frozenset(f.name for f in dataclasses.fields(SecretRecord))
_VERSION_FIELDS: Final = frozenset(f.name for f in dataclasses.fields(SecretVersionRecord))


def encode_secrets(secrets: Mapping[str, SecretRecord]) -> list[dict[str, Any]]:
    encoded = []
    for secret in secrets.values():
        item = dataclasses.asdict(secret)
        item["versions"] = [dataclasses.asdict(version) for version in secret.versions.values()]
        encoded.append(item)
    return encoded


def decode_secrets(items: Any) -> dict[str, SecretRecord]:
    """Parse and check the ``"secrets"`` list of a keystore document.

    Raises:
        MalformedKeyStore: naming the first secret, field or reference that is wrong.
    """
    if not isinstance(items, list):
        raise MalformedKeyStore("secrets is not a list")
    secrets: dict[str, SecretRecord] = {}
    for index, item in enumerate(items):
        secret = _secret(item, f"secrets[{index}]")
        if secret.name in secrets:
            raise MalformedKeyStore(f"secrets[{index}]: the secret {secret.name} appears twice")
        secrets[secret.name] = secret
    return secrets


def _secret(item: Any, where: str) -> SecretRecord:
    if not isinstance(item, dict) or set(item) != _SECRET_FIELDS:
        raise MalformedKeyStore(f"{where} does not have the fields of a secret")
    name = item["name"]
    if not isinstance(name, str) or SECRET_NAME.fullmatch(name) is None:
        raise MalformedKeyStore(f"{where}.name is not a secret name")
    if item["secret_type"] not in _SECRET_TYPES:
        raise MalformedKeyStore(f"{where}.secret_type is not one of {list(_SECRET_TYPES)}")
    versions = _versions(item["versions"], f"{where}.versions")
    stages = item["stages"]
    if not isinstance(stages, dict) or "ACSCurrent" not in stages:
        raise MalformedKeyStore(f"{where}.stages is not a map of stages with ACSCurrent")
    for stage, version_id in stages.items():
        check.text(stage, f"{where}.stages", MAX_STAGE_LENGTH, allow_empty=False)
        if not isinstance(version_id, str) or version_id not in versions:
            raise MalformedKeyStore(f"{where}.stages[{stage!r}] marks no version of the secret")
    return SecretRecord(
        name=name,
        encryption_key_id=check.text(
            item["encryption_key_id"], f"{where}.encryption_key_id", 256, allow_empty=False
        ),
        creation_time=check.time_value(item["creation_time"], f"{where}.creation_time"),
        update_time=check.time_value(item["update_time"], f"{where}.update_time"),
        secret_type=item["secret_type"],
        description=check.text(item["description"], f"{where}.description", MAX_DESCRIPTION_LENGTH),
        dkms_instance_id=check.text(
            item["dkms_instance_id"], f"{where}.dkms_instance_id", check.MAX_INSTANCE_ID_LENGTH
        ),
        planned_delete_time=check.optional_time(
            item["planned_delete_time"], f"{where}.planned_delete_time"
        ),
        tags=check.tags(item["tags"], f"{where}.tags"),
        stages=dict(stages),
        versions=versions,
    )


def _versions(value: Any, where: str) -> dict[str, SecretVersionRecord]:
    if not isinstance(value, list) or not value:
        raise MalformedKeyStore(f"{where} is not a list of versions")
    versions: dict[str, SecretVersionRecord] = {}
    for index, item in enumerate(value):
        version = _version(item, f"{where}[{index}]")
        if version.version_id in versions:
            raise MalformedKeyStore(f"{where}[{index}]: a version appears twice")
        versions[version.version_id] = version
    return versions


def _version(item: Any, where: str) -> SecretVersionRecord:
    if not isinstance(item, dict) or set(item) != _VERSION_FIELDS:
        raise MalformedKeyStore(f"{where} does not have the fields of a secret version")
    if item["data_type"] not in SECRET_DATA_TYPES:
        raise MalformedKeyStore(f"{where}.data_type is not one of {list(SECRET_DATA_TYPES)}")
    sealed = item["sealed_value"]
    if not isinstance(sealed, str) or len(sealed) > _MAX_SEALED_TEXT:
        raise MalformedKeyStore(f"{where}.sealed_value is not a sealed value")
    try:
        raw = base64.b64decode(sealed, validate=True)
    except (binascii.Error, ValueError):
        raise MalformedKeyStore(f"{where}.sealed_value is not base64") from None
    if len(raw) < _SEAL_OVERHEAD or _KEY_VERSION_ID.fullmatch(raw[:36]) is None:
        raise MalformedKeyStore(f"{where}.sealed_value is not a sealed value")
    return SecretVersionRecord(
        version_id=check.text(
            item["version_id"], f"{where}.version_id", MAX_VERSION_ID_LENGTH, allow_empty=False
        ),
        creation_time=check.time_value(item["creation_time"], f"{where}.creation_time"),
        data_type=item["data_type"],
        sealed_value=sealed,
    )


def sealing_key_version(version: SecretVersionRecord) -> str:
    """The id of the key version that sealed a (decoded, so well-formed) version's value."""
    return base64.b64decode(version.sealed_value)[:36].decode("ascii")
