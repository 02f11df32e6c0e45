"""Which range responses of one connection get an access-log line of their own.

A NetBooting Mac reads a multi-GB root image as tens of thousands of byte
ranges on a few keep-alive connections; one line per range floods the
journal and, written to a pipe, cost the daemon a fifth of its time per
range. So ranges are logged the way an admin reads a boot: the first range
of a path on a connection at once (the boot is seen starting), then one
summary line for the ranges after it, written when the connection reads
another path or gets any other response, when it closes, or once the
summarised ranges span `SUMMARY_PERIOD` seconds of continued reading. Every
byte is in exactly one line, so adding up `bytes` still gives what was sent.

Pure: the connection's adapter passes each range response and the time in,
and writes the lines this says to write.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

SUMMARY_PERIOD = 10.0
"""Seconds of continued reading one summary line covers at most."""

Target = TypeVar("Target")
"""What makes ranges one run: the adapter's (method, path, agent) as it holds them."""


@dataclass(frozen=True, slots=True)
class RangeSummary(Generic[Target]):
    """Ranges of one target that had no line of their own, for one summary line."""

    target: Target
    ranges: int
    sent: int
    """Bytes the summarised ranges sent."""
    seconds: float
    """From the line before this summary (the first range, or the last summary) to the
    last range summarised: how long the reading took."""
    last_range: bytes
    """The Range header of the last range summarised."""


@dataclass(frozen=True, slots=True)
class RangeLogging(Generic[Target]):
    """What to write for one response: a summary first (or none), then its own line or not."""

    summary: RangeSummary[Target] | None
    own_line: bool


_HELD: RangeLogging[Any] = RangeLogging(None, own_line=False)
"""The answer for most ranges, made once."""


@dataclass(slots=True)
class _Run(Generic[Target]):
    target: Target
    since: float
    """When the last line about this target was written."""
    ranges: int = 0
    sent: int = 0
    last_range: bytes = b""
    last_at: float = 0.0

    def summary(self) -> RangeSummary[Target] | None:
        if not self.ranges:
            return None
        seconds = round(max(self.last_at - self.since, 0.0), 3)
        return RangeSummary(self.target, self.ranges, self.sent, seconds, self.last_range)


class RangeRuns(Generic[Target]):
    """One connection's ranges not yet logged, and the rule that decides each line."""

    __slots__ = ("_period", "_run")

    def __init__(self, period: float = SUMMARY_PERIOD) -> None:
        self._period = period
        self._run: _Run[Target] | None = None

    def range_sent(
        self, target: Target, now: float, sent: int, range_header: bytes
    ) -> RangeLogging[Target]:
        """A 206 response for `target` ended at `now` having sent `sent` bytes."""
        run = self._run
        if run is None or run.target != target:
            self._run = _Run(target, now)
            return RangeLogging(run.summary() if run is not None else None, own_line=True)
        run.ranges += 1
        run.sent += sent
        run.last_range = range_header
        run.last_at = now
        if now - run.since < self._period:
            return _HELD
        self._run = _Run(target, now)
        return RangeLogging(run.summary(), own_line=False)

    def end(self) -> RangeSummary[Target] | None:
        """The ranges' run ends: any other response on the connection (its line follows
        the summary), or the connection closed. The summary of what had no line yet."""
        run, self._run = self._run, None
        return run.summary() if run is not None else None
