"""The BSDP handler on the shared port-67 listener: Macs' INFORM[LIST] and [SELECT].

It claims every packet whose option 60 starts with `AAPLBSDPC`, asks
`netboot.bsdp.policy` what to answer, and logs the outcome with the client's
MAC and address. The policy keeps the bindings; this adapter only supplies
the current catalog, the clock and the address the request arrived on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from twisted.logger import Logger

from netboot.bsdp.policy import BsdpPolicy, Ignore
from netboot.bsdp.vendor_class import is_bsdp
from netboot.dhcp.options import BOOTREQUEST, Option
from netboot.dhcp.options import MessageType as DhcpType
from netboot.dhcp.packet import ZERO, DhcpPacket
from netboot.nbi.catalog import Catalog
from netboot_services.clients import ClientTracker
from netboot_services.counters import Counters
from netboot_services.dhcp import Arrival, HandlerResult

log = Logger(namespace="netboot.bsdp")


@dataclass
class BsdpCounters(Counters):
    requests: int = 0
    list_replies: int = 0
    select_replies: int = 0
    failed_replies: int = 0
    ignored: int = 0


class BsdpHandler:
    name = "bsdp"

    def __init__(
        self, policy: BsdpPolicy, catalog: Callable[[], Catalog], clock: Callable[[], float]
    ) -> None:
        self.policy = policy
        self.catalog = catalog
        self.clock = clock
        self.counters = BsdpCounters()
        self.nfs_available: Callable[[], bool] = lambda: True
        self.clients = ClientTracker()

    def handle(self, packet: DhcpPacket, arrival: Arrival) -> HandlerResult | None:
        if not is_bsdp(packet.option(Option.VENDOR_CLASS)):
            return None
        if packet.op != BOOTREQUEST:
            return HandlerResult()  # another server's reply seen on the wire
        if packet.message_type != DhcpType.INFORM:
            # A Mac's DISCOVER/REQUEST is for an address: full DHCP's business (the
            # PXE handler leases to it), or the site's server's in proxy mode.
            return None
        self.counters.requests += 1
        client = f"{packet.mac} ({packet.ciaddr})"
        if arrival.local_address == ZERO:
            self.counters.ignored += 1
            return HandlerResult(malformed="arrived without IP_PKTINFO; cannot tell our address")
        decision = self.policy.decide(
            packet, self.catalog(), arrival.local_address, self.clock(), self.nfs_available()
        )
        if isinstance(decision, Ignore):
            self.counters.ignored += 1
            if decision.malformed:
                return HandlerResult(malformed=decision.reason)
            log.debug("ignored BSDP from {client}: {reason}", client=client, reason=decision.reason)
            return HandlerResult()
        now = self.clock()
        address = packet.ciaddr if packet.ciaddr != ZERO else arrival.source[0]
        if decision.summary.startswith("ACK[LIST]"):
            self.counters.list_replies += 1
            self.clients.note(address, "bsdp list", now, decision.summary, str(packet.mac))
        elif decision.summary.startswith("ACK[SELECT]"):
            self.counters.select_replies += 1
            selected = decision.summary.split()[2]  # "ACK[SELECT] of 0x... 'name': ..."
            self.clients.note(
                address, "bsdp select", now, decision.summary, str(packet.mac), selected
            )
            self.clients.booted(selected)
        else:
            self.counters.failed_replies += 1
        if decision.shadow_directory is not None and self.policy.settings.shadow_root:
            shadow = Path(self.policy.settings.shadow_root) / decision.shadow_directory
            try:
                shadow.mkdir(mode=0o700, parents=True, exist_ok=True)
            except OSError as error:
                log.warn(
                    "cannot create shadow area {path}: {error}", path=str(shadow), error=str(error)
                )
        log.info(
            "{client} via {server}: {summary}",
            client=client,
            mac=str(packet.mac),
            server=arrival.local_address,
            summary=decision.summary,
            destination=f"{decision.destination[0]}:{decision.destination[1]}",
        )
        return HandlerResult(replies=tuple((p, decision.destination) for p in decision.packets))
