"""The emulator's admin actions: moving its clock, over the KMS API's own authentication.

Admin calls are ordinary API requests to ``POST /`` with an action of kmsnb's own
(``KmsnbAdvanceClock``, ``KmsnbDescribeClock``) and ``Version=2016-01-20``, so they are
signed exactly like KMS calls (ACS3, ACS4 or RPC HMAC-SHA1) with the emulator's AccessKey,
and go through the same signature, timestamp and nonce checks before they get here. On top
of that they are refused (403 ``Forbidden.NoPermission``) unless the request came from a
loopback address: an emulator served with ``--allow-remote`` still keeps its clock to the
machine it runs on. No Alibaba action starts with ``Kmsnb``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any, Final

from kmsnb.emulator._engine import format_time
from kmsnb.emulator._errors import ServiceError, invalid, missing
from kmsnb.emulator.clock import MAX_ADVANCE_SECONDS, MovableClock

__all__ = ["ADMIN_ACTION_PREFIX", "ADVANCE_CLOCK", "DESCRIBE_CLOCK", "EmulatorAdmin"]

ADMIN_ACTION_PREFIX: Final = "Kmsnb"
ADVANCE_CLOCK: Final = "KmsnbAdvanceClock"
DESCRIBE_CLOCK: Final = "KmsnbDescribeClock"


class EmulatorAdmin:
    """Answers the admin actions of one served emulator.

    Args:
        clock: the emulator's clock when it is movable; None when it runs on the system
            clock, in which case advancing is refused.
    """

    def __init__(self, clock: MovableClock | None) -> None:
        self._clock = clock

    def __repr__(self) -> str:
        return f"EmulatorAdmin({self._clock!r})"

    @staticmethod
    def handles(action: str) -> bool:
        return action.startswith(ADMIN_ACTION_PREFIX)

    def call(self, action: str, params: Mapping[str, str], *, peer: str) -> dict[str, Any]:
        """Run an authenticated admin action sent from address ``peer``.

        Raises:
            ServiceError: 403 ``Forbidden.NoPermission`` from a non-loopback peer; 400
                ``UnsupportedOperation`` to advance a system clock; 404
                ``InvalidAction.NotFound`` for an unknown admin action.
        """
        if not _is_loopback(peer):
            raise ServiceError(
                "Forbidden.NoPermission",
                "Admin actions are accepted only from the machine the emulator runs on.",
                403,
            )
        if action == DESCRIBE_CLOCK:
            return self._describe()
        if action == ADVANCE_CLOCK:
            return self._advance(params)
        raise ServiceError("InvalidAction.NotFound", "Specified api is not found.", 404)

    def _describe(self) -> dict[str, Any]:
        if self._clock is None:
            import time

            return {"Clock": "system", "Now": format_time(time.time()), "OffsetSeconds": 0}
        return {
            "Clock": "movable",
            "Now": format_time(self._clock()),
            "OffsetSeconds": int(self._clock.offset),
        }

    def _advance(self, params: Mapping[str, str]) -> dict[str, Any]:
        if self._clock is None:
            raise ServiceError(
                "UnsupportedOperation",
                "The emulator runs on the system clock; serve it with --clock movable.",
                400,
            )
        text = params.get("Seconds")
        if not text:
            raise missing("Seconds")
        try:
            seconds = int(text)
        except ValueError:
            raise invalid("Seconds") from None
        if not 0 < seconds <= MAX_ADVANCE_SECONDS:
            raise invalid("Seconds")
        self._clock.advance(seconds)
        return self._describe()


def _is_loopback(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return bool(address.is_loopback or (mapped is not None and mapped.is_loopback))
