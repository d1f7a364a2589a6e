"""The replay cache: signature nonces remembered for as long as their request is fresh."""

from __future__ import annotations

import heapq
import threading

__all__ = ["DEFAULT_MAX_NONCE_COUNT", "NonceCache", "NonceCacheFullError"]

#: Bound on remembered nonces, so that memory stays bounded. Nonces are kept until their
#: request is stale; a full cache refuses new requests (throttling) rather than forget one.
DEFAULT_MAX_NONCE_COUNT = 200_000


class NonceCacheFullError(Exception):
    """Every slot of the nonce cache holds a nonce whose request is not yet stale."""


class NonceCache:
    """Remembers signature nonces until the requests they came with have gone stale.

    Thread-safe. Each nonce expires at its request's timestamp plus the window, since a
    replay is rejected by the clock check after that anyway. A nonce is never forgotten
    before then: when ``max_count`` nonces are live, :meth:`add` refuses new ones.
    """

    def __init__(self, max_count: int = DEFAULT_MAX_NONCE_COUNT) -> None:
        if max_count < 1:
            raise ValueError("max_count must be at least 1")
        self._max_count = max_count
        self._expiry_heap: list[tuple[float, str]] = []
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._seen)

    def add(self, nonce: str, *, expires_at: float, now: float) -> bool:
        """Record ``nonce``; return False if it is already known (a replay).

        Raises:
            NonceCacheFullError: the nonce is new but there is no room for it.
        """
        with self._lock:
            while self._expiry_heap and self._expiry_heap[0][0] <= now:
                _, old = heapq.heappop(self._expiry_heap)
                self._seen.discard(old)
            if nonce in self._seen:
                return False
            if len(self._seen) >= self._max_count:
                raise NonceCacheFullError
            self._seen.add(nonce)
            heapq.heappush(self._expiry_heap, (expires_at, nonce))
            return True
