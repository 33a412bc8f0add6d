"""Per-host request pacing for registry scans: a token bucket per registry host that slows
down when the registry says so (HTTP 429, ``Retry-After``).

Why: public registries limit requests per client (Docker Hub's pull limits, quay's and GHCR's
rate limits), and Flux v1 users were locked out by scans that kept hammering a host that had
already answered 429 (reference ``image-automation.md`` section 5). Here:

* each host has a bucket of ``burst`` tokens refilled at ``rate_per_s``; a request takes one and
  waits for it when the bucket is empty;
* a 429 pauses the host until its ``Retry-After`` (capped at ``max_pause_s``; ``default_pause_s``
  without the header) and halves its rate (not below ``min_rate_per_s``);
* the rate is restored to ``rate_per_s`` once the host has gone ``recovery_s`` without a 429.

The clock and the sleep are injected, so the logic is tested without waiting. Thread-safe; a
waiting caller holds no lock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["HostRateLimiter", "RateLimitSettings"]


@dataclass(frozen=True)
class RateLimitSettings:
    rate_per_s: float = 5.0
    burst: int = 10
    min_rate_per_s: float = 0.1
    default_pause_s: float = 10.0  # a 429 without Retry-After
    max_pause_s: float = 300.0  # a Retry-After longer than this is capped
    recovery_s: float = 600.0  # after this long without a 429 a halved rate is restored


@dataclass
class _Bucket:
    tokens: float
    rate: float
    updated: float
    paused_until: float = 0.0
    last_limited: float | None = None


class HostRateLimiter:
    def __init__(
        self,
        settings: RateLimitSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._buckets: dict[str, _Bucket] = {}

    def _bucket(self, host: str, now: float) -> _Bucket:
        bucket = self._buckets.get(host)
        if bucket is None:
            s = self.settings
            bucket = self._buckets[host] = _Bucket(float(s.burst), s.rate_per_s, now)
        if bucket.last_limited is not None and now - bucket.last_limited >= self.settings.recovery_s:
            bucket.rate, bucket.last_limited = self.settings.rate_per_s, None
        bucket.tokens = min(float(self.settings.burst), bucket.tokens + (now - bucket.updated) * bucket.rate)
        bucket.updated = now
        return bucket

    def reserve(self, host: str) -> float:
        """Take a token for one request to ``host``; returns how long to wait before sending it
        (0 when it may go now). The token is taken even when the caller must wait, so waiting
        callers queue in order instead of racing for the next token."""
        with self._lock:
            now = self._clock()
            bucket = self._bucket(host, now)
            bucket.tokens -= 1.0
            wait = 0.0 if bucket.tokens >= 0 else -bucket.tokens / bucket.rate
            return max(wait, bucket.paused_until - now)

    def acquire(self, host: str) -> float:
        """Wait until a request to ``host`` may be sent; returns the seconds waited."""
        wait = self.reserve(host)
        if wait > 0:
            self._sleep(wait)
        return wait

    def limited(self, host: str, retry_after_s: float | None) -> float:
        """The host answered 429: pause it and halve its rate. Returns the pause (seconds)."""
        s = self.settings
        pause = min(s.max_pause_s, s.default_pause_s if retry_after_s is None else max(0.0, retry_after_s))
        with self._lock:
            now = self._clock()
            bucket = self._bucket(host, now)
            bucket.paused_until = max(bucket.paused_until, now + pause)
            bucket.rate = max(s.min_rate_per_s, bucket.rate / 2)
            bucket.tokens = min(bucket.tokens, 0.0)
            bucket.last_limited = now
        return pause

    def rate(self, host: str) -> float:
        """The current rate of ``host`` (requests per second)."""
        with self._lock:
            return self._bucket(host, self._clock()).rate
