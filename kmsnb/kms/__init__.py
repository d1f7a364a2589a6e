"""KMS clients: the small interface the envelope uses, and its implementations."""

from kmsnb.kms._base import (
    DATA_KEY_SIZE,
    MAX_WRAPPED_PLAINTEXT_SIZE,
    DataKey,
    Kms,
    KmsClient,
    UnwrappedKey,
    WrappingKms,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from kmsnb.kms._info import AliasInfo, KeyInfo, KeyVersionInfo, WrappedKey
    from kmsnb.kms.caching import CacheStats, CachingKms

__all__ = [
    "DATA_KEY_SIZE",
    "MAX_WRAPPED_PLAINTEXT_SIZE",
    "AliasInfo",
    "CacheStats",
    "CachingKms",
    "DataKey",
    "KeyInfo",
    "KeyVersionInfo",
    "Kms",
    "KmsClient",
    "UnwrappedKey",
    "WrappedKey",
    "WrappingKms",
]


def __getattr__(name: str) -> object:
    # The cache (with threading) is imported when asked for: every backend imports
    # kmsnb.kms._base, and so this package, and most never use the cache.
    if name in ("CacheStats", "CachingKms"):
        from kmsnb.kms import caching

        return getattr(caching, name)
    if name in ("AliasInfo", "KeyInfo", "KeyVersionInfo", "WrappedKey"):
        # Dataclasses that encrypting and decrypting never build: kmsnb.kms._info.
        from kmsnb.kms import _info

        return getattr(_info, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
