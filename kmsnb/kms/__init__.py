"""KMS clients: the small interface the envelope uses, and its implementations."""

from kmsnb.kms._base import (
    DATA_KEY_SIZE,
    AliasInfo,
    DataKey,
    KeyInfo,
    KeyVersionInfo,
    Kms,
    KmsClient,
    UnwrappedKey,
    WrappedKey,
)
from kmsnb.kms.caching import CacheStats, CachingKms

__all__ = [
    "DATA_KEY_SIZE",
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
]
