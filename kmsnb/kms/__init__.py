"""KMS clients: the small interface the envelope uses, and its implementations."""

from kmsnb.kms._base import (
    DATA_KEY_SIZE,
    MAX_WRAPPED_PLAINTEXT_SIZE,
    AliasInfo,
    DataKey,
    KeyInfo,
    KeyVersionInfo,
    Kms,
    KmsClient,
    UnwrappedKey,
    WrappedKey,
    WrappingKms,
)
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
