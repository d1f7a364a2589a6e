"""Which master key opened the data: the check every read makes on the KMS's Decrypt answer.

A kmsnb header, a column key's material and a tutorial file say which master key their
data key is under, but the writer chose what they say, and the key-slot MAC cannot vouch
for it: it is keyed from the data key, which the writer knows. A file made with
GenerateDataKey on a scratch key can name the key a reader trusts. The KMS's Decrypt
answer, though, names the key that really unwrapped the data key. So every read, before it
releases any plaintext:

1. compares that key with the one the file names (an alias or an ARN there is resolved
   through the KMS's DescribeKey) and raises :class:`~kmsnb.errors.WrongKeyError` when
   they differ. Always: a reader need not ask for it. The file's own authentication with
   the data key (the slot MAC, the column key's AES-GCM tag) is checked first, so that
   random damage stays an :class:`~kmsnb.errors.IntegrityError` and only a well-formed
   file under another key, a forgery, is a ``WrongKeyError``.
2. when the reader pins keys with ``allowed_keys``, checks that the key is one of them.
   The entries (ids, aliases or ARNs) are resolved through the KMS when the read starts;
   one that does not resolve is an error, never silently dropped. This is what the AWS
   Encryption SDK calls strict mode.

Every read path calls :func:`resolve_allowed_keys` once and :func:`unwrap_data_key` for
each data key, so the rule lives here only.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from kmsnb._keynames import resolve_key_name
from kmsnb._record import FrozenRecord
from kmsnb.errors import IntegrityError, KmsAccessDeniedError, WrongKeyError
from kmsnb.kms._base import DATA_KEY_SIZE, Kms, UnwrappedKey, wipe

if TYPE_CHECKING:
    from kmsnb.kms._info import KeyInfo

__all__ = ["AllowedKeys", "resolve_allowed_keys", "unwrap_data_key"]


class AllowedKeys(FrozenRecord):
    """``allowed_keys`` resolved through the KMS: each entry as given, with its key id.

    Secret-free and picklable, so that a Dask task can carry it to a worker.
    """

    # A FrozenRecord, not a dataclass: importing dataclasses cost a CLI call more than its
    # work (start-up). Frozen, compared, hashed and shown as the dataclass it was.
    __match_args__ = ("entries",)
    _FIELDS = _COMPARED = _SHOWN = __match_args__
    __slots__ = __match_args__

    entries: tuple[tuple[str, str], ...]  # (entry as given, the key id it resolved to)

    def __init__(self, entries: tuple[tuple[str, str], ...]) -> None:
        object.__setattr__(self, "entries", entries)

    @property
    def key_ids(self) -> frozenset[str]:
        return frozenset(key_id for _, key_id in self.entries)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.entries)

    def describe(self) -> str:
        """``'alias/a' (key 'K1'), 'K2'``: for error messages (repr escapes control bytes)."""
        return ", ".join(
            repr(name) if name == key_id else f"{name!r} (key {key_id!r})"
            for name, key_id in self.entries
        )


def _describer(kms: Kms) -> Callable[[str], KeyInfo] | None:
    # Any KmsClient has describe_key; the data-key cache forwards it to the client inside.
    describe = getattr(kms, "describe_key", None)
    return describe if callable(describe) else None


def resolve_allowed_keys(
    kms: Kms, allowed_keys: Iterable[str] | AllowedKeys | None
) -> AllowedKeys | None:
    """Resolve ``allowed_keys`` through ``kms`` (``None``: any key the file names).

    Raises:
        TypeError: ``allowed_keys`` is a lone ``str`` or holds a non-``str``, or ``kms``
            cannot resolve key names (it has no ``describe_key``).
        ValueError: ``allowed_keys`` is empty, or holds an empty entry.
        KmsAccessDeniedError: an entry names no key this KMS knows (or may describe).
        KmsError: the KMS failed otherwise.
    """
    if allowed_keys is None or isinstance(allowed_keys, AllowedKeys):
        return allowed_keys
    if isinstance(allowed_keys, str | bytes):
        raise TypeError(
            "allowed_keys must be a list of key ids, aliases or ARNs, not a single string; "
            f"write allowed_keys=[{allowed_keys!r}]"
        )
    entries = list(allowed_keys)
    for entry in entries:
        if not isinstance(entry, str):
            raise TypeError(f"allowed_keys entries must be str, not {type(entry).__name__}")
        if not entry:
            raise ValueError("allowed_keys entries must not be empty")
    # A bare NAME means alias/NAME here as everywhere (kmsnb._keynames).
    entries = [resolve_key_name(entry) for entry in entries]
    if not entries:
        raise ValueError(
            "allowed_keys is empty, so no file could be read; pass None to accept the key "
            "each file names"
        )
    describe = _describer(kms)
    if describe is None:
        raise TypeError(
            f"allowed_keys needs a KMS that can resolve key ids, aliases and ARNs "
            f"(describe_key); {type(kms).__name__} cannot"
        )
    return AllowedKeys(
        tuple((entry, _resolve(describe, entry)) for entry in dict.fromkeys(entries))
    )


def _resolve(describe: Callable[[str], KeyInfo], entry: str) -> str:
    try:
        return describe(entry).key_id
    except KmsAccessDeniedError as error:
        raise KmsAccessDeniedError(
            f"allowed_keys entry {entry!r} does not resolve to a master key: {error.message}; "
            "check the name (kmsnb key list, %kms keys)",
            code=error.code,
            request_id=error.request_id,
            http_status=error.http_status,
        ) from None


def unwrap_data_key(
    kms: Kms,
    wrapped_key: str,
    encryption_context: Mapping[str, str] | None,
    *,
    claimed_key_id: str | None,
    allowed: AllowedKeys | None,
    key_sizes: Collection[int] | None = (DATA_KEY_SIZE,),
    authenticate: Callable[[bytearray], object] | None = None,
    unwrap: Callable[[str, Mapping[str, str] | None], object] | None = None,
) -> UnwrappedKey:
    """Ask the KMS to unwrap ``wrapped_key``, then check which master key did.

    Args:
        claimed_key_id: the master key the file names (``None``: it names none).
        allowed: what :func:`resolve_allowed_keys` returned.
        key_sizes: the data key sizes this format uses (``None``: the caller checks).
        authenticate: checks the file's own authentication with the data key (raising
            ``IntegrityError``), before the key checks; it must release nothing.
        unwrap: the KMS call (default ``kms.decrypt_data_key``; column keys wrapped with
            Encrypt come back through ``kms.decrypt``).

    Returns:
        the unwrapped key; the caller wipes it. On any failure it is wiped here.

    Raises:
        WrongKeyError: the KMS refused; or it unwrapped with another key than the file
            names, or with one outside ``allowed``.
        IntegrityError: the wrapped key unwrapped to a key of the wrong size.
        KmsError: the KMS failed.
        TypeError: the KMS's ``decrypt_data_key`` does not return an ``UnwrappedKey``.
    """
    call = kms.decrypt_data_key if unwrap is None else unwrap
    unwrapped: Any = call(wrapped_key, encryption_context)
    if not isinstance(unwrapped, UnwrappedKey):
        if isinstance(unwrapped, bytearray):
            wipe(unwrapped)
        raise TypeError(
            f"{type(kms).__name__}.{getattr(call, '__name__', 'decrypt_data_key')} must "
            "return a kmsnb.kms.UnwrappedKey "
            "(the data key and the master key the KMS's Decrypt answer names), not "
            f"{type(unwrapped).__name__}"
        )
    try:
        if key_sizes is not None and len(unwrapped.plaintext) not in key_sizes:
            raise IntegrityError(
                f"the wrapped data key unwrapped to {len(unwrapped.plaintext)} bytes, not a "
                f"{'- or '.join(map(str, sorted(key_sizes)))}-byte data key; the file was "
                "altered or not made by kmsnb"
            )
        if authenticate is not None:
            authenticate(unwrapped.plaintext)
        if claimed_key_id is not None:
            _check_claim(kms, unwrapped.key_id, claimed_key_id)
        if allowed is not None and unwrapped.key_id not in allowed.key_ids:
            raise WrongKeyError(
                f"the KMS unwrapped the data key with master key {unwrapped.key_id!r}, which "
                f"is not in allowed_keys ({allowed.describe()}); this data is not under a "
                "key you allow",
                found_key_id=unwrapped.key_id,
                expected_key_ids=allowed.names,
            )
    except BaseException:
        unwrapped.wipe()
        raise
    return unwrapped


def _check_claim(kms: Kms, found: str, claimed: str) -> None:
    """Refuse a data key unwrapped by another master key than the one the file names."""
    if found == claimed:
        return  # kmsnb writes the key id GenerateDataKey named: no KMS call needed
    describe = _describer(kms)
    resolved: str | None = None
    if describe is not None:
        try:
            resolved = describe(claimed).key_id
        except KmsAccessDeniedError:
            resolved = None  # a name the KMS does not know cannot be the key that unwrapped
    if resolved == found:
        return
    named = repr(claimed) if resolved in (None, claimed) else f"{claimed!r} (key {resolved!r})"
    raise WrongKeyError(
        f"the KMS unwrapped the data key with master key {found!r}, but the file names "
        f"{named}; the file was forged or altered, do not trust it",
        found_key_id=found,
        expected_key_ids=(claimed,),
    )
