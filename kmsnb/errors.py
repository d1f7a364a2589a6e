"""The exceptions kmsnb raises.

Kept in a module of their own, importing nothing from kmsnb, so that every layer can use
them without import loops. Misuse of the API (wrong types, impossible arguments) raises the
built-in ``TypeError`` or ``ValueError`` instead; everything below means "the data, the file
or the KMS said no".

Messages are lowercase, name what failed and give one clause of advice. They never contain
key material: a data key, an AccessKey secret or decrypted data.
"""

from __future__ import annotations

__all__ = [
    "AliasExistsError",
    "ContextMismatchError",
    "FormatError",
    "IntegrityError",
    "KmsAccessDeniedError",
    "KmsError",
    "KmsUnavailableError",
    "KmsnbError",
    "KmsnbWarning",
    "NewKeystoreWarning",
    "TruncatedError",
    "UnsupportedStorageError",
    "WrongKeyError",
]


class KmsnbError(Exception):
    """Base class of every error kmsnb raises on bad data or a failing KMS."""


class FormatError(KmsnbError):
    """The input is not a kmsnb file this version can read.

    Raised for a bad magic number, an unknown version or algorithm, a length beyond its
    bound, or a header that does not parse. Nothing was decrypted.
    """


class IntegrityError(KmsnbError):
    """Authentication failed: the file was corrupted or tampered with.

    Attributes:
        chunk_index: the index of the payload chunk that failed, when known.
        offset: the byte offset in the file near which the failure was found, when known.
    """

    def __init__(
        self, message: str, *, chunk_index: int | None = None, offset: int | None = None
    ) -> None:
        super().__init__(message)
        self.chunk_index = chunk_index
        self.offset = offset


class TruncatedError(IntegrityError):
    """The payload ended before its final chunk, or data follows the final chunk."""


class WrongKeyError(KmsnbError):
    """The key at hand cannot open this data, or is not the key it must be under.

    Raised only on evidence: the KMS refused to unwrap the data key under the given
    encryption context; or the KMS's Decrypt answer names another master key than the one
    the file names (a forged or altered file), or one outside the reader's
    ``allowed_keys``. Either way no plaintext was released. (A header whose key slot or
    key commitment fails is an :class:`IntegrityError`: the data key is the file's own,
    and the header was altered.)

    Attributes:
        code, request_id, http_status: the service's, when the KMS refused.
        found_key_id: the master key that the KMS says unwrapped the data key, when it did.
        expected_key_ids: what would have been accepted: the key the file names, or the
            ``allowed_keys`` entries as given.
    """

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        request_id: str | None = None,
        http_status: int | None = None,
        found_key_id: str | None = None,
        expected_key_ids: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message)
        self.code = code
        self.request_id = request_id
        self.http_status = http_status
        self.found_key_id = found_key_id
        self.expected_key_ids = expected_key_ids


class ContextMismatchError(KmsnbError):
    """The file's encryption context is not the one the caller expected.

    Raised before the KMS is asked anything (for a column-level Parquet file, whose context
    is in its encrypted footer, once the footer key is unwrapped), and before any data is
    read. The message names the keys that differ, never their values.
    """


class UnsupportedStorageError(KmsnbError):
    """kmsnb cannot use this destination or source safely, so it refuses it up front.

    Raised before anything is read or written: a URL whose protocol has no installed
    implementation (the message names the package to install), a store kmsnb cannot write
    atomically (a partial or half-replaced object could be left behind), or a store too
    old for a conditional create (it would silently overwrite).
    """


class AliasExistsError(KmsnbError, ValueError):
    """The alias asked for exists already; nothing was created or moved.

    Also a ``ValueError``, which is what :func:`kmsnb.keys.create_key` raised for it before.
    The message ends with the advice in Python's words; the CLI and the magics give theirs
    (:mod:`kmsnb._hints`).

    Attributes:
        alias_name: the alias, ``alias/NAME``.
        key_id: the key it points to.
        location: which KMS (``"local emulator at PATH"``...).
        created: what was not made, for the message: ``"no key was created"``...
        advice: the clause of advice in the message, in Python's words.
    """

    def __init__(
        self, alias_name: str, key_id: str, location: str, *, created: str = "nothing was created"
    ) -> None:
        self.alias_name = alias_name
        self.key_id = key_id
        self.location = location
        self.advice = (
            f"choose another alias, or move this one with "
            f"kmsnb.keys.point_alias({alias_name!r}, KEY)"
        )
        super().__init__(
            f"{alias_name} exists in {location} and points to key {key_id}; {created}; "
            f"{self.advice}"
        )


class KmsError(KmsnbError):
    """The KMS failed or refused a request.

    Attributes:
        code: the service's error code, verbatim (``Rejected.Disabled``, ...).
        message: the service's message.
        request_id: the service's request id, for a support ticket.
        http_status: the HTTP status of the response, when there was one.
    """

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        request_id: str | None = None,
        http_status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.request_id = request_id
        self.http_status = http_status

    def __str__(self) -> str:
        parts = [self.message]
        details = []
        if self.code:
            details.append(f"code={self.code}")
        if self.http_status is not None:
            details.append(f"http_status={self.http_status}")
        if self.request_id:
            details.append(f"request_id={self.request_id}")
        if details:
            parts.append(f"({', '.join(details)})")
        return " ".join(parts)


class KmsUnavailableError(KmsError):
    """The KMS could not be reached, timed out or throttled the request; retrying may help.

    Attributes:
        outcome_unknown: True when a request that changes something (CreateKey,
            CreateKeyVersion, ...) may have reached the KMS and been carried out although no
            answer came back. It was not retried, so as not to do it twice: check (for
            instance list the keys) before trying again.
    """

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        request_id: str | None = None,
        http_status: int | None = None,
        outcome_unknown: bool = False,
    ) -> None:
        super().__init__(message, code=code, request_id=request_id, http_status=http_status)
        self.outcome_unknown = outcome_unknown


class KmsAccessDeniedError(KmsError):
    """The KMS refused the caller: bad credentials or signature, no permission, or a key
    that is disabled, pending deletion or not found."""


class KmsnbWarning(UserWarning):
    """Base class of the warnings kmsnb gives: something worth knowing, nothing failed.

    ``warnings.simplefilter("error", kmsnb.errors.KmsnbWarning)`` (or ``-W error::...``)
    makes them errors, e.g. in CI.
    """


class NewKeystoreWarning(KmsnbWarning):
    """Opening a ``local:`` KMS created its keystore: there are no keys in it yet.

    Given by :func:`kmsnb.connect` so that a mistyped path (``local:/tmp/kesytore``) is
    seen at once, not as a "key not found" later. The CLI says it on stderr, the notebook
    on its load line.

    Attributes:
        path: the keystore's directory.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(
            f"a new keystore at {path}: no keys yet (a mistyped local: path makes one too)"
        )
