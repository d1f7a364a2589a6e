"""One mapping from a KMS error response to the kmsnb exception that says what it means.

Both backends (the in-process emulator and Alibaba Cloud through its SDK) receive the same
codes, so they share this table and raise the same classes for the same answer.
"""

from __future__ import annotations

from kmsnb.errors import KmsAccessDeniedError, KmsError, KmsUnavailableError, WrongKeyError

__all__ = ["error_from_response"]

# Codes for which a later identical request may well succeed.
_UNAVAILABLE_CODES = frozenset(
    {
        "Throttling",
        "Throttling.User",
        "Throttling.Api",
        "Rejected.Throttling",
        "InternalFailure",
        "InternalError",
        "ServiceUnavailable",
        "ServiceUnavailableTemporary",
    }
)
# Refusals of the caller (credentials, signatures), besides every Forbidden.* and the
# 409 Rejected.* of a key in the wrong state.
_DENIED_CODES = frozenset(
    {
        "IncompleteSignature",
        "InvalidAccessKeyId",
        "InvalidAccessKeyId.NotFound",
        "InvalidAccessKeyId.Inactive",
        "InvalidAccessKeySecret",
        "InvalidCredentials",
        "InvalidSecurityToken.Expired",
        "InvalidTimeStamp.Expired",
        "SignatureDoesNotMatch",
        "SignatureNonceUsed",
        "UnsupportedHTTPMethod",
    }
)
_UNWRAP_ACTIONS = frozenset({"Decrypt", "ReEncrypt"})
# The other parameters of Decrypt and ReEncrypt: an InvalidParameter naming one of them is
# a caller's bug, not a blob the KMS refused.
_OTHER_UNWRAP_PARAMETERS = (
    "EncryptionContext",
    "DestinationKeyId",
    "DryRun",
    "SourceKeyId",
    "SourceKeyVersionId",
    "SourceEncryptionAlgorithm",
)


def _is_refused_blob(action: str, code: str | None, message: str) -> bool:
    # The service answers InvalidParameter for a blob it cannot open (wrong context,
    # foreign or tampered blob); its exact message is not documented, so anything that
    # does not name another parameter counts.
    if action not in _UNWRAP_ACTIONS or code != "InvalidParameter":
        return False
    return not any(name in message for name in _OTHER_UNWRAP_PARAMETERS)


def error_from_response(
    action: str,
    code: str | None,
    message: str,
    http_status: int | None,
    request_id: str | None,
) -> KmsError | WrongKeyError:
    """Map a KMS error response (``action`` is the API name, e.g. ``"Decrypt"``).

    * a CiphertextBlob that Decrypt or ReEncrypt refuses (wrong encryption context,
      tampered or foreign blob) is :class:`WrongKeyError`;
    * throttling and 5xx are :class:`KmsUnavailableError`: retrying may help;
    * a key disabled, pending deletion or not found (409 ``Rejected.*``, ``Forbidden.*``),
      bad credentials and signatures are :class:`KmsAccessDeniedError`;
    * anything else is :class:`KmsError`.

    The code, message, status and request id are kept verbatim.
    """
    error_class: type[KmsError] | type[WrongKeyError] = KmsError
    name = code or ""
    if _is_refused_blob(action, code, message):
        error_class = WrongKeyError
        message = (
            "the KMS refused to decrypt the data key; the encryption context differs, or the "
            f"blob was made by another key or tampered with ({message})"
        )
    elif name in _UNAVAILABLE_CODES or http_status == 429 or (http_status or 0) >= 500:
        error_class = KmsUnavailableError
    elif (
        name in _DENIED_CODES
        or name.startswith("Forbidden.")
        or (http_status == 409 and name.startswith("Rejected."))
        or http_status in (401, 403)
    ):
        error_class = KmsAccessDeniedError
    return error_class(message, code=code, request_id=request_id, http_status=http_status)
