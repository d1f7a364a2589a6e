"""The keystore's records in memory: key versions, keys, the whole state.

Plain classes rather than dataclasses (issue 16 item 3, start-up): ``dataclasses`` imports
``inspect`` and ``ast``, and every ``kmsnb encrypt`` with a ``local:`` KMS builds these.
They behave as the dataclasses they replace did: keyword or positional construction in
field order, equality field by field, ``repr`` naming every field (none holds key material
in the clear: ``wrapped_material`` is sealed under the root key). Their JSON form is in
:mod:`kmsnb.emulator._records`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

if TYPE_CHECKING:  # the module itself is imported for a keystore with secrets only
    from kmsnb.emulator._secret_records import SecretRecord

__all__ = ["KEY_FIELDS", "KeyRecord", "KeyVersionRecord", "StoreState"]


class KeyVersionRecord(NamedTuple):
    """One version of a master key; immutable once created."""

    version_id: str
    key_id: str
    creation_time: float
    wrapped_material: bytes


class _Fields:
    """``__eq__`` and ``__repr__`` over ``_FIELDS``, as a dataclass would write them."""

    __slots__ = ()
    _FIELDS: ClassVar[tuple[str, ...]] = ()

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self._FIELDS)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _Fields) or other.__class__ is not self.__class__:
            return NotImplemented
        return self._values() == other._values()

    # Mutable, so unhashable, as a dataclass with eq and without frozen.
    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._FIELDS)
        return f"{type(self).__qualname__}({fields})"


#: A key's fields, in the order ``keystore.json`` writes them.
KEY_FIELDS = (
    "key_id",
    "description",
    "key_state",
    "creation_time",
    "key_spec",
    "key_usage",
    "origin",
    "protection_level",
    "creator_type",
    "deletion_time",
    "primary_version_id",
    "version_ids",
    "rotation_interval",
    "last_rotation_time",
    "tags",
    "dkms_instance_id",
    "material_expire_time",
    "material_check",
)


class KeyRecord(_Fields):
    """A master key's metadata. Mutated only on a transaction's private copy."""

    __slots__ = KEY_FIELDS
    _FIELDS = KEY_FIELDS

    def __init__(
        self,
        key_id: str,
        description: str,
        key_state: str,
        creation_time: float,
        key_spec: str = "Aliyun_AES_256",
        key_usage: str = "ENCRYPT/DECRYPT",
        origin: str = "Aliyun_KMS",
        protection_level: str = "SOFTWARE",
        creator_type: str = "User",
        deletion_time: float | None = None,
        primary_version_id: str = "",
        version_ids: list[str] | None = None,
        # None means automatic rotation is off.
        rotation_interval: int | None = None,
        last_rotation_time: float = 0.0,
        tags: dict[str, str] | None = None,
        # -- KMS-instance keys and imported (Origin=EXTERNAL) key material ---------------
        dkms_instance_id: str = "",
        # When imported material stops working (None: never); kmsnb.emulator._import.
        material_expire_time: float | None = None,
        # A check value of the imported material, so that only the same material can come back.
        material_check: str = "",
    ) -> None:
        self.key_id = key_id
        self.description = description
        self.key_state = key_state
        self.creation_time = creation_time
        self.key_spec = key_spec
        self.key_usage = key_usage
        self.origin = origin
        self.protection_level = protection_level
        self.creator_type = creator_type
        self.deletion_time = deletion_time
        self.primary_version_id = primary_version_id
        self.version_ids: list[str] = [] if version_ids is None else version_ids
        self.rotation_interval = rotation_interval
        self.last_rotation_time = last_rotation_time
        self.tags: dict[str, str] = {} if tags is None else tags
        self.dkms_instance_id = dkms_instance_id
        self.material_expire_time = material_expire_time
        self.material_check = material_check

    def copy(self) -> KeyRecord:
        # Its own lists and maps, so that a draft's changes stay in the draft.
        copied = KeyRecord(*self._values())
        copied.version_ids = list(self.version_ids)
        copied.tags = dict(self.tags)
        return copied

    def to_json(self) -> dict[str, Any]:
        """The key's member of ``keystore.json``: every field, in :data:`KEY_FIELDS` order."""
        return dict(zip(KEY_FIELDS, self._values(), strict=True))


class StoreState(_Fields):
    """Everything the keystore holds. Snapshots are shared: treat them as read-only."""

    _FIELDS = ("keys", "aliases", "versions", "generation", "write_id", "secrets")
    __slots__ = _FIELDS

    def __init__(
        self,
        keys: dict[str, KeyRecord] | None = None,
        aliases: dict[str, str] | None = None,
        versions: dict[str, KeyVersionRecord] | None = None,
        generation: int = 0,
        write_id: str = "",
        secrets: dict[str, SecretRecord] | None = None,  # Secrets Manager
    ) -> None:
        self.keys: dict[str, KeyRecord] = {} if keys is None else keys
        self.aliases: dict[str, str] = {} if aliases is None else aliases
        self.versions: dict[str, KeyVersionRecord] = {} if versions is None else versions
        self.generation = generation
        self.write_id = write_id
        self.secrets: dict[str, SecretRecord] = {} if secrets is None else secrets

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
