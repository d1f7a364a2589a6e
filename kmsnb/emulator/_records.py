"""The keystore's records in their JSON form (``keystore.json``), authenticated.

The records themselves (:class:`KeyRecord`, :class:`KeyVersionRecord`, :class:`StoreState`)
are in :mod:`kmsnb.emulator._state`, and importable from here.

The file is one JSON object::

    {"format": "kmsnb-emulator-keystore/2",
     "write_id": "<32 hex digits>",             # random, new at every write
     "generation": 42,                          # bumped by every write
     "root_key_check": "<b64 nonce||tag>",      # AES-GCM of b"" under the root key
     "keys": [{...KeyRecord...}, ...],
     "aliases": {"alias/name": "<key id>", ...},
     "versions": [{"version_id", "key_id", "creation_time", "wrapped_material"}, ...],
     "secrets": [{...SecretRecord...}, ...],   # kmsnb.emulator._secret_records
     "mac": "<b64 HMAC-SHA-256>"}

``wrapped_material`` is base64 of ``nonce (12) || AES-GCM(root key, material, AAD =
version id)``: the key material is never written in the clear. The material is 32 bytes
(16 for an ``Aliyun_SM4`` key); an imported key's versions are empty (no bytes at all)
while their material is deleted (DeleteKeyMaterial, or its expiry). Times are POSIX seconds.
``write_id`` comes first so that a reader can tell whether the file changed from its first
bytes (:func:`read_write_id`).

``mac`` authenticates everything else, so that no edit goes unnoticed (a version moved to
another key, a disabled key enabled, an alias redirected, a secret's stage moved):
HMAC-SHA-256, keyed with ``HKDF-SHA-256(root key, info="kmsnb emulator keystore.json v2
mac")``, over the UTF-8 of the other members as canonical JSON (keys sorted, no spaces,
``ensure_ascii``). The MAC is of the parsed document, not of its bytes, so only a change
of meaning fails it.

Format 1 (kmsnb 0.1) is the same without ``mac`` and ``secrets``, and its keys without
the fields that came with key import (``dkms_instance_id``, ``material_expire_time``,
``material_check``); see :mod:`kmsnb.emulator.store` for how it is migrated. Whatever a
file holds, :func:`parse_document` and :func:`decode_state` either return or raise
:class:`MalformedKeyStore`: every field is type- and range-checked and every reference
between records resolved (:mod:`kmsnb.emulator._record_checks`), so that no later call
meets a surprise.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any, NamedTuple

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from kmsnb.emulator import _record_checks as check
from kmsnb.emulator._record_checks import MalformedKeyStore
from kmsnb.emulator._state import KEY_FIELDS, KeyRecord, KeyVersionRecord, StoreState

__all__ = [
    "FORMAT",
    "FORMAT_V1",
    "MAC_KEY_SIZE",
    "Document",
    "KeyRecord",
    "KeyVersionRecord",
    "MalformedKeyStore",
    "StoreState",
    "decode_state",
    "derive_mac_key",
    "document_mac",
    "encode_state",
    "mac_matches",
    "parse_document",
    "read_write_id",
]

FORMAT = "kmsnb-emulator-keystore/2"
FORMAT_V1 = "kmsnb-emulator-keystore/1"
MAC_KEY_SIZE = 32
_MAC_INFO = b"kmsnb emulator keystore.json v2 mac"
_HEADER_SIZE = 128
_WRITE_ID_MEMBER = b'"write_id":"'
_WRITE_ID_SIZE = 32
# The checks of ids and names test characters against these sets rather than with regular
# expressions, whose compilation would be most of this module's import (start-up).
_LOWER_HEX = frozenset("0123456789abcdef")
_ALIAS_CHARACTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_/-")
_ALIAS_PREFIX = "alias/"
_MAX_ALIAS_SUFFIX = 249
# A version id: lower-case hex in groups of 8-4-4-4-12, as str(uuid.uuid4()) writes it.
_VERSION_ID_DASHES = (8, 13, 18, 23)
_VERSION_ID_SIZE = 36
_ROOT_CHECK_SIZE = 12 + 16
# nonce || AES-GCM(material) || tag, per key spec; an imported key's emptied version has none.
_WRAPPED_SIZES = {"Aliyun_AES_256": 12 + 32 + 16, "Aliyun_SM4": 12 + 16 + 16}
_MATERIAL_CHECK_SIZE = 32  # kmsnb.emulator._import: a GCM tag, in hex
_MAX_INTERVAL = 10**10
_KEY_STATES = frozenset({"Enabled", "Disabled", "PendingDeletion", "PendingImport"})
_CHOICES: dict[str, frozenset[str]] = {
    "key_spec": frozenset(_WRAPPED_SIZES),
    "key_usage": frozenset({"ENCRYPT/DECRYPT"}),
    "origin": frozenset({"Aliyun_KMS", "EXTERNAL"}),
    "protection_level": frozenset({"SOFTWARE", "HSM"}),
    "creator_type": frozenset({"User", "Service"}),
}
_MEMBERS_V1 = frozenset(
    {"format", "write_id", "generation", "root_key_check", "keys", "aliases", "versions"}
)
_MEMBERS_V1_SECRETS = _MEMBERS_V1 | {"secrets"}
_MEMBERS_V2 = _MEMBERS_V1_SECRETS | {"mac"}
_VERSION_FIELDS = frozenset({"version_id", "key_id", "creation_time", "wrapped_material"})


_KEY_FIELDS = frozenset(KEY_FIELDS)
# Format 1 (kmsnb 0.1) keys lack the fields of key import; a development build wrote them.
_KEY_FIELDS_V1 = _KEY_FIELDS - {"dkms_instance_id", "material_expire_time", "material_check"}


# --- writing -------------------------------------------------------------------------------------


def derive_mac_key(root_key: bytearray) -> bytearray:
    """The key of ``mac``, derived from the root key (HKDF-SHA-256)."""
    mac_key = bytearray(MAC_KEY_SIZE)
    HKDF(hashes.SHA256(), MAC_KEY_SIZE, salt=None, info=_MAC_INFO).derive_into(root_key, mac_key)
    return mac_key


def document_mac(mac_key: bytearray, document: Mapping[str, Any]) -> bytes:
    """HMAC-SHA-256 of the canonical JSON of ``document`` without its ``mac``."""
    return _mac(mac_key, document).finalize()


def _mac(mac_key: bytearray, document: Mapping[str, Any]) -> hmac.HMAC:
    # cryptography's HMAC, not the standard library's: the hashes are loaded already (for
    # HKDF), and hmac/hashlib would load OpenSSL a second time (_hashlib). Same bytes.
    members = {name: value for name, value in document.items() if name != "mac"}
    canonical = json.dumps(members, sort_keys=True, ensure_ascii=True, separators=(",", ":"))
    mac = hmac.HMAC(mac_key, hashes.SHA256())
    mac.update(canonical.encode("ascii"))
    return mac


def encode_state(state: StoreState, root_key_check: bytes, mac_key: bytearray) -> bytes:
    document: dict[str, Any] = {
        "format": FORMAT,
        "write_id": state.write_id,
        "generation": state.generation,
        "root_key_check": _b64(root_key_check),
        "keys": [key.to_json() for key in state.keys.values()],
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
        "secrets": _secret_records().encode_secrets(state.secrets) if state.secrets else [],
    }
    document["mac"] = _b64(document_mac(mac_key, document))
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


# --- reading -------------------------------------------------------------------------------------


class Document(NamedTuple):
    """``keystore.json`` parsed, and not yet trusted: check the root key, then the MAC."""

    format: str
    members: dict[str, Any]
    root_key_check: bytes
    mac: bytes | None


def parse_document(data: bytes) -> Document:
    """Parse the JSON and the members needed to authenticate it.

    Raises:
        MalformedKeyStore: not JSON, not a keystore of format 1 or 2, or malformed.
    """
    try:
        members: Any = json.loads(data)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise MalformedKeyStore(f"not valid JSON: {type(exc).__name__}") from None
    if not isinstance(members, dict) or members.get("format") not in (FORMAT, FORMAT_V1):
        raise MalformedKeyStore("not a kmsnb emulator keystore of a format this kmsnb reads")
    # A development build between 0.1 and format 2 wrote format 1 with secrets.
    allowed = [_MEMBERS_V2] if members["format"] == FORMAT else [_MEMBERS_V1, _MEMBERS_V1_SECRETS]
    if set(members) not in allowed:
        raise MalformedKeyStore(f"its members are not {sorted(allowed[0])}")
    mac = check.binary(members["mac"], "mac", (32,)) if "mac" in members else None
    root_key_check = check.binary(members["root_key_check"], "root_key_check", (_ROOT_CHECK_SIZE,))
    return Document(members["format"], members, root_key_check, mac)


def mac_matches(document: Document, mac_key: bytearray) -> bool:
    if document.mac is None:
        return False
    try:
        mac = _mac(mac_key, document.members)
    except (ValueError, RecursionError):  # NaN, or nested too deeply to canonicalise
        return False
    try:
        mac.verify(document.mac)  # in constant time
    except InvalidSignature:
        return False
    return True


def decode_state(document: Document) -> StoreState:
    """The state a parsed document holds, every field and reference checked.

    Raises:
        MalformedKeyStore: naming the first part that is wrong.
    """
    members = document.members
    write_id = members["write_id"]
    if not isinstance(write_id, str) or not _is_lower_hex(write_id, _WRITE_ID_SIZE):
        raise MalformedKeyStore("write_id is not 32 hex digits")
    generation = members["generation"]
    if not check.is_int(generation) or not 0 <= generation < 2**63:
        raise MalformedKeyStore("generation is not a count")
    key_fields = (_KEY_FIELDS,) if document.format == FORMAT else (_KEY_FIELDS_V1, _KEY_FIELDS)
    keys = [_key(item, where, key_fields) for item, where in _items(members["keys"], "keys")]
    versions = [_version(item, where) for item, where in _items(members["versions"], "versions")]
    secrets = members.get("secrets", [])  # anything but [] is parsed, or refused
    state = StoreState(
        keys={key.key_id: key for key in keys},
        aliases=_aliases(members["aliases"]),
        versions={version.version_id: version for version in versions},
        generation=generation,
        write_id=write_id,
        secrets=_secret_records().decode_secrets(secrets) if secrets != [] else {},
    )
    if len(state.keys) != len(keys) or len(state.versions) != len(versions):
        raise MalformedKeyStore("a key or a version appears twice")
    _check_references(state)
    return state


def _secret_records() -> Any:
    # Imported when secrets are met: keys alone (what `kmsnb encrypt` reads) skip its types.
    from kmsnb.emulator import _secret_records

    return _secret_records


def _items(value: Any, name: str) -> list[tuple[Any, str]]:
    if not isinstance(value, list):
        raise MalformedKeyStore(f"{name} is not a list")
    return [(item, f"{name}[{index}]") for index, item in enumerate(value)]


def _key(item: Any, where: str, fields: tuple[frozenset[str], ...]) -> KeyRecord:
    if not isinstance(item, dict) or set(item) not in fields:
        raise MalformedKeyStore(f"{where} does not have the fields of a key")
    key_state = item["key_state"]
    if not isinstance(key_state, str) or key_state not in _KEY_STATES:
        raise MalformedKeyStore(f"{where}.key_state is not a key state")
    for name, choices in _CHOICES.items():
        if not isinstance(item[name], str) or item[name] not in choices:
            raise MalformedKeyStore(f"{where}.{name} is not one of {sorted(choices)}")
    interval = item["rotation_interval"]
    if interval is not None and (not check.is_int(interval) or not 1 <= interval <= _MAX_INTERVAL):
        raise MalformedKeyStore(f"{where}.rotation_interval is not a duration")
    material_check = check.text(item.get("material_check", ""), f"{where}.material_check", 32)
    if material_check and not _is_lower_hex(material_check, _MATERIAL_CHECK_SIZE):
        raise MalformedKeyStore(f"{where}.material_check is not a check value")
    return KeyRecord(
        key_id=check.text(item["key_id"], f"{where}.key_id", 256, allow_empty=False),
        description=check.text(item["description"], f"{where}.description", check.MAX_TEXT),
        key_state=key_state,
        creation_time=check.time_value(item["creation_time"], f"{where}.creation_time"),
        key_spec=item["key_spec"],
        key_usage=item["key_usage"],
        origin=item["origin"],
        protection_level=item["protection_level"],
        creator_type=item["creator_type"],
        deletion_time=check.optional_time(item["deletion_time"], f"{where}.deletion_time"),
        primary_version_id=check.text(
            item["primary_version_id"], f"{where}.primary_version_id", 36
        ),
        version_ids=_version_ids(item["version_ids"], f"{where}.version_ids"),
        rotation_interval=interval,
        last_rotation_time=check.time_value(
            item["last_rotation_time"], f"{where}.last_rotation_time"
        ),
        tags=check.tags(item["tags"], f"{where}.tags"),
        dkms_instance_id=check.text(
            item.get("dkms_instance_id", ""),
            f"{where}.dkms_instance_id",
            check.MAX_INSTANCE_ID_LENGTH,
        ),
        material_expire_time=check.optional_time(
            item.get("material_expire_time"), f"{where}.material_expire_time"
        ),
        material_check=material_check,
    )


def _version(item: Any, where: str) -> KeyVersionRecord:
    if not isinstance(item, dict) or set(item) != _VERSION_FIELDS:
        raise MalformedKeyStore(f"{where} does not have the fields of a key version")
    version_id = item["version_id"]
    if not isinstance(version_id, str) or not _is_version_id(version_id):
        raise MalformedKeyStore(f"{where}.version_id is not a version id")
    return KeyVersionRecord(
        version_id=version_id,
        key_id=check.text(item["key_id"], f"{where}.key_id", 256, allow_empty=False),
        creation_time=check.time_value(item["creation_time"], f"{where}.creation_time"),
        # The size for the owner's spec is checked with the references.
        wrapped_material=check.binary(
            item["wrapped_material"], f"{where}.wrapped_material", (0, *_WRAPPED_SIZES.values())
        ),
    )


def _aliases(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise MalformedKeyStore("aliases is not an object")
    for name, key_id in value.items():
        if not _is_alias_name(name):
            raise MalformedKeyStore("an alias name is not valid")
        check.text(key_id, f"aliases[{name!r}]", 256, allow_empty=False)
    return dict(value)


def _check_references(state: StoreState) -> None:
    """Versions, keys and secrets name each other consistently; states and dates agree."""
    for key in state.keys.values():
        for version_id in key.version_ids:
            version = state.versions.get(version_id)
            if version is None or version.key_id != key.key_id:
                raise MalformedKeyStore(f"key {key.key_id} lists a version it does not have")
        if bool(key.primary_version_id) != bool(key.version_ids) or (
            key.primary_version_id and key.primary_version_id not in key.version_ids
        ):
            raise MalformedKeyStore(f"key {key.key_id} has no valid primary version")
        if key.key_state in ("Enabled", "Disabled") and not (
            key.version_ids and state.versions[key.primary_version_id].wrapped_material
        ):
            raise MalformedKeyStore(f"key {key.key_id} is {key.key_state} without material")
        if (key.key_state == "PendingDeletion") != (key.deletion_time is not None):
            raise MalformedKeyStore(f"key {key.key_id} has a deletion date out of place")
        _check_import(state, key)
    for version in state.versions.values():
        owner = state.keys.get(version.key_id)
        if owner is None or version.version_id not in owner.version_ids:
            raise MalformedKeyStore(f"version {version.version_id} belongs to no key")
        material = version.wrapped_material
        if material and len(material) != _WRAPPED_SIZES[owner.key_spec]:
            raise MalformedKeyStore(f"version {version.version_id} is not {owner.key_spec}")
    for secret in state.secrets.values():
        for secret_version in secret.versions.values():
            # The key may be gone (deleted after its window); a version left must be its own.
            sealer = state.versions.get(_secret_records().sealing_key_version(secret_version))
            if sealer is not None and sealer.key_id != secret.encryption_key_id:
                raise MalformedKeyStore(f"secret {secret.name} is sealed under another key")


def _check_import(state: StoreState, key: KeyRecord) -> None:
    """Only imported (EXTERNAL) keys wait for, lose, or check their material."""
    if key.origin == "EXTERNAL":
        if key.key_state == "PendingImport" and any(
            state.versions[version_id].wrapped_material for version_id in key.version_ids
        ):
            raise MalformedKeyStore(f"key {key.key_id} is PendingImport with material")
        return
    emptied = any(not state.versions[version_id].wrapped_material for version_id in key.version_ids)
    if (
        key.key_state == "PendingImport"
        or emptied
        or key.material_check
        or key.material_expire_time is not None
    ):
        raise MalformedKeyStore(f"key {key.key_id} has imported material but is not EXTERNAL")


def _version_ids(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or len(set(map(str, value))) != len(value):
        raise MalformedKeyStore(f"{where} is not a list of distinct version ids")
    return [check.text(item, where, 36, allow_empty=False) for item in value]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def read_write_id(header: bytes) -> str | None:
    """The ``write_id`` found in the first bytes of a keystore file, if any."""
    header = header[:_HEADER_SIZE]
    # The first occurrence of the member followed by 32 hex digits and a quote.
    start = header.find(_WRITE_ID_MEMBER)
    while start >= 0:
        value = header[start + len(_WRITE_ID_MEMBER) :][: _WRITE_ID_SIZE + 1]
        text = value[:_WRITE_ID_SIZE].decode("ascii", errors="replace")
        if value[_WRITE_ID_SIZE:] == b'"' and _is_lower_hex(text, _WRITE_ID_SIZE):
            return text
        start = header.find(_WRITE_ID_MEMBER, start + 1)
    return None


def _is_lower_hex(text: str, size: int) -> bool:
    return len(text) == size and _LOWER_HEX.issuperset(text)


def _is_version_id(text: str) -> bool:
    if len(text) != _VERSION_ID_SIZE or any(text[i] != "-" for i in _VERSION_ID_DASHES):
        return False
    return _LOWER_HEX.issuperset(text.replace("-", "", 4))


def _is_alias_name(text: str) -> bool:
    suffix = text.removeprefix(_ALIAS_PREFIX)
    return (
        text.startswith(_ALIAS_PREFIX)
        and 1 <= len(suffix) <= _MAX_ALIAS_SUFFIX
        and _ALIAS_CHARACTERS.issuperset(suffix)
    )
