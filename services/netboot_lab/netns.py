"""Network namespaces: the lab's, the tests' and the benchmarks' one way to make them.

Every address the lab, a test or a benchmark uses lives inside a namespace
made here, so no traffic reaches another host and the host's interfaces are
never touched. `ip()` is the one wrapper around iproute2; the topologies are
a veth pair between two namespaces (`VethPair`), several hosts on one bridge
(`Segment`), and, for QEMU guests, a bridge with tap devices in one namespace.
Creating them needs root; the callers check (tests skip, the lab refuses).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from netboot.errors import NetbootError
from netboot_lab.process import in_namespace, read_text, spawn, stop_process


class LabError(NetbootError):
    """The lab cannot be set up or used (names taken, tools missing, a peer down)."""


def ip(*args: str, netns: str | None = None, check: bool = True) -> str:
    """`ip [-n NETNS] ARGS...`: its output; LabError naming the command when it fails."""
    command = ["ip", *args] if netns is None else ["ip", "-n", netns, *args]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise LabError(f"{' '.join(command)}: {done.stderr.strip()}")
    return done.stdout


def namespaces() -> set[str]:
    """The names of the network namespaces that exist now."""
    listed = ip("netns", "list", check=False)
    return {line.split()[0] for line in listed.splitlines() if line.strip()}


def add_namespace(name: str) -> None:
    """A new namespace with its loopback up; LabError when the name is taken."""
    ip("netns", "add", name)
    ip("link", "set", "lo", "up", netns=name)


def delete_namespace(name: str) -> None:
    """Kill what still runs in `name`, then delete it (its links go with it); never raises."""
    for pid in ip("netns", "pids", name, check=False).split():
        with suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)
    ip("netns", "del", name, check=False)


def add_bridge(namespace: str, bridge: str, address: str | None = None) -> None:
    """A bridge in `namespace`, up, holding `address` ("10.0.0.1/24") when given."""
    ip("link", "add", bridge, "type", "bridge", netns=namespace)
    if address is not None:
        ip("addr", "add", address, "dev", bridge, netns=namespace)
    ip("link", "set", bridge, "up", netns=namespace)


def add_tap(namespace: str, tap: str, bridge: str) -> None:
    """A tap device for a QEMU guest, a port of `bridge`, up."""
    ip("tuntap", "add", tap, "mode", "tap", netns=namespace)
    ip("link", "set", tap, "master", bridge, netns=namespace)
    ip("link", "set", tap, "up", netns=namespace)


def add_port(
    namespace: str,
    bridge: str,
    port: str,
    peer_namespace: str,
    peer: str,
    peer_address: str,
    peer_mac: str | None = None,
) -> None:
    """A veth pair from `bridge` in `namespace` to `peer` in `peer_namespace`, which holds
    `peer_address` ("10.0.0.5/24") and, when given, the MAC address `peer_mac`."""
    ip("link", "add", port, "netns", namespace, "type", "veth",
       "peer", "name", peer, "netns", peer_namespace)  # fmt: skip
    ip("link", "set", port, "master", bridge, netns=namespace)
    ip("link", "set", port, "up", netns=namespace)
    if peer_mac is not None:
        ip("link", "set", peer, "address", peer_mac, netns=peer_namespace)
    ip("addr", "add", peer_address, "dev", peer, netns=peer_namespace)
    ip("link", "set", peer, "up", netns=peer_namespace)


@dataclass(frozen=True)
class VethPair:
    """Two namespaces joined by a veth pair: `server` and `client`."""

    server: str
    client: str
    server_if: str
    client_if: str
    server_ip: str
    client_ip: str


@contextmanager
def veth_pair(subnet: str = "10.231.0", prefix: int = 24) -> Iterator[VethPair]:
    """A server and a client namespace on `<subnet>.0/<prefix>`, removed afterwards.

    A prefix shorter than 24 makes room for DHCP pools larger than a /24 can hold.
    """
    tag = uuid.uuid4().hex[:6]
    pair = VethPair(
        server=f"nbs-{tag}",
        client=f"nbc-{tag}",
        server_if="nb0",
        client_if="nb1",
        server_ip=f"{subnet}.1",
        client_ip=f"{subnet}.2",
    )
    try:
        for name in (pair.server, pair.client):
            add_namespace(name)
        ip("link", "add", pair.server_if, "netns", pair.server, "type", "veth",
           "peer", "name", pair.client_if, "netns", pair.client)  # fmt: skip
        for name, ifname, address in (
            (pair.server, pair.server_if, pair.server_ip),
            (pair.client, pair.client_if, pair.client_ip),
        ):
            ip("addr", "add", f"{address}/{prefix}", "dev", ifname, netns=name)
            ip("link", "set", ifname, "up", netns=name)
        yield pair
    finally:
        for name in (pair.server, pair.client):
            ip("netns", "del", name, check=False)


@dataclass(frozen=True)
class Host:
    namespace: str
    interface: str
    address: str


@dataclass(frozen=True)
class Segment:
    """Hosts in their own namespaces, all plugged into one bridge (one LAN)."""

    switch: str
    hosts: tuple[Host, ...]


@contextmanager
def bridge_segment(count: int, subnet: str = "10.232.0", prefix: int = 24) -> Iterator[Segment]:
    """`count` hosts on `<subnet>.0/<prefix>` (addresses .1, .2, ...), joined by a bridge.

    A prefix shorter than 24 makes room for DHCP pools larger than a /24 can hold.

    The bridge lives in a namespace of its own, so nothing touches the host's
    network; every namespace is removed afterwards.
    """
    tag = uuid.uuid4().hex[:6]
    switch = f"nbsw-{tag}"
    hosts = tuple(Host(f"nbh{n}-{tag}", "eth0", f"{subnet}.{n + 1}") for n in range(count))
    created = [switch]
    try:
        ip("netns", "add", switch)
        add_bridge(switch, "br0")
        for n, host in enumerate(hosts):
            add_namespace(host.namespace)
            created.append(host.namespace)
            address = f"{host.address}/{prefix}"
            add_port(switch, "br0", f"p{n}", host.namespace, host.interface, address)
        yield Segment(switch, hosts)
    finally:
        for name in created:
            ip("netns", "del", name, check=False)


def run_in(
    namespace: str, *command: str, timeout: float = 120, text: bool = True
) -> subprocess.CompletedProcess[Any]:
    """Run a command inside a namespace; never raises for its exit status."""
    return subprocess.run(
        in_namespace(namespace, command),
        capture_output=True,
        text=text,
        timeout=timeout,
        check=False,
    )


def netboot_in(namespace: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Our own command line (`python -m netboot ...`) inside a namespace."""
    return run_in(namespace, sys.executable, "-m", "netboot", *args)


def bsdp_probe(namespace: str, interface: str, *extra: str) -> tuple[int, dict[str, Any]]:
    """`netboot bsdp probe --json` from a client namespace: exit status and answer."""
    done = netboot_in(
        namespace, "bsdp", "probe", "--interface", interface, "--timeout", "1", "--json", *extra
    )
    return done.returncode, json.loads(done.stdout)


_UDP_EXCHANGE = """
import json, socket, sys, time
interface, datagram, host, port, bind_host, bind_port, wait, expect = json.loads(sys.argv[1])
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
sock.setsockopt(socket.SOL_SOCKET, 25, interface.encode())  # SO_BINDTODEVICE
sock.bind((bind_host, bind_port))
sock.sendto(bytes.fromhex(datagram), (host, port))
received = []
deadline = time.monotonic() + wait
while (left := deadline - time.monotonic()) > 0 and len(received) != expect:
    sock.settimeout(left)
    try:
        data, source = sock.recvfrom(65536)
    except TimeoutError:
        break
    received.append({"source": list(source), "datagram": data.hex()})
print(json.dumps(received))
"""


def udp_exchange(
    namespace: str,
    interface: str,
    datagram: bytes,
    destination: tuple[str, int],
    *,
    bind: tuple[str, int] = ("0.0.0.0", 68),
    wait: float = 2.0,
    expect: int | None = None,
) -> list[tuple[tuple[str, int], bytes]]:
    """Send one datagram from a namespace and return every datagram received for `wait` s.

    The socket is bound to `bind` on `interface` only (SO_BINDTODEVICE), with
    SO_BROADCAST, so it behaves like a DHCP client before it has an address:
    it broadcasts to port 67 and hears the broadcast replies on port 68. The
    replies come back as (source address, bytes), in the order they arrived.
    With `expect`, it returns as soon as that many have arrived: `wait` then
    only bounds how long a missing answer can hold the test up.
    """
    arguments = json.dumps([interface, datagram.hex(), *destination, *bind, wait, expect])
    done = run_in(namespace, sys.executable, "-c", _UDP_EXCHANGE, arguments, timeout=wait + 30)
    if done.returncode != 0:
        raise AssertionError(f"UDP exchange in {namespace} failed: {done.stderr}")
    return [
        ((item["source"][0], item["source"][1]), bytes.fromhex(item["datagram"]))
        for item in json.loads(done.stdout)
    ]


def start_until_logged(
    namespace: str, command: Sequence[str], log_path: Path, ready: str, timeout: float
) -> subprocess.Popen[bytes]:
    """Start `command` in `namespace`, output to `log_path`, and wait until the log says `ready`.

    The process leads its own group, so `stop_process` ends it and whatever it
    forked. A process that exits, or is not ready within `timeout` seconds, is
    stopped and reported with its log.
    """
    process = spawn(command, log_path, namespace)
    deadline = time.monotonic() + timeout
    while ready not in read_text(log_path):
        if process.poll() is not None or time.monotonic() > deadline:
            stop_process(process)
            raise LabError(f"{command[0]} did not start:\n{read_text(log_path)}")
        time.sleep(0.05)
    return process


def real_pid(pid: int) -> int:
    """The process `ip netns exec` ran: itself when ip exec'd in place, else its child."""
    for _ in range(3):
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        if comm != "ip" or not children:
            return pid
        pid = int(children[0])
    return pid


def add_addresses(namespace: str, interface: str, addresses: Iterable[str], prefix: int) -> None:
    """Give `interface` in `namespace` all of `addresses` (`/prefix`) with one `ip -batch`.

    A crowd of simulated clients shares one namespace, yet each needs an address
    of its own to be told apart by the server (a Mac's ciaddr, a PXE client's
    leased address); one `ip` process per address would take seconds for hundreds.
    """
    commands = "".join(f"addr add {address}/{prefix} dev {interface}\n" for address in addresses)
    subprocess.run(
        ["ip", "-n", namespace, "-batch", "-"],
        input=commands,
        capture_output=True,
        text=True,
        check=True,
    )


CLONE_NEWNET = 0x40000000


def _setns(descriptor: int) -> None:
    import ctypes
    import ctypes.util

    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    if libc.setns(descriptor, CLONE_NEWNET) != 0:
        error = ctypes.get_errno()
        raise LabError(f"setns: {os.strerror(error)}")


@contextmanager
def entered(namespace: str) -> Iterator[None]:
    """Run this thread inside `namespace` for a while: for clients that must be started
    there and also talked to from Python (a browser and its driver, which Selenium reaches
    on a loopback port that exists only in that namespace). Sockets made meanwhile stay
    in it; processes started meanwhile start in it."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{namespace}", os.O_RDONLY)
    try:
        _setns(target)
        try:
            yield
        finally:
            _setns(own)
    finally:
        os.close(target)
        os.close(own)
