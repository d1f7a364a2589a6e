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
A keystore without ``"secrets"`` (made before Secrets Manager was emulated) has none.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["SecretRecord", "SecretVersionRecord", "decode_secrets", "encode_secrets"]


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


def encode_secrets(secrets: Mapping[str, SecretRecord]) -> list[dict[str, Any]]:
    encoded = []
    for secret in secrets.values():
        item = dataclasses.asdict(secret)
        item["versions"] = [dataclasses.asdict(version) for version in secret.versions.values()]
        encoded.append(item)
    return encoded


def decode_secrets(items: Any) -> dict[str, SecretRecord]:
    """Parse the ``"secrets"`` list of a keystore document.

    Raises:
        ValueError: if an item is not a secret this version can read.
    """
    if not isinstance(items, list):
        raise ValueError("malformed keystore: secrets is not a list")
    secrets: dict[str, SecretRecord] = {}
    try:
        for item in items:
            fields = dict(item)
            versions = [SecretVersionRecord(**version) for version in fields.pop("versions")]
            secret = SecretRecord(**fields, versions={v.version_id: v for v in versions})
            secrets[secret.name] = secret
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"malformed keystore: secret ({type(exc).__name__})") from None
    return secrets
