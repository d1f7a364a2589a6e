"""One HTTP request in, one KMS call, one answer out: what the server runs for a request.

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
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from kmsnb.emulator._http import HttpError, HttpRequest, HttpResponse
from kmsnb.emulator._waiting import WouldBlock, not_waiting
from kmsnb.emulator.admin import EmulatorAdmin
from kmsnb.emulator.auth import AuthError, SignatureVerifier, SignedRequest
from kmsnb.emulator.service import KmsService, ServiceError
from kmsnb.emulator.store import KeyStoreError

__all__ = ["API_VERSION", "COMMON_PARAMS", "MAX_PARAM_COUNT", "ON_THE_LOOP", "Dispatcher"]

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
    """Turns one HTTP request into one KMS call and its answer, on a worker thread or,
    for the data plane, on the event loop (:meth:`handle_without_waiting`).

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

    def handle_without_waiting(
        self, http_request: HttpRequest
    ) -> HttpResponse | Callable[[], HttpResponse]:
        """Answer ``http_request`` now, on the event loop, if that needs no wait; else
        verify it and return the rest of the work, for a worker thread to run.

        The data-plane actions (:data:`ON_THE_LOOP`) run here unless they would wait
        (:mod:`kmsnb.emulator._waiting`); every other action, and one of those that would
        wait, is returned as the rest of the work. The request is verified here either
        way, once: its nonce is spent.
        """
        call = _Call(self, http_request)
        verified = call.verified()
        if isinstance(verified, HttpResponse):
            return verified
        action, params = verified

        def answer() -> HttpResponse:
            return call.answer(lambda: self._execute(action, params, http_request))

        if action in ON_THE_LOOP:
            try:
                with not_waiting():
                    return answer()
            except WouldBlock:
                pass  # nothing was changed: the worker starts the call over
        return answer

    def _execute(
        self, action: str, params: dict[str, str], http_request: HttpRequest
    ) -> dict[str, Any]:
        # Admin actions come after the same signature, clock and nonce checks.
        if self.admin is not None and self.admin.handles(action):
            return self.admin.call(action, params, peer=http_request.peer)
        return self.service.call(action, params)

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


class _Call:
    """One request's id and timing, and the answer to each way answering it can fail."""

    def __init__(self, dispatcher: Dispatcher, http_request: HttpRequest) -> None:
        self.dispatcher = dispatcher
        self.http_request = http_request
        self.started = time.perf_counter()
        self.request_id = _new_request_id()
        self.action = "-"

    def verified(self) -> tuple[str, dict[str, str]] | HttpResponse:
        """The action and its parameters, or the answer that refuses the request."""
        try:
            action, params = _verified(self.dispatcher.verifier, self.http_request)
        except Exception as error:
            return self._finished(self._error_answer(error))
        self.action = action
        return action, params

    def answer(self, execute: Callable[[], dict[str, Any]]) -> HttpResponse:
        """The answer: what ``execute`` returns, or its error's. :class:`WouldBlock`
        goes through: the call is then started over on a worker."""
        try:
            body = {**execute(), "RequestId": self.request_id}
            response = self.dispatcher._json(200, body, self.request_id)
        except WouldBlock:
            raise
        except Exception as error:
            response = self._error_answer(error)
        return self._finished(response)

    def _finished(self, response: HttpResponse) -> HttpResponse:
        elapsed_ms = (time.perf_counter() - self.started) * 1e3
        logger.debug("%s %s %.1f ms", self.http_request.method, self.action, elapsed_ms)
        return response

    def _error_answer(self, error: Exception) -> HttpResponse:
        dispatcher, request_id = self.dispatcher, self.request_id
        if isinstance(error, _Refusal):
            return dispatcher.error_page(error.error, request_id, close=error.close)
        if isinstance(error, AuthError | ServiceError):
            refusal = HttpError(error.http_status, error.code, error.message)
            return dispatcher.error_page(refusal, request_id)
        if isinstance(error, KeyStoreError):
            # The keystore's own message (disk full, read-only, corrupted) names its files,
            # not the request: it helps whoever runs the emulator and leaks nothing.
            logger.warning("%s failed: %s", self.action, error)
            failure = HttpError(500, "InternalFailure", f"Internal Failure: {error}.")
            return dispatcher.error_page(failure, request_id)
        # Only the type and where: an exception's text may hold request data.
        logger.error(
            "internal error in %s: %s\n%s",
            self.action,
            type(error).__name__,
            "".join(traceback.format_tb(error.__traceback__)),
        )
        failure = HttpError(500, "InternalFailure", "Internal Failure.")
        return dispatcher.error_page(failure, request_id)


def _verified(verifier: SignatureVerifier, http_request: HttpRequest) -> tuple[str, dict[str, str]]:
    """The action and its own parameters, once the request's signature, clock and nonce
    are checked (the nonce is then spent)."""
    if http_request.method not in ("GET", "POST"):
        raise _refusal(HttpError(403, "UnsupportedHTTPMethod", "Use POST or GET."))
    request = _signed_request(http_request)
    verifier.verify(request)
    action = _action(request)
    return action, {k: v for k, v in request.params.items() if k not in COMMON_PARAMS}


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
#: The actions :meth:`Dispatcher.handle_without_waiting` runs on the event loop: the data
#: plane, which reads the keystore's snapshot and writes nothing.
ON_THE_LOOP = frozenset(
    {"Decrypt", "Encrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext", "ReEncrypt"}
)


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
