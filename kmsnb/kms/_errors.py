"""One mapping from a KMS error response to the kmsnb exception that says what it means.

Both backends (the in-process emulator and Alibaba Cloud through its SDK) receive the same
codes, so they share this table and raise the same classes for the same answer.
:func:`error_from_sdk` reads the official SDK's exceptions into it.
"""

from __future__ import annotations

import re
from typing import Any

from kmsnb.errors import KmsAccessDeniedError, KmsError, KmsUnavailableError, WrongKeyError

__all__ = [
    "THROTTLING_CODES",
    "credentials_missing",
    "error_from_response",
    "error_from_sdk",
    "present",
]

#: The gateway refuses these before the service acts on the request.
THROTTLING_CODES = frozenset(
    {"Throttling", "Throttling.User", "Throttling.Api", "Rejected.Throttling"}
)
# Codes for which a later identical request may well succeed.
_UNAVAILABLE_CODES = THROTTLING_CODES | frozenset(
    {
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


# Transport errors quote the request URL, whose query holds encryption contexts and blobs.
# The patterns here are compiled at their first use (re caches them): only the network
# backend's failures need them, and a local KMS imports this module too.
_QUERY_IN_TEXT = r"\?[^\s'\")]*"


def error_from_sdk(
    sdk: Any, location: str, action: str, exc: Exception
) -> tuple[KmsError | WrongKeyError, bool]:
    """Map what the official SDK raised; also say whether the KMS may have acted on it.

    Args:
        sdk: the SDK's classes, as :mod:`kmsnb.kms.aliyun` imports them.
        location: the KMS, for messages ("Alibaba Cloud KMS cn-hangzhou").
        action: the API action, e.g. ``"CreateKey"``.
        exc: what the SDK raised.

    Returns:
        kmsnb's error, and False only if the request surely was not carried out: it was
        never sent (no connection), refused for credentials, throttled or refused with a
        4xx. A read timeout, a connection lost before the answer or a 5xx may come after
        the service did its work.

    Raises:
        Exception: ``exc`` itself when it is no KMS failure but a bug.
    """
    from kmsnb.kms._retry import sent_before_failing

    # The SDK wraps what has no HTTP status (transport, credentials) in an
    # UnretryableException; service errors arrive as they are.
    cause = getattr(exc, "inner_exception", None) or exc
    if isinstance(cause, sdk.CredentialException):
        return credentials_missing(location, str(cause)), False
    if isinstance(exc, sdk.UnretryableException) and not isinstance(cause, sdk.TeaException):
        # No response, or one that is not JSON (an HTML page from a proxy).
        reason = re.sub(_QUERY_IN_TEXT, "?...", f"{type(cause).__name__}: {cause}")
        unreachable = KmsUnavailableError(f"could not reach {location}: {reason}")
        return unreachable, sent_before_failing(exc, sdk.unsent_errors)
    if not isinstance(cause, sdk.TeaException):
        raise exc  # a bug, not a KMS failure: let it surface as it is
    data = cause.data if isinstance(cause.data, dict) else {}
    code = present(data.get("Code")) or present(cause.code)
    status = getattr(cause, "status_code", None) or data.get("statusCode")
    request_id = present(data.get("RequestId")) or present(getattr(cause, "request_id", None))
    message = present(data.get("Message")) or present(cause.message) or "the KMS refused"
    http_status = int(status) if status is not None else None
    error = error_from_response(action, code, message, http_status, request_id)
    carried_out = (http_status or 0) >= 500 and code not in THROTTLING_CODES
    return error, carried_out


# alibabacloud_credentials names each provider of its chain that failed, then its reason.
_FAILED_PROVIDER = r"'(\w+)CredentialsProvider: "
# What kmsnb names the default chain's providers in the message.
_PROVIDER_NAMES = {
    "EnvironmentVariable": "ALIBABA_CLOUD_ACCESS_KEY_ID/_SECRET",
    "OIDCRoleArn": "OIDC role",
    "CLIProfile": "~/.aliyun/config.json",
    "Profile": "~/.alibabacloud/credentials.ini",
    "EcsRamRole": "ECS RAM role",
    "URL": "ALIBABA_CLOUD_CREDENTIALS_URI",
}


def credentials_missing(location: str, reason: str) -> KmsAccessDeniedError:
    """The credential chain found nothing to sign with: nothing was sent to the KMS.

    The code is ``InvalidCredentials``, the one the service gives an unusable AccessKey,
    so that the hint (:mod:`kmsnb._hints`) says how to give credentials either way. The
    message names the places the chain looked, not their reasons, which quote URLs and
    paths at length (the SDK's own records of them are kept off stderr, see
    :mod:`kmsnb.kms._sdk_logs`).
    """
    tried = [_PROVIDER_NAMES.get(name, name) for name in re.findall(_FAILED_PROVIDER, reason)]
    looked = f" (looked at: {', '.join(tried)})" if tried else ""
    return KmsAccessDeniedError(
        f"found no Alibaba Cloud credentials to call {location}{looked}; no request was sent",
        code="InvalidCredentials",
    )


def present(value: Any) -> str | None:
    """A field of an SDK answer as text, or None when it is missing."""
    # The SDK formats missing fields with f"{value}", turning None into "None".
    return None if value in (None, "", "None") else str(value)
