"""Structured logging: text for people, JSON lines for machines, journald fields.

Events come from `twisted.logger.Logger` calls with named fields (`client=`,
`image_id=`, `path=`), so a JSON line carries them as keys and a log collector
can filter on them without parsing sentences.
"""

from __future__ import annotations

import atexit
import json
import re
import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TextIO, cast

from twisted.logger import (
    ILogObserver,
    LogEvent,
    Logger,
    LogLevel,
    LogLevelFilterPredicate,
    PredicateResult,
    formatEvent,
    globalLogBeginner,
)

Observer = Callable[[LogEvent], None]

_LEVEL_NAMES = {"warn": "warning", "critical": "critical"}


_second_text: tuple[int, str] = (-1, "")
"""The last whole second formatted, and its text: a busy DHCP server logs thousands
of lines a second, and formatting each one's date and time again is measurable."""


def _timestamp(event: LogEvent) -> str:
    global _second_text  # a one-entry cache, read and written on the reactor thread
    when = float(event.get("log_time", 0.0))
    second = int(when // 1)
    cached_second, text = _second_text
    if second != cached_second:
        moment = datetime.fromtimestamp(second, tz=UTC)
        text = moment.isoformat(timespec="seconds").replace("+00:00", "")
        _second_text = (second, text)
    milliseconds = min(int((when - second) * 1000), 999)
    return f"{text}.{milliseconds:03d}Z"


def _level(event: LogEvent) -> str:
    level = event.get("log_level", LogLevel.info)
    name: str = level.name
    return _LEVEL_NAMES.get(name, name)


def _message(event: LogEvent) -> str:
    text = _formatted(event)
    failure = event.get("log_failure")
    if failure is not None:
        text = f"{text}\n{failure.getTraceback()}"
    return text


def _formatted(event: LogEvent) -> str:
    """The event's text: `str.format_map` on its fields, which is what Twisted's
    `formatEvent` does for every format we write, at a fraction of the cost; anything
    unusual (a `{call()}` field, a missing one, no format) goes to `formatEvent`."""
    log_format = event.get("log_format")
    if isinstance(log_format, str):
        try:
            return log_format.format_map(event)
        except Exception:  # noqa: BLE001, S110 - formatEvent says what went wrong, in its words
            pass
    return formatEvent(event)


def _fields(event: LogEvent) -> dict[str, Any]:
    """The event's own named fields that JSON can carry (not Twisted's log_* keys)."""
    out: dict[str, Any] = {}
    for key, value in event.items():
        if key.startswith("log_") or key in ("format", "message", "isError", "system", "time"):
            continue
        if isinstance(value, str | int | float | bool) or value is None:
            out[key] = value
        elif isinstance(value, list | tuple) and all(isinstance(v, str | int) for v in value):
            out[key] = list(value)
        else:
            out[key] = str(value)
    return out


class TurnWriter:
    """Lines for a stream, written and flushed together once per reactor turn.

    WHY: a busy DHCP server logs a line per OFFER and per ACK, and a write plus a
    flush (a system call) per line was a tenth of its time. The first line after a
    flush schedules one flush with `callLater(0, ...)`, which runs at the end of the
    current reactor turn, so a line is still out within one reactor iteration (what
    `netboot_lab.daemon.Daemon.wait_for` and people reading the log rely on). Lines
    logged while the reactor is not running (start-up errors, shutdown) are written
    at once; whatever is pending at reactor shutdown or interpreter exit is flushed.
    A line from another thread is handed to the reactor's thread first.
    """

    def __init__(self, stream: TextIO, reactor: Any) -> None:
        self.stream = stream
        self.reactor = reactor
        self.pending: list[str] = []
        self.scheduled = False
        self.thread = threading.get_ident()
        """The reactor's thread: the one that sets up logging and then runs the reactor."""
        reactor.addSystemEventTrigger("after", "shutdown", self.flush)
        atexit.register(self.flush)

    def write(self, line: str) -> None:
        if threading.get_ident() != self.thread:  # a thread pool's: the reactor's thread writes
            self.reactor.callFromThread(self.write, line)
            return
        self.pending.append(line)
        if not self.reactor.running:
            self.flush()
        elif not self.scheduled:
            self.scheduled = True
            self.reactor.callLater(0, self.flush)

    def flush(self) -> None:
        self.scheduled = False
        if self.pending:
            text = "".join(self.pending)
            self.pending.clear()
            self.stream.write(text)
        self.stream.flush()


Write = Callable[[str], None]


def _line_writer(stream: TextIO, reactor: Any | None) -> Write:
    """Each line written and flushed at once without a reactor, else per turn."""
    if reactor is not None:
        return TurnWriter(stream, reactor).write

    def write(line: str) -> None:
        stream.write(line)
        stream.flush()

    return write


def text_observer(stream: TextIO, reactor: Any | None = None) -> Observer:
    write = _line_writer(stream, reactor)

    def observe(event: LogEvent) -> None:
        namespace = event.get("log_namespace", "-")
        write(f"{_timestamp(event)} {_level(event):<8} [{namespace}] {_message(event)}\n")

    return observe


def json_observer(stream: TextIO, reactor: Any | None = None) -> Observer:
    write = _line_writer(stream, reactor)

    def observe(event: LogEvent) -> None:
        record = {
            "time": _timestamp(event),
            "level": _level(event),
            "system": event.get("log_namespace", "-"),
            "message": _message(event),
            **_fields(event),
        }
        write(json.dumps(record, default=str) + "\n")

    return observe


_PORT_CHATTER = re.compile(
    r"starting on \d+$|^\((UDP|TCP) Port \d+ Closed\)$|^(Starting|Stopping) (protocol|factory) "
)


def _not_port_chatter(event: LogEvent) -> PredicateResult:
    """Twisted logs every port opened and closed (one per TFTP transfer). Drop those."""
    if event.get("log_namespace") == "log_legacy" and event.get("log_level") is LogLevel.info:
        text = " ".join(str(part) for part in event.get("message", ()))
        if _PORT_CHATTER.search(text):
            return cast(PredicateResult, PredicateResult.no)
    return cast(PredicateResult, PredicateResult.maybe)


JOURNAL_SOCKET = "/run/systemd/journal/socket"
_SYSLOG_PRIORITY = {"debug": 7, "info": 6, "warning": 4, "error": 3, "critical": 2}
_FIELD = re.compile(r"[^A-Z0-9_]")


def _journal_field(name: str, value: object) -> bytes:
    """One field in journald's native format, the length-prefixed form (safe for any bytes)."""
    data = str(value).encode("utf-8", "replace")
    return name.encode() + b"\n" + len(data).to_bytes(8, "little") + data + b"\n"


def journal_observer(stream: TextIO, path: str = JOURNAL_SOCKET) -> Observer:
    """Send each event to journald with its named fields (NETBOOT_CLIENT=…, …).

    Falls back to JSON lines on `stream` when journald's socket is not there.
    """
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        sock.connect(path)
    except OSError:
        sock.close()
        return json_observer(stream)

    def observe(event: LogEvent) -> None:
        level = _level(event)
        record = [
            _journal_field("MESSAGE", _message(event)),
            _journal_field("PRIORITY", _SYSLOG_PRIORITY.get(level, 6)),
            _journal_field("SYSLOG_IDENTIFIER", "netboot"),
            _journal_field("NETBOOT_SYSTEM", event.get("log_namespace", "-")),
        ]
        for key, value in _fields(event).items():
            name = "NETBOOT_" + _FIELD.sub("_", key.upper())
            record.append(_journal_field(name, value))
        try:
            sock.send(b"".join(record))
        except OSError:
            stream.write(_message(event) + "\n")

    return observe


_LEVELS = frozenset(LogLevel.iterconstants())
Level = Any
"""A `LogLevel` constant (constantly's `Level`, which ships no types)."""


class HotPathLogger(Logger):
    """A `Logger` for lines written per packet (every OFFER and ACK): the same events
    for every observer, without Twisted's check of the level against a fresh scan of
    `LogLevel`'s constants on each one (a tenth of a busy DHCP server's logging)."""

    def emit(self, level: LogLevel, format: str | None = None, **kwargs: object) -> None:
        if level not in _LEVELS:
            super().emit(level, format, **kwargs)  # says why, as Twisted does
            return
        kwargs.update(
            log_logger=self,
            log_level=level,
            log_namespace=self.namespace,
            log_source=self.source,
            log_format=format,
            log_time=time.time(),
        )
        if "log_trace" in kwargs:
            cast(list[Any], kwargs["log_trace"]).append((self, self.observer))
        cast(Observer, self.observer)(kwargs)


class _NamespaceLevels(LogLevelFilterPredicate):
    """Twisted's level filter, remembering each namespace's level: its lookup splits
    and joins the namespace on every event otherwise."""

    def __init__(self, defaultLogLevel: Level = LogLevel.info) -> None:  # noqa: N803 - Twisted's name
        self._known: dict[str, Level] = {}
        super().__init__(defaultLogLevel)

    def logLevelForNamespace(self, namespace: str) -> Level:  # noqa: N802 - Twisted's name
        level = self._known.get(namespace)
        if level is None:
            level = self._known[namespace] = super().logLevelForNamespace(namespace)
        return level

    def setLogLevelForNamespace(self, namespace: str, level: Level) -> None:  # noqa: N802
        self._known.clear()
        super().setLogLevelForNamespace(namespace, level)

    def clearLogLevels(self) -> None:  # noqa: N802 - Twisted's name
        self._known.clear()
        super().clearLogLevels()


_LEVEL_FILTER = _NamespaceLevels(defaultLogLevel=LogLevel.info)
"""The level filter of the daemon's observer: one, so a reload can change the level."""


def set_log_level(level: str) -> None:
    """Write events of `level` and above from now on (`logging.level`, on reload too)."""
    _LEVEL_FILTER.setLogLevelForNamespace("", LogLevel.levelWithName(level))


class _Filtered:
    """Twisted's `FilteringLogObserver` over our two predicates (the level of the
    event's namespace, then Twisted's port chatter), asked directly: the generic
    filter's partial over a predicate list and its loop cost a quarter of every
    line a busy DHCP server logs. Both predicates say only "no" or "maybe", so
    an event either predicate refuses is dropped and every other one written."""

    __slots__ = ("_observer",)

    def __init__(self, observer: Observer) -> None:
        self._observer = observer

    def __call__(self, event: LogEvent) -> None:
        if _LEVEL_FILTER(event) is _NO or _not_port_chatter(event) is _NO:
            return
        if "log_trace" in event:
            event["log_trace"].append((self, self._observer))
        self._observer(event)


_NO = PredicateResult.no


def make_observer(
    log_format: str, level: str, stream: TextIO, reactor: Any | None = None
) -> ILogObserver:
    """Twisted calls observers as plain callables; the interface is not enforced.
    With a `reactor`, text and JSON lines are flushed once per reactor turn (`TurnWriter`)."""
    if log_format == "journal":
        base = journal_observer(stream)
    elif log_format == "json":
        base = json_observer(stream, reactor)
    else:
        base = text_observer(stream, reactor)
    set_log_level(level)
    return cast(ILogObserver, _Filtered(base))


def start_logging(log_format: str, level: str, stream: TextIO, reactor: Any | None = None) -> None:
    """Send every Twisted log event (ours and the reactor's) to `stream`."""
    globalLogBeginner.beginLoggingTo(
        [make_observer(log_format, level, stream, reactor)], redirectStandardIO=False
    )
