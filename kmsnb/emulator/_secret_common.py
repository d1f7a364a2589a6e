"""What the Secrets Manager operations share: errors, names, lookups, sealing, output.

Error codes and statuses are those of the CreateSecret reference (the only secrets page
of Alibaba's API reference that lists them): 404 ``Forbidden.ResourceNotFound``, 409
``Rejected.ResourceExist``, 409 ``Rejected.ResourceInDeleteWindow``, 400
``InvalidParameter``. Every operation on a secret waiting out its recovery window answers
``Rejected.ResourceInDeleteWindow``, except DescribeSecret, ListSecrets, RestoreSecret and
a forced DeleteSecret.

Housekeeping is lazy, as for keys (:mod:`._engine`): a secret whose recovery window has
passed is purged by the next transaction, and reads look past it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, Final

from kmsnb.emulator._blob import associated_data, open_blob, seal, split_blob
from kmsnb.emulator._engine import ENABLED, USE_RULE, Engine, format_time
from kmsnb.emulator._errors import ServiceError, invalid, key_not_found
from kmsnb.emulator._params import Params
from kmsnb.emulator._records import KeyRecord, StoreState
from kmsnb.emulator._secret_records import SECRET_NAME, SecretRecord

__all__ = [
    "ACS_CURRENT",
    "ACS_PREVIOUS",
    "DEFAULT_KEY_ALIAS",
    "GENERIC",
    "attach_stage",
    "check_not_deleted",
    "default_key_id",
    "in_delete_window",
    "optional_time",
    "read_secret",
    "resource_exist",
    "resource_not_found",
    "seal_value",
    "secret_arn",
    "secret_name",
    "stages_field",
    "tags_field",
    "transaction",
    "unseal_value",
    "valid_new_name",
    "version_of",
]

ACS_CURRENT: Final = "ACSCurrent"
ACS_PREVIOUS: Final = "ACSPrevious"
GENERIC: Final = "Generic"
#: The master key that protects secrets created without ``EncryptionKeyId`` (Alibaba makes
#: such a service key per account and region; ``alias/acs`` is reserved for the service).
DEFAULT_KEY_ALIAS: Final = "alias/acs/secrets-manager"
DEFAULT_KEY_DESCRIPTION: Final = "Default master key that protects secrets (kmsnb emulator)"


def resource_not_found() -> ServiceError:
    return ServiceError("Forbidden.ResourceNotFound", "The resource is not found.", 404)


def resource_exist() -> ServiceError:
    return ServiceError("Rejected.ResourceExist", "The resource already exists.", 409)


def in_delete_window() -> ServiceError:
    return ServiceError(
        "Rejected.ResourceInDeleteWindow", "The secret is planned to be deleted.", 409
    )


def secret_arn(engine: Engine, name: str) -> str:
    return f"acs:kms:{engine.region_id}:{engine.account_id}:secret/{name}"


def secret_name(engine: Engine, params: Params, name: str = "SecretName") -> str:
    """The ``SecretName`` parameter (a name or the secret's ARN) as a plain name."""
    value = params.required(name)
    if value.startswith("acs:"):
        prefix = f"acs:kms:{engine.region_id}:{engine.account_id}:secret/"
        if not value.startswith(prefix):
            raise resource_not_found()
        value = value.removeprefix(prefix)
    return value


def valid_new_name(name: str) -> str:
    # acs/ is the services' prefix.
    if SECRET_NAME.fullmatch(name) is None or name.startswith("acs/"):
        raise invalid("SecretName")
    return name


def _is_due(secret: SecretRecord, now: float) -> bool:
    return secret.planned_delete_time is not None and now >= secret.planned_delete_time


@contextlib.contextmanager
def transaction(engine: Engine) -> Iterator[StoreState]:
    """The engine's transaction, with secrets past their recovery window purged first."""
    with engine.transaction() as draft:
        now = engine.clock()
        for name in [name for name, s in draft.secrets.items() if _is_due(s, now)]:
            del draft.secrets[name]
        yield draft


def read_secret(engine: Engine, name: str) -> tuple[StoreState, SecretRecord]:
    """The current state and the secret ``name``; a purged or unknown one is not found."""
    state = engine.store.snapshot()
    secret = state.secrets.get(name)
    if secret is None or _is_due(secret, engine.clock()):
        raise resource_not_found()
    return state, secret


def check_not_deleted(secret: SecretRecord) -> None:
    if secret.planned_delete_time is not None:
        raise in_delete_window()


def version_of(secret: SecretRecord, version_id: str | None, stage: str | None) -> str:
    """The version that ``VersionId`` and/or ``VersionStage`` name (default ACSCurrent)."""
    if version_id is not None:
        if version_id not in secret.versions:
            raise resource_not_found()
        if stage is not None and secret.stages.get(stage) != version_id:
            raise resource_not_found()
        return version_id
    target = secret.stages.get(stage or ACS_CURRENT)
    if target is None:
        raise resource_not_found()
    return target


def attach_stage(secret: SecretRecord, stage: str, version_id: str) -> None:
    """Move ``stage`` to ``version_id``; moving ACSCurrent makes the old one ACSPrevious."""
    previous = secret.stages.get(stage)
    secret.stages[stage] = version_id
    if stage == ACS_CURRENT and previous is not None and previous != version_id:
        secret.stages[ACS_PREVIOUS] = previous


# -- the master key and the sealed values ------------------------------------------------


def default_key_id(engine: Engine, draft: StoreState) -> str:
    """The service key that protects secrets without an EncryptionKeyId; made on first use."""
    existing = draft.aliases.get(DEFAULT_KEY_ALIAS)
    if existing is not None and existing in draft.keys:
        return existing
    now = engine.clock()
    import uuid  # here, not at the top: it imports platform

    key = KeyRecord(
        key_id=str(uuid.uuid4()),
        description=DEFAULT_KEY_DESCRIPTION,
        key_state=ENABLED,
        creation_time=now,
        creator_type="Service",
        last_rotation_time=now,
    )
    draft.keys[key.key_id] = key
    engine.add_primary_version(draft, key, now)
    draft.aliases[DEFAULT_KEY_ALIAS] = key.key_id
    return key.key_id


def _value_context(name: str, version_id: str) -> bytes:
    return associated_data({"SecretName": name, "VersionId": version_id})


def seal_value(
    engine: Engine, state: StoreState, key_id: str, name: str, version_id: str, value: str
) -> str:
    """Encrypt a secret value under the primary version of ``key_id`` (Enabled)."""
    key = engine.key_in(state, key_id, USE_RULE)
    version = state.versions.get(key.primary_version_id)
    if version is None:
        raise AssertionError("kmsnb: internal error: an Enabled key without its primary version")
    aead = engine.store.aead(version)
    return seal(version.version_id, aead, value.encode("utf-8"), _value_context(name, version_id))


def unseal_value(engine: Engine, secret: SecretRecord, version_id: str) -> str:
    """Decrypt a stored value; the master key must be usable (Enabled), as for Decrypt."""
    sealed = secret.versions[version_id].sealed_value
    key_version_id, unverified = split_blob(sealed)
    _, _key = engine.read(secret.encryption_key_id, USE_RULE)
    key_version = engine.store.snapshot().versions.get(key_version_id)
    if key_version is None:
        raise key_not_found()
    plaintext = open_blob(
        engine.store.aead(key_version), unverified, _value_context(secret.name, version_id)
    )
    return plaintext.decode("utf-8")


# -- output ------------------------------------------------------------------------------


def stages_field(secret: SecretRecord, version_id: str) -> dict[str, list[str]]:
    return {"VersionStage": secret.stages_of(version_id)}


def optional_time(timestamp: float | None) -> str | None:
    return format_time(timestamp) if timestamp is not None else None


def tags_field(secret: SecretRecord) -> dict[str, Any]:
    return {"Tag": [{"TagKey": k, "TagValue": secret.tags[k]} for k in sorted(secret.tags)]}
