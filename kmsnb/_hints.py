"""What to try after an error: the one error -> hint table, worded for each face.

Every face shows the same advice for the same failure, in its own words: the CLI names
``--kms`` and ``$KMSNB_KMS``, the magics ``%kms`` and ``%config Kmsnb.kms``, Python the
keyword arguments, the widgets their fields. The advice never repeats the message (which
says what went wrong and, for a KMS error, which key and which KMS); it says what to do.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator, Mapping
from typing import Final, Literal

from kmsnb.errors import (
    ContextMismatchError,
    FormatError,
    IntegrityError,
    KmsAccessDeniedError,
    KmsError,
    KmsnbError,
    KmsUnavailableError,
    TruncatedError,
    UnsupportedStorageError,
    WrongKeyError,
)

__all__ = ["FACES", "Face", "hint_for", "kms_location", "naming_key_and_kms"]

Face = Literal["python", "cli", "magic", "widget"]
FACES: Final[tuple[Face, ...]] = ("python", "cli", "magic", "widget")

# The words of each face for the things a hint tells the user to do.
_WORDS: Final[Mapping[Face, Mapping[str, str]]] = {
    "python": {
        "storage": "storage_options={...}",
        "emulator": "kms='local:PATH'",
        "kms": "kms='local:PATH' (or a client), or $KMSNB_KMS",
        "context": "encryption_context=",
        "inspect": "kmsnb.inspect(PATH)",
        "describe": "kmsnb.keys.describe(KEY)",
        "list": "kmsnb.keys.list_keys()",
        "overwrite": "pass overwrite=True to replace it",
        "status": "kmsnb.connection.describe_kms(kms)",
        "usage": "help(kmsnb)",
        "directory": "name a file, e.g. DIR/NAME",
    },
    "cli": {
        "storage": "--storage-option KEY=VALUE",
        "emulator": "--kms local:PATH",
        "kms": "--kms URI or $KMSNB_KMS",
        "context": "--context KEY=VALUE",
        "inspect": "kmsnb inspect PATH",
        "describe": "kmsnb key describe KEY",
        "list": "kmsnb key list",
        "overwrite": "pass --overwrite to replace it",
        "status": "kmsnb --kms URI ...",
        "usage": "kmsnb --help",
        "directory": "name a file, e.g. -o DIR/NAME",
    },
    "magic": {
        "storage": "--storage-option KEY=VALUE",
        "emulator": "%config Kmsnb.kms = 'local:PATH'",
        "kms": "%config Kmsnb.kms = 'URI' (or $KMSNB_KMS)",
        "context": "-c KEY=VALUE",
        "inspect": "%kms inspect PATH",
        "describe": "%kms describe KEY",
        "list": "%kms keys",
        "overwrite": "pass --overwrite to replace it",
        "status": "%kms status",
        "usage": "%kms?",
        "directory": "name a file, e.g. DIR/NAME",
    },
    "widget": {
        "storage": "storage_options= in Python",
        "emulator": "%config Kmsnb.kms = 'local:PATH'",
        "kms": "%config Kmsnb.kms = 'URI' (or $KMSNB_KMS)",
        "context": "the context field",
        "inspect": "%kms inspect PATH",
        "describe": "%kms describe KEY",
        "list": "%kms keys",
        "overwrite": "tick Overwrite to replace it",
        "status": "%kms status",
        "usage": "the widget's help",
        "directory": "name a file, e.g. DIR/NAME",
    },
}

_CREDENTIAL_CODES: Final = frozenset(
    {
        "IncompleteSignature",
        "InvalidAccessKeyId",
        "InvalidAccessKeyId.NotFound",
        "InvalidAccessKeyId.Inactive",
        "InvalidAccessKeySecret",
        "InvalidCredentials",
        "InvalidSecurityToken.Expired",
        "SignatureDoesNotMatch",
    }
)
_NOT_FOUND_CODES: Final = frozenset(
    {"Forbidden.KeyNotFound", "Forbidden.AliasNotFound", "Forbidden.KeyVersionNotFound"}
)


def _access_denied(error: BaseException) -> str:
    code = getattr(error, "code", None) or ""
    if code in _CREDENTIAL_CODES:
        return (
            "give Alibaba Cloud credentials: ALIBABA_CLOUD_ACCESS_KEY_ID and "
            "ALIBABA_CLOUD_ACCESS_KEY_SECRET, a profile (ALIBABA_CLOUD_PROFILE, "
            "~/.alibabacloud/credentials.ini) or the RAM role of an ECS instance; or use "
            "the local emulator ({emulator})"
        )
    if code in _NOT_FOUND_CODES:
        return (
            "this KMS has no such key: check the name ({list}) and that this is the KMS "
            "the key lives in ({kms})"
        )
    return "check the key's state ({describe}: disabled, pending deletion?) and your permissions"


# Most specific first: the first match gives the hint. A str is a template over _WORDS;
# a function picks the template from the error (its KMS code).
_TABLE: Final[tuple[tuple[type[BaseException], str | Callable[[BaseException], str]], ...]] = (
    (FileExistsError, "{overwrite}"),
    (TruncatedError, "the file was cut short; copy or download it again"),
    (IntegrityError, "restore the file from a good copy; kmsnb released no unverified data"),
    (ContextMismatchError, "pass the context the file was made with ({context}; {inspect})"),
    (WrongKeyError, "use the context and the KMS the file was made with ({context}; {kms})"),
    (KmsAccessDeniedError, _access_denied),
    (KmsUnavailableError, "check the KMS address ({kms}) and the network, then retry"),
    (KmsError, "the code is the KMS's own; its API documentation explains it ({status})"),
    (FormatError, "check that this is a kmsnb file ({inspect})"),
    (
        UnsupportedStorageError,
        "kmsnb reads and writes local paths, s3:// (pip install 'kmsnb[s3]') and oss:// "
        "('kmsnb[oss]'); a store's options go in {storage}",
    ),
    (KmsnbError, "see {usage}"),
    (FileNotFoundError, "check the path"),
    (IsADirectoryError, "{directory}"),
    (PermissionError, "check the permissions of the file and of its folder"),
    (ImportError, "install the extra it names, e.g. pip install 'kmsnb[pandas]'"),
)


def hint_for(error: BaseException, face: Face) -> str | None:
    """One clause of advice for ``error``, in the words of ``face``; ``None`` if none fits.

    Raises:
        ValueError: ``face`` is not one of :data:`FACES`.
    """
    if face not in _WORDS:
        raise ValueError(f"face must be one of {', '.join(FACES)}, not {face!r}")
    for error_class, hint in _TABLE:
        if isinstance(error, error_class):
            template = hint if isinstance(hint, str) else hint(error)
            return template.format_map(_WORDS[face])
    return None


def kms_location(kms: object) -> str:
    """Which KMS ``kms`` is, for messages (:func:`kmsnb.connection.describe_kms`).

    Here, in the lowest layer, so that the envelope can name the KMS in its errors.
    """
    # Every KmsClient has a secret-free location; the data-key cache forwards it.
    location = getattr(kms, "location", None)
    if isinstance(location, str) and location:
        return location
    return f"the KMS client {type(kms).__name__}"


@contextlib.contextmanager
def naming_key_and_kms(key_id: str, kms: object) -> Iterator[None]:
    """Add which key and which KMS to a :class:`~kmsnb.errors.KmsError` raised inside.

    The KMS says "The specified Key is not found."; the user needs to know which key was
    asked for and of which KMS (a file made with another keystore, a forgotten ``--kms``).
    The error keeps its class, code, request id and status.
    """
    try:
        yield
    except KmsError as error:
        where = kms_location(kms)
        if where in error.message:
            raise
        named = copy.copy(error)
        named.message = f"{error.message.rstrip('.')}: key {key_id!r} in {where}"
        named.args = (named.message,)
        raise named from error
