"""A boot storm against the real daemon (issue #10, the CI form of benchmarks/storm.py).

Fifty simulated clients start within one second, half of them PCs (DHCP in
full mode, then TFTP loader and kernel, then HTTP range reads of the root
image), half Macs (BSDP LIST and SELECT from addresses of their own, then
TFTP booter and kernelcache, then the root image as a mounting Mac reads it).
Every one must finish, every TFTP byte is compared with the file served, and
the daemon's peak RSS must stay within the memory bound: a Python server
that kept a buffer per transfer, or the whole image per HTTP client, would
exceed it long before a lab full of machines booted at once.

Only the bound on memory is asserted; the time is printed (and bounded by the
storm's deadline) because a shared CI machine can run slow without anything
being wrong. benchmarks/storm.py measures the time against dnsmasq.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from netboot_lab.netns import real_pid
from netboot_lab.storm_client import STAGES
from netboot_lab.storm_lab import (
    PREFIX,
    SUBNET,
    build_files,
    client_specs,
    give_addresses,
    netboot_config,
    run_storm,
    start_netboot,
    storm_spec,
    summarize,
)
from tests.netns import require_root, veth_lab
from tests.reliability.skips import require_xorriso

pytestmark = pytest.mark.root

CLIENTS = 50
DEADLINE = 85.0
"""Seconds for the storm itself: 30-50 on the 2-core development VM beside other jobs.

With the set-up and the client's slack added, the test stays under two minutes.
"""
RSS_LIMIT_MIB = 150.0


def test_fifty_clients_booting_at_once_all_finish_within_the_memory_bound(
    tmp_path: Path,
) -> None:
    require_root()
    require_xorriso()
    files = build_files(tmp_path)
    clients = client_specs(CLIENTS, macs=0.5)
    database = tmp_path / "leases.sqlite3"
    with veth_lab(SUBNET, prefix=PREFIX) as lab:
        give_addresses(lab, clients)
        config = netboot_config(lab, files, database)
        with start_netboot(lab, config) as daemon:
            spec = storm_spec(lab, files, clients, deadline=DEADLINE)
            report, watch = run_storm(lab, spec, tmp_path, "storm", real_pid(daemon.process.pid))
            assert daemon.stop() == 0
    summary = summarize(report)
    print(  # the numbers the issue asks to record; pytest -s shows them
        json.dumps(
            {**summary.as_json(), "peak_rss_mib": round(watch.peak_rss_mib, 1)}
            | {"daemon_cpu_seconds": round(watch.cpu_seconds, 2)}
        )
    )
    log = "\n".join(daemon.lines)
    assert "Traceback" not in log

    assert summary.failures == 0, "\n".join(summary.errors)
    journeys = report["journeys"]
    assert all(list(journey["stages"]) == list(STAGES) for journey in journeys)
    assert watch.peak_rss_mib <= RSS_LIMIT_MIB, f"peak RSS {watch.peak_rss_mib:.1f} MiB"

    # Both kinds went the whole way, each through its own protocol.
    pcs = [j for j in journeys if j["kind"] == "pc"]
    macs = [j for j in journeys if j["kind"] == "mac"]
    assert len(pcs) == len(macs) == CLIENTS // 2
    assert all(j["bytes"]["http"] > 0 and j["bytes"]["tftp"] > 0 for j in journeys)
    assert log.count(": ACK[SELECT] ") >= len(macs)
    # Every PC has an address of its own, and the lease file says so.
    addresses = {j["address"] for j in pcs}
    assert len(addresses) == len(pcs)
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as connection:
        bound = dict(
            connection.execute("SELECT mac, address FROM lease WHERE state = 'bound'").fetchall()
        )
    assert {mac.lower() for mac in bound} == {j["mac"] for j in pcs}
