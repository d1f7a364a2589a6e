"""Client side of the emulator's admin actions (:mod:`kmsnb.emulator.admin`).

An admin call is an ordinary KMS API request with one of kmsnb's own actions, sent through
the official SDK's generic ``call_api``, so it is signed like every other call with the
credentials of the :class:`~kmsnb.kms.aliyun.AliyunKms` that sends it. It is sent once,
never retried: moving a clock twice is not the same as moving it once.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from kmsnb.kms.aliyun import AliyunKms

__all__ = ["call_emulator_admin", "require_emulator"]


def require_emulator(kms: object) -> AliyunKms:
    """``kms`` if it is a client of a served emulator on this machine.

    Raises:
        ValueError: a local keystore (no clock to move) or a KMS that is not an emulator.
    """
    if isinstance(kms, AliyunKms) and kms.location.startswith("KMS emulator at"):
        return kms
    where = getattr(kms, "location", type(kms).__name__)
    raise ValueError(
        f"emulator admin calls go to a served emulator (kmsnb emulator serve --clock movable, "
        f"then --kms http://127.0.0.1:PORT or KMSNB_KMS), not to {where}"
    )


def call_emulator_admin(kms: AliyunKms, action: str, params: Mapping[str, str]) -> dict[str, Any]:
    """Send the admin ``action``; return the response body.

    Raises:
        KmsError: the emulator's refusal, with its code (``Forbidden.NoPermission``,
            ``UnsupportedOperation``, ...) and HTTP status.
    """
    from alibabacloud_tea_openapi import utils_models
    from alibabacloud_tea_openapi.utils import Utils
    from darabonba.runtime import RuntimeOptions

    request = utils_models.OpenApiRequest(query=Utils.query(dict(params)))
    api = utils_models.Params(
        action=action,
        version="2016-01-20",
        protocol="HTTPS",  # the client's own protocol (http for an emulator) wins
        pathname="/",
        method="POST",
        auth_type="AK",
        style="RPC",
        req_body_type="formData",
        body_type="json",
    )
    client: Any = kms._client
    try:
        response = client.call_api(api, request, RuntimeOptions())
    except Exception as exc:  # the SDK raises many unrelated types
        method = re.sub(r"(?<!^)(?=[A-Z])", "_", action).lower()
        error, _maybe_carried_out = kms._translate(method, exc)
        raise error from None
    body: dict[str, Any] = dict(response.get("body") or {})
    return body
