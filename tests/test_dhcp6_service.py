"""The port-547 adapter on real sockets, driving the real DHCPv6 core.

The service carries out what `netboot.dhcp6.server.answer` decides, with a
`Lease6Store` bound in as the daemon binds it (`app.dhcp6_decision`); what is
checked here is the adapter's part (docs/protocols/dhcpv6.md §14): the
datagram read with its destination and interface, ff02::1:2 joined per served
interface, the reply sent back with the right scope, counters, the
`netboot.dhcp6` log fields, the client tracker fed by MAC and leased address,
malformed datagrams and decision bugs survived. The reactor is a `Clock` that
records readers; a test calls a reader's `doRead` once the client has sent.

The core answers Solicit and Information-request only when they were sent to
ff02::1:2 (RFC 8415 §16), so the exchanges that get an address or a Reply run
across a veth pair between namespaces and need root (skipped without; a failure
under NETBOOT_REQUIRE_ALL=1); on loopback run the rest (unicast is refused or
told to multicast), the daemon-level wiring and the `[dhcp6]` checks.
"""

from __future__ import annotations

import json
import select
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from ipaddress import IPv6Address, IPv6Interface, IPv6Network
from pathlib import Path
from typing import Any

import pytest
from scapy.layers.inet6 import ICMPv6ND_RA, ICMPv6NDOptPrefixInfo
from twisted.internet.task import Clock
from twisted.logger import LogLevel

from netboot.admin.machines import MachineRegistry
from netboot.config import (
    Config,
    Dhcp6Config,
    DhcpConfig,
    Ipv6Range,
    ServerConfig,
    config_from_mapping,
)
from netboot.dhcp.leases import LeaseState
from netboot.dhcp6.leases import IaKey, Lease6Store
from netboot.dhcp6.outcome import Dhcp6OutcomeKind
from netboot.dhcp6.server import Dhcp6Mode, Dhcp6Settings, answer, server_duid_ll
from netboot.dhcp6wire.ia import parse_ia_na, parse_status_code
from netboot.dhcp6wire.options import PXE_ENTERPRISE_NUMBER, MessageType, Option, Status
from netboot.dhcp6wire.packet import (
    Dhcp6Message,
    RelayMessage,
    build_message,
    parse_message,
)
from netboot.dhcp6wire.values import (
    VendorClass,
    build_vendor_class,
    parse_bootfile_url,
    parse_dns_servers,
    parse_vendor_class,
)
from netboot.errors import ConfigError
from netboot.macaddr import MacAddress
from netboot.settings import build_runtime
from netboot_lab.factories import make_set
from netboot_lab.netns import VethPair, entered, ip
from netboot_services.admin import snapshot
from netboot_services.app import HostFacts, check_dhcp6, make_service, reload
from netboot_services.clients import ClientTracker
from netboot_services.dhcp6 import (
    READS_PER_WAKEUP,
    Arrival6,
    Dhcp6Service,
    Message6,
    Outcome6,
    message_name,
)
from netboot_services.router_advertisement import ALL_NODES, RouterAdvertisementService
from tests.netns import veth_lab

CLIENT_MAC = "52:54:00:12:34:56"
CLIENT_DUID = bytes.fromhex("00030001525400123456")
"""DUID-LL of an Ethernet client: the MAC is in it."""
SERVER_DUID = server_duid_ll(MacAddress("02:00:00:00:00:01"))
LAB_POOL = "fd4e:4254:0:1::1000-fd4e:4254:0:1::1fff"
FIRST_IN_POOL = IPv6Address("fd4e:4254:0:1::1000")
SERVER_ADDRESS = "fd4e:4254:0:1::1"
CLIENT_LINK_LOCAL = "fe80::5054:ff:fe12:3456"
IAID = 1
IA = IAID.to_bytes(4, "big") + bytes(8)
"""An IA_NA with IAID 1 and no addresses: what a client solicits with."""


class ReaderClock(Clock):
    """A `Clock` that records the readers a service adds, so a test can drive them."""

    def __init__(self) -> None:
        super().__init__()
        self.readers: list[Any] = []

    def addReader(self, reader: Any) -> None:  # noqa: N802
        self.readers.append(reader)

    def removeReader(self, reader: Any) -> None:  # noqa: N802
        self.readers.remove(reader)


def lab_settings() -> Dhcp6Settings:
    """The lab's `[dhcp6]` as the daemon builds it: through `build_runtime`."""
    settings = built_settings({"mode": "full", "pool": LAB_POOL, "dns_servers": ["fd4e::53"]})
    assert settings.pool is not None
    return settings


def proxy_settings() -> Dhcp6Settings:
    """`[dhcp6] mode = "proxy"` beside a site's DHCPv6 server: no pool, boot options only."""
    return built_settings({"mode": "proxy"})


def built_settings(dhcp6: dict[str, Any]) -> Dhcp6Settings:
    config = config_from_mapping({"dhcp": {"mode": "off"}, "dhcp6": dhcp6}, "test", Path())
    settings = build_runtime(config, host_name="lab", server_duid6=SERVER_DUID).dhcp6
    assert settings is not None
    return settings


Decide = Callable[[Message6, Arrival6, Dhcp6Settings, float], Outcome6]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Lease6Store]:
    pool = lab_settings().pool
    assert pool is not None
    with Lease6Store(tmp_path / "leases.sqlite3", pool) as opened:
        yield opened


def deciding_with(store: Lease6Store | None) -> Decide:
    """The core's `answer` with `store` bound in, as `app.dhcp6_decision` binds it."""

    def decide(
        message: Message6, arrival: Arrival6, settings: Dhcp6Settings, now: float
    ) -> Outcome6:
        return answer(message, arrival, settings, store, now)

    return decide


def client_message(kind: MessageType, *options: tuple[int, bytes], xid: int = 0x123456) -> bytes:
    message = Dhcp6Message(kind, xid, ((Option.CLIENTID, CLIENT_DUID), *options))
    return build_message(message)


def loopback_service(
    decide: Decide, clients: ClientTracker | None = None
) -> tuple[Dhcp6Service[Dhcp6Settings], ReaderClock]:
    reactor = ReaderClock()
    service = Dhcp6Service(decide, lab_settings(), reactor, 0, (), clients)
    service.startService()
    return service, reactor


@pytest.fixture
def loopback_client() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    sock.bind(("::1", 0))
    sock.settimeout(2)
    yield sock
    sock.close()


def exchange(
    service: Dhcp6Service[Any], reactor: ReaderClock, client: socket.socket, datagram: bytes
) -> bytes:
    assert service.bound_port is not None
    client.sendto(datagram, ("::1", service.bound_port))
    (reader,) = reactor.readers
    reader.doRead()
    return client.recv(65536)


def dhcp6_lines(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e.get("log_namespace") == "netboot.dhcp6" and "outcome" in e]


# -- loopback: what the adapter does whatever the answer ----------------------------------


def test_malformed_datagrams_are_counted_and_logged_once_a_minute(
    loopback_client: socket.socket, events: list[dict[str, Any]], store: Lease6Store
) -> None:
    service, reactor = loopback_service(deciding_with(store))
    assert service.bound_port is not None
    try:
        for garbage in (b"\x01", b"\x01\x00\x00\x01\x00\x01\x00\x09ab", b"\x0c" + bytes(10)):
            loopback_client.sendto(garbage, ("::1", service.bound_port))
        (reader,) = reactor.readers
        reader.doRead()
        reactor.advance(61)
        loopback_client.sendto(b"\x02", ("::1", service.bound_port))
        reader.doRead()
    finally:
        service.stopService()
    assert (service.counters.datagrams, service.counters.malformed) == (4, 4)
    assert service.counters.replies == 0
    warnings = [e for e in events if "malformed DHCPv6" in str(e.get("log_format"))]
    assert len(warnings) == 2
    assert warnings[0]["outcome"] == "malformed"
    assert warnings[0]["client"] == f"[::1]:{loopback_client.getsockname()[1]}"


def test_a_decision_that_says_malformed_is_counted_like_one(
    loopback_client: socket.socket, events: list[dict[str, Any]], store: Lease6Store
) -> None:
    service, reactor = loopback_service(deciding_with(store))
    assert service.bound_port is not None
    nameless = build_message(Dhcp6Message(MessageType.SOLICIT, 7, ((Option.IA_NA, IA),)))
    try:
        loopback_client.sendto(nameless, ("::1", service.bound_port))
        reactor.readers[0].doRead()
    finally:
        service.stopService()
    assert (service.counters.malformed, service.counters.replies) == (1, 0)
    assert dhcp6_lines(events)[0]["outcome"] == "malformed"


def test_a_decision_bug_is_logged_with_its_traceback_and_port_547_answers_on(
    loopback_client: socket.socket, events: list[dict[str, Any]], store: Lease6Store
) -> None:
    calls: list[int] = []
    core = deciding_with(store)

    def buggy_once(
        message: Message6, arrival: Arrival6, settings: Dhcp6Settings, now: float
    ) -> Outcome6:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("a bug in the decision")
        return core(message, arrival, settings, now)

    service, reactor = loopback_service(buggy_once)
    assert service.bound_port is not None
    # A Renew to us by unicast: the core answers it UseMulticast (RFC 8415 §18.4).
    renew = client_message(MessageType.RENEW, (Option.SERVERID, SERVER_DUID), (Option.IA_NA, IA))
    try:
        loopback_client.sendto(renew, ("::1", service.bound_port))
        raw = exchange(service, reactor, loopback_client, renew)
    finally:
        service.stopService()
    reply = parse_message(raw)
    assert isinstance(reply, Dhcp6Message)
    assert reply.kind is MessageType.REPLY
    status = reply.option(Option.STATUS_CODE)
    assert status is not None and parse_status_code(status).status is Status.USE_MULTICAST
    counters = service.counters
    assert (counters.handler_errors, counters.ignored, counters.replies) == (1, 1, 1)
    (failure,) = [e for e in events if "log_failure" in e]
    assert failure["log_failure"].check(RuntimeError)
    assert failure["log_namespace"] == "netboot.dhcp6"


def test_a_wake_up_reads_a_bounded_batch(
    loopback_client: socket.socket, store: Lease6Store
) -> None:
    service, reactor = loopback_service(deciding_with(store))
    assert service.bound_port is not None
    sent = READS_PER_WAKEUP + 10
    try:
        for xid in range(sent):
            message = client_message(MessageType.INFORMATION_REQUEST, xid=xid)
            loopback_client.sendto(message, ("::1", service.bound_port))
        (reader,) = reactor.readers
        reader.doRead()
        assert service.counters.datagrams == READS_PER_WAKEUP
        reader.doRead()
        assert service.counters.datagrams == sent
    finally:
        service.stopService()


def test_ignored_clients_are_logged_at_debug_and_get_nothing(
    loopback_client: socket.socket, events: list[dict[str, Any]], store: Lease6Store
) -> None:
    service, reactor = loopback_service(deciding_with(store))
    assert service.bound_port is not None
    try:
        # A Renew naming no server: not for us (RFC 8415 §16.6), left unanswered.
        loopback_client.sendto(
            client_message(MessageType.RENEW, (Option.IA_NA, IA)), ("::1", service.bound_port)
        )
        reactor.readers[0].doRead()
    finally:
        service.stopService()
    (line,) = dhcp6_lines(events)
    assert (line["outcome"], line["log_level"]) == ("ignored", LogLevel.debug)
    assert line["mac"] == CLIENT_MAC
    assert (service.counters.ignored, service.counters.replies) == (1, 0)


def test_a_relayed_message_is_named_by_the_clients_own_type() -> None:
    inner = Dhcp6Message(MessageType.SOLICIT, 1, ((Option.CLIENTID, CLIENT_DUID),))
    forward = RelayMessage(
        MessageType.RELAY_FORW,
        0,
        IPv6Address("fd4e:4254:0:2::1"),
        IPv6Address(CLIENT_LINK_LOCAL),
        ((Option.RELAY_MSG, build_message(inner)),),
    )
    assert message_name(parse_message(build_message(forward))) == "SOLICIT via relay"
    assert message_name(inner) == "SOLICIT"
    assert message_name(Dhcp6Message(200, 1, ())) == "type 200"


# -- the daemon: wiring, reload, status, configuration checks ---------------------------


def daemon_table(root: Path, **dhcp6: Any) -> dict[str, dict[str, Any]]:
    return {
        "server": {"root": str(root), "allow_root": True},
        "dhcp": {"mode": "off"},
        "bsdp": {"enabled": False},
        "dhcp6": {"mode": "proxy", **dhcp6},
        "tftp": {"enabled": False},
        "http": {"enabled": False},
        "nfs": {"mode": "off"},
        "admin": {"listen": ""},
    }


LAB_FACTS = HostFacts("lab", None, frozenset(), SERVER_DUID)


def test_the_daemon_runs_dhcp6_and_a_reload_swaps_its_settings(tmp_path: Path) -> None:
    root = tmp_path / "images"
    make_set(root, "Alpha", Index=1)
    config = config_from_mapping(daemon_table(root), "c", tmp_path)
    top = make_service(config, Clock(), LAB_FACTS)
    dhcp6 = top.getServiceNamed("dhcp6")
    assert dhcp6.settings == top.runtime.dhcp6
    assert isinstance(dhcp6.settings, Dhcp6Settings)
    assert (dhcp6.settings.mode, dhcp6.settings.server_duid) == (Dhcp6Mode.PROXY, SERVER_DUID)
    assert dhcp6.settings.lease_time == 3600
    changed = daemon_table(root, lease_time=600, port=1547)
    reload(top, lambda: config_from_mapping(changed, "c", tmp_path))
    assert dhcp6.settings is top.runtime.dhcp6
    assert (dhcp6.settings.lease_time, dhcp6.settings.t1, dhcp6.settings.t2) == (600, 300, 480)
    assert top.restart_pending == ("dhcp6.port",)
    assert snapshot(top)["counters"]["dhcp6"]["datagrams"] == 0


def test_full_mode_binds_in_the_ipv4_lease_file(tmp_path: Path) -> None:
    """The daemon's decision is the core's, with the lease6 table of `[dhcp] lease_database`."""
    root = tmp_path / "images"
    make_set(root, "Alpha", Index=1)
    database = tmp_path / "state" / "leases.sqlite3"
    table = daemon_table(root, mode="full", pool=LAB_POOL)
    table["dhcp"]["lease_database"] = str(database)
    top = make_service(config_from_mapping(table, "c", tmp_path), Clock(), LAB_FACTS)
    dhcp6 = top.getServiceNamed("dhcp6")
    arrival = Arrival6(
        source=IPv6Address(CLIENT_LINK_LOCAL),
        source_port=546,
        interface="nb0",
        interface_index=2,
        destination=IPv6Address("ff02::1:2"),
        server_addresses=(IPv6Interface(f"{SERVER_ADDRESS}/64"),),
    )
    solicit = parse_message(
        client_message(MessageType.SOLICIT, (Option.IA_NA, IA), (Option.RAPID_COMMIT, b""))
    )
    now = time.time()
    outcome = dhcp6.decide(solicit, arrival, dhcp6.settings, now)
    assert (outcome.kind, outcome.addresses) == (Dhcp6OutcomeKind.BOUND, (FIRST_IN_POOL,))
    assert dhcp6.settings.pool is not None
    with Lease6Store(database, dhcp6.settings.pool) as leases:
        lease = leases.lease_for(IaKey(CLIENT_DUID, IAID))
    assert lease is not None and lease.active(now)
    assert lease.address == FIRST_IN_POOL


def test_dhcp6_off_starts_no_listener(tmp_path: Path) -> None:
    config = config_from_mapping(daemon_table(tmp_path, mode="off"), "c", tmp_path)
    top = make_service(config, Clock(), HostFacts("lab", None, frozenset()))
    assert top.runtime.dhcp6 is None
    assert "dhcp6" not in [service.name for service in top]


SERVED = [("nb0", IPv6Interface("fe80::1/64")), ("nb0", IPv6Interface(f"{SERVER_ADDRESS}/64"))]


def full(**dhcp6: Any) -> Config:
    pool = Ipv6Range(IPv6Address("fd4e:4254:0:1::1000"), IPv6Address("fd4e:4254:0:1::1fff"))
    values: dict[str, Any] = {"mode": "full", "pool": pool, **dhcp6}
    return Config(server=ServerConfig(interfaces=("nb0",)), dhcp6=Dhcp6Config(**values))


@pytest.mark.parametrize(
    ("config", "networks", "key", "message"),
    [
        (full(pool=None), SERVED, "dhcp6.pool", "needs an explicit pool"),
        (
            replace(full(), dhcp=DhcpConfig(lease_database="postgresql://db.example/leases")),
            SERVED,
            "dhcp.lease_database",
            "full DHCPv6 keeps its leases in the SQLite file only",
        ),
        (full(), SERVED[:1], "dhcp6.pool", "is in no served interface's /64"),
        (
            replace(full(router_advertisements=True), server=ServerConfig()),
            SERVED,
            "dhcp6.router_advertisements",
            "name the lab's interfaces",
        ),
        (
            full(router_advertisements=True, mode="proxy"),
            SERVED,
            "dhcp6.router_advertisements",
            'needs mode = "full"',
        ),
    ],
)
def test_dhcp6_configurations_the_machine_cannot_honour_are_refused(
    config: Config, networks: list[tuple[str, IPv6Interface]], key: str, message: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        check_dhcp6(config, networks)
    assert raised.value.key == key
    assert message in raised.value.message


def test_a_pool_on_a_served_link_passes() -> None:
    check_dhcp6(full(router_advertisements=True), SERVED)
    settings = build_runtime(full(), host_name="lab", server_duid6=SERVER_DUID).dhcp6
    assert settings is not None and settings.pool is not None
    assert settings.pool.network == IPv6Network("fd4e:4254:0:1::/64")
    proxy = build_runtime(full(mode="proxy"), host_name="lab", server_duid6=SERVER_DUID).dhcp6
    assert proxy is not None and proxy.pool is None


# -- namespaces: multicast in, scoped answers out, router advertisements ---------------


@pytest.fixture
def ipv6_pair() -> Iterator[VethPair]:
    """A veth pair with the lab's ULA on the server side and a fixed link-local on the
    client side, both without duplicate address detection (no 2 s wait)."""
    with veth_lab("10.248.0") as pair:
        for namespace, interface in ((pair.server, pair.server_if), (pair.client, pair.client_if)):
            subprocess.run(
                ["ip", "netns", "exec", namespace, "sysctl", "-qw",
                 f"net.ipv6.conf.{interface}.accept_dad=0"],
                check=True,
            )  # fmt: skip
        ip("addr", "add", f"{SERVER_ADDRESS}/64", "dev", pair.server_if, "nodad",
           netns=pair.server)  # fmt: skip
        ip("addr", "add", "fe80::1/64", "dev", pair.server_if, "nodad", netns=pair.server)
        ip("addr", "add", f"{CLIENT_LINK_LOCAL}/64", "dev", pair.client_if, "nodad",
           netns=pair.client)  # fmt: skip
        yield pair


def pump(reactor: ReaderClock, client: socket.socket, timeout: float = 3.0) -> bytes:
    """Drive the service's readers until the client has a datagram."""
    return pump_from(reactor, client, timeout)[0]


def pump_from(
    reactor: ReaderClock, client: socket.socket, timeout: float = 3.0
) -> tuple[bytes, tuple[Any, ...]]:
    """`pump`, with the answer's source (address, port, flow info, scope id)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for reader in list(reactor.readers):
            reader.doRead()
        ready, _, _ = select.select([client], [], [], 0.05)
        if ready:
            data, source = client.recvfrom(65536)
            return data, source
    raise AssertionError("no answer from the DHCPv6 service")


def multicast_exchange(
    pair: VethPair,
    decide: Decide,
    datagram: bytes,
    interfaces: tuple[str, ...] = ("nb0",),
    clients: ClientTracker | None = None,
) -> tuple[Dhcp6Service[Dhcp6Settings], ReaderClock, bytes]:
    """A client on the pair's far end sends `datagram` from port 546 to ff02::1:2, as a
    real one does; the service on port 547 answers. Returns it (stopped) and the answer."""
    with entered(pair.client):
        client = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        client.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, pair.client_if.encode())
        index = socket.if_nametoindex(pair.client_if)
        client.bind((CLIENT_LINK_LOCAL, 546, 0, index))
    reactor = ReaderClock()
    try:
        with entered(pair.server):
            service = Dhcp6Service(decide, lab_settings(), reactor, 547, interfaces, clients)
            service.startService()
            try:
                client.sendto(datagram, ("ff02::1:2", 547, 0, index))
                raw = pump(reactor, client)
            finally:
                service.stopService()
    finally:
        client.close()
    return service, reactor, raw


def test_an_information_request_is_answered_counted_and_logged(
    ipv6_pair: VethPair, events: list[dict[str, Any]], store: Lease6Store
) -> None:
    request = client_message(MessageType.INFORMATION_REQUEST)
    service, reactor, raw = multicast_exchange(ipv6_pair, deciding_with(store), request)
    reply = parse_message(raw)
    assert isinstance(reply, Dhcp6Message)
    assert (reply.kind, reply.transaction_id) == (MessageType.REPLY, 0x123456)
    assert reply.option(Option.SERVERID) == SERVER_DUID
    assert reply.option(Option.CLIENTID) == CLIENT_DUID
    assert reply.option(Option.IA_NA) is None
    dns = reply.option(Option.DNS_SERVERS)
    assert dns is not None and parse_dns_servers(dns) == (IPv6Address("fd4e::53"),)
    counters = service.counters.as_dict()
    assert {k: v for k, v in counters.items() if v} == {
        "datagrams": 1,
        "replies": 1,
        "info_replies": 1,
    }
    (line,) = dhcp6_lines(events)
    assert line["outcome"] == "info_reply"
    assert line["mac"] == CLIENT_MAC
    assert line["duid"] == CLIENT_DUID.hex()
    assert line["client"] == f"[{CLIENT_LINK_LOCAL}%nb0]:546"
    assert "address" not in line
    assert line["log_level"] == LogLevel.info
    assert reactor.readers == []
    assert store.leases() == [], "an Information-request leases nothing"


def test_a_bound_address_is_the_clients_step_tied_to_its_mac(
    ipv6_pair: VethPair, events: list[dict[str, Any]], store: Lease6Store
) -> None:
    registry = MachineRegistry()
    clients = ClientTracker(registry=registry, lookup=lambda address: None)
    solicit = client_message(MessageType.SOLICIT, (Option.IA_NA, IA), (Option.RAPID_COMMIT, b""))
    service, _, raw = multicast_exchange(ipv6_pair, deciding_with(store), solicit, clients=clients)
    reply = parse_message(raw)
    assert isinstance(reply, Dhcp6Message)
    assert reply.kind is MessageType.REPLY
    assert reply.option(Option.RAPID_COMMIT) == b""
    ia_option = reply.option(Option.IA_NA)
    assert ia_option is not None
    (leased,) = [a.address for a in parse_ia_na(ia_option).addresses]
    assert leased == FIRST_IN_POOL, "the lowest never-used address of the pool"
    lease = store.lease_for(IaKey(CLIENT_DUID, IAID))
    assert lease is not None
    assert (lease.address, lease.state, lease.mac) == (leased, LeaseState.BOUND, CLIENT_MAC)
    (line,) = dhcp6_lines(events)
    assert (line["outcome"], line["address"]) == ("bound", str(leased))
    assert service.counters.bound == 1
    assert clients.mac_of(str(leased)) == CLIENT_MAC, "TFTP/HTTP from the lease join the MAC"
    machine = registry.machine(CLIENT_MAC)
    assert machine is not None
    assert machine["address"] == str(leased)
    steps = [step["stage"] for step in machine["journeys"][0]["steps"]]
    assert steps == ["dhcp ack"]
    (record,) = clients.recent()
    assert (record["address"], record["mac"], record["progress"]) == (
        str(leased),
        CLIENT_MAC,
        "dhcp ack",
    )


@pytest.mark.parametrize("interfaces", [("nb0",), ()], ids=["named", "every-interface"])
def test_a_solicit_to_ff02_1_2_is_answered_on_its_link(
    ipv6_pair: VethPair,
    interfaces: tuple[str, ...],
    events: list[dict[str, Any]],
    store: Lease6Store,
) -> None:
    arrivals: list[Arrival6] = []
    core = deciding_with(store)

    def recording(
        message: Message6, arrival: Arrival6, settings: Dhcp6Settings, now: float
    ) -> Outcome6:
        arrivals.append(arrival)
        return core(message, arrival, settings, now)

    solicit = client_message(MessageType.SOLICIT, (Option.IA_NA, IA))
    _, _, raw = multicast_exchange(ipv6_pair, recording, solicit, interfaces)
    advertise = parse_message(raw)
    assert isinstance(advertise, Dhcp6Message)
    assert (advertise.kind, advertise.transaction_id) == (MessageType.ADVERTISE, 0x123456)
    assert advertise.option(Option.SERVERID) == SERVER_DUID
    assert advertise.option(Option.CLIENTID) == CLIENT_DUID
    assert advertise.option(Option.PREFERENCE) == bytes((255,))
    ia_option = advertise.option(Option.IA_NA)
    assert ia_option is not None
    ia = parse_ia_na(ia_option)
    assert (ia.iaid, ia.t1, ia.t2) == (IAID, 1800, 2880)
    (offered,) = ia.addresses
    assert (offered.address, offered.valid_lifetime) == (FIRST_IN_POOL, 3600)
    held = store.lease_at(FIRST_IN_POOL)
    assert held is not None and held.state is LeaseState.OFFERED
    (arrival,) = arrivals
    assert arrival.destination == IPv6Address("ff02::1:2")
    assert (arrival.source, arrival.source_port) == (IPv6Address(CLIENT_LINK_LOCAL), 546)
    assert arrival.interface == "nb0"
    assert IPv6Interface(f"{SERVER_ADDRESS}/64") in arrival.server_addresses
    assert IPv6Interface("fe80::1/64") in arrival.server_addresses
    (line,) = dhcp6_lines(events)
    assert line["client"] == f"[{CLIENT_LINK_LOCAL}%nb0]:546"
    assert (line["outcome"], line["mac"]) == ("advertise", CLIENT_MAC)
    assert line["address"] == str(FIRST_IN_POOL)


PXE_CLASS = VendorClass(PXE_ENTERPRISE_NUMBER, (b"PXEClient:Arch:00007:UNDI:003000",))
PXE_OPTIONS = (
    (Option.ORO, bytes.fromhex("003b003c00170010")),
    (Option.VENDOR_CLASS, build_vendor_class(PXE_CLASS)),
    (Option.CLIENT_ARCH_TYPE, (7).to_bytes(2, "big")),
)
"""What OVMF's PXEv6 sends beside its DUID: ORO {59, 60, 23, 16}, vendor class
`PXEClient` of enterprise 343, arch 7 (docs/protocols/dhcpv6.md §15)."""
SITE_LEASED = "fd4e:4254:0:1::1040"
"""The address the site's DHCPv6 server leased the PXE client."""


def test_proxy_mode_answers_edk2s_boot_service_request_on_port_4011(
    ipv6_pair: VethPair, events: list[dict[str, Any]]
) -> None:
    """EDK2's PXEv6 beside a site server (docs/protocols/dhcpv6.md §12): our Advertise
    has boot options and no IA_NA; the client then sends a Request without IA_NA to
    the URL's host, from and to port 4011, and takes option 59 from our Reply there."""
    ip("addr", "add", f"{SITE_LEASED}/64", "dev", ipv6_pair.client_if, "nodad",
       netns=ipv6_pair.client)  # fmt: skip
    with entered(ipv6_pair.client):
        index = socket.if_nametoindex(ipv6_pair.client_if)
        dhcp_client = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        dhcp_client.bind((CLIENT_LINK_LOCAL, 546, 0, index))
        boot_client = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        boot_client.bind((SITE_LEASED, 4011))
    reactor = ReaderClock()
    try:
        with entered(ipv6_pair.server):  # interface names are looked up in the namespace
            service = Dhcp6Service(
                deciding_with(None), proxy_settings(), reactor, 547, ("nb0",),
                boot_server_port=4011,
            )  # fmt: skip
            service.startService()
            try:
                assert (service.bound_port, service.bound_boot_server_port) == (547, 4011)
                solicit = client_message(MessageType.SOLICIT, (Option.IA_NA, IA), *PXE_OPTIONS)
                dhcp_client.sendto(solicit, ("ff02::1:2", 547, 0, index))
                advertise = parse_message(pump(reactor, dhcp_client))
                request = client_message(
                    MessageType.REQUEST, (Option.SERVERID, SERVER_DUID), *PXE_OPTIONS
                )
                boot_client.sendto(request, (SERVER_ADDRESS, 4011))
                raw, source = pump_from(reactor, boot_client)
            finally:
                service.stopService()
    finally:
        dhcp_client.close()
        boot_client.close()
    assert isinstance(advertise, Dhcp6Message)
    assert advertise.kind is MessageType.ADVERTISE
    assert advertise.option(Option.IA_NA) is None, "a proxy offer carries no IA_NA"
    assert advertise.option(Option.PREFERENCE) is None, "255 would make EDK2 take it alone"
    url = f"tftp://[{SERVER_ADDRESS}]/ipxe.efi"
    assert parse_bootfile_url(advertise.option(Option.BOOTFILE_URL) or b"") == url
    offered_class = parse_vendor_class(advertise.option(Option.VENDOR_CLASS) or b"")
    assert offered_class == VendorClass(PXE_ENTERPRISE_NUMBER, (b"PXEClient",))
    reply = parse_message(raw)
    assert isinstance(reply, Dhcp6Message)
    assert (reply.kind, reply.transaction_id) == (MessageType.REPLY, 0x123456)
    assert (source[0], source[1]) == (SERVER_ADDRESS, 4011), "the Reply leaves port 4011"
    assert reply.option(Option.SERVERID) == SERVER_DUID
    assert reply.option(Option.CLIENTID) == CLIENT_DUID
    assert reply.option(Option.IA_NA) is None
    assert parse_bootfile_url(reply.option(Option.BOOTFILE_URL) or b"") == url
    counters = service.counters.as_dict()
    assert {k: v for k, v in counters.items() if v} == {
        "datagrams": 2,
        "boot_server_datagrams": 1,
        "replies": 2,
        "boot_info": 2,
    }
    lines = dhcp6_lines(events)
    assert [(line["outcome"], line["client"]) for line in lines] == [
        ("boot_info", f"[{CLIENT_LINK_LOCAL}%nb0]:546"),
        ("boot_info", f"[{SITE_LEASED}]:4011"),
    ]
    assert {line["mac"] for line in lines} == {CLIENT_MAC}
    assert lines[1]["boot_url"] == url
    assert reactor.readers == []


def test_proxy_mode_opens_port_4011_and_full_mode_does_not(tmp_path: Path) -> None:
    root = tmp_path / "images"
    make_set(root, "Alpha", Index=1)
    for mode, port in (("proxy", 14011), ("full", None)):
        table = daemon_table(root, mode=mode, boot_server_port=14011)
        if mode == "full":
            table["dhcp6"]["pool"] = LAB_POOL
            table["dhcp"]["lease_database"] = str(tmp_path / "leases.sqlite3")
        top = make_service(config_from_mapping(table, "c", tmp_path), Clock(), LAB_FACTS)
        assert top.getServiceNamed("dhcp6").boot_server_port == port, mode


def test_the_daemon_serves_an_ipv6_only_link(ipv6_pair: VethPair, tmp_path: Path) -> None:
    """The IPv6 lab net has no IPv4 address: the daemon must still be built there, its
    DUID-LL made of the served interface's MAC (docs/protocols/dhcpv6.md §14)."""
    ip("addr", "del", f"{ipv6_pair.server_ip}/24", "dev", ipv6_pair.server_if,
       netns=ipv6_pair.server)  # fmt: skip
    link = json.loads(ip("-j", "link", "show", ipv6_pair.server_if, netns=ipv6_pair.server))
    root = tmp_path / "images"
    make_set(root, "Alpha", Index=1)
    table = daemon_table(root, mode="full", pool=LAB_POOL, router_advertisements=True)
    table["server"]["interfaces"] = [ipv6_pair.server_if]
    table["dhcp"]["lease_database"] = str(tmp_path / "leases.sqlite3")
    config = config_from_mapping(table, "c", tmp_path)
    with entered(ipv6_pair.server):
        check_dhcp6(config, None)
        top = make_service(config, Clock())
    assert top.facts.server_duid6 == server_duid_ll(MacAddress(link[0]["address"]))
    assert {"dhcp6", "ra"} <= {service.name for service in top}


def test_router_advertisements_announce_the_pool_and_answer_solicitations(
    ipv6_pair: VethPair,
) -> None:
    prefix = IPv6Network("fd4e:4254:0:1::/64")
    with entered(ipv6_pair.client):
        listener = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"nb1")
        index = socket.if_nametoindex("nb1")
        group = socket.inet_pton(socket.AF_INET6, ALL_NODES) + index.to_bytes(4, "little")
        listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, group)
        listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
    listener.settimeout(3)
    reactor = ReaderClock()
    try:
        with entered(ipv6_pair.server):
            service = RouterAdvertisementService(reactor, ("nb0",), prefix, draw=lambda: 0.0)
            service.startService()
        try:
            first = ICMPv6ND_RA(wait_for_ra(listener))
            assert (first.M, first.O, first.routerlifetime) == (1, 1, 0)
            info = first[ICMPv6NDOptPrefixInfo]
            assert (info.prefix, info.prefixlen, info.L, info.A) == (
                str(prefix.network_address),
                64,
                1,
                0,
            )
            assert service.counters.unsolicited == 1
            # An RS 1 s later: the answer waits until 3 s after the last multicast RA.
            reactor.advance(1)
            listener.sendto(bytes((133, 0)) + bytes(6), ("ff02::2", 0, 0, index))
            deadline = time.monotonic() + 3
            while service.counters.solicitations == 0 and time.monotonic() < deadline:
                for reader in reactor.readers:
                    reader.doRead()
                time.sleep(0.02)
            assert service.counters.solicitations == 1
            assert service.counters.advertisements == 1
            reactor.advance(1.9)
            assert service.counters.advertisements == 1
            reactor.advance(0.1)
            assert service.counters.advertisements == 2
            assert ICMPv6ND_RA(wait_for_ra(listener)).M == 1
            assert service.counters.unsolicited == 1, "an answer is not a periodic RA"
            reactor.advance(10)
            assert service.counters.unsolicited == 2
        finally:
            service.stopService()
        assert reactor.getDelayedCalls() == []
    finally:
        listener.close()


def wait_for_ra(listener: socket.socket) -> bytes:
    while True:
        message = listener.recv(1500)
        if message[0] == 134:
            return message
