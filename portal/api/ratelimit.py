"""Rate limits for the API, per token (per address for requests without one).

A token bucket per key, in the process. Chosen over Redis, which the portal must run without,
and over a database counter, which would add a write and a commit to every read: a limit
exists to keep one client's loop from crowding out the others, and a per-process bucket does
that at no cost. Under gunicorn each worker keeps its own buckets, so a client may reach
``workers × rate`` at most; the README says so next to the setting.
"""
from __future__ import annotations

import hashlib
import math
import threading
import time
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    at: float


class Limiter:
    def __init__(self, per_minute: int, *, burst: int | None = None, max_keys: int = 10000, clock=time.monotonic):
        self.rate = per_minute / 60.0
        self.capacity = float(burst or per_minute)
        self.max_keys = max_keys
        self.clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """0 when the request may go ahead (and is counted), else the seconds to wait."""
        now = self.clock()
        with self._lock:
            b = self._buckets.get(key)
            if b is None:
                if len(self._buckets) >= self.max_keys:
                    self._forget_full(now)
                b = self._buckets[key] = _Bucket(self.capacity, now)
            b.tokens = min(self.capacity, b.tokens + (now - b.at) * self.rate)
            b.at = now
            if b.tokens >= 1:
                b.tokens -= 1
                return 0.0
            return (1 - b.tokens) / self.rate

    def _forget_full(self, now: float) -> None:
        # A full bucket is the same as no bucket: dropping them bounds the memory.
        for k in [k for k, b in self._buckets.items() if b.tokens + (now - b.at) * self.rate >= self.capacity]:
            del self._buckets[k]
        if len(self._buckets) >= self.max_keys:
            self._buckets.clear()


def key_for(authorization: str | None, address: str | None) -> str:
    if authorization:
        return "t:" + hashlib.sha256(authorization.encode("utf-8", "surrogatepass")).hexdigest()
    return "a:" + (address or "")


def retry_after(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))
