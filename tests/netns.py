"""Network namespaces the tests create and remove themselves (root only).

Every address used lives inside a namespace made here, so no test traffic can
reach any other host. With NETBOOT_REQUIRE_ALL=1 the skip for non-root users
turns into a failure (see conftest.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from netboot.lab.lab import stop_process


def require_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to create network namespaces")
    if subprocess.run(["ip", "-V"], capture_output=True, check=False).returncode != 0:
        pytest.skip("needs iproute2 (ip)")


def ip(*args: str, netns: str | None = None) -> str:
    command = ["ip", *args] if netns is None else ["ip", "-n", netns, *args]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout


@dataclass(frozen=True)
class Lab:
    """Two namespaces joined by a veth pair: `server` and `client`."""

    server: str
    client: str
    server_if: str
    client_if: str
    server_ip: str
    client_ip: str


@contextmanager
def veth_lab(subnet: str = "10.231.0", prefix: int = 24) -> Iterator[Lab]:
    """A server and a client namespace on `<subnet>.0/<prefix>`, removed afterwards.

    A prefix shorter than 24 makes room for DHCP pools larger than a /24 can hold.
    """
    require_root()
    tag = uuid.uuid4().hex[:6]
    lab = Lab(
        server=f"nbs-{tag}",
        client=f"nbc-{tag}",
        server_if="nb0",
        client_if="nb1",
        server_ip=f"{subnet}.1",
        client_ip=f"{subnet}.2",
    )
    try:
        for name in (lab.server, lab.client):
            ip("netns", "add", name)
            ip("link", "set", "lo", "up", netns=name)
        ip(
            "link",
            "add",
            lab.server_if,
            "netns",
            lab.server,
            "type",
            "veth",
            "peer",
            "name",
            lab.client_if,
            "netns",
            lab.client,
        )
        for name, ifname, address in (
            (lab.server, lab.server_if, lab.server_ip),
            (lab.client, lab.client_if, lab.client_ip),
        ):
            ip("addr", "add", f"{address}/{prefix}", "dev", ifname, netns=name)
            ip("link", "set", ifname, "up", netns=name)
        yield lab
    finally:
        for name in (lab.server, lab.client):
            subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)


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
def bridge_lab(count: int, subnet: str = "10.232.0") -> Iterator[Segment]:
    """`count` hosts on `<subnet>.0/24` (addresses .1, .2, ...), joined by a bridge.

    The bridge lives in a namespace of its own, so nothing touches the host's
    network; every namespace is removed afterwards.
    """
    require_root()
    tag = uuid.uuid4().hex[:6]
    switch = f"nbsw-{tag}"
    hosts = tuple(Host(f"nbh{n}-{tag}", "eth0", f"{subnet}.{n + 1}") for n in range(count))
    created = [switch]
    try:
        ip("netns", "add", switch)
        ip("link", "add", "br0", "type", "bridge", netns=switch)
        ip("link", "set", "br0", "up", netns=switch)
        for n, host in enumerate(hosts):
            ip("netns", "add", host.namespace)
            created.append(host.namespace)
            ip("link", "set", "lo", "up", netns=host.namespace)
            port = f"p{n}"
            ip(
                "link",
                "add",
                port,
                "netns",
                switch,
                "type",
                "veth",
                "peer",
                "name",
                host.interface,
                "netns",
                host.namespace,
            )
            ip("link", "set", port, "master", "br0", netns=switch)
            ip("link", "set", port, "up", netns=switch)
            ip("addr", "add", f"{host.address}/24", "dev", host.interface, netns=host.namespace)
            ip("link", "set", host.interface, "up", netns=host.namespace)
        yield Segment(switch, hosts)
    finally:
        for name in created:
            subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)


def run_in(
    namespace: str, *command: str, timeout: float = 120, text: bool = True
) -> subprocess.CompletedProcess[Any]:
    """Run a command inside a namespace; never raises for its exit status."""
    return subprocess.run(
        ["ip", "netns", "exec", namespace, *command],
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


# -- impaired links (loss; reordering and jitter where netem exists) ---------

LOSS_TABLE = "netboot_loss"
"""The nftables table the loss fallback adds; only it is ever removed again."""


def start_until_logged(
    namespace: str, command: Sequence[str], log_path: Path, ready: str, timeout: float
) -> subprocess.Popen[bytes]:
    """Start `command` in `namespace`, output to `log_path`, and wait until the log says `ready`.

    The process leads its own group, so `netboot.lab.lab.stop_process` ends it
    and whatever it forked. A process that exits, or is not ready within
    `timeout` seconds, is stopped and reported with its log.
    """
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            ["ip", "netns", "exec", namespace, *command],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + timeout
    while ready not in log_path.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            stop_process(process)
            log = log_path.read_text(errors="replace")
            raise RuntimeError(f"{command[0]} did not start:\n{log}")
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


def curl_ranges(
    url: str, ranges: Sequence[tuple[int, int]], outputs: Sequence[Path], max_time: int
) -> list[str]:
    """One curl reading `ranges` (first, last) of `url` into `outputs`, on one connection.

    As a lossy link needs: 5 retries of any error, and `--fail-early`, because
    curl's exit status is otherwise only the last transfer's, and a failed
    earlier range would pass unnoticed.
    """
    command = ["curl", "-sS", "--fail-early", "--retry", "5", "--retry-all-errors"]
    command += ["--max-time", str(max_time)]
    for number, ((first, last), out) in enumerate(zip(ranges, outputs, strict=True)):
        if number:
            command.append("--next")
        command += ["-r", f"{first}-{last}", "-o", str(out), url]
    return command


def netem_available(namespace: str, interface: str) -> bool:
    """Whether `tc ... netem` works here: tries a qdisc on `interface` and removes it.

    Some kernels (this project's CI VM among them) are built without sch_netem;
    `tc` then says "Specified qdisc kind is unknown".
    """
    added = run_in(
        namespace, "tc", "qdisc", "add", "dev", interface, "root", "netem", "loss", "1%", timeout=10
    )
    if added.returncode != 0:
        return False
    run_in(namespace, "tc", "qdisc", "del", "dev", interface, "root", timeout=10)
    return True


def nft_available() -> bool:
    """Whether the `nft` command (Debian: nftables) is installed."""
    try:
        done = subprocess.run(["nft", "--version"], capture_output=True, check=False)
    except FileNotFoundError:
        return False
    return done.returncode == 0


@dataclass(frozen=True)
class Impairment:
    """What `impair` did: the method, and what it could not do with that method."""

    method: str
    """"netem" (loss, reordering and jitter) or "nftables" (loss only)."""
    loss_percent: int
    note: str


def impair(
    lab: Lab,
    loss_percent: int,
    *,
    reorder_percent: int = 0,
    jitter_ms: int = 0,
    prefer_netem: bool = True,
) -> Impairment:
    """Lose `loss_percent` of the lab's packets in each direction, replacing any earlier loss.

    With netem (a qdisc on both veth ends) reordering and jitter come too. Without
    it, an nftables rule in each namespace's input hook drops a random share of
    the TCP and UDP packets arriving on the veth (`numgen random mod 100 < N`), so
    each direction loses N %; loopback and everything else is untouched. nftables
    cannot reorder or delay, and the note says so. Needs root and `nft` for the
    fallback; a test calls `require_impairment` first to skip cleanly.
    """
    clear_impairment(lab)
    ends = ((lab.server, lab.server_if), (lab.client, lab.client_if))
    if prefer_netem and netem_available(lab.server, lab.server_if):
        netem = ["netem", "loss", f"{loss_percent}%"]
        if jitter_ms or reorder_percent:
            # Reordering in netem needs a delay; jitter on top of it reorders as well.
            netem += ["delay", "10ms", f"{jitter_ms}ms"] if jitter_ms else ["delay", "10ms"]
        if reorder_percent:
            netem += ["reorder", f"{reorder_percent}%", "50%"]
        for namespace, interface in ends:
            ip_tc = ["tc", "qdisc", "replace", "dev", interface, "root", *netem]
            done = run_in(namespace, *ip_tc, timeout=10)
            if done.returncode != 0:
                raise AssertionError(f"{' '.join(ip_tc)} in {namespace}: {done.stderr}")
        return Impairment("netem", loss_percent, " ".join(netem[1:]))
    for namespace, interface in ends:
        for command in (
            f"add table inet {LOSS_TABLE}",
            f"add chain inet {LOSS_TABLE} input {{ type filter hook input priority 0 ; }}",
            f"add rule inet {LOSS_TABLE} input iifname {interface} meta l4proto {{ udp, tcp }} "
            f"numgen random mod 100 < {loss_percent} drop",
        ):
            done = run_in(namespace, "nft", command, timeout=10)
            if done.returncode != 0:
                raise AssertionError(f"nft {command} in {namespace}: {done.stderr}")
    skipped = []
    if reorder_percent:
        skipped.append(f"reordering {reorder_percent}%")
    if jitter_ms:
        skipped.append(f"jitter {jitter_ms} ms")
    note = "no sch_netem in this kernel: nftables input drop on both veth ends"
    if skipped:
        note += f"; not possible with nftables: {', '.join(skipped)}"
    return Impairment("nftables", loss_percent, note)


def clear_impairment(lab: Lab) -> None:
    """Remove what `impair` added (netem qdiscs and the loss table), if anything."""
    for namespace, interface in ((lab.server, lab.server_if), (lab.client, lab.client_if)):
        run_in(namespace, "tc", "qdisc", "del", "dev", interface, "root", timeout=10)
        if nft_available():
            run_in(namespace, "nft", "delete", "table", "inet", LOSS_TABLE, timeout=10)


def require_impairment(lab: Lab) -> None:
    """Skip (a failure in CI) unless netem or nftables can impair the lab's link."""
    if not netem_available(lab.server, lab.server_if) and not nft_available():
        pytest.skip("needs sch_netem in the kernel or nftables (Debian: nftables)")


# -- many addresses on one interface (simulated client crowds) ----------------


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
