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
    "ContextMismatchError",
    "FormatError",
    "IntegrityError",
    "KmsAccessDeniedError",
    "KmsError",
    "KmsUnavailableError",
    "KmsnbError",
    "TruncatedError",
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
    """The key at hand cannot open this data.

    Raised only on evidence: the KMS refused to unwrap the data key under the given
    encryption context. The service's ``code``, ``request_id`` and ``http_status`` are
    kept. (A header whose key slot or key commitment fails is an :class:`IntegrityError`:
    the KMS only unwraps blobs it made, so the key is right and the header was altered.)
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
        self.code = code
        self.request_id = request_id
        self.http_status = http_status


class ContextMismatchError(KmsnbError):
    """The file's encryption context is not the one the caller expected.

    Raised before the KMS is asked anything. The message names the keys that differ,
    never their values.
    """


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
