"""The benchmark's Kea (netboot_lab.kea): kea-dhcp4 on the private PostgreSQL cluster.

Issue #21's benchmark reads its rival's rate and duplicates through these
helpers, so they are checked here against the real server: a database made by
`kea-admin db-init pgsql`, kea-dhcp4 serving a pool to perfdhcp (as a relay)
on a bridge segment, and lease4 read back into (address, MAC) pairs that must
be every client perfdhcp drew, each once, inside the pool.
"""

from __future__ import annotations

import shutil
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from netboot_lab.kea import create_kea_database, kea_config, kea_leases, start_kea
from netboot_lab.netns import bridge_segment
from netboot_lab.perfdhcp import V4_LAST, perfdhcp_command, run_perfdhcp
from netboot_lab.postgres import PrivateCluster
from netboot_lab.process import stop_process
from tests.netns import require_root

SUBNET = "10.250.0"
POOL = (f"{SUBNET}.20", f"{SUBNET}.59")
CLIENTS = 20
"""perfdhcp -R: at 100 exchanges/s for 3 s every one of 20 MACs is drawn (all but surely)."""


def test_kea_on_postgresql_leases_each_client_one_address(
    postgres_cluster: PrivateCluster, tmp_path: Path
) -> None:
    require_root()
    for tool in ("kea-dhcp4", "kea-admin", "perfdhcp"):
        if shutil.which(tool) is None:
            pytest.skip(
                f"{tool} is not on PATH (Debian: apt-get install kea-dhcp4-server kea-admin)"
            )
    create_kea_database(postgres_cluster, "kea_lab_test")
    with bridge_segment(2, SUBNET) as segment:
        server, client = segment.hosts
        config = kea_config(
            tmp_path, server.interface, f"{SUBNET}.0/24", POOL, postgres_cluster, "kea_lab_test"
        )
        process = start_kea(server.namespace, config, tmp_path)
        try:
            command = perfdhcp_command(4, client.interface, 100, CLIENTS, "-p", "3")
            report = run_perfdhcp(client.namespace, command, V4_LAST, 60)
        finally:
            stop_process(process)
    assert report.count(V4_LAST, "received packets") > 0, report.output
    leases = kea_leases(postgres_cluster, "kea_lab_test")
    addresses = [IPv4Address(address) for address, _ in leases]
    macs = [mac for _, mac in leases]
    assert len(set(macs)) == len(macs) == CLIENTS, leases
    assert len(set(addresses)) == CLIENTS, leases
    assert all(IPv4Address(POOL[0]) <= address <= IPv4Address(POOL[1]) for address in addresses)
