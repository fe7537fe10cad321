"""Login rate limiting: after `attempts` failures for one user name from one address within
`window_s`, further tries are refused until the oldest failure leaves the window.

Kept in memory per node: a restart forgets, which only loosens the limit for minutes, and
several nodes each apply it (the limit multiplies by the node count behind a balancer).
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque


class LoginLimiter:
    def __init__(self, attempts: int, window_s: float) -> None:
        self.attempts, self.window_s = attempts, window_s
        self._failures: dict[tuple[str, str], deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def _recent(self, key: tuple[str, str], now: float) -> deque[float]:
        failures = self._failures[key]
        while failures and now - failures[0] > self.window_s:
            failures.popleft()
        return failures

    def blocked_for_s(self, name: str, address: str) -> float:
        """Seconds until another try is allowed (0 when allowed now)."""
        now = time.monotonic()
        with self._lock:
            failures = self._recent((name, address), now)
            if len(failures) < self.attempts:
                return 0.0
            return max(self.window_s - (now - failures[0]), 0.0)

    def failed(self, name: str, address: str) -> None:
        with self._lock:
            self._recent((name, address), time.monotonic()).append(time.monotonic())

    def succeeded(self, name: str, address: str) -> None:
        with self._lock:
            self._failures.pop((name, address), None)
