"""Server-side verification of Alibaba Cloud API request signatures.

Three schemes reach a KMS endpoint (see ``docs/kms-api.md``, "Signatures"):

* RPC signature v1, HMAC-SHA1: the old ``aliyunsdkcore`` SDK, and the new SDK with
  ``Config(signature_algorithm='v2')``. The signature is a query parameter.
* ACS3-HMAC-SHA256: the new SDK's default. The signature is in the ``Authorization`` header.
* ACS4-HMAC-SHA256: the new SDK with ``Config(signature_version='v4')``: ACS3's canonical
  request with a signing key derived from a date/region/product scope.
* ACS3-HMAC-SM3: ACS3 with SM3 for the hashes and the HMAC (:mod:`kmsnb.emulator._sm4`).

The string-building functions are pure, so that the worked examples of the reference are
unit tests. :class:`SignatureVerifier` adds the state a gateway keeps: the AccessKey table,
the clock and the cache of nonces already used.

Checks run in this order: the request carries a complete signature, the AccessKey exists,
the signature matches, the timestamp is fresh, the nonce is new. Clock and nonce are only
looked at once the caller proved they hold the secret, so that a stranger learns nothing
and cannot use up nonces.

The timestamp and nonce checked are the very values the signature covers: for ACS3/ACS4 the
canonical form of their headers (stripped, repeated values joined), so that ``nonce``,
``nonce `` and ``nonce\t`` (one signature) are one nonce, and a captured request cannot be
replayed by padding a header. The nonce cache never forgets a nonce whose request could
still pass the clock check: when it is full, new requests are refused with 429
``Rejected.Throttling`` until old nonces expire.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import quote

from kmsnb.emulator._nonces import DEFAULT_MAX_NONCE_COUNT, NonceCache, NonceCacheFullError
from kmsnb.emulator._sm4 import sm3_hex, sm3_signature, sm3_string_to_sign

__all__ = [
    "DEFAULT_MAX_NONCE_COUNT",
    "SIGNATURE_WINDOW_S",
    "AuthError",
    "Authorization",
    "NonceCache",
    "NonceCacheFullError",
    "SignatureVerifier",
    "SignedRequest",
    "acs3_signature",
    "acs4_signature",
    "acs4_signing_key",
    "acs_canonical_request",
    "acs_string_to_sign",
    "canonical_header_value",
    "canonical_headers",
    "canonical_query_string",
    "parse_authorization",
    "percent_encode",
    "rpc_signature",
    "rpc_string_to_sign",
]

#: How far a request's timestamp may be from the server's clock, either way (the gateway's
#: 15 minutes). A nonce must be remembered for as long as its request could be replayed.
SIGNATURE_WINDOW_S = 15 * 60


ACS3_ALGORITHM = "ACS3-HMAC-SHA256"
ACS3_SM3_ALGORITHM = "ACS3-HMAC-SM3"
ACS4_ALGORITHM = "ACS4-HMAC-SHA256"
ACS4_SCOPE_TERMINATOR = "aliyun_v4_request"
RPC_SIGNATURE_METHOD = "HMAC-SHA1"
RPC_SIGNATURE_VERSION = "1.0"
EMPTY_BODY_SHA256 = hashlib.sha256(b"").hexdigest()

# The real gateway's wording. The old SDK splits the message on its first ":" and compares
# the rest with its own string to sign; when they are equal it reports the much more
# useful "InvalidAccessKeySecret". Without a ":" it crashes with an IndexError.
SIGNATURE_MISMATCH_PREFIX = (
    "Specified signature is not matched with our calculation. server string to sign is:"
)


class AuthError(Exception):
    """A request failed authentication; ``code`` and ``http_status`` are the gateway's."""

    def __init__(self, code: str, message: str, http_status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.http_status = http_status


def _incomplete(reason: str) -> AuthError:
    return AuthError(
        "IncompleteSignature",
        f"The request signature does not conform to Alibaba Cloud standards: {reason}.",
    )


@dataclass(frozen=True)
class SignedRequest:
    """What the verifier needs of an HTTP request, already split and percent-decoded.

    Attributes:
        method: the HTTP method as received (``POST``).
        path: the request path without the query (``/``).
        query: the decoded query pairs, blanks kept.
        params: query and form-body parameters merged (form after query).
        headers: lower-case header name to every value received for it.
        body: the raw body, hashed by the ACS schemes.
    """

    method: str
    path: str
    query: Sequence[tuple[str, str]]
    params: Mapping[str, str]
    headers: Mapping[str, Sequence[str]]
    body: bytes = b""

    def header(self, name: str) -> str | None:
        values = self.headers.get(name)
        return values[0] if values else None

    def signed_header(self, name: str) -> str | None:
        """The header's value as ACS3/ACS4 sign it: stripped, repeated values joined."""
        values = self.headers.get(name)
        return canonical_header_value(values) if values else None


def percent_encode(value: str) -> str:
    """RFC 3986 encoding of the UTF-8 bytes: only ``A-Za-z0-9-_.~`` stay as they are."""
    return quote(value, safe="~")


# --- RPC signature v1 (HMAC-SHA1) ----------------------------------------------------------------


def rpc_string_to_sign(method: str, params: Mapping[str, str]) -> str:
    """``METHOD&%2F&pct(canonical query)`` over every parameter but ``Signature``."""
    canonical = "&".join(
        f"{percent_encode(name)}={percent_encode(value)}"
        for name, value in sorted(params.items())
        if name != "Signature"
    )
    return f"{method}&{percent_encode('/')}&{percent_encode(canonical)}"


def rpc_signature(secret: str, string_to_sign: str) -> str:
    """base64 HMAC-SHA1 keyed with ``secret + "&"``."""
    digest = hmac.digest(
        (secret + "&").encode("utf-8"), string_to_sign.encode("utf-8"), hashlib.sha1
    )
    return base64.b64encode(digest).decode("ascii")


# --- ACS3 / ACS4 (HMAC-SHA256 over a canonical request) ------------------------------------------


@dataclass(frozen=True)
class Authorization:
    """The parts of an ``Authorization: ACS3-HMAC-SHA256 Credential=…`` header."""

    algorithm: str
    credential: str
    signed_headers: tuple[str, ...]
    signature: str = field(repr=False)


def parse_authorization(value: str) -> Authorization:
    """Split an ACS3/ACS4 ``Authorization`` header.

    Raises:
        AuthError: ``IncompleteSignature`` when a part is missing or malformed.
    """
    algorithm, _, rest = value.strip().partition(" ")
    parts: dict[str, str] = {}
    for item in rest.split(","):
        name, sep, part = item.strip().partition("=")
        if sep:
            parts[name] = part.strip()
    credential = parts.get("Credential", "")
    signed_headers = parts.get("SignedHeaders", "")
    signature = parts.get("Signature", "")
    if not (credential and signed_headers and signature):
        raise _incomplete("the Authorization header needs Credential, SignedHeaders, Signature")
    return Authorization(
        algorithm=algorithm,
        credential=credential,
        signed_headers=tuple(name.strip().lower() for name in signed_headers.split(";")),
        signature=signature,
    )


def canonical_query_string(query: Sequence[tuple[str, str]]) -> str:
    """Sorted ``pct(name)=pct(value)`` pairs joined with ``&``; a blank value gives ``name=``."""
    return "&".join(
        f"{percent_encode(name)}={percent_encode(value)}" for name, value in sorted(query)
    )


def canonical_header_value(values: Sequence[str]) -> str:
    """A header's value in the canonical request: each stripped, sorted, joined by ``,``."""
    return ",".join(sorted(value.strip() for value in values))


def canonical_headers(headers: Mapping[str, Sequence[str]], signed_headers: Sequence[str]) -> str:
    """One ``name:value\\n`` line per signed header; repeated values sorted, joined by ``,``."""
    return "".join(
        f"{name}:{canonical_header_value(headers.get(name, ()))}\n" for name in signed_headers
    )


def acs_canonical_request(
    method: str,
    path: str,
    query: Sequence[tuple[str, str]],
    headers: Mapping[str, Sequence[str]],
    signed_headers: Sequence[str],
    payload_sha256: str,
) -> str:
    """The canonical request shared by ACS3 and ACS4 (reference §3.2, steps 2 to 6)."""
    return "\n".join(
        [
            method,
            path or "/",
            canonical_query_string(query),
            canonical_headers(headers, signed_headers),
            ";".join(signed_headers),
            payload_sha256,
        ]
    )


def acs_string_to_sign(algorithm: str, canonical_request: str) -> str:
    return f"{algorithm}\n{hashlib.sha256(canonical_request.encode('utf-8')).hexdigest()}"


def acs3_signature(secret: str, string_to_sign: str) -> str:
    """Lower-case hex HMAC-SHA256 keyed with the secret itself (no ``&`` suffix)."""
    return hmac.new(
        secret.encode("utf-8"), string_to_sign.encode("utf-8"), hashlib.sha256
    ).hexdigest()


def acs4_signing_key(secret: str, date: str, region: str, product: str) -> bytes:
    """The ACS4 key: HMAC chain over ``yyyymmdd``, region, product and the terminator."""
    key = ("aliyun_v4" + secret).encode("utf-8")
    for part in (date, region, product, ACS4_SCOPE_TERMINATOR):
        key = hmac.digest(key, part.encode("utf-8"), hashlib.sha256)
    return key


def acs4_signature(signing_key: bytes, string_to_sign: str) -> str:
    return hmac.new(signing_key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def _digests_equal(expected: str, received: str) -> bool:
    # compare_digest rejects non-ASCII str; compare bytes so any input is just "different".
    return hmac.compare_digest(expected.encode("utf-8"), received.encode("utf-8"))


def _parse_timestamp(value: str) -> float:
    """Seconds since the epoch of an ISO 8601 UTC time such as ``2024-01-01T00:00:00Z``."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise AuthError(
            "IllegalTimestamp",
            f'The input parameter "Timestamp" that is mandatory for processing this request '
            f"is not supplied or is not in the form yyyy-MM-ddTHH:mm:ssZ: {value!r}.",
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


class SignatureVerifier:
    """Authenticates requests against an AccessKeyId → AccessKeySecret table.

    Args:
        credentials: the AccessKey pairs the emulator accepts.
        window_s: how far the request time may be from the clock, either way.
        clock: the time source, seconds since the epoch (tests pass a fixed one).
        max_nonce_count: bound on the replay cache; when full, requests with new nonces
            are refused with 429 ``Rejected.Throttling`` until old ones go stale.
    """

    def __init__(
        self,
        credentials: Mapping[str, str],
        *,
        window_s: float = SIGNATURE_WINDOW_S,
        clock: Callable[[], float] = time.time,
        max_nonce_count: int = DEFAULT_MAX_NONCE_COUNT,
    ) -> None:
        self._secrets = dict(credentials)
        self._window_s = window_s
        self._clock = clock
        self._nonces = NonceCache(max_nonce_count)

    def __repr__(self) -> str:
        return f"SignatureVerifier(access_key_ids={sorted(self._secrets)!r})"

    def verify(self, request: SignedRequest) -> str:
        """Check the request's signature, time and nonce; return its AccessKeyId.

        Raises:
            AuthError: with the gateway's code and HTTP status.
        """
        authorization = request.header("authorization")
        if authorization and authorization.startswith("ACS"):
            access_key_id, timestamp, nonce = self._verify_acs(request, authorization)
        elif "Signature" in request.params:
            access_key_id, timestamp, nonce = self._verify_rpc(request)
        else:
            raise _incomplete("no ACS3/ACS4 Authorization header and no Signature parameter")
        self._check_fresh(timestamp, nonce)
        return access_key_id

    def _secret_for(self, access_key_id: str) -> str:
        secret = self._secrets.get(access_key_id)
        if secret is None:
            raise AuthError(
                "InvalidAccessKeyId.NotFound", "Specified access key is not found.", 404
            )
        return secret

    def _verify_rpc(self, request: SignedRequest) -> tuple[str, str | None, str | None]:
        params = request.params
        if params.get("SignatureMethod") != RPC_SIGNATURE_METHOD:
            raise _incomplete(f"SignatureMethod must be {RPC_SIGNATURE_METHOD}")
        if params.get("SignatureVersion") != RPC_SIGNATURE_VERSION:
            raise _incomplete(f"SignatureVersion must be {RPC_SIGNATURE_VERSION}")
        access_key_id = params.get("AccessKeyId")
        if not access_key_id:
            raise _incomplete("the AccessKeyId parameter is missing")
        secret = self._secret_for(access_key_id)
        string_to_sign = rpc_string_to_sign(request.method, params)
        if not _digests_equal(rpc_signature(secret, string_to_sign), params["Signature"]):
            raise AuthError("SignatureDoesNotMatch", SIGNATURE_MISMATCH_PREFIX + string_to_sign)
        return access_key_id, params.get("Timestamp"), params.get("SignatureNonce")

    def _verify_acs(
        self, request: SignedRequest, header: str
    ) -> tuple[str, str | None, str | None]:
        authorization = parse_authorization(header)
        if authorization.algorithm not in (ACS3_ALGORITHM, ACS4_ALGORITHM, ACS3_SM3_ALGORITHM):
            raise _incomplete(f"unsupported signature algorithm {authorization.algorithm!r}")
        self._check_signed_header_set(request, authorization.signed_headers)
        sm3 = authorization.algorithm == ACS3_SM3_ALGORITHM
        payload_sha256 = sm3_hex(request.body) if sm3 else hashlib.sha256(request.body).hexdigest()
        declared_sha256 = request.header("x-acs-content-sha256")
        if declared_sha256 is not None and declared_sha256.lower() != payload_sha256:
            raise AuthError(
                "SignatureDoesNotMatch",
                SIGNATURE_MISMATCH_PREFIX + "x-acs-content-sha256 differs from the body's hash",
            )
        canonical = acs_canonical_request(
            request.method,
            request.path,
            request.query,
            request.headers,
            authorization.signed_headers,
            payload_sha256,
        )
        string_to_sign = (sm3_string_to_sign if sm3 else acs_string_to_sign)(
            authorization.algorithm, canonical
        )
        # The values the signature covers (both headers must be signed, see
        # _check_signed_header_set), not the raw ones: padding must not make a new nonce.
        timestamp = request.signed_header("x-acs-date")
        if authorization.algorithm != ACS4_ALGORITHM:
            access_key_id = authorization.credential
            sign = sm3_signature if sm3 else acs3_signature
            expected = sign(self._secret_for(access_key_id), string_to_sign)
        else:
            access_key_id, signing_key = self._acs4_key(authorization.credential, timestamp)
            expected = acs4_signature(signing_key, string_to_sign)
        if not _digests_equal(expected, authorization.signature.lower()):
            raise AuthError("SignatureDoesNotMatch", SIGNATURE_MISMATCH_PREFIX + string_to_sign)
        return access_key_id, timestamp, request.signed_header("x-acs-signature-nonce")

    def _acs4_key(self, credential: str, timestamp: str | None) -> tuple[str, bytes]:
        # Credential=<AK>/<yyyymmdd>/<region>/<product>/aliyun_v4_request
        parts = credential.split("/")
        if len(parts) != 5 or parts[4] != ACS4_SCOPE_TERMINATOR:
            raise _incomplete(
                "the ACS4 Credential must be AK/date/region/product/" + ACS4_SCOPE_TERMINATOR
            )
        access_key_id, date, region, product, _ = parts
        if timestamp is None or timestamp[:10].replace("-", "") != date:
            raise _incomplete("the ACS4 credential date differs from x-acs-date")
        return access_key_id, acs4_signing_key(
            self._secret_for(access_key_id), date, region, product
        )

    @staticmethod
    def _check_signed_header_set(request: SignedRequest, signed_headers: Sequence[str]) -> None:
        # Whatever steers the request (host, action, date, nonce, body hash) must be covered
        # by the signature, or it could be altered or replayed under a valid one.
        if list(signed_headers) != sorted(signed_headers):
            raise _incomplete("SignedHeaders must be sorted")
        signed = set(signed_headers)
        for name in request.headers:
            must_sign = name in ("host", "content-type") or name.startswith("x-acs-")
            if must_sign and name not in signed:
                raise _incomplete(f"header {name!r} must be signed")

    def _check_fresh(self, timestamp: str | None, nonce: str | None) -> None:
        if not timestamp:
            raise AuthError(
                "MissingTimestamp",
                'The input parameter "Timestamp" that is mandatory for processing this '
                "request is not supplied.",
            )
        if not nonce:
            raise AuthError(
                "MissingSignatureNonce",
                'The input parameter "SignatureNonce" that is mandatory for processing this '
                "request is not supplied.",
            )
        request_time = _parse_timestamp(timestamp)
        now = self._clock()
        if abs(now - request_time) > self._window_s:
            raise AuthError(
                "InvalidTimeStamp.Expired", "Specified time stamp or date value is expired."
            )
        try:
            fresh = self._nonces.add(nonce, expires_at=request_time + self._window_s, now=now)
        except NonceCacheFullError:
            raise AuthError(
                "Rejected.Throttling",
                "Too many requests in the signature window; retry later.",
                429,
            ) from None
        if not fresh:
            raise AuthError("SignatureNonceUsed", "Specified signature nonce was used already.")
