"""Per-host request pacing shared by every fetcher in the process.

Politeness is a property of the host, not of a Fetcher instance: two fetchers (or two threads)
crawling the same site must share one schedule, or the site sees the sum of their rates. Slots
are reserved under a lock and slept on outside it, so waiting threads never block each other's
bookkeeping and a burst of N callers is spread over N intervals.
"""

from __future__ import annotations

import fcntl
import re
import threading
import time
from pathlib import Path

__all__ = ["HostRateLimiter", "SharedHostRateLimiter", "limiter_for"]


class HostRateLimiter:
    """Hands out one request slot per ``1 / rps`` seconds for each host; rps <= 0 is unlimited."""

    def __init__(self, rps: float) -> None:
        self.rps = float(rps)
        self._interval = 1.0 / self.rps if self.rps > 0 else 0.0
        self._lock = threading.Lock()
        self._next_slot: dict[str, float] = {}

    def wait(self, host: str) -> float:
        """Block until ``host``'s next slot and return the seconds slept."""
        if self._interval <= 0:
            return 0.0
        key = host.lower()
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next_slot.get(key, now))
            self._next_slot[key] = slot + self._interval
        delay = slot - now
        if delay > 0:
            time.sleep(delay)
        return max(delay, 0.0)


_registry: dict[float, HostRateLimiter] = {}
_registry_lock = threading.Lock()


def limiter_for(rps: float) -> HostRateLimiter:
    """The process-wide limiter for this rate, so all fetchers share one schedule per host."""
    key = float(rps) if rps > 0 else 0.0
    with _registry_lock:
        limiter = _registry.get(key)
        if limiter is None:
            limiter = _registry[key] = HostRateLimiter(key)
        return limiter


class SharedHostRateLimiter:
    """The same schedule, shared by every process that uses the same state folder.

    Overlapping runs (a scheduled crawl and a manual backfill, or the extraction workers of
    one run) must still look like one polite client to the site: the next free slot per host
    is kept in a small file, reserved under an exclusive ``flock``.
    """

    def __init__(self, rps: float, state_dir: Path) -> None:
        self.rps = float(rps)
        self._interval = 1.0 / self.rps if self.rps > 0 else 0.0
        self._dir = state_dir
        self._dir.mkdir(parents=True, exist_ok=True)

    def reserve(self, host: str) -> float:
        """Book ``host``'s next free slot and return when it is (``time.time()`` clock)."""
        name = re.sub(r"[^a-z0-9.-]", "_", host.lower()) or "_"
        path = self._dir / f"{name}.slot"
        with open(path, "a+b") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                handle.seek(0)
                raw = handle.read().strip()
                now = time.time()
                try:
                    booked = float(raw) if raw else now
                except ValueError:
                    booked = now
                slot = max(now, min(booked, now + 3600))
                handle.seek(0)
                handle.truncate()
                handle.write(repr(slot + self._interval).encode())
                handle.flush()
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        return slot

    def wait(self, host: str) -> float:
        """Block until ``host``'s next slot and return the seconds slept."""
        if self._interval <= 0:
            return 0.0
        delay = self.reserve(host) - time.time()
        if delay > 0:
            time.sleep(delay)
        return max(delay, 0.0)
