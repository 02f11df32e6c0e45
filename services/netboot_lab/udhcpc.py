"""Many real DHCPv4 clients in one namespace: busybox udhcpc on macvlan interfaces.

Each client is a macvlan interface of its own (its own MAC) on the namespace's
link to the lab bridge, and one `busybox udhcpc` in the foreground on it. The
event script is ours: it puts the leased address on the interface as a /32
(so a server's unicast ACK to a renewing client finds it, while a hundred
clients on one namespace add no routes to fight over) and appends what udhcpc
told it (the event, the interface, the address, the server identifier and the
lease time) to a file in the work directory, from which what each client was
given is read back. The namespace answers ARP only on the interface that holds
the address asked for (`arp_ignore` 1), as separate machines would.

udhcpc renews at half the lease. Below 120 s of lease it skips the unicast
RENEWING step and rebinds at once by broadcast (busybox 1.35), which is what
a failover test wants: the REQUEST reaches every server on the link.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from netboot.macaddr import MacAddress
from netboot_lab.netns import LabError, ip, run_in
from netboot_lab.process import spawn, stop_process

BUSYBOX = "busybox"

_SCRIPT = """#!/bin/sh
case "$1" in
bound|renew) ip addr replace "$ip/32" dev "$interface" ;;
deconfig) ip addr flush dev "$interface" ;;
esac
echo "$1 $interface ${ip:--} ${serverid:--} ${lease:--}" >> "{events}"
"""


@dataclass(frozen=True)
class ClientEvent:
    """One line of the event script: what udhcpc did, and what it was given."""

    event: str
    """`bound`, `renew`, `deconfig`, `leasefail`, `nak`."""
    interface: str
    address: str | None
    server: str | None
    """The server identifier (option 54) of the server that answered."""
    lease: int | None


def parse_events(text: str) -> list[ClientEvent]:
    events = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) != 5:
            continue
        event, interface, address, server, lease = fields
        events.append(
            ClientEvent(
                event,
                interface,
                None if address == "-" else address,
                None if server == "-" else server,
                None if lease == "-" else int(lease),
            )
        )
    return events


def client_mac(number: int) -> MacAddress:
    """Locally administered, unicast, distinct for each of 65,536 clients."""
    return MacAddress(f"02:dc:00:00:{number >> 8 & 0xFF:02x}:{number & 0xFF:02x}")


@dataclass
class UdhcpcFleet:
    """Clients `c<first>`, `c<first + 1>`, ... on `parent` in `namespace`, each with its
    udhcpc; client n has the MAC `client_mac(n)`, so fleets with distinct `first`
    (and ranges that do not overlap) can run side by side."""

    namespace: str
    parent: str
    work: Path
    count: int
    first: int
    processes: dict[str, subprocess.Popen[bytes]]

    @property
    def events_file(self) -> Path:
        return self.work / "events"

    def events(self) -> list[ClientEvent]:
        if not self.events_file.exists():
            return []
        return parse_events(self.events_file.read_text())

    def latest(self) -> dict[str, ClientEvent]:
        """Each client's newest `bound` or `renew`: the lease it holds now."""
        held: dict[str, ClientEvent] = {}
        for event in self.events():
            if event.event in ("bound", "renew"):
                held[event.interface] = event
            elif event.event in ("deconfig", "leasefail", "nak"):
                held.pop(event.interface, None)
        return held

    def wait_bound(self, timeout: float) -> dict[str, ClientEvent]:
        """Until every client holds a lease; raises naming the ones that do not."""
        deadline = time.monotonic() + timeout
        while True:
            held = self.latest()
            if len(held) == self.count:
                return held
            if time.monotonic() > deadline:
                missing = sorted(set(self.interfaces()) - set(held))
                raise LabError(f"{len(missing)} client(s) without a lease: {missing[:10]}")
            time.sleep(0.2)

    def interfaces(self) -> list[str]:
        return [f"c{n}" for n in range(self.first, self.first + self.count)]


def _udhcpc(interface: str, script: Path) -> list[str]:
    # -f: foreground, so stopping the process stops the client; -t: DISCOVERs (every
    # 3 s) for as long as a test waits, rather than giving up after three.
    return [BUSYBOX, "udhcpc", "-f", "-i", interface, "-s", str(script), "-t", "1000"]


@contextlib.contextmanager
def udhcpc_fleet(
    namespace: str, parent: str, count: int, work: Path, first: int = 0
) -> Iterator[UdhcpcFleet]:
    """`count` macvlan clients on `parent`, each running udhcpc until the block ends."""
    work.mkdir(parents=True, exist_ok=True)
    script = work / "event.sh"
    script.write_text(_SCRIPT.replace("{events}", str(work / "events")))
    script.chmod(0o755)
    fleet = UdhcpcFleet(namespace, parent, work, count, first, {})
    for setting in ("net.ipv4.conf.all.arp_ignore=1", "net.ipv4.conf.all.arp_announce=2"):
        run_in(namespace, "sysctl", "-q", "-w", setting)
    try:
        for n, interface in enumerate(fleet.interfaces(), start=first):
            ip(
                "link", "add", interface, "link", parent, "address", client_mac(n),
                "type", "macvlan", "mode", "bridge", netns=namespace,
            )  # fmt: skip
            ip("link", "set", interface, "up", netns=namespace)
        for interface in fleet.interfaces():
            fleet.processes[interface] = spawn(
                _udhcpc(interface, script), work / f"{interface}.log", namespace
            )
        yield fleet
    finally:
        for process in fleet.processes.values():
            stop_process(process)
        for interface in fleet.interfaces():
            ip("link", "del", interface, netns=namespace, check=False)
