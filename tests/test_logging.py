"""Log observers: text, JSON lines, and journald's native protocol."""

from __future__ import annotations

import io
import json
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.internet.task import Clock
from twisted.logger import Logger, LogLevel, formatEvent

from netboot_services.logging import (
    HotPathLogger,
    journal_observer,
    json_observer,
    make_observer,
    set_log_level,
    text_observer,
)

EVENT = {
    "log_format": "sent {file!r} to {client}",
    "log_level": LogLevel.warn,
    "log_namespace": "netboot.tftp",
    "log_time": 1795580000.25,
    "file": "Alpha.nbi/i386/booter",
    "client": "10.0.0.2:3000",
    "bytes": 1024,
    "note": "two\nlines",
}


def parse_journal(datagram: bytes) -> dict[str, str]:
    fields = {}
    while datagram:
        name, _, rest = datagram.partition(b"\n")
        length = int.from_bytes(rest[:8], "little")
        fields[name.decode()] = rest[8 : 8 + length].decode()
        datagram = rest[8 + length + 1 :]
    return fields


def test_journal_fields(tmp_path: Path) -> None:
    journal = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    journal.bind(str(tmp_path / "socket"))
    observe = journal_observer(io.StringIO(), str(tmp_path / "socket"))
    observe(dict(EVENT))
    fields = parse_journal(journal.recv(65536))
    assert fields["MESSAGE"] == "sent 'Alpha.nbi/i386/booter' to 10.0.0.2:3000"
    assert fields["PRIORITY"] == "4"
    assert fields["SYSLOG_IDENTIFIER"] == "netboot"
    assert fields["NETBOOT_SYSTEM"] == "netboot.tftp"
    assert fields["NETBOOT_CLIENT"] == "10.0.0.2:3000"
    assert fields["NETBOOT_BYTES"] == "1024"
    assert fields["NETBOOT_NOTE"] == "two\nlines"


def test_journal_falls_back_to_json_without_journald(tmp_path: Path) -> None:
    stream = io.StringIO()
    journal_observer(stream, str(tmp_path / "absent"))(dict(EVENT))
    assert json.loads(stream.getvalue())["client"] == "10.0.0.2:3000"


def test_json_and_text_lines() -> None:
    stream = io.StringIO()
    json_observer(stream)(dict(EVENT))
    record = json.loads(stream.getvalue())
    assert record["level"] == "warning" and record["system"] == "netboot.tftp"
    assert record["message"] == formatEvent(dict(EVENT))
    assert record["bytes"] == 1024
    stream = io.StringIO()
    text_observer(stream)(dict(EVENT))
    assert stream.getvalue().endswith(
        "warning  [netboot.tftp] sent 'Alpha.nbi/i386/booter' to 10.0.0.2:3000\n"
    )


def test_twisted_port_chatter_is_dropped() -> None:
    from twisted.logger import PredicateResult

    from netboot_services.logging import _not_port_chatter

    for text in (
        "(UDP Port 41657 Closed)",
        "(TCP Port 80 Closed)",
        "_RequestPort starting on 69",
        "Starting protocol <x>",
        "Stopping factory <y>",
    ):
        event = {"log_namespace": "log_legacy", "log_level": LogLevel.info, "message": (text,)}
        assert _not_port_chatter(event) is PredicateResult.no, text
    kept = {"log_namespace": "log_legacy", "log_level": LogLevel.info, "message": ("other",)}
    assert _not_port_chatter(kept) is PredicateResult.maybe


def test_the_hot_path_logger_emits_what_twisteds_logger_emits() -> None:
    """Observers and tests see the same event from either logger, but for its time."""
    seen: list[dict[str, Any]] = []
    for logger in (Logger(namespace="netboot.pxe"), HotPathLogger(namespace="netboot.pxe")):
        logger.observer = seen.append  # type: ignore[assignment]
        logger.info("{mac} via {server}", mac="52:54:00:00:00:01", server="192.0.2.10")
    twisted, ours = (
        {k: v for k, v in e.items() if k not in ("log_time", "log_logger")} for e in seen
    )
    assert ours == twisted
    assert type(seen[1]["log_logger"]) is HotPathLogger


def test_a_changed_level_reaches_namespaces_already_looked_up() -> None:
    event = {"log_namespace": "netboot.pxe", "log_level": LogLevel.debug, "log_format": "x"}
    try:
        stream = io.StringIO()
        kept = make_observer("text", "info", stream)
        kept(dict(event))
        assert stream.getvalue() == ""
        set_log_level("debug")
        kept(dict(event))
        assert "x" in stream.getvalue()
    finally:
        set_log_level("info")


class TurnReactor(Clock):
    """A clock that says it runs and keeps the triggers it is given."""

    running = True

    def __init__(self) -> None:
        super().__init__()
        self.triggers: list[tuple[str, str, Callable[[], None]]] = []
        self.from_threads: list[tuple[Callable[..., None], tuple[object, ...]]] = []

    def addSystemEventTrigger(  # noqa: N802 - Twisted's name
        self, phase: str, event: str, call: Callable[[], None]
    ) -> None:
        self.triggers.append((phase, event, call))

    def callFromThread(self, call: Callable[..., None], *args: object) -> None:  # noqa: N802
        self.from_threads.append((call, args))


class CountingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def test_lines_of_one_reactor_turn_are_written_together_at_its_end() -> None:
    reactor, stream = TurnReactor(), CountingStream()
    observe = text_observer(stream, reactor)
    observe(dict(EVENT))
    observe(dict(EVENT, file="second"))
    assert stream.getvalue() == ""
    reactor.advance(0)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2 and "second" in lines[1]
    assert stream.writes == 1
    observe(dict(EVENT, file="third"))  # a later turn schedules its own flush
    reactor.advance(0)
    assert "third" in stream.getvalue().splitlines()[2]


def test_json_lines_are_flushed_at_shutdown_and_at_once_when_the_reactor_is_stopped() -> None:
    reactor, stream = TurnReactor(), io.StringIO()
    observe = json_observer(stream, reactor)
    observe(dict(EVENT))
    [(phase, event, flush)] = reactor.triggers
    assert (phase, event) == ("after", "shutdown")
    flush()
    assert json.loads(stream.getvalue())["file"] == "Alpha.nbi/i386/booter"
    reactor.running = False
    observe(dict(EVENT, file="late"))
    assert json.loads(stream.getvalue().splitlines()[1])["file"] == "late"


def test_a_line_from_another_thread_is_handed_to_the_reactors_thread() -> None:
    reactor, stream = TurnReactor(), io.StringIO()
    observe = text_observer(stream, reactor)
    worker = threading.Thread(target=observe, args=(dict(EVENT),))
    worker.start()
    worker.join()
    assert stream.getvalue() == "" and not reactor.getDelayedCalls()
    [(call, args)] = reactor.from_threads
    call(*args)
    reactor.advance(0)
    assert "Alpha.nbi/i386/booter" in stream.getvalue()
