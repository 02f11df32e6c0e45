"""How far a lab guest got, read from the daemon's JSON log: the boot's stages.

The daemon logs every step with the client's MAC or address (the journey of
one boot) and, on ports 67 and 547, the outcome's kind and the leased address as
fields, so the lab needs no packet or sentence parsing to time a boot:
the first DHCP ACK (or DHCPv6 Reply that binds) for the guest's MAC, its first
TFTP transfer (the boot
file; by HTTP under UEFI HTTP boot), on the signed chain shim and GRUB (when
each transfer began; under HTTP boot on arm64 the boot file is GRUB) and the GRUB
configuration (by TFTP, or by HTTP from that GRUB), or else the iPXE script, and
the kernel and initrd (by HTTP from iPXE, by TFTP from GRUB), each when its
transfer ended. A daemon line saying the boot cannot finish (a GRUB gone to
another server for its configuration) becomes the `failure`.
Times are seconds since the guest was powered on; a stage is present only
once reached. Pure: log records and the power-on time in, stages out.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from ipaddress import ip_address
from typing import Any
from urllib.parse import quote

from netboot.dhcp.boot import PXE_FILES_PATH
from netboot.firmware import EFI_ARCH_NAMES, grub_name, http_grub_name, shim_name
from netboot.grub.arrival import GRUB_SILENT
from netboot.hostport import host_of

STAGES = (
    "dhcp",
    "boot_file",
    "shim",
    "grub",
    "ipxe_script",
    "grub_config",
    "kernel",
    "initrd",
    "marker",
)
CHAIN_STAGES = {
    **{shim_name(family): "shim" for family in EFI_ARCH_NAMES},
    **{grub_name(family): "grub" for family in EFI_ARCH_NAMES},
}
"""The signed chain's TFTP names to their stages: the firmware's boot file is shim, and
shim then fetches GRUB."""
HTTP_GRUBS = frozenset("/" + http_grub_name(family) for family in EFI_ARCH_NAMES)
"""The HTTP paths of the HTTP GRUBs (`netboot build-http-grub`): a UEFI HTTP-boot guest's
boot file is GRUB itself, which then reads its configuration by HTTP."""
LEASED = "ack"
"""The `outcome` of a full-mode DHCP ACK: its `address` is the guest's from now on."""
BOUND6 = "bound"
"""The `outcome` of a DHCPv6 Reply that binds addresses (`netboot.dhcp6`): its `address` is
one of the guest's. OVMF binds two, with the same DUID and different IAIDs: its IP stack's
own (released again) and then its PXE's or HTTP boot's, which the transfers come from
(docs/protocols/dhcpv6.md §15)."""
BOOT_INFO6 = "boot_info"
"""The `outcome` of a proxy-mode DHCPv6 answer: boot options, no address."""
BOOT_INFO = frozenset({"proxy_offer", "boot_server_ack"})
"""The `outcome`s that hand a guest its boot file in proxy mode.

Values of the daemon's documented `outcome` log field (`OutcomeKind`), read
here as any log collector reads them.
"""


@dataclass
class Progress:
    """A guest's stages and bytes, filled in as log records arrive."""

    mac: str
    powered_on: float
    kernel_path: str | None = None
    initrd_paths: tuple[str, ...] = ()
    address: str | None = None
    """The guest's address (the latest the daemon leased it)."""
    addresses: set[str] = field(default_factory=set)
    """Every address the daemon leased the guest: transfers from any of them are its own."""
    stages: dict[str, float] = field(default_factory=dict)
    tftp_bytes: int = 0
    http_bytes: int = 0
    failure: str | None = None
    """Why the daemon's log says this boot cannot finish, once it does."""
    _partial: str = ""

    def reached(self, stage: str, when: float) -> None:
        self.stages.setdefault(stage, round(max(when - self.powered_on, 0.0), 3))

    def feed(self, record: dict[str, Any]) -> None:
        """One JSON log record of the daemon."""
        when = _epoch(record.get("time"))
        if when is None or when < self.powered_on:
            return
        system = record.get("system")
        if system == "netboot.pxe" and record.get("mac") == self.mac:
            outcome = record.get("outcome")
            if outcome == LEASED and isinstance(record.get("address"), str):
                self._leased(record["address"])
                self.reached("dhcp", when)
            elif outcome in BOOT_INFO:
                self.reached("dhcp", when)
            return
        if system == "netboot.dhcp6" and record.get("mac") == self.mac:
            outcome = record.get("outcome")
            if outcome == BOUND6 and isinstance(record.get("address"), str):
                self._leased(record["address"])
                self.reached("dhcp", when)
            elif outcome == BOOT_INFO6:
                self.reached("dhcp", when)
            return
        client = client_address(str(record.get("client", "")))
        if record.get("mac") == self.mac and self.address is None and client is not None:
            # Proxy mode: the site's server leased the address; our first transfer to the
            # guest names both, and the records after it only the address.
            self._leased(client)
        mine = record.get("mac") == self.mac or (client is not None and client in self.addresses)
        if not mine:
            return
        if system == "netboot.tftp":
            message = str(record.get("message", ""))
            if record.get("outcome") == GRUB_SILENT:
                self.failure = (
                    "GRUB came from us but asked another server for its configuration: the "
                    "DHCP ACK's next-server is not ours (read from the daemon's log)"
                )
            if message.startswith("sending"):
                self.reached("boot_file", when)
                chain_stage = CHAIN_STAGES.get(str(record.get("file", "")).lstrip("/"))
                if chain_stage is not None:
                    self.reached(chain_stage, when)
            elif "GRUB configuration" in message:
                self.reached("grub_config", when)
            if isinstance(record.get("bytes"), int) and "seconds" in record:
                self.tftp_bytes += record["bytes"]
                self._fetched("/" + quote(str(record.get("file", "")).lstrip("/")), when)
        elif system == "netboot.http":
            message = str(record.get("message", ""))
            if "iPXE script" in message:
                self.reached("ipxe_script", when)
                return
            if "GRUB configuration" in message:  # our HTTP GRUB read it
                self.reached("grub_config", when)
                return
            path = str(record.get("path", ""))
            http_grub = path in HTTP_GRUBS
            if (http_grub or path.startswith(PXE_FILES_PATH)) and record.get("status") == 200:
                self.reached("boot_file", when)  # UEFI HTTP boot fetched it
                if http_grub:
                    self.reached("grub", when)
            if record.get("status") in (200, 206) and isinstance(record.get("bytes"), int):
                self.http_bytes += record["bytes"]
                self._fetched(path, when)

    def __post_init__(self) -> None:
        if self.address is not None:  # known from the start (a test, a proxy-mode guest)
            self._leased(self.address)

    def _leased(self, address: str) -> None:
        canonical = client_address(address)  # as `client` fields are compared: canonical
        self.address = canonical or address
        self.addresses.add(self.address)

    def _fetched(self, path: str, when: float) -> None:
        """A transfer of `path` (URL-quoted, from `/`) ended: the kernel's or an initrd's?"""
        if self.kernel_path and path.startswith(self.kernel_path):
            self.reached("kernel", when)
        if any(path.startswith(initrd) for initrd in self.initrd_paths):
            self.reached("initrd", when)

    def feed_text(self, text: str) -> None:
        """More of the log as it grows; a line cut short waits for the rest of it."""
        self._partial += text
        complete, _, self._partial = self._partial.rpartition("\n")
        if complete:
            self.feed_lines(complete.split("\n"))

    def feed_lines(self, lines: Iterable[str]) -> None:
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                self.feed(record)

    def ordered(self) -> dict[str, float]:
        return {stage: self.stages[stage] for stage in STAGES if stage in self.stages}


def client_address(client: str) -> str | None:
    """The address in a log record's `client`: `10.0.0.5:1234`, `[fd00::5]:1234` or an
    address alone; a link-local scope (`fe80::1%nblab0`) is dropped, as leases carry none.
    None when `client` names no address (empty, or not a client at all)."""
    try:
        return str(ip_address(host_of(client).partition("%")[0]))
    except ValueError:
        return None


def _epoch(text: object) -> float | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


CONSOLE_FAILURES = (
    (b"error: bad shim signature", "Secure Boot refused a file GRUB loaded: 'bad shim signature'"),
    (
        b"prohibited by secure boot policy",
        "Secure Boot refused a GRUB module: 'prohibited by secure boot policy'",
    ),
)
"""Console texts after which a boot cannot reach the marker, and what each means. GRUB
prints them when shim's verification fails (docs/protocols/pxe.md §8.2)."""


def console_failure(console: bytes) -> str | None:
    """Why the guest's console says the boot has failed, or None while it has not."""
    for text, meaning in CONSOLE_FAILURES:
        if text in console:
            return f"{meaning} (read from the serial console)"
    return None
