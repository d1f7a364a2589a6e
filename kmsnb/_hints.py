"""What to try after an error: the one error -> hint table, worded for each face.

Every face shows the same advice for the same failure, in its own words: the CLI names
``--kms`` and ``$KMSNB_KMS``, the magics ``%kms`` and ``%config Kmsnb.kms``, Python the
keyword arguments, the widgets their fields. The advice never repeats the message (which
says what went wrong and, for a KMS error, which key and which KMS); it says what to do.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Final, Literal

from kmsnb.errors import (
    AliasExistsError,
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

if TYPE_CHECKING:
    from contextlib import AbstractContextManager
    from types import TracebackType

__all__ = [
    "FACES",
    "Face",
    "hint_for",
    "kms_location",
    "message_for",
    "naming_key_and_kms",
    "naming_secret_and_kms",
]

Face = Literal["python", "cli", "magic", "widget"]
FACES: Final[tuple[Face, ...]] = ("python", "cli", "magic", "widget")

# The words of each face for the things a hint tells the user to do.
_WORDS: Final[Mapping[Face, Mapping[str, str]]] = {
    "python": {
        "emulator": "kms='local:PATH'",
        "storage": "storage_options={...}",
        "kms": "kms='local:PATH' (or a client), or $KMSNB_KMS",
        "context": "encryption_context=",
        "inspect": "kmsnb.inspect(PATH)",
        "describe": "kmsnb.keys.describe(KEY)",
        "list": "kmsnb.keys.list_keys()",
        "overwrite": "pass overwrite=True to replace it",
        "status": "kmsnb.connection.describe_kms(kms)",
        "usage": "help(kmsnb)",
        "directory": "name a file, e.g. DIR/NAME",
        "move_alias": "kmsnb.keys.point_alias({alias!r}, KEY)",
        "secrets": "kmsnb.secrets.list_secrets()",
        "restore_secret": "kmsnb.secrets.restore(NAME)",
        "put_secret": "kmsnb.secrets.put(NAME, VALUE)",
    },
    "cli": {
        "emulator": "--kms local:PATH",
        "storage": "--storage-option KEY=VALUE",
        "kms": "--kms URI or $KMSNB_KMS",
        "context": "--context KEY=VALUE",
        "inspect": "kmsnb inspect PATH",
        "describe": "kmsnb key describe KEY",
        "list": "kmsnb key list",
        "overwrite": "pass --overwrite to replace it",
        "status": "kmsnb --kms URI ...",
        "usage": "kmsnb --help",
        "directory": "name a file, e.g. -o DIR/NAME",
        "move_alias": "kmsnb alias update {alias} KEY",
        "secrets": "kmsnb secret list",
        "restore_secret": "kmsnb secret restore NAME",
        "put_secret": "kmsnb secret put NAME",
    },
    "magic": {
        "emulator": "%config Kmsnb.kms = 'local:PATH'",
        "storage": "--storage-option KEY=VALUE",
        "kms": "%config Kmsnb.kms = 'URI' (or $KMSNB_KMS)",
        "context": "-c KEY=VALUE",
        "inspect": "%kms inspect PATH",
        "describe": "%kms describe KEY",
        "list": "%kms keys",
        "overwrite": "pass --overwrite to replace it",
        "status": "%kms status",
        "usage": "%kms?",
        "directory": "name a file, e.g. DIR/NAME",
        "move_alias": "%kms alias {alias} KEY",
        "secrets": "%kms secrets",
        "restore_secret": "kmsnb.secrets.restore(NAME)",
        "put_secret": "kmsnb.secrets.put(NAME, VALUE)",
    },
    "widget": {
        "emulator": "%config Kmsnb.kms = 'local:PATH'",
        "storage": "storage_options= in Python",
        "kms": "%config Kmsnb.kms = 'URI' (or $KMSNB_KMS)",
        "context": "the context field",
        "inspect": "%kms inspect PATH",
        "describe": "%kms describe KEY",
        "list": "%kms keys",
        "overwrite": "tick Overwrite to replace it",
        "status": "%kms status",
        "usage": "the widget's help",
        "directory": "name a file, e.g. DIR/NAME",
        "move_alias": "%kms alias {alias} KEY",
        "secrets": "%kms secrets",
        "restore_secret": "kmsnb.secrets.restore(NAME)",
        "put_secret": "kmsnb.secrets.put(NAME, VALUE)",
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


# Secrets Manager's codes (its API reference), which the key APIs do not answer.
_SECRET_HINTS: Final[Mapping[str, str]] = {
    "Forbidden.ResourceNotFound": (
        "this KMS has no such secret: check the name ({secrets}) and that this is the KMS "
        "the secret lives in ({kms})"
    ),
    "Rejected.ResourceInDeleteWindow": (
        "the secret is scheduled for deletion; restore it first ({restore_secret})"
    ),
    "Rejected.ResourceExist": "a secret of that name exists; store a new version ({put_secret})",
}


def _access_denied(error: BaseException, words: Mapping[str, str]) -> str:
    code = getattr(error, "code", None) or ""
    if code in _SECRET_HINTS:
        return _SECRET_HINTS[code].format_map(words)
    if code in _CREDENTIAL_CODES:
        template = (
            "give Alibaba Cloud credentials: ALIBABA_CLOUD_ACCESS_KEY_ID and "
            "ALIBABA_CLOUD_ACCESS_KEY_SECRET, a profile (ALIBABA_CLOUD_PROFILE, "
            "~/.alibabacloud/credentials.ini) or the RAM role of an ECS instance; or use "
            "the local emulator ({emulator})"
        )
    elif code in _NOT_FOUND_CODES:
        template = (
            "this KMS has no such key: check the name ({list}) and that this is the KMS "
            "the key lives in ({kms})"
        )
    else:
        template = (
            "check the key's state ({describe}: disabled, pending deletion?) and your permissions"
        )
    return template.format_map(words)


def _alias_exists(error: BaseException, words: Mapping[str, str]) -> str:
    alias = getattr(error, "alias_name", "ALIAS")
    move = words["move_alias"].format(alias=alias)
    return f"choose another alias, or move this one with {move}"


# Most specific first: the first match gives the hint. A str is a template over _WORDS;
# a function words it from the error (its KMS code, the alias it names) and _WORDS.
_Hint = str | Callable[[BaseException, Mapping[str, str]], str]
_TABLE: Final[tuple[tuple[type[BaseException], _Hint], ...]] = (
    (AliasExistsError, _alias_exists),
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
    words = _WORDS[face]
    for error_class, hint in _TABLE:
        if isinstance(error, error_class):
            return hint.format_map(words) if isinstance(hint, str) else hint(error, words)
    return None


# Advice the library's messages give in Python's words; the other faces drop it from the
# message and give their hint instead.
_PYTHON_ADVICE: Final = ("; pass overwrite=True to replace it",)


def message_for(error: BaseException, face: Face) -> str:
    """``error``'s message as ``face`` shows it next to :func:`hint_for`: on one line, and
    without the advice the library wrote for Python callers when ``face`` is another."""
    message = " ".join(str(error).split()) or type(error).__name__
    if face == "python":
        return message
    if isinstance(error, AliasExistsError):
        message = message.removesuffix(f"; {error.advice}")
    for advice in _PYTHON_ADVICE:
        message = message.replace(advice, "")
    return message


def kms_location(kms: object) -> str:
    """Which KMS ``kms`` is, for messages (:func:`kmsnb.connection.describe_kms`).

    Here, in the lowest layer, so that the envelope can name the KMS in its errors.
    """
    # Every KmsClient has a secret-free location; the data-key cache forwards it.
    location = getattr(kms, "location", None)
    if isinstance(location, str) and location:
        return location
    return f"the KMS client {type(kms).__name__}"


def naming_key_and_kms(key_id: str, kms: object) -> AbstractContextManager[None]:
    """Add which key and which KMS to a :class:`~kmsnb.errors.KmsError` raised inside.

    The KMS says "The specified Key is not found."; the user needs to know which key was
    asked for and of which KMS (a file made with another keystore, a forgotten ``--kms``).
    The error keeps its class, code, request id and status.
    """
    return _Naming(f"key {key_id!r}", kms)


def naming_secret_and_kms(name: str, kms: object) -> AbstractContextManager[None]:
    """The same for a secret: Secrets Manager says only "The resource is not found."."""
    return _Naming(f"secret {name!r}", kms)


class _Naming:
    """Re-raises a KmsError from inside with ``what`` and the KMS named. A class, not a
    generator's context manager: every file's KMS call goes through one (issue 16)."""

    __slots__ = ("_kms", "_what")

    def __init__(self, what: str, kms: object) -> None:
        self._what = what
        self._kms = kms

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if not isinstance(error, KmsError):
            return
        where = kms_location(self._kms)
        if where in error.message:
            return
        import copy  # here: only a failure is renamed, and copy costs start-up

        named = copy.copy(error)
        named.message = f"{error.message.rstrip('.')}: {self._what} in {where}"
        named.args = (named.message,)
        raise named from error
