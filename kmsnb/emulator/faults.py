"""Fault injection for the emulator's HTTP server: latency, throttling, 5xx, dropped sockets.

Off by default. Clients are tested against the failures a real KMS endpoint produces: the
gateway throttles (429 ``Rejected.Throttling``), the service fails (503
``ServiceUnavailableTemporary``, 500 ``InternalFailure``), a load balancer resets a
connection without answering. A seeded RNG makes a test's sequence of faults reproducible;
``schedule`` gives the first requests fixed faults, for tests that need one exact story.

Two faults happen *after* the request was carried out, the failures that leave a client
unable to know whether a write took effect: the answer is lost (``DROP_AFTER``) or comes
later than the client waits (``SLOW_ANSWER``).
"""

from __future__ import annotations

import enum
import random
import threading
from dataclasses import dataclass

__all__ = ["Fault", "FaultConfig", "FaultInjector"]


class Fault(enum.Enum):
    """What the server does to one request instead of answering it normally."""

    NONE = "none"
    THROTTLE = "throttle"  # 429 Rejected.Throttling
    UNAVAILABLE = "unavailable"  # 503 ServiceUnavailableTemporary
    INTERNAL = "internal"  # 500 InternalFailure
    DROP = "drop"  # close the socket without a response, the request not carried out
    DROP_AFTER = "drop-after"  # carry the request out, then close without a response
    SLOW_ANSWER = "slow-answer"  # carry the request out, answer after slow_answer_s


@dataclass(frozen=True)
class FaultConfig:
    """Rates are probabilities per request, drawn in this order and summing to at most 1.

    Attributes:
        latency_s: added to every request before it is answered (or dropped).
        latency_jitter_s: a uniform random extra of up to this much.
        throttle_rate: share of requests answered 429 ``Rejected.Throttling``.
        server_error_rate: share answered 5xx, half 503 and half 500.
        drop_rate: share whose connection is closed without a response.
        seed: seeds the RNG; ``None`` draws from the OS.
        schedule: the faults of the first requests, in order; the rates apply after them.
        slow_answer_s: how long a ``SLOW_ANSWER`` holds back an answer already made.
    """

    latency_s: float = 0.0
    latency_jitter_s: float = 0.0
    throttle_rate: float = 0.0
    server_error_rate: float = 0.0
    drop_rate: float = 0.0
    seed: int | None = None
    schedule: tuple[Fault, ...] = ()
    slow_answer_s: float = 0.0

    def __post_init__(self) -> None:
        if self.latency_s < 0 or self.latency_jitter_s < 0 or self.slow_answer_s < 0:
            raise ValueError("latencies must not be negative")
        rates = (self.throttle_rate, self.server_error_rate, self.drop_rate)
        if any(rate < 0 for rate in rates) or sum(rates) > 1:
            raise ValueError("fault rates must be non-negative and sum to at most 1")

    @property
    def enabled(self) -> bool:
        return any(
            (
                self.latency_s,
                self.latency_jitter_s,
                self.throttle_rate,
                self.server_error_rate,
                self.drop_rate,
                self.schedule,
            )
        )


class FaultInjector:
    """Draws one fault per request; thread-safe, reproducible for a given seed."""

    def __init__(self, config: FaultConfig) -> None:
        self.config = config
        # Not for keys or secrets: it only picks which requests fail.
        self._random = random.Random(config.seed)  # noqa: S311
        self._lock = threading.Lock()
        self._drawn_count = 0

    def draw(self) -> tuple[float, Fault]:
        """Return the delay to add, in seconds, and the fault for the next request."""
        config = self.config
        with self._lock:
            index = self._drawn_count
            self._drawn_count += 1
            jitter = self._random.uniform(0, config.latency_jitter_s)
            if index < len(config.schedule):
                return config.latency_s + jitter, config.schedule[index]
            roll = self._random.random()
            half = self._random.random() < 0.5
        delay = config.latency_s + jitter
        if roll < config.throttle_rate:
            return delay, Fault.THROTTLE
        roll -= config.throttle_rate
        if roll < config.server_error_rate:
            return delay, Fault.UNAVAILABLE if half else Fault.INTERNAL
        roll -= config.server_error_rate
        if roll < config.drop_rate:
            return delay, Fault.DROP
        return delay, Fault.NONE
