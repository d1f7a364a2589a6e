"""kmsnb: envelope encryption with a KMS, made natural in Python notebooks.

Encrypt with a master key that never leaves the KMS::

    import kmsnb
    kms = kmsnb.connect()                 # KMSNB_KMS, else the local emulator
    kmsnb.encrypt_file("sales.csv", "sales.csv.kms", "alias/Apollo/WorkKey", kms=kms)
    kmsnb.decrypt_file("sales.csv.kms", "decrypted.csv", kms=kms)
"""

from kmsnb.envelope import (
    DecryptReader,
    EncryptWriter,
    FileInfo,
    decrypt_bytes,
    decrypt_file,
    encrypt_bytes,
    encrypt_file,
    inspect,
    open_decrypt,
    open_encrypt,
)
from kmsnb.errors import (
    ContextMismatchError,
    FormatError,
    IntegrityError,
    KmsAccessDeniedError,
    KmsError,
    KmsnbError,
    KmsUnavailableError,
    TruncatedError,
    WrongKeyError,
)

__version__ = "0.1.0.dev0"

__all__ = [
    "ContextMismatchError",
    "DecryptReader",
    "EncryptWriter",
    "FileInfo",
    "FormatError",
    "IntegrityError",
    "KmsAccessDeniedError",
    "KmsError",
    "KmsUnavailableError",
    "KmsnbError",
    "TruncatedError",
    "WrongKeyError",
    "__version__",
    "decrypt_bytes",
    "decrypt_file",
    "encrypt_bytes",
    "encrypt_file",
    "inspect",
    "open_decrypt",
    "open_encrypt",
]
