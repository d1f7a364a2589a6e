"""Open a KMS client from a URI: the local emulator, an emulator server, or Alibaba Cloud.

One string names the KMS, so a notebook, a test and a CLI can be pointed elsewhere by
changing ``KMSNB_KMS`` alone:

==================================== ===================================================
``local:PATH``                        the emulator in-process, keys in directory ``PATH``
``local:``                            the same at the default store directory
``http://HOST:PORT``                  an emulator server (``kmsnb emulator serve``),
                                      through the official SDK
``aliyun:REGION``                     Alibaba Cloud KMS in ``REGION``
``https://kms.REGION.aliyuncs.com``   the same, or any other HTTPS endpoint (VPC,
                                      private) of the service
==================================== ===================================================

Backends are imported only when chosen, so ``local:`` works without the Alibaba SDK.
Plain ``http://`` is for the loopback interface (an emulator on this machine) unless the
caller opts in (``allow_insecure_http=True`` or ``$KMSNB_ALLOW_INSECURE_HTTP=1``): the
answers carry plaintext data keys. Credentials never go in the URI, and an error message
never quotes the user-info part of one.
"""

from __future__ import annotations

import os
import re
from urllib.parse import urlsplit

from kmsnb.kms._base import KmsClient

__all__ = ["KMS_URI_ENV", "connect"]

#: The environment variable :func:`connect` reads when given no URI.
KMS_URI_ENV = "KMSNB_KMS"

_ACCEPTED_FORMS = (
    "local:PATH, http://HOST:PORT (an emulator server), aliyun:REGION, "
    "https://kms.REGION.aliyuncs.com"
)
_REGION = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)+")
_SERVICE_HOST = re.compile(r"kms(?:-vpc)?\.(?P<region>[a-z0-9-]+)\.aliyuncs\.com")
# USER[:PASSWORD]@ at the start of a URI or after its "//": never shown.
_USER_INFO = re.compile(r"(^|//)[^/?#]*@")


def _redacted(uri: str) -> str:
    """``uri`` as error messages may quote it: without its user info, which may be a secret."""
    return _USER_INFO.sub(r"\1***@", uri, count=1)


def connect(uri: str | None = None, *, allow_insecure_http: bool = False) -> KmsClient:
    """Return a KMS client for ``uri``.

    Args:
        uri: one of the forms in the module docstring. ``None`` reads ``$KMSNB_KMS``,
            and when that is unset too, uses the local emulator at its default store.
        allow_insecure_http: allow plain ``http://`` to a host other than the loopback
            interface (127.0.0.0/8, ``::1``, ``localhost``); so does
            ``$KMSNB_ALLOW_INSECURE_HTTP=1``. Data keys then cross the network in clear.

    Returns:
        A :class:`~kmsnb.kms.KmsClient`.

    Raises:
        ValueError: if the URI has none of the accepted forms, carries credentials, or is
            plain HTTP to another machine without the opt-in. No request is sent first.
        ImportError: if the Alibaba SDK is needed but ``kmsnb[aliyun]`` is not installed.
    """
    if uri is None:
        uri = os.environ.get(KMS_URI_ENV) or None
    if uri is None:
        return _local(None)
    uri = uri.strip()
    scheme, _, rest = uri.partition(":")
    scheme = scheme.lower()
    if scheme == "local":
        return _local(rest or None)
    shown = _redacted(uri)
    if scheme == "aliyun":
        if not _REGION.fullmatch(rest):
            raise ValueError(f"not a region in KMS URI {shown!r}; expected aliyun:REGION")
        return _aliyun(region_id=rest, endpoint=None, allow_insecure_http=allow_insecure_http)
    if scheme in ("http", "https"):
        parts = urlsplit(uri)
        if "@" in parts.netloc:
            raise ValueError(
                f"a KMS URI carries no credentials ({shown!r}); AccessKeys come from the "
                "Alibaba Cloud credentials chain (ALIBABA_CLOUD_ACCESS_KEY_ID and "
                "ALIBABA_CLOUD_ACCESS_KEY_SECRET, a profile, a RAM role)"
            )
        if not parts.hostname or parts.path not in ("", "/") or parts.query:
            raise ValueError(f"not a KMS endpoint: {shown!r}; accepted forms: {_ACCEPTED_FORMS}")
        service = _SERVICE_HOST.fullmatch(parts.hostname)
        region_id = service.group("region") if service and scheme == "https" else None
        return _aliyun(
            region_id=region_id,
            endpoint=f"{scheme}://{parts.netloc}",
            allow_insecure_http=allow_insecure_http,
        )
    raise ValueError(f"unrecognized KMS URI {shown!r}; accepted forms: {_ACCEPTED_FORMS}")


def _local(path: str | None) -> KmsClient:
    from kmsnb.kms.local import LocalKms

    return LocalKms(path)


def _aliyun(*, region_id: str | None, endpoint: str | None, allow_insecure_http: bool) -> KmsClient:
    from kmsnb.kms.aliyun import AliyunKms

    return AliyunKms(region_id, endpoint=endpoint, allow_insecure_http=allow_insecure_http)
