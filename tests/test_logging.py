"""Log observers: text, JSON lines, and journald's native protocol."""

from __future__ import annotations

import io
import json
import socket
from pathlib import Path

from twisted.logger import LogLevel, formatEvent

from netboot_services.logging import journal_observer, json_observer, text_observer

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
