"""Where :class:`~kmsnb.kms.aliyun.AliyunKms` connects: the endpoint, and whether plain
HTTP to it is allowed.

GenerateDataKey and Decrypt answers carry plaintext data keys, so plain ``http://`` is
for the loopback interface only (127.0.0.0/8, ``::1``, ``localhost``: an emulator on this
machine) unless the caller opts in. A host name is not resolved to decide: a name that
points at 127.0.0.1 is still another machine's name.
"""

from __future__ import annotations

import ipaddress
import os
from urllib.parse import urlsplit

__all__ = [
    "ALLOW_INSECURE_HTTP_ENV",
    "check_transport",
    "describe_location",
    "is_loopback",
    "split_endpoint",
]

#: Set to ``1`` to let :class:`~kmsnb.kms.aliyun.AliyunKms` (and so :func:`kmsnb.connect`)
#: use plain ``http://`` to a host that is not the loopback interface.
ALLOW_INSECURE_HTTP_ENV = "KMSNB_ALLOW_INSECURE_HTTP"


def split_endpoint(endpoint: str) -> tuple[str, str]:
    """``https://host[:port]`` or bare ``host[:port]`` (HTTPS) → (scheme, netloc)."""
    if "://" not in endpoint:
        endpoint = "https://" + endpoint
    parts = urlsplit(endpoint)
    if "@" in parts.netloc:
        # Never quoted: the user info may be an AccessKey pair.
        raise ValueError(
            "a KMS endpoint has no user info (USER:SECRET@); credentials come from the "
            "Alibaba Cloud credentials chain"
        )
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not a KMS endpoint: {endpoint!r}; expected http(s)://HOST[:PORT]")
    if parts.path not in ("", "/") or parts.query:
        raise ValueError(f"a KMS endpoint has no path or query: {endpoint!r}")
    return parts.scheme, parts.netloc


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ``::1`` or ``localhost``: traffic that never leaves the machine."""
    if host.lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if address.version == 4:
        return address in ipaddress.ip_network("127.0.0.0/8")
    return address == ipaddress.IPv6Address("::1")


def check_transport(scheme: str, netloc: str, *, allow_insecure_http: bool) -> None:
    """Refuse plain HTTP off the loopback interface unless the caller opted in."""
    if scheme != "http":
        return
    host = urlsplit(f"{scheme}://{netloc}").hostname or ""
    if is_loopback(host) or allow_insecure_http:
        return
    if os.environ.get(ALLOW_INSECURE_HTTP_ENV, "").strip() == "1":
        return
    raise ValueError(
        f"refusing plain http:// to {host}, which is not this machine: GenerateDataKey and "
        "Decrypt answers carry plaintext data keys; use https://, or opt in with "
        f"allow_insecure_http=True, {ALLOW_INSECURE_HTTP_ENV}=1 or --allow-insecure-http"
    )


def describe_location(scheme: str, netloc: str, region_id: str | None) -> str:
    if scheme == "https" and region_id and netloc == f"kms.{region_id}.aliyuncs.com":
        return f"Alibaba Cloud KMS {region_id}"
    host = urlsplit(f"{scheme}://{netloc}").hostname or ""
    loopback = is_loopback(host)
    if scheme == "http" and loopback:
        return f"KMS emulator at {scheme}://{netloc}"
    return f"KMS at {scheme}://{netloc}"
