"""The head of an HTTP/1.1 request, parsed strictly: the request line, the header lines,
keep-alive and the body's length (see :mod:`kmsnb.emulator._http` for why strict).

Each refusal is an :class:`HttpError` with the status and the gateway's code to answer.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kmsnb.emulator._http import HttpLimits

__all__ = ["HttpError", "content_length", "keeps_alive", "parse_head", "too_large_head"]

_REQUEST_LINE = re.compile(rb"([A-Z]{1,16}) (\S+) HTTP/(\d)\.(\d)")
_DECIMAL = re.compile(r"[0-9]{1,18}")
# RFC 9110 §5.1 field-name (a token), ":", then the value (obs-text included, read as
# Latin-1); no CR, LF or NUL anywhere in the line. Leading blanks are dropped and trailing
# ones kept, as http.client did: "Content-Length: 5 " is then not a plain number (a 400).
_HEADER_LINE = re.compile(rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*([^\r\n\x00]*)")
_FOLDED_LINE = re.compile(rb"[ \t][^\r\n\x00]*")
_MAX_HEADER_COUNT = 100  # what http.client allows


class HttpError(Exception):
    """A request refused by the transport itself; the connection is closed after it."""

    def __init__(self, http_status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.code = code
        self.message = message


def too_large_head(buffer: bytearray, limits: HttpLimits) -> HttpError:
    line_end = buffer.find(b"\r\n")
    if line_end < 0 or line_end > limits.max_target_size + 32:
        return HttpError(
            400, "InvalidParameter", f"The request URL exceeds {limits.max_target_size} bytes."
        )
    return HttpError(431, "RequestHeaderFieldsTooLarge", "The request headers are too large.")


def parse_head(
    head: bytes, limits: HttpLimits
) -> tuple[str, str, tuple[int, int], dict[str, list[str]]]:
    line, _, header_block = head.lstrip(b"\r\n").partition(b"\r\n")
    match = _REQUEST_LINE.fullmatch(line)
    if match is None:
        raise HttpError(400, "BadRequest", "Bad request syntax.")
    method, target, major, minor = match.groups()
    if len(target) > limits.max_target_size:
        raise HttpError(
            400, "InvalidParameter", f"The request URL exceeds {limits.max_target_size} bytes."
        )
    if len(header_block) > limits.max_header_size:
        raise HttpError(431, "RequestHeaderFieldsTooLarge", "The request headers are too large.")
    version = (int(major), int(minor))
    if version[0] != 1:
        raise HttpError(505, "HTTPVersionNotSupported", "Use HTTP/1.1.")
    return method.decode("ascii"), target.decode("latin-1"), version, parse_headers(header_block)


def parse_headers(header_block: bytes) -> dict[str, list[str]]:
    """Header values by lower-case name, in the order received; see the module docstring."""
    headers: dict[str, list[str]] = {}
    if not header_block:
        return headers
    lines = header_block.split(b"\r\n")
    if len(lines) > _MAX_HEADER_COUNT:
        raise HttpError(431, "RequestHeaderFieldsTooLarge", "The request has too many headers.")
    values: list[str] | None = None
    for line in lines:
        if values is not None and _FOLDED_LINE.fullmatch(line):
            # obs-fold, kept as http.client kept it (the line break included): the
            # signature check then sees the value the client signed, or refuses it.
            values[-1] += "\r\n" + line.decode("latin-1")
            continue
        match = _HEADER_LINE.fullmatch(line)
        if match is None:
            # A bare CR or LF, a NUL, a name that is not a token, no colon: the ways two
            # parsers come to disagree on where a header or the request ends.
            raise HttpError(400, "BadRequest", "Bad request syntax: a malformed header line.")
        name, value = match.groups()
        values = headers.setdefault(name.decode("ascii").lower(), [])
        values.append(value.decode("latin-1"))
    return headers


def keeps_alive(version: tuple[int, int], headers: Mapping[str, Sequence[str]]) -> bool:
    tokens = {
        token.strip().lower()
        for value in headers.get("connection", ())
        for token in value.split(",")
    }
    if version >= (1, 1):
        return "close" not in tokens
    return "keep-alive" in tokens


def content_length(headers: Mapping[str, Sequence[str]], limits: HttpLimits) -> int:
    """The body's length: one ``Content-Length`` of ASCII digits, else a 4xx."""
    if "transfer-encoding" in headers:
        raise HttpError(
            411,
            "InvalidParameter",
            "Chunked request bodies are not supported; send Content-Length.",
        )
    values = headers.get("content-length", [])
    if not values:
        return 0
    if len(values) > 1:
        raise HttpError(400, "InvalidParameter", "Send exactly one Content-Length header.")
    if _DECIMAL.fullmatch(values[0]) is None:
        raise HttpError(400, "InvalidParameter", "Content-Length must be ASCII decimal digits.")
    length = int(values[0])
    if length > limits.max_body_size:
        raise HttpError(
            413, "RequestEntityTooLarge", f"The request body exceeds {limits.max_body_size} bytes."
        )
    return length
