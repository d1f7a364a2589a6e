"""The KMS error responses the engine raises, with the codes and texts of the real service.

Codes, HTTP statuses and messages follow the KMS error table (``docs/kms-api.md``,
"Error codes"); the HTTP server turns a :class:`ServiceError` into ``{RequestId, HostId,
Code, Message, Recommend}``.
"""

from __future__ import annotations

__all__ = [
    "ServiceError",
    "alias_not_found",
    "invalid",
    "key_not_found",
    "key_version_not_found",
    "limit_exceeded",
    "missing",
]


class ServiceError(Exception):
    """A KMS error response: ``code`` verbatim, ``message``, and the HTTP status to send."""

    def __init__(self, code: str, message: str, http_status: int) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.http_status = http_status

    def __repr__(self) -> str:
        return f"ServiceError({self.code!r}, {self.message!r}, {self.http_status})"


def missing(name: str) -> ServiceError:
    return ServiceError(
        "MissingParameter", f'The parameter "{name}" is needed but not provided.', 400
    )


def invalid(name: str) -> ServiceError:
    return ServiceError("InvalidParameter", f'The specified parameter "{name}" is not valid.', 400)


def key_not_found() -> ServiceError:
    return ServiceError("Forbidden.KeyNotFound", "The specified Key is not found.", 404)


def alias_not_found() -> ServiceError:
    return ServiceError("Forbidden.AliasNotFound", "The specified Alias is not found.", 404)


def key_version_not_found() -> ServiceError:
    return ServiceError(
        "Forbidden.KeyVersionNotFound", "The specified Key version is not found.", 404
    )


def limit_exceeded(what: str) -> ServiceError:
    return ServiceError("Rejected.LimitExceeded", f"Quota exceeded: {what}.", 400)
