"""A data-key cache in front of a KMS, with the AWS Encryption SDK's security thresholds.

:class:`CachingKms` wraps any :class:`~kmsnb.kms.Kms` and answers
:meth:`~CachingKms.generate_data_key` from a cached data key, and
:meth:`~CachingKms.decrypt_data_key` from a cached unwrapped key, so that a notebook
saving a thousand small files does not ask the KMS a thousand times.

Reusing a data key across files is safe in kmsnb because no file is encrypted *with* the
data key: Cobblestone derives each file's content key from it and a fresh random 24-byte
salt (HKDF-SHA-512), so the content keys stay unique. What reuse changes is the blast
radius of one leaked data key, and that is what the thresholds bound, as the ESDK's
caching cryptographic materials manager does:

- encrypt: a cached data key serves a request with the same ``key_id`` and encryption
  context only while it is younger than ``max_age`` seconds, has served fewer than
  ``max_messages`` messages and, counting this message, protects at most ``max_bytes``
  plaintext bytes. The first use of a key is exempt, as in the ESDK; a message larger
  than ``max_bytes`` gets a key of its own that is never cached.
- a message of unknown size bypasses the cache (it always gets a fresh key), as the ESDK
  does for streams, because its bytes could not be counted. Callers that know the size
  say so: ``generate_data_key(key_id, context, plaintext_size=n)``, or hand
  ``cache.sized(n)`` to code that only knows the plain :class:`~kmsnb.kms.Kms` protocol.
- decrypt: an unwrapped key is reused for the same ``CiphertextBlob`` and encryption
  context while it is younger than ``max_age``, together with the master key id and
  version the KMS's Decrypt answer named, so readers check a cached key as they check
  a fresh one.

Every caller gets its own copy of a key (the envelope wipes what it is given). The cached
copies are zeroed when they expire, run out of uses, are pushed out of the bounded LRU, or
on :meth:`~CachingKms.clear` / :meth:`~CachingKms.close`. The price, as with any such
cache: for up to ``max_age`` after a master key is disabled elsewhere, cached keys still
work here (disabling it *through* the cache clears the cache).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

from kmsnb._wipe import wipe
from kmsnb.kms._base import (
    DataKey,
    Kms,
    UnwrappedKey,
    WrappedKey,
    WrappingKms,
    canonical_context,
)

__all__ = [
    "DEFAULT_CAPACITY",
    "DEFAULT_MAX_AGE",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_MESSAGES",
    "CacheStats",
    "CachingKms",
]

# Conservative defaults. The ESDK guidance is "use the minimum amount of caching that meets
# your cost and performance goals" and it requires max_age to be chosen; five minutes
# covers a notebook session's bursts of saves while bounding how long key material sits in
# memory, a thousand messages covers the "many small DataFrames" case, and one GiB bounds
# the data exposed by one leaked data key.
#: Seconds a cached key may be used after the KMS made (or unwrapped) it.
DEFAULT_MAX_AGE = 300.0
#: Messages (files) one cached data key may encrypt.
DEFAULT_MAX_MESSAGES = 1000
#: Plaintext bytes one cached data key may protect, all messages together.
DEFAULT_MAX_BYTES = 1 << 30
#: Cache entries (encrypt and decrypt together) kept before the least recently used goes.
DEFAULT_CAPACITY = 64

# Management calls after which cached keys may no longer reflect what the KMS would say.
_INVALIDATING_METHODS = frozenset(
    {"disable_key", "schedule_key_deletion", "update_alias", "delete_alias"}
)

KmsT = TypeVar("KmsT", bound=Kms)
_ContextKey = tuple[tuple[str, str], ...]
_EntryKey = tuple[str, str, _ContextKey]  # ("encrypt", key_id, ctx) or ("decrypt", blob, ctx)


@dataclass(frozen=True)
class CacheStats:
    """What the cache has done since it was made (or last :meth:`CachingKms.reset_stats`).

    Attributes:
        encrypt_hits: data keys served from the cache.
        encrypt_misses: data keys the KMS had to generate (bypasses included).
        decrypt_hits: unwrapped keys served from the cache.
        decrypt_misses: blobs the KMS had to unwrap.
        evictions: entries dropped (and zeroed) for age, use limits or capacity.
        entry_count: entries held now.
    """

    encrypt_hits: int = 0
    encrypt_misses: int = 0
    decrypt_hits: int = 0
    decrypt_misses: int = 0
    evictions: int = 0
    entry_count: int = 0

    @property
    def hits(self) -> int:
        return self.encrypt_hits + self.decrypt_hits

    @property
    def misses(self) -> int:
        return self.encrypt_misses + self.decrypt_misses

    @property
    def kms_calls_saved(self) -> int:
        """Each hit is one GenerateDataKey or Decrypt the KMS did not see."""
        return self.hits


class _Entry:
    """One cached key and its use so far; ``material`` is zeroed when the entry goes."""

    __slots__ = ("byte_count", "created", "material", "message_count", "unwrapped_by", "wrapped")

    def __init__(
        self,
        material: bytearray,
        created: float,
        wrapped: tuple[str, str, str] | None = None,
        unwrapped_by: tuple[str, str] | None = None,
    ) -> None:
        self.material = material
        self.created = created
        self.wrapped = wrapped  # (key_id, key_version_id, ciphertext_blob) for encrypt entries
        self.unwrapped_by = unwrapped_by  # (key_id, key_version_id) for decrypt entries
        self.message_count = 0
        self.byte_count = 0


class CachingKms(Generic[KmsT]):
    """A :class:`~kmsnb.kms.Kms` that caches data keys within security thresholds.

    Args:
        kms: the KMS to wrap. Its other methods (key management) are reachable through
            this object, and through :attr:`wrapped` with their types.
        max_age: seconds a key may be served after the KMS made or unwrapped it.
        max_messages: messages one data key may encrypt.
        max_bytes: plaintext bytes one data key may protect in all.
        capacity: entries kept; the least recently used is zeroed and dropped first.
        clock: seconds on a monotonic clock (tests inject a fake one).

    Thread-safe. The lock is never held during a KMS call.
    """

    def __init__(
        self,
        kms: KmsT,
        *,
        max_age: float = DEFAULT_MAX_AGE,
        max_messages: int = DEFAULT_MAX_MESSAGES,
        max_bytes: int = DEFAULT_MAX_BYTES,
        capacity: int = DEFAULT_CAPACITY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not isinstance(kms, Kms):
            raise TypeError("kms must be a KMS client (generate_data_key and decrypt_data_key)")
        if isinstance(max_age, bool) or not isinstance(max_age, int | float) or max_age <= 0:
            raise ValueError("max_age must be a positive number of seconds")
        for name, value in (
            ("max_messages", max_messages),
            ("max_bytes", max_bytes),
            ("capacity", capacity),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer")
        self._wrapped = kms
        self.max_age = float(max_age)
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self.capacity = capacity
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[_EntryKey, _Entry] = OrderedDict()
        self._counts = dict.fromkeys(
            ("encrypt_hits", "encrypt_misses", "decrypt_hits", "decrypt_misses", "evictions"), 0
        )

    @property
    def wrapped(self) -> KmsT:
        """The KMS behind the cache."""
        return self._wrapped

    def __repr__(self) -> str:
        return (
            f"CachingKms({self._wrapped!r}, max_age={self.max_age:g}, "
            f"max_messages={self.max_messages}, max_bytes={self.max_bytes}, "
            f"entries={len(self._entries)})"
        )

    def __getattr__(self, name: str) -> Any:
        # Only called for names this class lacks: key management goes to the wrapped KMS.
        if name.startswith("_"):
            raise AttributeError(name)
        attribute = getattr(self._wrapped, name)
        if name in _INVALIDATING_METHODS and callable(attribute):
            return self._then_clear(attribute)
        return attribute

    def _then_clear(self, method: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return method(*args, **kwargs)
            finally:
                self.clear()

        return call

    # -- the Kms protocol ---------------------------------------------------------------

    def generate_data_key(
        self,
        key_id: str,
        encryption_context: Mapping[str, str] | None = None,
        *,
        plaintext_size: int | None = None,
    ) -> DataKey:
        """Return a data key for one message, cached or fresh; the caller wipes it.

        Args:
            key_id: the master key.
            encryption_context: bound to the data key by the KMS.
            plaintext_size: the bytes this message will encrypt. ``None`` (unknown)
                bypasses the cache: the key is fresh and not kept.
        """
        if plaintext_size is not None and (
            isinstance(plaintext_size, bool) or not isinstance(plaintext_size, int)
        ):
            raise TypeError("plaintext_size must be an int or None")
        if plaintext_size is not None and plaintext_size < 0:
            raise ValueError("plaintext_size must not be negative")
        context = canonical_context(encryption_context)
        entry_key: _EntryKey = ("encrypt", key_id, _context_key(context))
        if plaintext_size is not None:
            with self._lock:
                self._purge_expired()
                cached = self._take(entry_key, plaintext_size)
                if cached is not None:
                    self._counts["encrypt_hits"] += 1
                    return cached
        with self._lock:
            self._counts["encrypt_misses"] += 1
        data_key = self._wrapped.generate_data_key(key_id, context)
        # The first use is exempt from the thresholds (as in the ESDK); a message bigger
        # than max_bytes, or of unknown size, leaves nothing reusable to cache.
        if plaintext_size is not None and plaintext_size < self.max_bytes and self.max_messages > 1:
            entry = _Entry(
                bytearray(data_key.plaintext),
                self._clock(),
                (data_key.key_id, data_key.key_version_id, data_key.ciphertext_blob),
            )
            entry.message_count = 1
            entry.byte_count = plaintext_size
            with self._lock:
                self._insert(entry_key, entry)
        return data_key

    def decrypt_data_key(
        self, ciphertext_blob: str, encryption_context: Mapping[str, str] | None = None
    ) -> UnwrappedKey:
        """Unwrap a ``CiphertextBlob``, from the cache when possible; the caller wipes it.

        A cached key comes back with the master key id and version that the KMS named
        when it unwrapped it.
        """
        context = canonical_context(encryption_context)
        entry_key: _EntryKey = ("decrypt", ciphertext_blob, _context_key(context))
        with self._lock:
            self._purge_expired()
            entry = self._entries.get(entry_key)
            if entry is not None and entry.unwrapped_by is not None:
                self._entries.move_to_end(entry_key)
                self._counts["decrypt_hits"] += 1
                key_id, key_version_id = entry.unwrapped_by
                return UnwrappedKey(key_id, key_version_id, bytearray(entry.material))
            self._counts["decrypt_misses"] += 1
        answer: object = self._wrapped.decrypt_data_key(ciphertext_blob, context)
        if not isinstance(answer, UnwrappedKey):
            # An old-style KMS (a bare bytearray): not cached, since the key that unwrapped
            # it is unknown; the reader's key check refuses it with a TypeError.
            return cast(UnwrappedKey, answer)
        key = answer
        entry = _Entry(
            bytearray(key.plaintext), self._clock(), unwrapped_by=(key.key_id, key.key_version_id)
        )
        with self._lock:
            self._insert(entry_key, entry)
        return key

    def encrypt(
        self,
        key_id: str,
        plaintext: bytes | bytearray,
        encryption_context: Mapping[str, str] | None = None,
    ) -> WrappedKey:
        """The wrapped KMS's Encrypt of a small key (:class:`~kmsnb.kms.WrappingKms`);
        nothing is cached (pyarrow caches the keys column-level encryption wraps)."""
        return _wrapping(self._wrapped).encrypt(key_id, plaintext, encryption_context)

    def decrypt(
        self, ciphertext_blob: str, encryption_context: Mapping[str, str] | None = None
    ) -> UnwrappedKey:
        """The wrapped KMS's Decrypt of what :meth:`encrypt` made; nothing is cached."""
        return _wrapping(self._wrapped).decrypt(ciphertext_blob, encryption_context)

    def sized(self, plaintext_size: int) -> Kms:
        """A :class:`~kmsnb.kms.Kms` view that encrypts one message of a known size.

        For code written against the plain protocol, such as
        ``kmsnb.open_encrypt(f, key_id, kms=cache.sized(n), plaintext_size=n)``.
        """
        return _SizedView(self, plaintext_size)

    # -- housekeeping -------------------------------------------------------------------

    @property
    def stats(self) -> CacheStats:
        """Hits, misses, KMS calls saved, evictions and entries, as of now."""
        with self._lock:
            self._purge_expired()
            return CacheStats(**self._counts, entry_count=len(self._entries))

    def reset_stats(self) -> None:
        """Start counting from zero (the cached keys stay)."""
        with self._lock:
            for name in self._counts:
                self._counts[name] = 0

    def clear(self) -> None:
        """Zero and drop every cached key."""
        with self._lock:
            while self._entries:
                _, entry = self._entries.popitem()
                wipe(entry.material)

    def close(self) -> None:
        """Zero and drop every cached key (the wrapped KMS stays open: it is not ours)."""
        self.clear()

    def __enter__(self) -> CachingKms[KmsT]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- internals, called with the lock held -------------------------------------------

    def _take(self, entry_key: _EntryKey, plaintext_size: int) -> DataKey | None:
        """A copy of the cached data key, charged one message, if the thresholds allow."""
        entry = self._entries.get(entry_key)
        if entry is None or entry.wrapped is None:
            return None
        message_count = entry.message_count + 1
        byte_count = entry.byte_count + plaintext_size
        if message_count > self.max_messages or byte_count > self.max_bytes:
            self._evict(entry_key)
            return None
        key_id, key_version_id, blob = entry.wrapped
        data_key = DataKey(key_id, key_version_id, bytearray(entry.material), blob)
        entry.message_count, entry.byte_count = message_count, byte_count
        if message_count >= self.max_messages or byte_count >= self.max_bytes:
            self._evict(entry_key)  # used up: zero it now rather than at the next request
        else:
            self._entries.move_to_end(entry_key)
        return data_key

    def _insert(self, entry_key: _EntryKey, entry: _Entry) -> None:
        self._purge_expired()
        if entry_key in self._entries:
            # Two threads missed at once; the newer key wins, the older is zeroed.
            self._evict(entry_key)
        self._entries[entry_key] = entry
        while len(self._entries) > self.capacity:
            self._evict(next(iter(self._entries)))

    def _evict(self, entry_key: _EntryKey) -> None:
        entry = self._entries.pop(entry_key)
        wipe(entry.material)
        self._counts["evictions"] += 1

    def _purge_expired(self) -> None:
        now = self._clock()
        expired = [k for k, e in self._entries.items() if now - e.created >= self.max_age]
        for entry_key in expired:
            self._evict(entry_key)


def _context_key(context: Mapping[str, str]) -> _ContextKey:
    return tuple(sorted(context.items()))


def _wrapping(kms: object) -> WrappingKms:
    if not isinstance(kms, WrappingKms):
        raise TypeError(
            f"{type(kms).__name__} has no encrypt and decrypt (kmsnb.kms.WrappingKms), which "
            "column-level encryption needs"
        )
    return kms


class _SizedView:
    """The Kms protocol over a :class:`CachingKms`, for one message of a known size."""

    def __init__(self, cache: CachingKms[Any], plaintext_size: int) -> None:
        self._cache = cache
        self._plaintext_size = plaintext_size

    def __repr__(self) -> str:
        return f"{self._cache!r}.sized({self._plaintext_size})"

    def generate_data_key(
        self, key_id: str, encryption_context: Mapping[str, str] | None = None
    ) -> DataKey:
        return self._cache.generate_data_key(
            key_id, encryption_context, plaintext_size=self._plaintext_size
        )

    def decrypt_data_key(
        self, ciphertext_blob: str, encryption_context: Mapping[str, str] | None = None
    ) -> UnwrappedKey:
        return self._cache.decrypt_data_key(ciphertext_blob, encryption_context)
