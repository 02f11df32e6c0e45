"""Log a recurring complaint once per key per interval: one rule for every service.

A flood of malformed packets from one client must not flood the log; each
service counts every such packet and asks `OncePerInterval` whether this one
deserves a line. Old keys are forgotten, so a scan from many addresses does
not grow the table without bound.
"""

from __future__ import annotations

DEFAULT_INTERVAL = 60.0
PRUNE_AT = 4096


class OncePerInterval:
    def __init__(self, interval: float = DEFAULT_INTERVAL) -> None:
        self.interval = interval
        self._last: dict[str, float] = {}

    def allow(self, key: str, now: float) -> bool:
        """True at most once per `interval` seconds for each key."""
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            return False
        if len(self._last) >= PRUNE_AT:
            self._last = {k: t for k, t in self._last.items() if now - t < self.interval}
        self._last[key] = now
        return True
