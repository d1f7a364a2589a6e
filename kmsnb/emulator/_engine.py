"""What every operation shares: key lookup, the key-state rules, lazy housekeeping, output.

Housekeeping is lazy: a key whose deletion window has passed is purged, and a key whose
rotation is due gets a new primary version, the next time any call looks at it, and in
every write transaction. Nothing runs in the background. On a keystore that cannot be
written, reads see due deletions applied (the keys are gone) and rotations wait: a new
version that could not be saved would encrypt data no one could decrypt later.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final, NamedTuple

from kmsnb.emulator._errors import ServiceError, alias_not_found, key_not_found
from kmsnb.emulator._records import KeyRecord, StoreState
from kmsnb.emulator.store import KeyStore

__all__ = [
    "ALIAS_RULE",
    "ANY_STATE",
    "CANCEL_RULE",
    "DISABLED",
    "ENABLED",
    "MODIFY_RULE",
    "PENDING_DELETION",
    "PENDING_IMPORT",
    "SCHEDULE_RULE",
    "TOGGLE_RULE",
    "USE_RULE",
    "Engine",
    "Limits",
    "format_time",
]

ENABLED: Final = "Enabled"
DISABLED: Final = "Disabled"
PENDING_DELETION: Final = "PendingDeletion"
PENDING_IMPORT: Final = "PendingImport"

_STATE_MODIFIED_FAILED: Final = "Rejected.StateModifiedFailed"

# The key-state x operation matrix (docs/kms-api.md, "Key states"): for each class of operation, the
# error code per state that refuses it. A state not listed allows the operation.
StateRule = Mapping[str, str]
ANY_STATE: StateRule = {}
USE_RULE: StateRule = {
    DISABLED: "Rejected.Disabled",
    PENDING_DELETION: "Rejected.PendingDeletion",
    PENDING_IMPORT: "Rejected.PendingImport",
}
TOGGLE_RULE: StateRule = {
    PENDING_DELETION: _STATE_MODIFIED_FAILED,
    PENDING_IMPORT: _STATE_MODIFIED_FAILED,
}
SCHEDULE_RULE: StateRule = {PENDING_DELETION: _STATE_MODIFIED_FAILED}
CANCEL_RULE: StateRule = {
    ENABLED: _STATE_MODIFIED_FAILED,
    DISABLED: _STATE_MODIFIED_FAILED,
    PENDING_IMPORT: _STATE_MODIFIED_FAILED,
}
ALIAS_RULE: StateRule = {PENDING_DELETION: _STATE_MODIFIED_FAILED}
MODIFY_RULE: StateRule = {PENDING_DELETION: "Rejected.PendingDeletion"}


class Limits(NamedTuple):
    """Per-region quotas (``docs/kms-api.md``, "Quotas"); tests raise them to create many keys.

    A named tuple, not a dataclass: ``dataclasses`` costs every ``local:`` KMS its import.
    """

    keys: int = 200
    aliases: int = 300
    versions: int = 10_000


def format_time(timestamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


class Engine:
    """The store, the clock and the account, with the lookups the operations share."""

    def __init__(
        self,
        store: KeyStore,
        *,
        region_id: str,
        account_id: str,
        clock: Callable[[], float],
        limits: Limits,
    ) -> None:
        self.store = store
        self.region_id = region_id
        self.account_id = account_id
        self.clock = clock
        self.limits = limits

    def key_arn(self, key_id: str) -> str:
        return f"acs:kms:{self.region_id}:{self.account_id}:key/{key_id}"

    def alias_arn(self, alias_name: str) -> str:
        return f"acs:kms:{self.region_id}:{self.account_id}:{alias_name}"

    # -- finding keys ----------------------------------------------------------------

    def resolve(self, state: StoreState, key_ref: str) -> str:
        """The key id that a KeyId parameter (id, ``alias/...`` or ARN) names."""
        if key_ref.startswith("acs:"):
            key_ref = self._arn_resource(key_ref)
        if key_ref.startswith("alias/"):
            key_id = state.aliases.get(key_ref)
            if key_id is None:
                raise alias_not_found()
            key_ref = key_id
        if key_ref not in state.keys:
            raise key_not_found()
        return key_ref

    def key_in(self, state: StoreState, key_ref: str, rule: StateRule) -> KeyRecord:
        """Resolve ``key_ref`` in ``state`` and check that ``rule`` allows its state."""
        key = state.keys[self.resolve(state, key_ref)]
        check_state(key, rule)
        return key

    def read(
        self, key_ref: str, rule: StateRule, *, state: StoreState | None = None
    ) -> tuple[StoreState, KeyRecord]:
        """Look a key up for reading, after any housekeeping it is due: in ``state``, a
        snapshot this call already took, else in a fresh one."""
        if state is None:
            state = self.store.snapshot()
        if self._is_due(state.keys[self.resolve(state, key_ref)]):
            state = self._housekept(state)
        return state, self.key_in(state, key_ref, rule)

    def read_all(self) -> StoreState:
        """The current state after housekeeping of every key, for listings."""
        state = self.store.snapshot()
        if any(self._is_due(key) for key in state.keys.values()):
            state = self._housekept(state)
        return state

    def _housekept(self, state: StoreState) -> StoreState:
        if not self.store.read_only:
            return self.housekeeping()
        now = self.clock()
        view = state.copy()
        for key in list(view.keys.values()):
            if key.key_state == PENDING_DELETION and self._is_due(key, now):
                view.remove_key(key.key_id)
        return view

    @contextlib.contextmanager
    def transaction(self) -> Iterator[StoreState]:
        """A store transaction whose draft has had its housekeeping done."""
        with self.store.transaction() as draft:
            now = self.clock()
            for key in list(draft.keys.values()):
                if self._is_due(key, now):
                    self._do_housekeeping(draft, key, now)
            yield draft

    def housekeeping(self) -> StoreState:
        with self.transaction():
            pass
        return self.store.snapshot()

    # -- changing keys ---------------------------------------------------------------

    def add_primary_version(self, state: StoreState, key: KeyRecord, now: float) -> str:
        version = self.store.add_version(state, key.key_id, now)
        key.primary_version_id = version.version_id
        key.last_rotation_time = now
        return version.version_id

    def drop_key_material(self, state: StoreState, key: KeyRecord) -> None:
        """Forget a key's imported material (DeleteKeyMaterial, or its expiry).

        The versions stay, emptied, so that blobs made under them answer PendingImport
        and the same material can be imported into them again (:mod:`._import`).
        """
        for version_id in key.version_ids:
            record = state.versions.get(version_id)
            if record is not None:
                state.versions[version_id] = record._replace(wrapped_material=b"")
        key.material_expire_time = None
        if key.key_state != PENDING_DELETION:
            key.key_state = PENDING_IMPORT

    def _is_due(self, key: KeyRecord, now: float | None = None) -> bool:
        if _material_expired(key, self.clock() if now is None else now):
            return True
        if key.key_state == PENDING_DELETION:
            due_time = key.deletion_time
        elif key.key_state == ENABLED and key.rotation_interval is not None:
            due_time = key.last_rotation_time + key.rotation_interval
        else:
            return False
        return due_time is not None and (self.clock() if now is None else now) >= due_time

    def _do_housekeeping(self, state: StoreState, key: KeyRecord, now: float) -> None:
        if key.key_state == PENDING_DELETION:
            state.remove_key(key.key_id)
        elif _material_expired(key, now):
            self.drop_key_material(state, key)
        else:
            self.add_primary_version(state, key, now)

    # -- output ----------------------------------------------------------------------

    def key_metadata(self, key: KeyRecord) -> dict[str, Any]:
        """``KeyMetadata`` as CreateKey and DescribeKey return it."""
        metadata: dict[str, Any] = {
            "KeyId": key.key_id,
            "Arn": self.key_arn(key.key_id),
            "KeyState": key.key_state,
            "KeyUsage": key.key_usage,
            "KeySpec": key.key_spec,
            "CreationDate": format_time(key.creation_time),
            "Creator": self.account_id,
            "Description": key.description,
            "DeleteDate": format_time(key.deletion_time) if key.deletion_time else "",
            "MaterialExpireTime": (
                format_time(key.material_expire_time) if key.material_expire_time else ""
            ),
            "Origin": key.origin,
            "ProtectionLevel": key.protection_level,
            "PrimaryKeyVersion": key.primary_version_id,
            "AutomaticRotation": _rotation_status(key),
            "LastRotationDate": format_time(key.last_rotation_time),
            "DeletionProtection": "Disabled",
        }
        if key.rotation_interval is not None:
            metadata["RotationInterval"] = f"{key.rotation_interval}s"
            # Returned when rotation is Enabled or Suspended (a disabled key, or one pending
            # deletion), as the SDK documents: the date it would rotate once usable again.
            next_rotation = key.last_rotation_time + key.rotation_interval
            metadata["NextRotationDate"] = format_time(next_rotation)
        if key.dkms_instance_id:
            metadata["DKMSInstanceId"] = key.dkms_instance_id
        return metadata

    def _arn_resource(self, arn: str) -> str:
        parts = arn.split(":", 4)
        if len(parts) != 5 or parts[1] != "kms":
            raise key_not_found()
        _, _, region_id, account_id, resource = parts
        is_alias = resource.startswith("alias/")
        if (region_id, account_id) != (self.region_id, self.account_id):
            raise alias_not_found() if is_alias else key_not_found()
        if is_alias:
            return resource
        if resource.startswith("key/"):
            return resource.removeprefix("key/")
        raise key_not_found()


def _material_expired(key: KeyRecord, now: float) -> bool:
    expiry = key.material_expire_time
    return expiry is not None and key.key_state in (ENABLED, DISABLED) and now >= expiry


def check_state(key: KeyRecord, rule: StateRule) -> None:
    code = rule.get(key.key_state)
    if code is None:
        return
    if code == _STATE_MODIFIED_FAILED:
        raise ServiceError(code, "Keystate modified failed.", 409)
    raise ServiceError(
        code, f"The request was rejected because the key state is {key.key_state}.", 409
    )


def _rotation_status(key: KeyRecord) -> str:
    if key.rotation_interval is None:
        return "Disabled"
    return "Enabled" if key.key_state == ENABLED else "Suspended"
