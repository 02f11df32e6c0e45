"""DHCPv6 full mode across real namespaces, against clients others wrote (issue #20).

The daemon runs as a process in the server namespace of an IPv6-only veth pair
(netboot_lab.ipv6: the lab's ULA fd4e:4254:0:1::/64, the server on ::1, DAD
off) with `[dhcp] mode = "off"` and `[dhcp6] mode = "full"`, its log in JSON so
every DHCPv6 outcome is read by field (`outcome`, `duid`, `address`, `mac` on
system `netboot.dhcp6`, as the DHCPv6 service logs them).
The clients are ISC `dhclient -6`, dhcpcd and Kea's `perfdhcp -6`
(netboot_lab.dhcp6_clients, netboot_lab.perfdhcp), and for what they send only
on their own terms (a Decline, a relay's Relay-forward, an Information-request)
a client built on our codec (`HandClient6`).

"No address twice" is read two ways (netboot_lab.leases6): by replaying the
daemon's log, in which an address bound to a second DUID while the first holds
it is a duplicate whatever the store says, and from the DHCPv6 table of the
lease database. tshark reads a capture of the client's side of the link.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from ipaddress import IPv6Address
from pathlib import Path
from typing import Any

import pytest

from netboot.dhcp6wire.options import MessageType, Option, Status
from netboot.dhcp6wire.packet import RelayMessage, build_message, parse_message
from netboot.dhcp6wire.values import build_oro, parse_dns_servers, parse_domain_list
from netboot_lab.daemon import Daemon
from netboot_lab.dhcp6_clients import (
    Dhclient6,
    Dhcpcd6,
    HandClient6,
    Lease6,
    leased_addresses,
    status_codes,
)
from netboot_lab.factories import make_set
from netboot_lab.ipv6 import (
    DNS_SERVER,
    DOMAIN_SEARCH,
    LAB_NETWORK,
    POOL_FIRST,
    POOL_LAST,
    client_socket,
    ipv6_pair,
    link_local,
    pool_range,
)
from netboot_lab.leases6 import (
    database_bindings,
    dhcp6_events,
    duplicate_problems,
    logged_addresses,
    replay_log,
)
from netboot_lab.netns import VethPair, ip
from netboot_lab.perfdhcp import V6_FIRST, V6_LAST, perfdhcp_command, run_perfdhcp
from netboot_lab.process import start_capture, stop_capture
from netboot_lab.storm_lab import start_netboot
from tests.netns import require_root
from tests.test_bsdp_dissector import assert_no_warnings
from tests.test_dhcp_network import FullLab, require_tool

LEASE_TIME = 1800
"""Not the default (3600), so a client showing it shows the key was read."""
STORM_RATE, STORM_CLIENTS = 100, 200
"""perfdhcp -6: 200 exchanges from 200 DUIDs at 100 a second, about 2 s."""
STORM_TIMEOUT = 90.0
ALLOWED_DROP_SHARE = 0.02
"""perfdhcp's first Solicit now and then goes unanswered while neighbour discovery
runs (dnsmasq shows the same); more than 2% lost is a server that did not keep up."""
LOG_WAIT = 10.0


def dhcp6_config(
    work: Path,
    pair: VethPair,
    first: IPv6Address = POOL_FIRST,
    last: IPv6Address = POOL_LAST,
) -> Path:
    """Full DHCPv6 on the pair's server end only; no DHCPv4; leases and images under `work`."""
    root = work / "images"
    if not root.exists():
        make_set(root, "Alpha")
    config = work / "netboot.toml"
    search = ", ".join(f'"{name}"' for name in DOMAIN_SEARCH)
    config.write_text(
        f'[server]\nroot = "{root}"\ninterfaces = ["{pair.server_if}"]\n'
        f'[dhcp]\nmode = "off"\nlease_database = "{work / "leases.sqlite3"}"\n'
        f'[dhcp6]\nmode = "full"\npool = "{pool_range(first, last)}"\n'
        f"lease_time = {LEASE_TIME}\n"
        f'dns_servers = ["{DNS_SERVER}"]\ndomain_search = [{search}]\n'
        '[logging]\nformat = "json"\n'
        '[admin]\nlisten = ""\n'
    )
    return config


def require_clean_log(lines: list[str]) -> None:
    text = "\n".join(lines)
    assert "Traceback" not in text and "Unhandled Error" not in text, text[-4000:]


def wait_for_outcome(
    daemon: Daemon, outcome: str, address: IPv6Address, timeout: float = LOG_WAIT
) -> dict[str, Any]:
    """The daemon's `netboot.dhcp6` record of `outcome` for `address` (logged or next)."""
    deadline = time.monotonic() + timeout
    while True:
        for event in dhcp6_events(daemon.lines):
            if event.get("outcome") == outcome and address in logged_addresses(event):
                return event
        left = deadline - time.monotonic()
        assert left > 0, f"no {outcome} of {address} logged:\n" + "\n".join(daemon.lines[-30:])
        try:
            daemon.wait_for(r"netboot\.dhcp6", timeout=left)
        except AssertionError:
            continue


def client_mac(pair: VethPair) -> str:
    links = json.loads(ip("-j", "link", "show", "dev", pair.client_if, netns=pair.client))
    return str(links[0]["address"]).lower()


def in_pool(address: IPv6Address, first: IPv6Address = POOL_FIRST) -> bool:
    return first <= address <= POOL_LAST


def assert_lease_from_us(lease: Lease6) -> None:
    assert in_pool(lease.address), lease
    assert (lease.preferred_lifetime, lease.valid_lifetime) == (LEASE_TIME, LEASE_TIME), lease
    assert lease.dns_servers == (DNS_SERVER,), lease
    assert lease.domain_search == DOMAIN_SEARCH, lease


@pytest.fixture(scope="module")
def full6(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FullLab]:
    require_root()
    work = tmp_path_factory.mktemp("dhcp6-full")
    with ipv6_pair() as pair:
        with start_netboot(pair, dhcp6_config(work, pair)) as daemon:
            yield FullLab(pair, daemon, work)
            assert daemon.stop() == 0
        require_clean_log(daemon.lines)
        assert not replay_log(daemon.lines).duplicates


# -- real clients ---------------------------------------------------------------------


def test_dhclient_gets_an_address_and_the_dns_options(full6: FullLab, tmp_path: Path) -> None:
    require_tool("dhclient", "isc-dhcp-client")
    client = Dhclient6(full6.lab.client, full6.lab.client_if, tmp_path)
    try:
        lease = client.lease()
    finally:
        client.stop()
    assert_lease_from_us(lease)
    bound = wait_for_outcome(full6.daemon, "bound", lease.address)
    assert bound["duid"] == lease.client_duid.hex()
    # dhclient -D LL: a DUID-LL of the interface's MAC, which the server reads.
    assert str(bound["mac"]).lower() == client_mac(full6.lab)


def test_dhclient_release_frees_the_address(full6: FullLab, tmp_path: Path) -> None:
    require_tool("dhclient", "isc-dhcp-client")
    client = Dhclient6(full6.lab.client, full6.lab.client_if, tmp_path)
    lease = client.lease()
    assert_lease_from_us(lease)
    client.release()
    released = wait_for_outcome(full6.daemon, "released", lease.address)
    assert released["duid"] == lease.client_duid.hex()
    held, verdict = database_bindings(full6.work / "leases.sqlite3")
    assert verdict == "ok"
    assert lease.address not in {binding.address for binding in held}


def test_dhcpcd_gets_an_address(full6: FullLab, tmp_path: Path) -> None:
    require_tool("dhcpcd", "dhcpcd-base")
    pair = full6.lab
    lease = Dhcpcd6(pair.client, pair.client_if, tmp_path).lease()
    try:
        assert_lease_from_us(lease)
        bound = wait_for_outcome(full6.daemon, "bound", lease.address)
        assert bound["duid"] == lease.client_duid.hex()
    finally:
        # dhcpcd configured the address; the next client starts from a bare link.
        ip("-6", "addr", "del", f"{lease.address}/128", "dev", pair.client_if,
           netns=pair.client, check=False)  # fmt: skip


def storm(pair: VethPair) -> tuple[int, int, str]:
    """perfdhcp -6 with its uniqueness check (-u): (Replies, non-unique addresses, report)."""
    require_tool("perfdhcp", "kea-admin")
    count = str(STORM_CLIENTS)
    command = perfdhcp_command(6, pair.client_if, STORM_RATE, STORM_CLIENTS, "-n", count, "-u")
    report = run_perfdhcp(pair.client, command, V6_LAST, STORM_TIMEOUT)
    solicits = report.count(V6_FIRST, "sent packets")
    assert solicits == STORM_CLIENTS, report.output
    dropped = report.count(V6_FIRST, "drops") + report.count(V6_LAST, "drops")
    assert dropped <= ALLOWED_DROP_SHARE * solicits, report.output
    non_unique = report.count(V6_FIRST, "non unique addresses") + report.count(
        V6_LAST, "non unique addresses"
    )
    return report.count(V6_LAST, "received packets"), non_unique, report.output


def test_perfdhcp_storm_leases_every_address_once(full6: FullLab) -> None:
    replies, non_unique, output = storm(full6.lab)
    assert non_unique == 0, output
    assert replies >= (1 - ALLOWED_DROP_SHARE) * STORM_CLIENTS, output
    deadline = time.monotonic() + LOG_WAIT
    while replay_log(full6.daemon.lines).outcomes["bound"] < replies:
        assert time.monotonic() < deadline, f"fewer bound outcomes logged than {replies} Replies"
        full6.daemon.wait_for(r"netboot\.dhcp6", timeout=LOG_WAIT)
    replay = replay_log(full6.daemon.lines)
    assert not replay.duplicates, replay.duplicates[:5]
    held, verdict = database_bindings(full6.work / "leases.sqlite3")
    assert verdict == "ok"
    assert not duplicate_problems(held)
    assert all(in_pool(binding.address) for binding in held)


def relayed_solicit(client: HandClient6, interface_id: bytes) -> RelayMessage:
    """The client's Solicit as a relay on the link would forward it (RFC 8415 §19.1)."""
    solicit = client.message(MessageType.SOLICIT, client.ia_na())
    return RelayMessage(
        MessageType.RELAY_FORW,
        hop_count=0,
        link_address=LAB_NETWORK[0x77],
        peer_address=IPv6Address("fe80::2:77"),
        options=((Option.RELAY_MSG, build_message(solicit)), (Option.INTERFACE_ID, interface_id)),
    )


def test_tshark_reads_every_message_we_send_without_a_warning(
    full6: FullLab, tmp_path: Path
) -> None:
    """Advertise, Reply to Request, Reply to Information-request, Relay-reply, Reply to
    Decline: all on the client's side of the link, dissected by Wireshark (tshark -V)."""
    require_tool("tshark", "tshark")
    pair = full6.lab
    pcap = tmp_path / "dhcp6.pcap"
    capture = start_capture(pair.client_if, pcap, pair.client, "udp port 546 or udp port 547")
    try:
        with client_socket(pair.client, pair.client_if) as sock:
            client = HandClient6(sock, bytes.fromhex("02000000a001"))
            address, reply = client.lease()
            assert address is not None and reply is not None
            info = client.ask(
                client.message(
                    MessageType.INFORMATION_REQUEST,
                    (Option.ORO, build_oro([Option.DNS_SERVERS, Option.DOMAIN_LIST])),
                )
            )
            assert info is not None and info.msg_type == MessageType.REPLY
            assert parse_dns_servers(info.option(Option.DNS_SERVERS) or b"") == (DNS_SERVER,)
            assert parse_domain_list(info.option(Option.DOMAIN_LIST) or b"") == DOMAIN_SEARCH
            declined = client.decline(reply, address)
            assert declined is not None and declined.msg_type == MessageType.REPLY
        with client_socket(pair.client, pair.client_if, port=547) as relay_sock:
            relay = relayed_solicit(HandClient6(relay_sock, bytes.fromhex("02000000a002")), b"p7")
            # To ff02::1:2 like the clients: the client end has no route to the ULA.
            answers = relay_sock.exchange(build_message(relay))
            assert answers, "no Relay-reply"
            relay_reply = parse_message(answers[0][1])
            assert isinstance(relay_reply, RelayMessage)
            assert relay_reply.msg_type == MessageType.RELAY_REPL
            assert relay_reply.option(Option.INTERFACE_ID) == b"p7"
            assert relay_reply.peer_address == relay.peer_address
            assert relay_reply.innermost.msg_type == MessageType.ADVERTISE
    finally:
        stop_capture(capture, pcap)
    server = link_local(pair.server, pair.server_if)
    ours = subprocess.run(
        ["tshark", "-r", str(pcap), "-V", "-Y", f"dhcpv6 && ipv6.src == {server}"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    for name in ("Advertise", "Reply", "Relay-reply"):
        assert f"Message type: {name}" in ours, ours[-3000:]
    assert_no_warnings("tshark", pcap)


# -- one daemon each: a tiny pool, restarts, crashes ---------------------------------------


@pytest.fixture
def pair6() -> Iterator[VethPair]:
    require_root()
    with ipv6_pair() as pair:
        yield pair


def test_a_declined_address_is_given_to_no_one(pair6: VethPair, tmp_path: Path) -> None:
    """A pool of two: A declines its address, B gets the other, C gets none (NoAddrsAvail)."""
    first, last = POOL_FIRST, POOL_FIRST + 1
    with (
        start_netboot(pair6, dhcp6_config(tmp_path, pair6, first, last)) as daemon,
        client_socket(pair6.client, pair6.client_if) as sock,
    ):
        a = HandClient6(sock, bytes.fromhex("02000000d001"))
        declined, reply = a.lease()
        assert declined is not None and reply is not None
        answer = a.decline(reply, declined)
        assert answer is not None and answer.msg_type == MessageType.REPLY
        assert wait_for_outcome(daemon, "declined", declined)["duid"] == a.duid.hex()
        b = HandClient6(sock, bytes.fromhex("02000000d002"))
        other, _ = b.lease()
        assert other is not None and other != declined
        assert {declined, other} == {first, last}
        c = HandClient6(sock, bytes.fromhex("02000000d003"))
        advertise = c.solicit()
        assert advertise is not None
        assert not leased_addresses(advertise)
        assert Status.NO_ADDRS_AVAIL in status_codes(advertise)
        assert daemon.stop() == 0
    require_clean_log(daemon.lines)


def test_a_lease_survives_a_restart(pair6: VethPair, tmp_path: Path) -> None:
    """dhclient's DUID and IAID get the same address after SIGTERM and after SIGKILL.

    Another client solicits first after each restart: a server that forgot its
    leases would advertise it the first free address, which was dhclient's.
    """
    require_tool("dhclient", "isc-dhcp-client")
    config = dhcp6_config(tmp_path, pair6)
    logs: list[str] = []
    with start_netboot(pair6, config) as daemon:
        client = Dhclient6(pair6.client, pair6.client_if, tmp_path / "first")
        (tmp_path / "first").mkdir()
        try:
            lease = client.lease()
        finally:
            client.stop()
        assert daemon.stop(signal.SIGTERM) == 0
    logs += daemon.lines
    for number, stop in enumerate((signal.SIGKILL, signal.SIGTERM)):
        with start_netboot(pair6, config) as daemon:
            with client_socket(pair6.client, pair6.client_if) as sock:
                other, _ = HandClient6(sock, bytes.fromhex(f"02000000e00{number}")).lease()
            assert other is not None and other != lease.address
            # A fresh lease file: dhclient -D LL makes the same DUID and IAID from the MAC.
            again = Dhclient6(pair6.client, pair6.client_if, tmp_path / f"again{number}")
            (tmp_path / f"again{number}").mkdir()
            try:
                renewed = again.lease()
            finally:
                again.stop()
            assert renewed.client_duid == lease.client_duid
            assert renewed.address == lease.address
            assert daemon.stop(stop) == (0 if stop == signal.SIGTERM else -signal.SIGKILL)
        logs += daemon.lines
    require_clean_log(logs)
    assert not replay_log(logs).duplicates


def test_sigkill_mid_storm_binds_no_address_twice(pair6: VethPair, tmp_path: Path) -> None:
    """perfdhcp -6 runs while the daemon is killed; restarted, a second storm of the same
    DUIDs runs: no address is ever bound to two clients, in the log or in the store."""
    require_tool("perfdhcp", "kea-admin")
    config = dhcp6_config(tmp_path, pair6)
    command = perfdhcp_command(6, pair6.client_if, 300, 1000, "-p", "6")
    logs: list[str] = []
    with start_netboot(pair6, config) as daemon:
        load = subprocess.Popen(
            ["ip", "netns", "exec", pair6.client, *command],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            # Kill once a few hundred leases are bound: mid-storm, commits in flight.
            deadline = time.monotonic() + 30
            while replay_log(daemon.lines).outcomes["bound"] < 200:
                assert time.monotonic() < deadline, "the storm bound too few leases"
                daemon.wait_for(r"netboot\.dhcp6", timeout=LOG_WAIT)
            assert daemon.stop(signal.SIGKILL) == -signal.SIGKILL
        finally:
            load.wait(timeout=STORM_TIMEOUT)
    logs += daemon.lines
    with start_netboot(pair6, config) as daemon:
        report = run_perfdhcp(
            pair6.client,
            perfdhcp_command(6, pair6.client_if, 300, 1000, "-n", "600"),
            V6_LAST,
            STORM_TIMEOUT,
        )
        assert report.count(V6_LAST, "received packets") > 0, report.output
        assert daemon.stop() == 0
    logs += daemon.lines
    require_clean_log(logs)
    replay = replay_log(logs)
    assert replay.outcomes["bound"] > 200
    assert not replay.duplicates, replay.duplicates[:5]
    held, verdict = database_bindings(tmp_path / "leases.sqlite3")
    assert verdict == "ok"
    assert held and not duplicate_problems(held)
