"""One HTTP request in, one KMS call, one answer out: what the server's workers run.

The request's query and form body are parsed (strict UTF-8, bounded field count), its
signature verified (:mod:`kmsnb.emulator.auth`), the action dispatched to the engine (or,
for kmsnb's own ``Kmsnb*`` actions, to :mod:`kmsnb.emulator.admin`), and
the result or the error written in the gateway's JSON shape: ``{RequestId, HostId, Code,
Message, Recommend}`` with the header ``x-acs-request-id``.

Nothing here logs a query string, a form body or a header value: the parameters of
Encrypt and Decrypt hold plaintext and encryption contexts.
"""

from __future__ import annotations

import json
import logging
import time
import traceback
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from kmsnb.emulator._http import HttpError, HttpRequest, HttpResponse
from kmsnb.emulator.admin import EmulatorAdmin
from kmsnb.emulator.auth import AuthError, SignatureVerifier, SignedRequest
from kmsnb.emulator.service import KmsService, ServiceError
from kmsnb.emulator.store import KeyStoreError

__all__ = ["API_VERSION", "COMMON_PARAMS", "MAX_PARAM_COUNT", "Dispatcher"]

logger = logging.getLogger("kmsnb.emulator.server")

API_VERSION = "2016-01-20"
#: Bound on query plus form fields, so a hostile request cannot make a huge dict.
MAX_PARAM_COUNT = 256

# Signing and envelope parameters, stripped before the service sees the request.
COMMON_PARAMS = frozenset(
    {
        "AccessKeyId",
        "Action",
        "Format",
        "RegionId",
        "SecurityToken",
        "Signature",
        "SignatureMethod",
        "SignatureNonce",
        "SignatureType",
        "SignatureVersion",
        "Timestamp",
        "Version",
    }
)


class Dispatcher:
    """Turns one HTTP request into one KMS call and its answer; runs on a worker thread.

    Nothing here logs a query string, a form body or a header value.
    """

    def __init__(
        self,
        service: KmsService,
        verifier: SignatureVerifier,
        *,
        admin: EmulatorAdmin | None = None,
    ) -> None:
        self.service = service
        self.verifier = verifier
        self.admin = admin
        self.host_id = ""

    def handle(self, http_request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        request_id = _new_request_id()
        action = "-"
        try:
            if http_request.method not in ("GET", "POST"):
                raise _refusal(HttpError(403, "UnsupportedHTTPMethod", "Use POST or GET."))
            request = _signed_request(http_request)
            self.verifier.verify(request)
            action = _action(request)
            params = {k: v for k, v in request.params.items() if k not in COMMON_PARAMS}
            # Admin actions come after the same signature, clock and nonce checks.
            if self.admin is not None and self.admin.handles(action):
                result = self.admin.call(action, params, peer=http_request.peer)
            else:
                result = self.service.call(action, params)
            return self._json(200, {**result, "RequestId": request_id}, request_id)
        except _Refusal as refusal:
            return self.error_page(refusal.error, request_id, close=refusal.close)
        except AuthError as error:
            return self.error_page(
                HttpError(error.http_status, error.code, error.message), request_id
            )
        except ServiceError as error:
            return self.error_page(
                HttpError(error.http_status, error.code, error.message), request_id
            )
        except KeyStoreError as error:
            # The keystore's own message (disk full, read-only, corrupted) names its files,
            # not the request: it helps whoever runs the emulator and leaks nothing.
            logger.warning("%s failed: %s", action, error)
            failure = HttpError(500, "InternalFailure", f"Internal Failure: {error}.")
            return self.error_page(failure, request_id)
        except Exception as error:
            # Only the type and where: an exception's text may hold request data.
            logger.error(
                "internal error in %s: %s\n%s",
                action,
                type(error).__name__,
                "".join(traceback.format_tb(error.__traceback__)),
            )
            failure = HttpError(500, "InternalFailure", "Internal Failure.")
            return self.error_page(failure, request_id)
        finally:
            logger.debug(
                "%s %s %.1f ms", http_request.method, action, (time.perf_counter() - started) * 1e3
            )

    def error_page(
        self, error: HttpError, request_id: str | None = None, *, close: bool = False
    ) -> HttpResponse:
        """The gateway's error body for ``error``; transport refusals close the connection."""
        request_id = request_id or _new_request_id()
        body = {
            "RequestId": request_id,
            "HostId": self.host_id,
            "Code": error.code,
            "Message": error.message,
            "Recommend": (
                f"https://api.aliyun.com/troubleshoot?q={error.code}"
                f"&product=Kms&requestId={request_id}"
            ),
        }
        response = self._json(error.http_status, body, request_id)
        response.close = close
        return response

    @staticmethod
    def _json(status: int, body: Mapping[str, Any], request_id: str) -> HttpResponse:
        payload = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        headers = [
            ("Content-Type", "application/json;charset=utf-8"),
            ("x-acs-request-id", request_id),
        ]
        return HttpResponse(status, payload, headers)


class _Refusal(Exception):
    def __init__(self, error: HttpError, *, close: bool) -> None:
        super().__init__(error.message)
        self.error = error
        self.close = close


def _refusal(error: HttpError, *, close: bool = False) -> _Refusal:
    return _Refusal(error, close=close)


def _signed_request(http_request: HttpRequest) -> SignedRequest:
    target = urlsplit(http_request.target)
    if target.path != "/":
        raise _refusal(HttpError(404, "InvalidAction.NotFound", "Specified api is not found."))
    # The request line arrived as Latin-1 text of its bytes; get the bytes back.
    query = _parse_pairs(target.query.encode("latin-1"))
    content_type = (http_request.header("content-type") or "").split(";")[0].strip().lower()
    form = _parse_pairs(http_request.body) if content_type == _FORM_TYPE else []
    return SignedRequest(
        method=http_request.method,
        path=target.path,
        query=query,
        params={**dict(query), **dict(form)},  # form after query (docs/kms-api.md, "Requests")
        headers=http_request.headers,
        body=http_request.body,
    )


def _action(request: SignedRequest) -> str:
    action = request.params.get("Action") or request.header("x-acs-action")
    if not action:
        raise _refusal(
            HttpError(400, "MissingParameter", 'The parameter "Action" is needed but not provided.')
        )
    version = request.params.get("Version") or request.header("x-acs-version")
    if version != API_VERSION:
        raise _refusal(
            HttpError(
                400,
                "InvalidVersion",
                f"Specified parameter Version is not valid; KMS speaks {API_VERSION}.",
            )
        )
    return action


_FORM_TYPE = "application/x-www-form-urlencoded"


def _new_request_id() -> str:
    return str(uuid.uuid4()).upper()


def _parse_pairs(encoded: bytes) -> list[tuple[str, str]]:
    try:
        return parse_qsl(
            encoded.decode("utf-8"),
            keep_blank_values=True,
            encoding="utf-8",
            errors="strict",
            max_num_fields=MAX_PARAM_COUNT,
        )
    except ValueError:  # UnicodeDecodeError too: it is a ValueError
        raise _refusal(
            HttpError(
                400,
                "ParseRequestParameterException",
                "The query or form body is not valid URL-encoded UTF-8, or has too many fields.",
            )
        ) from None
