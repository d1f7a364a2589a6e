"""Aliases: ``alias/name`` pointing at a key (``docs/kms-api.md``, "Aliases").

An alias name starts with ``alias/``, is at most 255 characters of letters, digits, ``_``,
``-`` and ``/``, and may not start with the reserved ``alias/acs``. Names are compared
exactly, as the service does.
"""

from __future__ import annotations

import re
from typing import Any, Final

from kmsnb.emulator._engine import ALIAS_RULE, ANY_STATE, MODIFY_RULE, Engine
from kmsnb.emulator._errors import ServiceError, alias_not_found, invalid, limit_exceeded
from kmsnb.emulator._params import Params, page_of

__all__ = [
    "create_alias",
    "delete_alias",
    "list_aliases",
    "list_aliases_by_key_id",
    "update_alias",
]

_ALIAS_NAME: Final = re.compile(r"alias/[A-Za-z0-9_/-]{1,249}")
_RESERVED_PREFIX: Final = "alias/acs"


def create_alias(engine: Engine, params: Params) -> dict[str, Any]:
    alias_name = _alias_name(params)
    key_ref = params.required("KeyId")
    with engine.transaction() as draft:
        key = engine.key_in(draft, key_ref, ALIAS_RULE)
        if alias_name in draft.aliases:
            raise ServiceError("AliasAlreadyExists", "AliasName Already Exists.", 400)
        if len(draft.aliases) >= engine.limits.aliases:
            raise limit_exceeded(f"{engine.limits.aliases} aliases per region")
        draft.aliases[alias_name] = key.key_id
    return {}


def update_alias(engine: Engine, params: Params) -> dict[str, Any]:
    alias_name = params.required("AliasName")
    key_ref = params.required("KeyId")
    with engine.transaction() as draft:
        if alias_name not in draft.aliases:
            raise alias_not_found()
        # Only the new target's state matters: PendingDeletion refuses, the rest is fine.
        draft.aliases[alias_name] = engine.key_in(draft, key_ref, MODIFY_RULE).key_id
    return {}


def delete_alias(engine: Engine, params: Params) -> dict[str, Any]:
    alias_name = params.required("AliasName")
    with engine.transaction() as draft:
        if draft.aliases.pop(alias_name, None) is None:
            raise alias_not_found()
    return {}


def list_aliases(engine: Engine, params: Params) -> dict[str, Any]:
    number, size = params.page(max_size=100, min_size=0)  # documented range 0-100
    aliases = engine.read_all().aliases
    return _alias_page(engine, sorted(aliases.items()), number, size)


def list_aliases_by_key_id(engine: Engine, params: Params) -> dict[str, Any]:
    key_ref = params.required("KeyId")
    number, size = params.page(max_size=101, min_size=0)  # documented range 0-101
    state, key = engine.read(key_ref, ANY_STATE)
    matched = sorted(
        (name, key_id) for name, key_id in state.aliases.items() if key_id == key.key_id
    )
    return _alias_page(engine, matched, number, size)


def _alias_name(params: Params) -> str:
    alias_name = params.required("AliasName")
    if _ALIAS_NAME.fullmatch(alias_name) is None or alias_name.startswith(_RESERVED_PREFIX):
        raise invalid("AliasName")
    return alias_name


def _alias_page(
    engine: Engine, aliases: list[tuple[str, str]], number: int, size: int
) -> dict[str, Any]:
    page = [
        {"AliasName": name, "AliasArn": engine.alias_arn(name), "KeyId": key_id}
        for name, key_id in page_of(aliases, number, size)
    ]
    return {
        "Aliases": {"Alias": page},
        "TotalCount": len(aliases),
        "PageNumber": number,
        "PageSize": size,
    }
