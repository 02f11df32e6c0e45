"""TFTP clients others wrote, over a link losing 5 and 20 % of packets each way.

curl (which asks `timeout 6`), tftp-hpa (plain RFC 1350), atftp in lock step
and atftp with windowsize 16 each fetch 256 KiB from the real daemon, and the
file must arrive whole (docs/protocols/tftp.md §1). The loss is an nftables
rule in both namespaces' input hooks (netboot_lab.loss.impair), so dumpcap on
the client's interface still sees every packet the server sent, lost or not.

The bound is one of behaviour, read from that capture rather than a clock:
once data flows, the server never leaves the client in silence for half of
curl's `timeout` (3 s). A server that took a client's `timeout` as its own
retransmission interval (6 s) leaves such a silence at every loss; ours
repeats within its RTO, at most the schedule's first second
(docs/protocols/tftp.md §2). The daemon's own account of each transfer
(completed, its retransmissions) is checked too. Times are printed, not
asserted; `benchmarks/loss.py` compares them with dnsmasq.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import pytest

from netboot_lab.daemon import Daemon
from netboot_lab.factories import make_set
from netboot_lab.loss import TFTP_CLIENTS, clear_impairment, impair, tftp_client_command
from netboot_lab.netns import VethPair, run_in
from netboot_lab.process import pcap_fields, start_capture, stop_capture
from tests.netns import require_impairment, veth_lab

SUBNET = "10.236.0"
SIZE = 256 * 1024 + 17
NAME = "Alpha.nbi/i386/kernel-256k"
LONGEST_SILENCE = 3.0
"""Seconds: half of curl's `timeout 6`, which a server pacing by that option would
leave after every loss."""
COMMAND_TIMEOUT = 300


@dataclass
class Served:
    lab: VethPair
    data: bytes
    daemon: Daemon
    work: Path


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("loss-clients")
    data = random.Random(1717).randbytes(SIZE)
    root = tmp / "images"
    make_set(root, "Alpha", files={"i386/kernel-256k": data})
    config = tmp / "netboot.toml"
    config.write_text('[http]\nport = 8080\n[logging]\nformat = "json"\n')
    with veth_lab(SUBNET) as lab:
        require_impairment(lab)
        args = ["--config", str(config), "--root", str(root), "--interface", lab.server_if]
        with Daemon(args, netns=lab.server) as daemon:
            daemon.wait_ready()
            try:
                yield Served(lab, data, daemon, tmp)
            finally:
                clear_impairment(lab)
            assert daemon.stop() == 0
    assert "Traceback" not in "\n".join(daemon.lines)


def transfer_records(daemon: Daemon, since: int) -> list[dict[str, object]]:
    """The daemon's JSON records of finished TFTP transfers, from line `since` on."""
    records = []
    for line in daemon.lines[since:]:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("system") == "netboot.tftp" and "retransmissions" in record:
            records.append(record)
    return records


def silences_after_first_data(pcap: Path, server: str) -> list[float]:
    """Gaps between packets the server sent, from its first DATA on (seconds)."""
    rows = pcap_fields(
        pcap, "frame.time_epoch", "tftp.opcode", display_filter=f"udp && ip.src == {server}"
    )
    times = [float(stamp) for stamp, _ in rows]
    first_data = next((i for i, (_, opcode) in enumerate(rows) if opcode == "3"), len(rows))
    sent = times[first_data:]
    return [later - earlier for earlier, later in pairwise(sent)]


@pytest.mark.parametrize("loss", [5, 20])
@pytest.mark.parametrize("client", TFTP_CLIENTS)
def test_a_client_others_wrote_gets_the_file_whole_without_long_silences(
    served: Served, client: str, loss: int, record_property: pytest.RecordProperty
) -> None:
    lab = served.lab
    impair(lab, loss)
    out = served.work / f"{client}-{loss}"
    out.unlink(missing_ok=True)
    pcap = served.work / f"{client}-{loss}.pcap"
    capture = start_capture(lab.client_if, pcap, lab.client)
    since = len(served.daemon.lines)
    started = time.monotonic()
    try:
        command = tftp_client_command(client, lab.server_ip, NAME, out)
        done = run_in(lab.client, *command, timeout=COMMAND_TIMEOUT)
    finally:
        seconds = time.monotonic() - started
        stop_capture(capture, pcap)
        clear_impairment(lab)
    record_property("seconds", round(seconds, 2))
    print(f"{client} at {loss} % loss each way: {seconds:.2f} s")
    assert done.returncode == 0, done.stdout + done.stderr
    assert hashlib.sha256(out.read_bytes()).digest() == hashlib.sha256(served.data).digest()
    silences = silences_after_first_data(pcap, lab.server_ip)
    assert silences, "no DATA in the capture"
    assert max(silences) < LONGEST_SILENCE, sorted(silences)[-5:]
    # The daemon logs a transfer when the last ACK arrives; should that ACK be lost (the
    # client is done then and repeats nothing) the daemon only says so after its patience.
    deadline = time.monotonic() + 3.0
    records: list[dict[str, object]] = []
    while not records and time.monotonic() < deadline:
        records = [r for r in transfer_records(served.daemon, since) if r.get("file") == NAME]
        time.sleep(0.1)
    for record in records:
        assert record["outcome"] == "completed", record
        record_property("retransmissions", record["retransmissions"])
