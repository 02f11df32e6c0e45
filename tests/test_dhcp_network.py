"""DHCP and PXE across real namespaces, against clients and servers others wrote.

Full mode hands out addresses to busybox's udhcpc, ISC dhclient and Kea's
perfdhcp, keeps them across restarts and crashes, honours reservations and
refuses to start without a pool on a served subnet. Proxy mode runs beside
dnsmasq as the site's DHCP server: each answers only its part of a PXE boot.
In full mode beside dnsmasq the daemon names the rival. An iPXE client gets
the URL of its boot script and, through it, a kernel from the catalog.

The PXE, iPXE and UEFI clients here are hand-built datagrams (netboot.dhcpwire.packet
builds them, tests.netns.udp_exchange sends them from the client namespace): no
real firmware runs, so the packets carry what docs/protocols/pxe.md §4 and
docs/protocols/pxe.md §8 say such firmware sends. Every address lives in namespaces made here.
"""

from __future__ import annotations

import re
import shutil
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from netboot.dhcp.pxe import decode_tlvs
from netboot.dhcpwire.options import BOOTREQUEST, MessageType, Option
from netboot.dhcpwire.packet import ZERO, DhcpPacket, build_packet, parse_packet
from netboot_lab.daemon import Daemon
from netboot_lab.factories import make_set
from netboot_lab.netns import Host, VethPair, ip, netboot_in, run_in, udp_exchange
from netboot_lab.peers import DNSMASQ_READY, site_dnsmasq
from tests.netns import bridge_lab, veth_lab

FULL_SUBNET = "10.243.0"
PROXY_SUBNET = "10.244.0"
RIVAL_SUBNET = "10.245.0"
PERF_SUBNET = "10.246.0"
IPXE_SUBNET = "10.247.0"

BROADCAST = ("255.255.255.255", 67)
BROADCAST_FLAG = 0x8000
"""Asks servers to broadcast their replies: our client has no address to unicast to yet."""
CLIENT_TIMEOUT = 30
"""Seconds any one client command may take before the test fails."""
OFFER_WAIT = 1.5
"""Seconds a hand-built client collects replies: every server here answers within ms."""
CLIENT_UUID = bytes(1) + bytes(range(16))
"""Option 97: type 0 and a 16-byte machine UUID, as PXE ROMs send it."""
BIOS = 0
UEFI_X64 = 7
PXE_PARAMETERS = bytes((1, 3, 43, 60, 66, 67, 128, 129, 130, 131, 132, 133, 134, 135))
IPXE_HTTP_FEATURE = bytes.fromhex("130101")
"""175.19 (HTTP), length 1, value 1: how iPXE says it can fetch http:// URLs."""
KERNEL = b"MZ stand-in for a Linux kernel " * 64


def require_tool(name: str, package: str) -> str:
    """The path of a client or server program, or a skip naming its Debian package."""
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if path is None:
        pytest.skip(f"needs {name} (Debian: {package})")
    return path


# -- hand-built clients --------------------------------------------------------------


def mac_bytes(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))


def client_packet(
    mac: str,
    message: MessageType,
    options: Sequence[tuple[int, bytes]],
    *,
    xid: int,
    ciaddr: str = ZERO,
    broadcast: bool = True,
) -> bytes:
    """A BOOTREQUEST from `mac`; the broadcast flag is set unless the client has an address."""
    packet = DhcpPacket(
        op=BOOTREQUEST,
        xid=xid,
        chaddr=mac_bytes(mac),
        flags=BROADCAST_FLAG if broadcast else 0,
        ciaddr=ciaddr,
        options=((Option.MESSAGE_TYPE, bytes((message,))), *options),
    )
    return build_packet(packet)


def pxe_options(arch: int, *, ipxe: bool = False) -> list[tuple[int, bytes]]:
    """What a PXE ROM of this architecture sends (60, 93, 94, 97, 55); `ipxe` adds 77 and 175."""
    undi = "002001" if arch == BIOS else "003016"
    options: list[tuple[int, bytes]] = [
        (Option.VENDOR_CLASS, f"PXEClient:Arch:{arch:05d}:UNDI:{undi}".encode()),
        (Option.CLIENT_ARCHITECTURE, arch.to_bytes(2, "big")),
        (Option.CLIENT_NDI, bytes((1, 2, 1))),
        (Option.CLIENT_UUID, CLIENT_UUID),
        (Option.PARAMETER_REQUEST_LIST, PXE_PARAMETERS + (bytes((175,)) if ipxe else b"")),
    ]
    if ipxe:
        options += [(Option.USER_CLASS, b"iPXE"), (175, IPXE_HTTP_FEATURE)]
    return options


def selecting(offer: Reply) -> list[tuple[int, bytes]]:
    """Options 50 and 54 of a REQUEST that takes `offer` (RFC 2131 SELECTING)."""
    return [
        (Option.REQUESTED_ADDRESS, IPv4Address(offer.packet.yiaddr).packed),
        (Option.SERVER_IDENTIFIER, IPv4Address(offer.server_id).packed),
    ]


@dataclass(frozen=True)
class Reply:
    """One datagram a server sent our client, dissected."""

    source: tuple[str, int]
    packet: DhcpPacket

    @property
    def message_type(self) -> int | None:
        return self.packet.message_type

    @property
    def server_id(self) -> str:
        raw = self.packet.option(Option.SERVER_IDENTIFIER)
        assert raw is not None and len(raw) == 4, f"reply without option 54: {self.packet}"
        return str(IPv4Address(raw))

    def option(self, code: int) -> bytes | None:
        return self.packet.option(code)

    def suboptions(self, code: int) -> dict[int, bytes]:
        """An encapsulated option (43, 175) as sub-option code to value."""
        raw = self.packet.option(code)
        return {} if raw is None else dict(decode_tlvs(raw))


def exchange(
    namespace: str,
    interface: str,
    datagram: bytes,
    destination: tuple[str, int] = BROADCAST,
    *,
    expect: int | None = None,
) -> list[Reply]:
    """Send one request from the client namespace; every reply to its xid, in order.

    Without `expect` it listens for OFFER_WAIT seconds, to see every server
    that answers (and that one which should not, does not); with it, it stops
    at that many replies, waiting at most CLIENT_TIMEOUT.
    """
    xid = parse_packet(datagram).xid
    wait = OFFER_WAIT if expect is None else CLIENT_TIMEOUT
    received = udp_exchange(namespace, interface, datagram, destination, wait=wait, expect=expect)
    replies = [Reply(source, parse_packet(data)) for source, data in received]
    return [reply for reply in replies if reply.packet.xid == xid]


def from_server(replies: list[Reply], server: str) -> list[Reply]:
    return [reply for reply in replies if reply.server_id == server]


# -- real clients ----------------------------------------------------------------------


def set_mac(namespace: str, interface: str, mac: str) -> None:
    """Give the client interface `mac` and no address: a machine just powered on."""
    ip("link", "set", "dev", interface, "address", mac, netns=namespace)
    ip("addr", "flush", "dev", interface, netns=namespace)


def udhcpc_lease(lab: VethPair, mac: str) -> str:
    """Run busybox udhcpc as a BIOS PXE client with `mac`; the address it leased."""
    require_tool("busybox", "busybox")
    set_mac(lab.client, lab.client_if, mac)
    done = run_in(
        lab.client,
        "busybox",
        "udhcpc",
        "-i",
        lab.client_if,
        "-n",  # exit if no lease
        "-q",  # exit once leased
        "-t",
        "3",
        "-T",
        "1",
        "-s",
        "/bin/true",  # never configure the interface
        "-V",
        "PXEClient:Arch:00000:UNDI:002001",
        "-x",
        "0x5d:0000",
        timeout=CLIENT_TIMEOUT,
    )
    leased = re.search(r"lease of ([\d.]+) obtained from ([\d.]+)", done.stdout + done.stderr)
    assert done.returncode == 0 and leased, done.stdout + done.stderr
    assert leased.group(2) == lab.server_ip
    return leased.group(1)


def in_range(address: str, first: str, last: str) -> bool:
    return IPv4Address(first) <= IPv4Address(address) <= IPv4Address(last)


# -- full mode on a veth pair ------------------------------------------------------------

POOL = (f"{FULL_SUBNET}.100", f"{FULL_SUBNET}.110")
RESERVED_MAC = "02:00:00:43:00:42"
RESERVED_ADDRESS = f"{FULL_SUBNET}.200"
"""Outside the pool: a reservation may lie anywhere on the subnet."""


def full_mode_config(
    work: Path, interface: str, server_ip: str, pool: tuple[str, str], extra: str = ""
) -> Path:
    """A full-mode configuration serving `interface` only; images and leases under `work`."""
    root = work / "images"
    if not root.exists():
        make_set(root, "Alpha")
    config = work / "netboot.toml"
    config.write_text(
        f'[server]\nroot = "{root}"\ninterfaces = ["{interface}"]\n'
        f'[dhcp]\nmode = "full"\npool = "{pool[0]}-{pool[1]}"\n'
        f'lease_database = "{work / "leases.sqlite3"}"\nrouter = "{server_ip}"\n{extra}'
        '[admin]\nlisten = ""\n'
    )
    return config


@dataclass
class FullLab:
    lab: VethPair
    daemon: Daemon
    work: Path


@pytest.fixture(scope="module")
def full(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FullLab]:
    work = tmp_path_factory.mktemp("dhcp-full")
    with veth_lab(FULL_SUBNET) as lab:
        reservation = f'reservations = ["{RESERVED_MAC}={RESERVED_ADDRESS}"]\n'
        config = full_mode_config(work, lab.server_if, lab.server_ip, POOL, reservation)
        with Daemon(["--config", str(config)], netns=lab.server) as daemon:
            daemon.wait_ready()
            yield FullLab(lab, daemon, work)
            assert daemon.stop() == 0
    assert "Traceback" not in "\n".join(daemon.lines)


def test_udhcpc_gets_an_address_from_the_pool(full: FullLab) -> None:
    mac = "02:00:00:43:01:01"
    address = udhcpc_lease(full.lab, mac)
    assert in_range(address, *POOL)
    server = full.lab.server_ip
    full.daemon.seen_or_wait(rf"{mac} DISCOVER via {server}: OFFER {re.escape(address)},")
    full.daemon.seen_or_wait(rf"{mac} REQUEST via {server}: ACK {re.escape(address)},")


def test_dhclient_gets_an_address_from_the_pool(full: FullLab, tmp_path: Path) -> None:
    dhclient = require_tool("dhclient", "isc-dhcp-client")
    mac = "02:00:00:43:01:02"
    lab = full.lab
    set_mac(lab.client, lab.client_if, mac)
    # Our own dhclient.conf, so the host's is never read; 20 s to get a lease.
    (tmp_path / "dhclient.conf").write_text("timeout 20;\nretry 60;\n")
    leases = tmp_path / "dhclient.leases"
    process = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            lab.client,
            dhclient,
            "-4",
            "-d",  # stay in the foreground: this process is the client, killed below
            "-1",
            "-v",
            "-cf",
            str(tmp_path / "dhclient.conf"),
            "-sf",
            "/bin/true",
            "-lf",
            str(leases),
            "-pf",
            str(tmp_path / "dhclient.pid"),
            lab.client_if,
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + CLIENT_TIMEOUT
        while "fixed-address" not in (leases.read_text() if leases.exists() else ""):
            assert process.poll() is None, f"dhclient exited {process.returncode}"
            assert time.monotonic() < deadline, "dhclient got no lease"
            time.sleep(0.05)
    finally:
        process.terminate()
        try:
            _, log = process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            _, log = process.communicate()
    text = leases.read_text()
    address = re.search(r"fixed-address (\S+);", text)
    assert address is not None, text
    assert in_range(address.group(1), *POOL)
    assert f"option dhcp-server-identifier {lab.server_ip};" in text
    assert f"bound to {address.group(1)}" in log
    leased = re.escape(address.group(1))
    full.daemon.seen_or_wait(rf"{mac} REQUEST via {lab.server_ip}: ACK {leased}(,|$)")


def test_a_reservation_gets_its_address_even_outside_the_pool(full: FullLab) -> None:
    assert udhcpc_lease(full.lab, RESERVED_MAC) == RESERVED_ADDRESS
    full.daemon.seen_or_wait(rf"{RESERVED_MAC} REQUEST via \S+: ACK {re.escape(RESERVED_ADDRESS)},")


def test_full_mode_without_a_pool_refuses_to_start(full: FullLab, tmp_path: Path) -> None:
    done = netboot_in(
        full.lab.server,
        "serve",
        "--allow-root",
        "--root",
        str(full.work / "images"),
        "--interface",
        full.lab.server_if,
        "--dhcp-mode",
        "full",
        "--lease-database",
        str(tmp_path / "leases.sqlite3"),
    )
    assert done.returncode == 2, done.stderr
    assert "dhcp.pool: full DHCP mode needs an explicit pool" in done.stderr
    assert not (tmp_path / "leases.sqlite3").exists()


def test_a_pool_on_no_served_subnet_refuses_to_start(full: FullLab, tmp_path: Path) -> None:
    elsewhere = "10.243.9.100-10.243.9.110"
    done = netboot_in(
        full.lab.server,
        "serve",
        "--allow-root",
        "--root",
        str(full.work / "images"),
        "--interface",
        full.lab.server_if,
        "--dhcp-mode",
        "full",
        "--dhcp-pool",
        elsewhere,
        "--lease-database",
        str(tmp_path / "leases.sqlite3"),
    )
    assert done.returncode == 2, done.stderr
    assert (
        f"dhcp.pool: {elsewhere} is on no served interface's subnet "
        f"(served: {full.lab.server_if} {full.lab.server_ip}/24)"
    ) in done.stderr
    assert not (tmp_path / "leases.sqlite3").exists()


def integrity(database: Path) -> str:
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as connection:
        return str(connection.execute("PRAGMA integrity_check").fetchone()[0])


def test_leases_survive_a_restart_and_a_crash(tmp_path: Path) -> None:
    """The same MAC gets the same address after SIGTERM and after SIGKILL.

    The second client asks first after each restart: a server that forgot its
    leases would give it the first address of the pool, which was the other's.
    """
    first_mac, second_mac = "02:00:00:43:02:01", "02:00:00:43:02:02"
    with veth_lab(FULL_SUBNET) as lab:
        config = full_mode_config(tmp_path, lab.server_if, lab.server_ip, POOL)
        with Daemon(["--config", str(config)], netns=lab.server) as daemon:
            daemon.wait_ready()
            first = udhcpc_lease(lab, first_mac)
            second = udhcpc_lease(lab, second_mac)
            assert first != second
            assert daemon.stop(signal.SIGTERM) == 0
        for stop in (signal.SIGKILL, signal.SIGTERM):
            with Daemon(["--config", str(config)], netns=lab.server) as daemon:
                daemon.wait_ready()
                assert udhcpc_lease(lab, second_mac) == second
                assert udhcpc_lease(lab, first_mac) == first
                assert daemon.stop(stop) == (0 if stop == signal.SIGTERM else -signal.SIGKILL)
            assert "Traceback" not in "\n".join(daemon.lines)
    assert integrity(tmp_path / "leases.sqlite3") == "ok"


# -- dnsmasq as the site's DHCP server -------------------------------------------------------

NO_NETWORK_CONFIGURATION = (
    Option.LEASE_TIME,
    Option.SUBNET_MASK,
    Option.ROUTER,
    Option.DNS_SERVERS,
)
"""What a proxy offer must never carry, lest a client take the proxy for an address server."""


@contextmanager
def site_dhcp_server(host: Host, first: str, last: str, work: Path) -> Iterator[Path]:
    """dnsmasq on `host` handing out `first`-`last` and nothing else; yields its log.

    The lab's site server (`netboot_lab.peers.site_dnsmasq`), its files in `work`.
    """
    require_tool("dnsmasq", "dnsmasq-base")
    log_path = work / f"dnsmasq-{host.namespace}.log"
    command = site_dnsmasq(host.interface, first, last, work)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            ["ip", "netns", "exec", host.namespace, *command],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + CLIENT_TIMEOUT
        while DNSMASQ_READY not in log_path.read_text(errors="replace"):
            assert process.poll() is None, f"dnsmasq exited:\n{log_path.read_text()}"
            assert time.monotonic() < deadline, f"dnsmasq did not start:\n{log_path.read_text()}"
            time.sleep(0.05)
        yield log_path
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# -- proxy mode beside dnsmasq ----------------------------------------------------------------

SITE_RANGE = (f"{PROXY_SUBNET}.50", f"{PROXY_SUBNET}.60")
BOOT_ITEM = bytes.fromhex("80000000")
"""43.71 of a 4011 REQUEST: boot server type 0x8000 (vendor), layer 0."""


@dataclass
class ProxyLab:
    site: Host
    """Runs dnsmasq: the site's DHCP server."""
    ours: Host
    """Runs `netboot serve` in proxy mode (the default)."""
    client: Host
    """The PXE client: no address until dnsmasq gives it one."""
    daemon: Daemon


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyLab]:
    work = tmp_path_factory.mktemp("dhcp-proxy")
    root = work / "images"
    make_set(root, "Alpha")
    with bridge_lab(3, PROXY_SUBNET) as segment:
        site, ours, client = segment.hosts
        ip("addr", "flush", "dev", client.interface, netns=client.namespace)
        with site_dhcp_server(site, *SITE_RANGE, work):
            # Debug level: the deliberate silence towards a REQUEST is a debug line.
            args = ["--root", str(root), "--interface", ours.interface, "--log-level", "debug"]
            with Daemon(args, netns=ours.namespace) as daemon:
                daemon.wait_ready()
                yield ProxyLab(site, ours, client, daemon)
                assert daemon.stop() == 0
    assert "Traceback" not in "\n".join(daemon.lines)


def discover(lab: ProxyLab, mac: str, arch: int, xid: int) -> tuple[Reply, Reply]:
    """A PXE DISCOVER on the segment: (dnsmasq's OFFER, our proxy OFFER), nothing else."""
    request = client_packet(mac, MessageType.DISCOVER, pxe_options(arch), xid=xid)
    offers = exchange(lab.client.namespace, lab.client.interface, request)
    assert sorted(offer.server_id for offer in offers) == [lab.site.address, lab.ours.address]
    (site_offer,) = from_server(offers, lab.site.address)
    (proxy_offer,) = from_server(offers, lab.ours.address)
    assert site_offer.message_type == proxy_offer.message_type == MessageType.OFFER
    return site_offer, proxy_offer


def assert_proxy_offer(offer: Reply, lab: ProxyLab, boot_file: bytes) -> None:
    """Boot information only, as EDK2 and iPXE take a proxy offer (docs/protocols/pxe.md §4.3)."""
    assert offer.source == (lab.ours.address, 67)
    assert offer.packet.yiaddr == ZERO
    assert offer.packet.siaddr == lab.ours.address
    assert offer.packet.file == boot_file
    assert offer.option(Option.BOOTFILE_NAME) == boot_file
    assert offer.option(Option.VENDOR_CLASS) == b"PXEClient"
    assert offer.option(Option.CLIENT_UUID) == CLIENT_UUID
    for code in NO_NETWORK_CONFIGURATION:
        assert offer.option(code) is None, f"proxy offer carries option {code}"


def test_bios_client_gets_its_address_from_dnsmasq_and_its_boot_file_from_us(
    proxy: ProxyLab,
) -> None:
    mac = "02:00:00:44:01:01"
    site_offer, proxy_offer = discover(proxy, mac, BIOS, xid=0x44010101)
    assert in_range(site_offer.packet.yiaddr, *SITE_RANGE)
    assert site_offer.packet.file == b""
    assert site_offer.option(Option.BOOTFILE_NAME) is None
    assert_proxy_offer(proxy_offer, proxy, b"undionly.kpxe")
    assert proxy_offer.suboptions(Option.VENDOR_SPECIFIC)[6] == b"\x08"  # boot now, no menu
    proxy.daemon.seen_or_wait(
        rf"{mac} DISCOVER via {proxy.ours.address}: proxy OFFER: bios loader undionly.kpxe"
    )

    options = [*selecting(site_offer), *pxe_options(BIOS)]
    request = client_packet(mac, MessageType.REQUEST, options, xid=0x44010102)
    acks = exchange(proxy.client.namespace, proxy.client.interface, request)
    assert [(ack.server_id, ack.message_type, ack.packet.yiaddr) for ack in acks] == [
        (proxy.site.address, MessageType.ACK, site_offer.packet.yiaddr)
    ]
    proxy.daemon.seen_or_wait(
        rf"{mac} REQUEST: message type 3 on port 67 is the address server's business"
    )


def test_uefi_client_gets_a_proxy_offer_that_sends_it_to_port_4011(proxy: ProxyLab) -> None:
    mac = "02:00:00:44:02:01"
    site_offer, proxy_offer = discover(proxy, mac, UEFI_X64, xid=0x44020101)
    assert in_range(site_offer.packet.yiaddr, *SITE_RANGE)
    assert_proxy_offer(proxy_offer, proxy, b"ipxe.efi")  # GRUB cannot follow a proxy
    assert proxy_offer.option(Option.VENDOR_SPECIFIC) is None  # variant B: ask 4011
    proxy.daemon.seen_or_wait(rf"{mac} DISCOVER via \S+: proxy OFFER: .*\(asks 4011 next\)")


def test_uefi_client_gets_its_boot_file_from_port_4011(proxy: ProxyLab) -> None:
    mac = "02:00:00:44:03:01"
    client = proxy.client
    site_offer, _ = discover(proxy, mac, UEFI_X64, xid=0x44030101)
    options = [*selecting(site_offer), *pxe_options(UEFI_X64)]
    request = client_packet(mac, MessageType.REQUEST, options, xid=0x44030102)
    (lease,) = exchange(client.namespace, client.interface, request, expect=1)
    address = lease.packet.yiaddr
    ip("addr", "add", f"{address}/24", "dev", client.interface, netns=client.namespace)
    try:
        item = (Option.VENDOR_SPECIFIC, bytes((71, len(BOOT_ITEM))) + BOOT_ITEM + b"\xff")
        request = client_packet(
            mac,
            MessageType.REQUEST,
            [*pxe_options(UEFI_X64), item],
            xid=0x44030103,
            ciaddr=address,
            broadcast=False,
        )
        replies = exchange(
            client.namespace, client.interface, request, (proxy.ours.address, 4011), expect=1
        )
    finally:
        ip("addr", "flush", "dev", client.interface, netns=client.namespace)
    assert len(replies) == 1, "no ACK from port 4011; log:\n" + "\n".join(proxy.daemon.lines)
    (ack,) = replies
    assert ack.source == (proxy.ours.address, 4011)
    assert ack.message_type == MessageType.ACK
    assert ack.packet.yiaddr == ZERO
    assert ack.packet.siaddr == proxy.ours.address
    assert ack.packet.sname == proxy.ours.address.encode()
    assert ack.packet.file == b"ipxe.efi"
    assert ack.option(Option.VENDOR_CLASS) == b"PXEClient"
    assert ack.server_id == proxy.ours.address
    assert ack.suboptions(Option.VENDOR_SPECIFIC)[71] == BOOT_ITEM


# -- full mode beside dnsmasq: the rival ------------------------------------------------------


def test_full_mode_names_a_rival_dhcp_server_on_its_segment(tmp_path: Path) -> None:
    with bridge_lab(3, RIVAL_SUBNET) as segment:
        site, ours, client = segment.hosts
        ip("addr", "flush", "dev", client.interface, netns=client.namespace)
        pool = (f"{RIVAL_SUBNET}.100", f"{RIVAL_SUBNET}.120")
        with site_dhcp_server(site, f"{RIVAL_SUBNET}.50", f"{RIVAL_SUBNET}.60", tmp_path):
            config = full_mode_config(tmp_path, ours.interface, ours.address, pool)
            with Daemon(["--config", str(config)], netns=ours.namespace) as daemon:
                daemon.wait_ready()
                plain = [(Option.PARAMETER_REQUEST_LIST, bytes((1, 3, 6)))]
                request = client_packet("02:00:00:45:01:01", MessageType.DISCOVER, plain, xid=45)
                offers = exchange(client.namespace, client.interface, request)
                assert sorted(offer.server_id for offer in offers) == [site.address, ours.address]
                line = daemon.wait_for("RIVAL DHCP SERVER", timeout=CLIENT_TIMEOUT)
                assert daemon.stop() == 0
    assert f"RIVAL DHCP SERVER {site.address} (from {site.address})" in line
    assert f"RIVAL DHCP SERVER {ours.address}" not in "\n".join(daemon.lines)


# -- iPXE: from DHCP to a kernel over HTTP -----------------------------------------------------


def assert_ipxe_reply(reply: Reply, kind: MessageType, url: str, lab: VethPair) -> None:
    """The script URL as iPXE reads it, and 175 telling it not to wait for a proxy."""
    assert reply.message_type == kind
    assert reply.packet.siaddr == lab.server_ip
    assert reply.packet.file == url.encode()
    assert reply.option(Option.BOOTFILE_NAME) == url.encode()
    assert reply.option(Option.VENDOR_CLASS) == b"PXEClient"
    # 175.1 priority 1 and 175.176 no-pxedhcp: take this offer, wait for no proxy.
    assert reply.suboptions(175) == {1: b"\x01", 0xB0: b"\x01"}


def test_ipxe_gets_its_script_url_and_the_script_boots_a_catalog_kernel(tmp_path: Path) -> None:
    curl = require_tool("curl", "curl")
    mac = "02:00:00:47:01:01"
    root = tmp_path / "images"
    make_set(root, "Alpha")  # for Macs only: no PCKernel
    make_set(root, "Rescue", Index=2, PCKernel="pc/vmlinuz", files={"pc/vmlinuz": KERNEL})
    with veth_lab(IPXE_SUBNET) as lab:
        pool = (f"{IPXE_SUBNET}.100", f"{IPXE_SUBNET}.120")
        config = full_mode_config(tmp_path, lab.server_if, lab.server_ip, pool)
        url = f"http://{lab.server_ip}/boot.ipxe?mac={mac}&arch=0"
        with Daemon(["--config", str(config)], netns=lab.server) as daemon:
            daemon.wait_ready()
            ip("addr", "flush", "dev", lab.client_if, netns=lab.client)
            ipxe = pxe_options(BIOS, ipxe=True)
            request = client_packet(mac, MessageType.DISCOVER, ipxe, xid=0x47010101)
            (offer,) = exchange(lab.client, lab.client_if, request, expect=1)
            assert_ipxe_reply(offer, MessageType.OFFER, url, lab)
            address = offer.packet.yiaddr
            assert in_range(address, *pool)

            request = client_packet(
                mac, MessageType.REQUEST, [*selecting(offer), *ipxe], xid=0x47010102
            )
            (ack,) = exchange(lab.client, lab.client_if, request, expect=1)
            assert_ipxe_reply(ack, MessageType.ACK, url, lab)
            assert ack.packet.yiaddr == address

            ip("addr", "add", f"{address}/24", "dev", lab.client_if, netns=lab.client)
            script = run_in(lab.client, curl, "-sS", "--fail", "--max-time", "10", url)
            assert script.returncode == 0, script.stderr
            assert script.stdout.startswith("#!ipxe\n")
            kernel_url = re.search(r"^kernel (\S+)", script.stdout, re.MULTILINE)
            assert kernel_url is not None, script.stdout
            assert kernel_url.group(1) == f"http://{lab.server_ip}/Rescue.nbi/pc/vmlinuz"
            kernel = tmp_path / "vmlinuz"
            fetched = run_in(
                lab.client,
                curl,
                *("-sS", "--fail", "--max-time", "10", "-o", str(kernel)),
                kernel_url.group(1),
            )
            assert fetched.returncode == 0, fetched.stderr
            assert kernel.read_bytes() == KERNEL
            daemon.seen_or_wait(rf"{mac} iPXE script for {address}: boot 'Rescue'")
            assert daemon.stop() == 0


# -- perfdhcp: many clients at once -------------------------------------------------------------

PERF_POOL = ("10.246.1.0", "10.246.2.255")
"""512 addresses of the lab's 10.246.0.0/16, more than there are clients."""
PERF_CLIENTS = 400
PERF_EXCHANGES = 600
"""More exchanges than clients: some clients come back while they hold a lease."""
PERF_RATE = 200
COUNTERS = re.compile(r"^(sent packets|received packets|drops|rejected leases): (\d+)$")


def perfdhcp_statistics(output: str) -> dict[str, dict[str, int]]:
    """perfdhcp's counters per exchange: {"DISCOVER-OFFER": {"sent packets": 600, ...}}."""
    sections: dict[str, dict[str, int]] = {}
    current: dict[str, int] | None = None
    for line in output.splitlines():
        header = re.match(r"\*\*\*Statistics for: (\S+)\*\*\*", line)
        if header:
            current = sections.setdefault(header.group(1), {})
            continue
        counter = COUNTERS.match(line.strip())
        if counter and current is not None:
            current[counter.group(1)] = int(counter.group(2))
    return sections


def test_perfdhcp_leases_hundreds_of_clients_without_a_duplicate(tmp_path: Path) -> None:
    perfdhcp = require_tool("perfdhcp", "kea-admin")
    with veth_lab(PERF_SUBNET, prefix=16) as lab:
        config = full_mode_config(tmp_path, lab.server_if, lab.server_ip, PERF_POOL)
        with Daemon(["--config", str(config)], netns=lab.server) as daemon:
            daemon.wait_ready()
            # perfdhcp plays a relay (giaddr = its address, replies to its port 67):
            # -R clients, -n DISCOVERs at -r per second, then -W µs for late replies;
            # -p caps the run should the exit condition never come.
            done = run_in(
                lab.client,
                perfdhcp,
                "-4",
                "-l",
                lab.client_if,
                "-r",
                str(PERF_RATE),
                "-R",
                str(PERF_CLIENTS),
                "-n",
                str(PERF_EXCHANGES),
                "-p",
                "20",
                "-W",
                "1000000",
                timeout=60,
            )
            assert daemon.stop() == 0
    report = done.stdout + done.stderr
    assert done.returncode in (0, 3), report  # 3: some packets dropped
    statistics = perfdhcp_statistics(done.stdout)
    offers, acks = statistics["DISCOVER-OFFER"], statistics["REQUEST-ACK"]
    assert offers["sent packets"] == PERF_EXCHANGES, report
    # A REQUEST for every OFFER; nearly every exchange completes (none is lost
    # on a veth pair, but a busy machine may answer one after perfdhcp's 1 s).
    assert acks["sent packets"] == offers["received packets"], report
    assert acks["received packets"] >= 0.95 * PERF_EXCHANGES, report
    assert offers["rejected leases"] == acks["rejected leases"] == 0, report
    assert "Traceback" not in "\n".join(daemon.lines)

    database = tmp_path / "leases.sqlite3"
    assert integrity(database) == "ok"
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as connection:
        shared_addresses = connection.execute(
            "SELECT address FROM lease GROUP BY address HAVING count(*) > 1"
        ).fetchall()
        clients_on_two_addresses = connection.execute(
            "SELECT client_id FROM lease WHERE state IN ('offered', 'bound') AND expires > ?"
            " GROUP BY client_id HAVING count(*) > 1",
            (time.time(),),
        ).fetchall()
        bound = connection.execute(
            "SELECT address, client_id FROM lease WHERE state = 'bound'"
        ).fetchall()
    assert shared_addresses == []
    assert clients_on_two_addresses == []
    assert 0 < len(bound) <= PERF_CLIENTS
    assert len({client for _, client in bound}) == len(bound)
    assert all(in_range(str(IPv4Address(address)), *PERF_POOL) for address, _ in bound)
