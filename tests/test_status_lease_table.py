"""What `/metrics`, `/status.json` and the admin API show of full mode's leases.

A scrape reads the lease table the upkeep took on its last heartbeat, never the
store: with PostgreSQL every read is a round trip on the reactor thread. A real
SQLite store, wrapped to count the calls made to it, behind the services the
daemon builds (not started: no sockets), on a Twisted test clock.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any, cast

import pytest
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry
from twisted.application.service import MultiService
from twisted.internet.task import Clock

from netboot.dhcp.boot import BootSettings
from netboot.dhcp.lease_store import LeaseBackend
from netboot.dhcp.leases import AddressPool, LeaseStore
from netboot.dhcp.server import LeaseServer, NetworkSettings
from netboot.macaddr import mac_from_bytes
from netboot_services.admin import NetbootCollector, leases_by_mac, snapshot
from netboot_services.dhcp import DhcpDispatcher, DhcpService
from netboot_services.lease_upkeep import LeaseUpkeep
from netboot_services.pxe import PxeHandler

INTERVAL = 2.0
MAC = mac_from_bytes(bytes.fromhex("020000000001"))
CLIENT_ID = b"\x01" + bytes.fromhex("020000000001")


class CountingStore:
    """A real lease store that notes the name of every method called on it."""

    def __init__(self, store: LeaseStore) -> None:
        self.store = store
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        found = getattr(self.store, name)
        if not callable(found):
            return found

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            return found(*args, **kwargs)

        return counted


@dataclass
class Daemon:
    top: MultiService
    store: CountingStore
    upkeep: LeaseUpkeep
    reactor: Clock

    def scrape(self) -> tuple[dict[str, Any], dict[tuple[str, tuple[Any, ...]], float]]:
        """/status.json's `dhcp` and /metrics' samples, as the admin listener makes them."""
        registry = CollectorRegistry()
        registry.register(NetbootCollector(self.top))
        metrics = {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(generate_latest(registry).decode())
            for sample in family.samples
        }
        status = json.loads(json.dumps(snapshot(self.top)))
        return status["dhcp"], metrics


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    reactor = Clock()
    reactor.advance(1_700_000_000)
    pool = AddressPool(IPv4Address("192.0.2.10"), IPv4Address("192.0.2.19"))
    real = LeaseStore(tmp_path / "leases.db", pool, reactor.seconds, server_id="alpha")
    store = CountingStore(real)
    lease_server = LeaseServer(
        cast(LeaseBackend, store),
        NetworkSettings(subnet=IPv4Network("192.0.2.0/24")),
        reactor.seconds,
    )
    pxe = PxeHandler(BootSettings(), reactor.seconds, lease_server)
    top = MultiService()
    dhcp = DhcpService(DhcpDispatcher([pxe], reactor.seconds), reactor, 0, ())
    dhcp.setName("dhcp")
    dhcp.setServiceParent(top)
    upkeep = LeaseUpkeep(lease_server, "192.0.2.1", INTERVAL, lambda: 0.0, reactor, real.path)
    upkeep.setServiceParent(top)
    upkeep.startService()  # only the upkeep: the DHCP service would open port 67
    yield Daemon(top, store, upkeep, reactor)
    upkeep.stopService()
    real.close()


def bind_one(store: LeaseStore) -> IPv4Address:
    offer = store.offer(CLIENT_ID, MAC)
    assert offer is not None
    lease = store.bind(CLIENT_ID, MAC, offer.address, 3600.0, "one")
    assert lease is not None
    return lease.address


def test_a_scrape_reads_the_last_heartbeats_table_and_never_the_store(daemon: Daemon) -> None:
    assert daemon.upkeep.table.taken == daemon.reactor.seconds(), "read on the first beat"
    address = bind_one(daemon.store.store)
    daemon.store.calls.clear()
    status, metrics = daemon.scrape()
    assert leases_by_mac(daemon.top) == {}
    assert daemon.store.calls == [], "a scrape made no call on the store"
    assert status["leases"] == [] and status["store_up"] is True
    assert metrics[("netboot_dhcp_leases", (("state", "bound"),))] == 0

    daemon.reactor.advance(INTERVAL)
    assert {"counts", "leases"} <= set(daemon.store.calls), "the heartbeat read the table"
    daemon.store.calls.clear()
    status, metrics = daemon.scrape()
    by_mac = leases_by_mac(daemon.top)
    assert daemon.store.calls == []
    shown = [(lease["address"], lease["state"], lease["server_id"]) for lease in status["leases"]]
    assert shown == [(str(address), "bound", "alpha")]
    assert status["counts"]["bound"] == 1
    assert metrics[("netboot_dhcp_leases", (("state", "bound"),))] == 1
    assert metrics[("netboot_lease_store_up", ())] == 1
    assert list(by_mac) == [MAC]


def test_a_lease_that_ran_out_since_the_heartbeat_is_no_longer_listed(daemon: Daemon) -> None:
    """The table is as old as the last heartbeat, but `expires_in` and what counts as
    active are worked out at the scrape."""
    offer = daemon.store.store.offer(CLIENT_ID, MAC)
    assert offer is not None
    daemon.reactor.advance(INTERVAL)
    status, _ = daemon.scrape()
    assert [lease["state"] for lease in status["leases"]] == ["offered"]
    expires = offer.expires - daemon.reactor.seconds()
    assert status["leases"][0]["expires_in"] == round(expires, 1)
    daemon.upkeep.stopService()  # no heartbeat reads the table again
    daemon.reactor.advance(expires + 1)
    status, _ = daemon.scrape()
    assert status["leases"] == []
    assert leases_by_mac(daemon.top) == {}


def test_a_peer_shows_when_its_reply_was_last_heard_on_the_link(daemon: Daemon) -> None:
    """Peers come from the heartbeat table; a reply overheard from one says it is on
    this link too. Every other server heard is listed by its identifier."""
    daemon.store.store.heartbeat("beta", "192.0.2.2", 3.0)
    daemon.reactor.advance(INTERVAL)
    status, _ = daemon.scrape()
    (beta,) = status["peers"]
    assert (beta["server_id"], beta["heard_ago"]) == ("beta", None)
    assert status["servers_heard"] == {}

    pxe = daemon.top.getServiceNamed("dhcp").dispatcher.handlers[0]
    pxe.replies_heard["192.0.2.2"] = daemon.reactor.seconds()
    pxe.replies_heard["192.0.2.254"] = daemon.reactor.seconds() - 5.0
    daemon.reactor.advance(1.5)
    status, _ = daemon.scrape()
    (beta,) = status["peers"]
    assert beta["heard_ago"] == 1.5
    assert status["servers_heard"] == {"192.0.2.2": 1.5, "192.0.2.254": 6.5}
