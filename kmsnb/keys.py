"""``kmsnb.keys``: manage master keys and their aliases, the one place every face calls.

Every key argument follows the naming rule of :mod:`kmsnb._keynames` (a bare ``NAME``
means ``alias/NAME``); every ``kms=`` takes a client or a URI (:func:`kmsnb.connect`),
``None`` meaning the session's KMS. The functions return small records that show as text
(``print``) and as HTML tables in Jupyter; they hold ids, aliases, states and dates, never
key material::

    import kmsnb
    key = kmsnb.keys.create_key(alias="sales", description="sales data")
    kmsnb.keys.list_keys()
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar, overload

from kmsnb._keynames import ALIAS_PREFIX, resolve_key_name
from kmsnb._render import Rendered, Rows, cell_text
from kmsnb.connection import describe_kms, open_kms
from kmsnb.errors import AliasExistsError, KmsError
from kmsnb.kms._base import AliasInfo, KeyInfo, Kms, KmsClient

__all__ = [
    "AliasRecord",
    "KeyRecord",
    "KeyVersionRecord",
    "Records",
    "cancel_deletion",
    "create_alias",
    "create_key",
    "delete_alias",
    "describe",
    "disable",
    "enable",
    "list_aliases",
    "list_keys",
    "point_alias",
    "rotate",
    "schedule_deletion",
    "update_alias",
]

T = TypeVar("T")


@dataclass(frozen=True)
class KeyRecord(Rendered):
    """A master key: what DescribeKey says, with its aliases (and versions, from
    :func:`describe`)."""

    key_id: str
    arn: str
    state: str
    description: str
    created: str
    primary_version: str
    aliases: tuple[str, ...] = ()
    deletion_date: str | None = None
    automatic_rotation: str = "Disabled"
    versions: tuple[str, ...] | None = None
    title: str = "key"

    @classmethod
    def from_info(
        cls,
        info: KeyInfo,
        aliases: Sequence[str] = (),
        *,
        versions: Sequence[str] | None = None,
        title: str = "key",
    ) -> KeyRecord:
        return cls(
            key_id=info.key_id,
            arn=info.arn,
            state=info.key_state,
            description=info.description,
            created=info.creation_date,
            primary_version=info.primary_key_version,
            aliases=tuple(sorted(aliases)),
            deletion_date=info.deletion_date,
            automatic_rotation=info.automatic_rotation,
            versions=None if versions is None else tuple(versions),
            title=title,
        )

    def _table(self) -> tuple[str, Sequence[str] | None, Rows]:
        rows = [
            ["key id", self.key_id],
            ["aliases", ", ".join(self.aliases)],
            ["state", self.state],
            ["description", self.description],
            ["created", self.created],
            ["primary version", self.primary_version],
            ["arn", self.arn],
            ["automatic rotation", self.automatic_rotation],
        ]
        if self.deletion_date:
            rows.append(["deletion date", self.deletion_date])
        if self.versions is not None:
            rows.append(["versions", ", ".join(self.versions)])
        return self.title, None, [[name, cell_text(value)] for name, value in rows]


@dataclass(frozen=True)
class AliasRecord(Rendered):
    """An alias (``alias/NAME``) and the key it points to."""

    alias_name: str
    key_id: str

    def _table(self) -> tuple[str, Sequence[str] | None, Rows]:
        return "alias", None, [["alias", cell_text(self.alias_name)], ["key id", self.key_id]]


@dataclass(frozen=True)
class KeyVersionRecord(Rendered):
    """A version of a master key (what :func:`rotate` made)."""

    key_id: str
    key_version_id: str
    created: str

    def _table(self) -> tuple[str, Sequence[str] | None, Rows]:
        rows = [
            ["key id", self.key_id],
            ["new primary version", self.key_version_id],
            ["created", self.created],
        ]
        return "key rotated", None, [[name, cell_text(value)] for name, value in rows]


class Records(Rendered, Sequence[T], Generic[T]):
    """A list of records shown as one table; indexing gives the records themselves."""

    def __init__(
        self, title: str, records: Sequence[T], columns: Sequence[tuple[str, Callable[[T], object]]]
    ) -> None:
        self.title = title
        self._records = list(records)
        self._columns = list(columns)

    @overload
    def __getitem__(self, index: int) -> T: ...

    @overload
    def __getitem__(self, index: slice) -> list[T]: ...

    def __getitem__(self, index: int | slice) -> T | list[T]:
        return self._records[index]

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self) -> Iterator[T]:
        return iter(self._records)

    def __repr__(self) -> str:
        return str(self)

    def _table(self) -> tuple[str, Sequence[str] | None, Rows]:
        header = [name for name, _ in self._columns]
        rows = [[cell_text(get(record)) for _, get in self._columns] for record in self]
        title = f"{self.title} ({len(rows)})" if rows else f"{self.title}: none"
        return title, header if rows else None, rows


def _client(kms: Kms) -> KmsClient:
    # The data-key cache forwards key management to the client it wraps (and clears
    # itself when a key is disabled through it), so it passes as a client of its own.
    if isinstance(kms, KmsClient):
        return kms
    raise TypeError(
        f"{type(kms).__name__} encrypts but cannot manage keys; pass kms= a full client "
        "(kmsnb.connect()) or set one with kmsnb.session.set_kms()"
    )


def _alias_name(name: str) -> str:
    """``name`` as an alias: the naming rule, refusing what it reads as a key id."""
    alias = resolve_key_name(name)
    if not alias.startswith(ALIAS_PREFIX) or alias == ALIAS_PREFIX:
        raise ValueError(f"{name!r} names a key, not an alias; write alias/NAME")
    return alias


def _aliases_of(client: KmsClient, key_id: str) -> list[str]:
    return [alias.alias_name for alias in client.list_aliases(key_id)]


def _record(client: KmsClient, key: str, title: str = "key") -> KeyRecord:
    info = client.describe_key(resolve_key_name(key))
    return KeyRecord.from_info(info, _aliases_of(client, info.key_id), title=title)


def create_key(
    *, alias: str | None = None, description: str = "", kms: Kms | str | None = None
) -> KeyRecord:
    """Create a master key, and an alias for it.

    A taken alias is found before the key is created, so nothing is created then (on
    Alibaba Cloud a key is billed and takes at least 7 days to delete). Should the alias be
    taken in between, by someone else, the new key is scheduled for deletion (7 days) and
    the error says so.

    Args:
        alias: ``alias/NAME`` or a bare ``NAME``.
        description: a note kept with the key.
        kms: a KMS client or URI; ``None``: the session's.

    Raises:
        AliasExistsError: the alias exists (the message names the key it points to).
        ValueError: the alias names a key id rather than an alias.
        KmsError: the KMS refused.
    """
    name = _alias_name(alias) if alias is not None else None
    with open_kms(kms) as opened:
        client = _client(opened)
        if name is not None:
            _refuse_taken(client, name, created="no key was created")
        info = client.create_key(description)
        if name is None:
            return KeyRecord.from_info(info, title="key created")
        try:
            client.create_alias(name, info.key_id)
        except KmsError as error:
            raise _orphan_removed(client, info.key_id, name, error) from error
        return KeyRecord.from_info(info, [name], title="key created")


def _refuse_taken(client: KmsClient, alias: str, *, created: str) -> None:
    taken = {item.alias_name: item.key_id for item in client.list_aliases()}
    if alias in taken:
        raise AliasExistsError(alias, taken[alias], describe_kms(client), created=created)


def _orphan_removed(client: KmsClient, key_id: str, alias: str, error: KmsError) -> KmsError:
    """Schedule the deletion of a key whose alias could not be made (taken meanwhile), and
    the error to raise: the KMS's, saying what became of the key."""
    try:
        client.schedule_key_deletion(key_id, 7)
        fate = "is scheduled for deletion in 7 days (kmsnb.keys.cancel_deletion keeps it)"
    except KmsError:
        fate = f"could not be scheduled for deletion: delete it, or point {alias} at it"
    return type(error)(
        f"{error.message}; the new key {key_id} got no alias and {fate}",
        code=error.code,
        request_id=error.request_id,
        http_status=error.http_status,
    )


def describe(key: str, *, kms: Kms | str | None = None) -> KeyRecord:
    """A key's state, aliases and versions.

    Raises:
        KmsAccessDeniedError: no such key (or alias) in this KMS.
    """
    with open_kms(kms) as opened:
        client = _client(opened)
        info = client.describe_key(resolve_key_name(key))
        versions = [version.key_version_id for version in client.list_key_versions(info.key_id)]
        return KeyRecord.from_info(info, _aliases_of(client, info.key_id), versions=versions)


def list_keys(*, kms: Kms | str | None = None) -> Records[KeyRecord]:
    """Every master key, with its aliases."""
    with open_kms(kms) as opened:
        client = _client(opened)
        index: dict[str, list[str]] = {}
        for alias in client.list_aliases():
            index.setdefault(alias.key_id, []).append(alias.alias_name)
        records = [
            KeyRecord.from_info(info, index.get(info.key_id, [])) for info in client.list_keys()
        ]
    columns: list[tuple[str, Callable[[KeyRecord], object]]] = [
        ("key id", lambda record: record.key_id),
        ("aliases", lambda record: ", ".join(record.aliases)),
        ("state", lambda record: record.state),
        ("description", lambda record: record.description),
        ("created", lambda record: record.created),
    ]
    return Records("keys", records, columns)


def list_aliases(*, key: str | None = None, kms: Kms | str | None = None) -> Records[AliasRecord]:
    """The aliases (of ``key`` only, when given), sorted by name."""
    with open_kms(kms) as opened:
        client = _client(opened)
        key_id = None if key is None else client.describe_key(resolve_key_name(key)).key_id
        found: list[AliasInfo] = client.list_aliases(key_id)
    records = [AliasRecord(item.alias_name, item.key_id) for item in found]
    records.sort(key=lambda record: record.alias_name)
    columns: list[tuple[str, Callable[[AliasRecord], object]]] = [
        ("alias", lambda record: record.alias_name),
        ("key id", lambda record: record.key_id),
    ]
    return Records("aliases", records, columns)


def point_alias(name: str, key: str, *, kms: Kms | str | None = None) -> AliasRecord:
    """Point the alias ``name`` at ``key``, creating it or moving it (``%kms alias``).

    :func:`create_alias` refuses a taken alias and :func:`update_alias` a missing one,
    for callers (the CLI's ``alias create`` and ``alias update``) that mean one or the other.
    """
    alias = _alias_name(name)
    with open_kms(kms) as opened:
        client = _client(opened)
        key_id = client.describe_key(resolve_key_name(key)).key_id
        if alias in {item.alias_name for item in client.list_aliases()}:
            client.update_alias(alias, key_id)
        else:
            client.create_alias(alias, key_id)
    return AliasRecord(alias, key_id)


def create_alias(name: str, key: str, *, kms: Kms | str | None = None) -> AliasRecord:
    """Give ``key`` the new alias ``name``.

    Raises:
        AliasExistsError: the alias exists (checked first; the message names its key).
        KmsAccessDeniedError: no such key.
    """
    alias = _alias_name(name)
    with open_kms(kms) as opened:
        client = _client(opened)
        key_id = client.describe_key(resolve_key_name(key)).key_id
        _refuse_taken(client, alias, created="it was not moved")
        client.create_alias(alias, key_id)
    return AliasRecord(alias, key_id)


def update_alias(name: str, key: str, *, kms: Kms | str | None = None) -> AliasRecord:
    """Move the existing alias ``name`` to ``key``.

    Raises:
        KmsAccessDeniedError: no such alias (``Forbidden.AliasNotFound``) or key.
    """
    alias = _alias_name(name)
    with open_kms(kms) as opened:
        client = _client(opened)
        key_id = client.describe_key(resolve_key_name(key)).key_id
        client.update_alias(alias, key_id)
    return AliasRecord(alias, key_id)


def delete_alias(name: str, *, kms: Kms | str | None = None) -> str:
    """Delete the alias ``name`` (never its key); return it as ``alias/NAME``.

    Raises:
        KmsAccessDeniedError: no such alias (``Forbidden.AliasNotFound``).
    """
    alias = _alias_name(name)
    with open_kms(kms) as opened:
        _client(opened).delete_alias(alias)
    return alias


def enable(key: str, *, kms: Kms | str | None = None) -> KeyRecord:
    """Allow every use of ``key`` again."""
    with open_kms(kms) as opened:
        client = _client(opened)
        client.enable_key(resolve_key_name(key))
        return _record(client, key, "key enabled")


def disable(key: str, *, kms: Kms | str | None = None) -> KeyRecord:
    """Refuse every use of ``key`` (files under it cannot be read until it is enabled)."""
    with open_kms(kms) as opened:
        client = _client(opened)
        client.disable_key(resolve_key_name(key))
        return _record(client, key, "key disabled")


def rotate(key: str, *, kms: Kms | str | None = None) -> KeyVersionRecord:
    """Give ``key`` a new primary version; files made under older versions still decrypt."""
    with open_kms(kms) as opened:
        version = _client(opened).create_key_version(resolve_key_name(key))
    return KeyVersionRecord(version.key_id, version.key_version_id, version.creation_date)


def schedule_deletion(key: str, *, days: int, kms: Kms | str | None = None) -> KeyRecord:
    """Delete ``key`` after ``days`` (7 to 366); until then :func:`cancel_deletion` keeps it.

    Raises:
        ValueError: ``days`` out of range (checked before the KMS is asked).
    """
    if isinstance(days, bool) or not isinstance(days, int):
        raise TypeError(f"days must be an int, not {type(days).__name__}")
    if not 7 <= days <= 366:
        raise ValueError(f"days must be from 7 to 366, not {days}")
    with open_kms(kms) as opened:
        client = _client(opened)
        client.schedule_key_deletion(resolve_key_name(key), days)
        return _record(client, key, "key scheduled for deletion")


def cancel_deletion(key: str, *, kms: Kms | str | None = None) -> KeyRecord:
    """Keep a key that was scheduled for deletion."""
    with open_kms(kms) as opened:
        client = _client(opened)
        client.cancel_key_deletion(resolve_key_name(key))
        return _record(client, key, "key deletion cancelled")
