"""The keystore's records and their JSON form (``keystore.json``).

The file is one JSON object::

    {"format": "kmsnb-emulator-keystore/1",
     "write_id": "<32 hex digits>",             # random, new at every write
     "generation": 42,                          # bumped by every write
     "root_key_check": "<b64 nonce||tag>",      # AES-GCM of b"" under the root key
     "keys": [{...KeyRecord...}, ...],
     "aliases": {"alias/name": "<key id>", ...},
     "versions": [{"version_id", "key_id", "creation_time", "wrapped_material"}, ...],
     "secrets": [{...SecretRecord...}, ...]}   # kmsnb.emulator._secret_records

``wrapped_material`` is base64 of ``nonce (12) || AES-GCM(root key, material, AAD =
version id)``: the key material is never written in the clear. Times are POSIX seconds.
``write_id`` comes first so that a reader can tell whether the file changed from its first
bytes (:func:`read_write_id`).
"""

from __future__ import annotations

import base64
import dataclasses
import json
import re
from dataclasses import dataclass, field
from typing import Any

from kmsnb.emulator._secret_records import SecretRecord, decode_secrets, encode_secrets

__all__ = [
    "FORMAT",
    "KeyRecord",
    "KeyVersionRecord",
    "StoreState",
    "decode_state",
    "encode_state",
    "read_write_id",
]

FORMAT = "kmsnb-emulator-keystore/1"
_HEADER_SIZE = 128
_WRITE_ID = re.compile(rb'"write_id":"([0-9a-f]{32})"')


@dataclass(frozen=True)
class KeyVersionRecord:
    """One version of a master key; immutable once created."""

    version_id: str
    key_id: str
    creation_time: float
    wrapped_material: bytes


@dataclass
class KeyRecord:
    """A master key's metadata. Mutated only on a transaction's private copy."""

    key_id: str
    description: str
    key_state: str
    creation_time: float
    key_spec: str = "Aliyun_AES_256"
    key_usage: str = "ENCRYPT/DECRYPT"
    origin: str = "Aliyun_KMS"
    protection_level: str = "SOFTWARE"
    creator_type: str = "User"
    deletion_time: float | None = None
    primary_version_id: str = ""
    version_ids: list[str] = field(default_factory=list)
    # None means automatic rotation is off.
    rotation_interval: int | None = None
    last_rotation_time: float = 0.0
    tags: dict[str, str] = field(default_factory=dict)
    # -- issue 15: KMS-instance keys and imported (Origin=EXTERNAL) key material ------------
    dkms_instance_id: str = ""
    # When imported material stops working (None: never); kmsnb.emulator._import.
    material_expire_time: float | None = None
    # A check value of the imported material, so that only the same material can come back.
    material_check: str = ""

    def copy(self) -> KeyRecord:
        return dataclasses.replace(self, version_ids=list(self.version_ids), tags=dict(self.tags))


@dataclass
class StoreState:
    """Everything the keystore holds. Snapshots are shared: treat them as read-only."""

    keys: dict[str, KeyRecord] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)
    versions: dict[str, KeyVersionRecord] = field(default_factory=dict)
    generation: int = 0
    write_id: str = ""
    secrets: dict[str, SecretRecord] = field(default_factory=dict)  # Secrets Manager

    def copy(self) -> StoreState:
        """A copy that a transaction may mutate without disturbing readers of this one."""
        return StoreState(
            keys={key_id: key.copy() for key_id, key in self.keys.items()},
            aliases=dict(self.aliases),
            versions=dict(self.versions),  # version records are frozen: share them
            generation=self.generation,
            write_id=self.write_id,
            secrets={name: secret.copy() for name, secret in self.secrets.items()},
        )

    def remove_key(self, key_id: str) -> None:
        """Forget a key with its versions (and so their material) and its aliases."""
        key = self.keys.pop(key_id)
        for version_id in key.version_ids:
            self.versions.pop(version_id, None)
        for alias_name in [name for name, target in self.aliases.items() if target == key_id]:
            del self.aliases[alias_name]


def encode_state(state: StoreState, root_key_check: bytes) -> bytes:
    document = {
        "format": FORMAT,
        "write_id": state.write_id,
        "generation": state.generation,
        "root_key_check": _b64(root_key_check),
        "keys": [dataclasses.asdict(key) for key in state.keys.values()],
        "aliases": state.aliases,
        "versions": [
            {
                "version_id": version.version_id,
                "key_id": version.key_id,
                "creation_time": version.creation_time,
                "wrapped_material": _b64(version.wrapped_material),
            }
            for version in state.versions.values()
        ],
        "secrets": encode_secrets(state.secrets),
    }
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def decode_state(data: bytes) -> tuple[StoreState, bytes]:
    """Parse ``keystore.json``; return the state and the root-key check value.

    Raises:
        ValueError: if the document is not a keystore this version can read.
    """
    try:
        document: Any = json.loads(data)
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise ValueError("not a kmsnb emulator keystore")
        keys = [KeyRecord(**item) for item in document["keys"]]
        versions = [
            KeyVersionRecord(
                version_id=item["version_id"],
                key_id=item["key_id"],
                creation_time=float(item["creation_time"]),
                wrapped_material=base64.b64decode(item["wrapped_material"]),
            )
            for item in document["versions"]
        ]
        state = StoreState(
            keys={key.key_id: key for key in keys},
            aliases={str(name): str(key_id) for name, key_id in document["aliases"].items()},
            versions={version.version_id: version for version in versions},
            generation=int(document["generation"]),
            write_id=str(document["write_id"]),
            secrets=decode_secrets(document.get("secrets", [])),
        )
        return state, base64.b64decode(document["root_key_check"])
    except (KeyError, TypeError, AttributeError, UnicodeDecodeError) as exc:
        raise ValueError(f"malformed keystore: {type(exc).__name__}") from None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def read_write_id(path: str) -> str | None:
    """The ``write_id`` of the keystore file at ``path``, read from its first bytes alone."""
    try:
        with open(path, "rb") as file:
            header = file.read(_HEADER_SIZE)
    except FileNotFoundError:
        return None
    match = _WRITE_ID.search(header)
    return match.group(1).decode("ascii") if match else None
