"""kmsnb: envelope encryption with a KMS, made natural in Python notebooks."""

from kmsnb.errors import (
    FormatError,
    IntegrityError,
    KmsAccessDeniedError,
    KmsError,
    KmsnbError,
    KmsUnavailableError,
    TruncatedError,
    WrongKeyError,
)

__all__ = [
    "FormatError",
    "IntegrityError",
    "KmsAccessDeniedError",
    "KmsError",
    "KmsUnavailableError",
    "KmsnbError",
    "TruncatedError",
    "WrongKeyError",
]
