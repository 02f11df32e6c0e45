"""Log observers: text, JSON lines, and journald's native protocol."""

from __future__ import annotations

import io
import json
import socket
from pathlib import Path
from typing import Any

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
