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


def connect(uri: str | None = None) -> KmsClient:
    """Return a KMS client for ``uri``.

    Args:
        uri: one of the forms in the module docstring. ``None`` reads ``$KMSNB_KMS``,
            and when that is unset too, uses the local emulator at its default store.

    Returns:
        A :class:`~kmsnb.kms.KmsClient`.

    Raises:
        ValueError: if the URI has none of the accepted forms.
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
    if scheme == "aliyun":
        if not _REGION.fullmatch(rest):
            raise ValueError(f"not a region in KMS URI {uri!r}; expected aliyun:REGION")
        return _aliyun(region_id=rest, endpoint=None)
    if scheme in ("http", "https"):
        parts = urlsplit(uri)
        if not parts.hostname or parts.path not in ("", "/") or parts.query:
            raise ValueError(f"not a KMS endpoint: {uri!r}; accepted forms: {_ACCEPTED_FORMS}")
        service = _SERVICE_HOST.fullmatch(parts.hostname)
        region_id = service.group("region") if service and scheme == "https" else None
        return _aliyun(region_id=region_id, endpoint=f"{scheme}://{parts.netloc}")
    raise ValueError(f"unrecognized KMS URI {uri!r}; accepted forms: {_ACCEPTED_FORMS}")


def _local(path: str | None) -> KmsClient:
    from kmsnb.kms.local import LocalKms

    return LocalKms(path)


def _aliyun(*, region_id: str | None, endpoint: str | None) -> KmsClient:
    from kmsnb.kms.aliyun import AliyunKms

    return AliyunKms(region_id, endpoint=endpoint)
