"""A local emulator of Alibaba Cloud KMS for development, tests and notebooks.

Not an HSM: key material is kept on disk under a root key stored alongside it (see
:mod:`kmsnb.emulator.store`). :class:`KeyStore` holds the keys, :class:`KmsService` answers
KMS API calls from it; :class:`kmsnb.kms.local.LocalKms` uses both in-process, and the
HTTP server speaks the KMS wire protocol over them.
"""

from kmsnb.emulator._params import MAX_ENCRYPTION_CONTEXT_SIZE
from kmsnb.emulator.service import ACTIONS, KmsService, Limits, ServiceError
from kmsnb.emulator.store import (
    KeyStore,
    KeyStoreCorruptedError,
    KeyStoreError,
    KeyStoreFullError,
    KeyStoreMigrationError,
    KeyStoreReadOnlyError,
    KeyStoreUnsafeError,
    default_store_dir,
)

__all__ = [
    "ACTIONS",
    "MAX_ENCRYPTION_CONTEXT_SIZE",
    "KeyStore",
    "KeyStoreCorruptedError",
    "KeyStoreError",
    "KeyStoreFullError",
    "KeyStoreMigrationError",
    "KeyStoreReadOnlyError",
    "KeyStoreUnsafeError",
    "KmsService",
    "Limits",
    "ServiceError",
    "default_store_dir",
]
