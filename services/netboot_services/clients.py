"""Which clients the daemon has seen lately, and how far each got in its boot.

A Mac's NetBoot is LIST, SELECT, the booter over TFTP, then its root image
over HTTP (or NFS, which we do not see); a PC's is the boot file over TFTP
and then HTTP. Each service reports the steps it sees, keyed by the client's
address; the status page and /status.json show the last step and when each
was reached, and /metrics counts boots per image. Bounded: the oldest client
is forgotten first.

The same steps of a client whose MAC is known also go to the machines
registry, when there is one (`netboot.admin.machines`, the admin console's
view: by MAC, each boot a journey, with the live progress of transfers and
what the step tells about the machine).
"""

from __future__ import annotations

import json
import subprocess
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netboot.admin.machines import NEW_BOOT, STAGES, Kind, MachineRegistry, Protocol

MAX_CLIENTS = 200
_AFTER_OFFERS = STAGES[2:]
"""The steps after the first offers: seen before a NEW_BOOT step, it starts a new boot."""


@dataclass
class ClientRecord:
    address: str
    mac: str | None = None
    image: str | None = None
    stages: dict[str, float] = field(default_factory=dict)
    last_seen: float = 0.0
    last_detail: str = ""
    firmware: str | None = None
    """The PC firmware family its DHCP said (`efi-arm64`, `bios`, ...), once known."""

    @property
    def progress(self) -> str:
        reached = [stage for stage in STAGES if stage in self.stages]
        return reached[-1] if reached else "-"

    def as_json(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "mac": self.mac,
            "image": self.image,
            "progress": self.progress,
            "stages": dict(self.stages),
            "last_seen": self.last_seen,
            "last": self.last_detail,
            "firmware": self.firmware,
        }


def arp_lookup(address: str, table: Path = Path("/proc/net/arp")) -> str | None:
    """The kernel's neighbour entry for an IPv4 address: how TFTP and HTTP learn a MAC."""
    try:
        lines = table.read_text().splitlines()[1:]
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if len(fields) >= 4 and fields[0] == address and fields[3] != "00:00:00:00:00:00":
            return fields[3].lower()
    return None


def ndp_lookup(address: str) -> str | None:
    """The kernel's neighbour entry for an IPv6 address (`fe80::1%nb0` looked up on nb0):
    how TFTP and HTTP learn an IPv6 client's MAC. The client's neighbour solicitation
    for our address made the entry before its first datagram reached us."""
    host, _, zone = address.partition("%")
    command = ["ip", "-j", "-6", "neigh", "show", "to", host, *(["dev", zone] if zone else [])]
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=2)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return neighbour_mac(done.stdout) if done.returncode == 0 else None


def neighbour_mac(neigh_json: str) -> str | None:
    """The link-layer address of the first usable entry of `ip -j neigh show` output."""
    try:
        entries = json.loads(neigh_json or "[]")
    except ValueError:
        return None
    for entry in entries if isinstance(entries, list) else []:
        mac = entry.get("lladdr") if isinstance(entry, dict) else None
        if isinstance(mac, str) and mac != "00:00:00:00:00:00":
            return mac.lower()
    return None


def neighbour_lookup(address: str) -> str | None:
    """The MAC behind an address of either family, from the kernel's tables."""
    return ndp_lookup(address) if ":" in address else arp_lookup(address)


class ClientTracker:
    def __init__(
        self,
        limit: int = MAX_CLIENTS,
        lookup: Callable[[str], str | None] = neighbour_lookup,
        registry: MachineRegistry | None = None,
        server_name: str | None = None,
    ) -> None:
        self.limit = limit
        self.lookup = lookup
        self.registry = registry
        """Where the steps of clients with a known MAC also go; None: nowhere."""
        self.server_name = server_name
        """This server's host name, as the registry says which server answered."""
        self._clients: OrderedDict[str, ClientRecord] = OrderedDict()
        self._macs: OrderedDict[str, str] = OrderedDict()
        """Address to MAC, as DHCP handed it out or the neighbour table said."""
        self._misses: dict[str, int] = {}
        """Addresses whose first lookup found no neighbour entry (tried once more)."""
        self.boots: Counter[str] = Counter()
        """SELECTs per image ID (hex): the per-image boot count."""

    def note(
        self,
        address: str,
        stage: str,
        now: float,
        detail: str = "",
        mac: str | None = None,
        image: str | None = None,
        *,
        step_bytes: int | None = None,
        kind: Kind | None = None,
        model: str | None = None,
        architecture: str | None = None,
        firmware: str | None = None,
    ) -> None:
        """A step of the client at `address` (its MAC, when it has none yet).

        The keyword arguments are for the registry only: the bytes a step
        moved, and what the step says about the machine.
        """
        if self.registry is not None and mac:
            self.registry.observe(
                mac,
                now,
                address=address if address != mac else None,
                stage=stage,
                detail=detail or stage,
                bytes=step_bytes,
                image=image,
                kind=kind,
                model=model,
                architecture=architecture,
                firmware=firmware,
                server=self.server_name,
            )
        record = self._clients.pop(address, None) or ClientRecord(address)
        if mac and mac != address:
            self._remember(address, mac)
            early = self._clients.pop(mac, None)  # steps seen before it had an address
            if early is not None:
                for step, when in early.stages.items():
                    record.stages.setdefault(step, when)
        if stage in NEW_BOOT and any(later in record.stages for later in _AFTER_OFFERS):
            record.stages.clear()  # a new boot of the same client
        record.stages.setdefault(stage, now)
        record.last_seen = now
        record.last_detail = detail or stage
        record.mac = mac or record.mac
        record.image = image or record.image
        if kind == "pc" and architecture:  # the family, also once iPXE asks (firmware "ipxe")
            record.firmware = architecture
        self._clients[address] = record
        while len(self._clients) > self.limit:
            self._clients.popitem(last=False)

    def progress(
        self,
        mac: str | None,
        now: float,
        protocol: Protocol,
        name: str,
        sent: int,
        size: int | None,
        done: bool,
    ) -> None:
        """How far a transfer to `mac` has got (for the registry; the status page shows steps)."""
        if self.registry is not None and mac:
            self.registry.transfer(
                mac, now, protocol=protocol, name=name, bytes=sent, size=size, done=done
            )

    def mac_of(self, address: str) -> str | None:
        """The MAC behind an address: learned from DHCP, else looked up.

        A lookup that finds nothing is remembered too (as ""), from the second
        miss on: a client behind a router never has a neighbour entry, and its
        every HTTP range request would otherwise read the kernel's table again;
        but a client leased by another server (proxy mode) may send its first
        datagram before the kernel has its entry, which our answer then makes.
        DHCP still overrides it.
        """
        mac = self._macs.get(address)
        if mac is None:
            mac = self.lookup(address) or ""
            if mac or self._misses.pop(address, 0) >= 1:
                self._remember(address, mac)
            else:
                self._misses[address] = 1
                while len(self._misses) > self.limit:
                    del self._misses[next(iter(self._misses))]
        return mac or None

    def _remember(self, address: str, mac: str) -> None:
        self._macs.pop(address, None)
        self._macs[address] = mac
        while len(self._macs) > self.limit:
            self._macs.popitem(last=False)

    def booted(self, image_id: str) -> None:
        self.boots[image_id] += 1

    def recent(self) -> list[dict[str, Any]]:
        """Most recently seen first."""
        return [record.as_json() for record in reversed(self._clients.values())]
