"""IPv6 between namespaces: the DHCPv6 tests', fuzzer's and benchmark's link.

An IPv6 link needs more than an address: a DHCPv6 client talks from its
link-local address, which the kernel holds "tentative" until Duplicate Address
Detection is done (about a second on a veth), and ISC `dhclient -6` refuses to
bind to a tentative address. So the namespaces made here switch DAD off before
their links exist (`accept_dad = 0` for `all` and `default`), and `add_ipv6`
gives an address with `nodad`; `wait_link_local` still waits for the kernel to
list the link-local address untentative, so no caller races it.

The lab's IPv6 net is issue #20's ULA (`fd4e:4254:0:1::/64`):
the server holds `::1`, the DHCPv6 pool is `::1000`-`::1fff`. Nothing here
routes beyond the pair.
"""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from ipaddress import IPv6Address, IPv6Interface, IPv6Network

from netboot.dhcp6wire.options import ALL_DHCP_RELAY_AGENTS_AND_SERVERS, CLIENT_PORT, SERVER_PORT
from netboot_lab.netns import LabError, VethPair, add_namespace, entered, ip, run_in

LAB_NETWORK = IPv6Network("fd4e:4254:0:1::/64")
SERVER_ADDRESS = IPv6Interface("fd4e:4254:0:1::1/64")
POOL_FIRST = IPv6Address("fd4e:4254:0:1::1000")
POOL_LAST = IPv6Address("fd4e:4254:0:1::1fff")
DNS_SERVER = IPv6Address("fd4e:4254:0:1::53")
"""Handed out as option 23; nothing answers there (no client here resolves names)."""
DOMAIN_SEARCH = ("lab.example",)
LINK_LOCAL_TIMEOUT = 10.0


def pool_range(first: IPv6Address = POOL_FIRST, last: IPv6Address = POOL_LAST) -> str:
    """The `[dhcp6] pool` value ("FIRST-LAST") of a range."""
    return f"{first}-{last}"


def without_dad(namespace: str) -> None:
    """No Duplicate Address Detection for links made in `namespace` from now on."""
    for scope in ("all", "default"):
        done = run_in(namespace, "sysctl", "-qw", f"net.ipv6.conf.{scope}.accept_dad=0")
        if done.returncode != 0:
            raise LabError(f"sysctl accept_dad in {namespace}: {done.stderr.strip()}")


def add_ipv6(namespace: str, interface: str, address: IPv6Interface) -> None:
    """`address` (with its prefix) on `interface`, usable at once (`nodad`)."""
    ip("-6", "addr", "add", str(address), "dev", interface, "nodad", netns=namespace)


def link_local(namespace: str, interface: str) -> IPv6Address | None:
    """The interface's link-local address once it is past DAD, else None."""
    listed = json.loads(ip("-j", "-6", "addr", "show", "dev", interface, netns=namespace) or "[]")
    for link in listed:
        for info in link.get("addr_info", ()):
            if info.get("scope") == "link" and not info.get("tentative", False):
                return IPv6Address(info["local"])
    return None


def wait_link_local(
    namespace: str, interface: str, timeout: float = LINK_LOCAL_TIMEOUT
) -> IPv6Address:
    """Wait until `interface` has a usable link-local address, and return it."""
    deadline = time.monotonic() + timeout
    while (address := link_local(namespace, interface)) is None:
        if time.monotonic() > deadline:
            raise LabError(f"{interface} in {namespace}: no usable link-local address")
        time.sleep(0.05)
    return address


def enable_ipv6(pair: VethPair, server_address: IPv6Interface = SERVER_ADDRESS) -> IPv6Address:
    """Give an existing pair's server end `server_address`; the client end's link-local.

    For a pair made with IPv4 (the fuzz lab) that also needs IPv6; both ends'
    link-local addresses are waited for, so DAD may run here (a second or so).
    """
    add_ipv6(pair.server, pair.server_if, server_address)
    wait_link_local(pair.server, pair.server_if)
    return wait_link_local(pair.client, pair.client_if)


@contextmanager
def ipv6_pair(server_address: IPv6Interface = SERVER_ADDRESS) -> Iterator[VethPair]:
    """A server and a client namespace joined by a veth pair, IPv6 only.

    The server end holds `server_address`; the client end has only its
    link-local address, as a DHCPv6 client starts. `server_ip` is the server's
    global address, `client_ip` the client's link-local one. Removed afterwards.
    """
    tag = uuid.uuid4().hex[:6]
    pair = VethPair(
        server=f"nbs6-{tag}",
        client=f"nbc6-{tag}",
        server_if="nb0",
        client_if="nb1",
        server_ip=str(server_address.ip),
        client_ip="",
    )
    try:
        for name in (pair.server, pair.client):
            add_namespace(name)
            without_dad(name)
        ip("link", "add", pair.server_if, "netns", pair.server, "type", "veth",
           "peer", "name", pair.client_if, "netns", pair.client)  # fmt: skip
        for name, ifname in ((pair.server, pair.server_if), (pair.client, pair.client_if)):
            ip("link", "set", ifname, "up", netns=name)
        client_ll = enable_ipv6(pair, server_address)
        yield VethPair(**{**pair.__dict__, "client_ip": str(client_ll)})
    finally:
        for name in (pair.server, pair.client):
            ip("netns", "del", name, check=False)


@dataclass(frozen=True)
class ClientSocket:
    """A UDP socket inside a namespace, and the index there of the interface it is bound to."""

    sock: socket.socket
    interface_index: int

    def send(
        self,
        datagram: bytes,
        destination: IPv6Address = ALL_DHCP_RELAY_AGENTS_AND_SERVERS,
        port: int = SERVER_PORT,
    ) -> None:
        self.sock.sendto(datagram, (str(destination), port, 0, self.interface_index))

    def receive(self, deadline: float) -> tuple[IPv6Address, bytes] | None:
        """The next datagram (source, bytes) before `deadline` (time.monotonic), or None."""
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        self.sock.settimeout(left)
        try:
            data, source = self.sock.recvfrom(65536)
        except TimeoutError:
            return None
        return IPv6Address(source[0].split("%")[0]), data

    def exchange(
        self,
        datagram: bytes,
        destination: IPv6Address = ALL_DHCP_RELAY_AGENTS_AND_SERVERS,
        port: int = SERVER_PORT,
        wait: float = 2.0,
        expect: int = 1,
    ) -> list[tuple[IPv6Address, bytes]]:
        """Send `datagram`; the replies (source, bytes) within `wait` s, at most `expect`."""
        self.send(datagram, destination, port)
        replies: list[tuple[IPv6Address, bytes]] = []
        deadline = time.monotonic() + wait
        while len(replies) < expect and (reply := self.receive(deadline)) is not None:
            replies.append(reply)
        return replies


@contextmanager
def client_socket(
    namespace: str, interface: str, port: int = CLIENT_PORT
) -> Iterator[ClientSocket]:
    """A UDP socket in `namespace` bound to `port` on `interface`, usable from this process.

    A hand-built DHCPv6 client (a Decline, a relay) needs the server's answer
    to build its next message, so it cannot be one command run in the
    namespace: the socket is made inside it (`entered`) and stays there.
    """
    with entered(namespace):
        sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        index = socket.if_nametoindex(interface)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, interface.encode())
        sock.bind(("::", port, 0, index))
        yield ClientSocket(sock, index)
    finally:
        sock.close()
