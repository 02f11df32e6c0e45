"""The TFTP service: UDP port 69, one ReadSession per transfer.

Everything about the protocol is decided in `netboot.tftp`; this module moves
datagrams and time. A read request gets a fresh ephemeral port (RFC 1350's
transfer ID), bound to the address the request port listens on; the transfer
ports all sit behind one reactor reader (`udp_mux`, which says why, and does
the busy polling of lock-step transfers on a quiet server); in single-port
mode every transfer stays on the request port and packets are told apart by
the client's address and port. Each transfer keeps one timer, moved rather
than recreated as its deadline moves.

A datagram that does not decode is counted and logged at most once per client
per minute, then dropped. A packet from a stranger on a transfer port gets
ERROR 5 and the transfer carries on.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from twisted.application.service import Service
from twisted.internet.base import DelayedCall
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from netboot.config import TftpConfig
from netboot.errors import MalformedPacket
from netboot.grub.arrival import GRUB_SILENT, GrubArrivals
from netboot.hostport import join_host_port
from netboot.nbi.catalog import Catalog
from netboot.pc.choice import ChoiceSettings
from netboot.tftp.options import TransferLimits, blksize_for_mtu, negotiate
from netboot.tftp.paths import Refusal, Rendered, Resolved, TftpNamespace
from netboot.tftp.session import Action, Finished, Outcome, ReadSession, Send, State
from netboot.tftp.source import (
    BlockSource,
    BytesSource,
    NetasciiSource,
    OctetSource,
    netascii_bytes,
)
from netboot.tftp.wire import (
    Error,
    ErrorCode,
    Packet,
    ReadRequest,
    WriteRequest,
    build,
    parse,
)
from netboot_services.clients import ClientTracker
from netboot_services.counters import Counters
from netboot_services.listeners import is_ipv6, listen_label, listen_udp
from netboot_services.ratelimit import OncePerInterval
from netboot_services.udp_mux import DatagramMux, Receive

log = Logger(namespace="netboot.tftp")

Address = tuple[str, int]
BUSY_POLL_MAX_TRANSFERS = 2
"""Poll only while the server is this quiet: polling one transfer delays the others."""
BUSY_POLL_GIVE_UP = 8
"""Consecutive misses after which a transfer (a slow client) is no longer polled."""
READ_BUFFER = 64 * 1024
PROGRESS_BLOCKS = 64
"""A transfer's progress goes to the machines registry every this many blocks acknowledged."""


@dataclass
class TftpCounters(Counters):
    """Every TFTP counter in one place; the metrics endpoint exports these."""

    requests: int = 0
    requests_refused: int = 0
    transfers_started: int = 0
    transfers_completed: int = 0
    transfers_aborted: int = 0
    """Ended by the client after the OACK (EDK2's size probe): not a failure."""
    transfers_failed: int = 0
    bytes_sent: int = 0
    retransmissions: int = 0
    malformed_packets: int = 0
    stray_packets: int = 0
    send_errors: int = 0
    """Datagrams the kernel refused (buffer full, ICMP unreachable seen)."""
    busy_poll_hits: int = 0
    busy_poll_misses: int = 0
    grub_silent: int = 0
    """Clients that took GRUB from us and then asked us for nothing under /grub/: their
    GRUB reads its configuration from another host (netboot.grub.arrival)."""


class TransferPort(Protocol):
    """A transfer's own port (its RFC 1350 transfer ID)."""

    number: int

    def send(self, datagram: bytes, address: Address) -> object:
        """Raises OSError when the kernel refuses the datagram."""
        ...

    def close(self) -> None: ...


class TransferPorts(Protocol):
    """Where transfer ports come from: `DatagramMux` in the daemon, a fake in tests."""

    def open(self, interface: str, receive: Receive) -> TransferPort: ...

    def close(self) -> None: ...


def _unattached(datagram: bytes, address: Address) -> None:
    raise OSError("the transfer has no port yet")


class _Transfer:
    """One client's read: its session, file, peer, port and timer."""

    def __init__(
        self,
        service: TftpService,
        session: ReadSession,
        peer: Address,
        name: str,
    ) -> None:
        self.service = service
        self.session = session
        self.peer = peer
        self.name = name
        self._send: Callable[[bytes, Address], object] = _unattached
        self.close_port: Callable[[], object] = lambda: None
        self.timer: DelayedCall | None = None
        self._timer_at = 0.0
        """When `timer` fires: kept here, as asking the DelayedCall costs a call per block."""
        self.started = service.reactor.seconds()
        self.poll_misses = 0
        self.mac: str | None = None
        self._report_at = float("inf")
        """Acknowledged bytes at which progress is reported next; never unless watched."""

    def watch_progress(self, mac: str) -> None:
        """Report this transfer's progress to the client tracker (for the machines registry)."""
        self.mac = mac
        self._report_at = 0
        self.report_progress()

    def attach(self, send: Callable[[bytes, Address], object], close: Callable[[], object]) -> None:
        """Give the transfer the port it runs on: its own, or port 69 in single-port mode."""
        self._send = send
        self.close_port = close

    def send(self, datagram: bytes, address: Address) -> None:
        """A datagram the kernel cannot take now is dropped: the timer resends it."""
        try:
            self._send(datagram, address)
        except OSError:
            self.service.counters.send_errors += 1

    def run(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Send):
                self.send(action.datagram, self.peer)
            else:
                self.service.finished(self, action)
                return
        self._arm_timer()

    def receive(self, packet: Packet) -> None:
        session = self.session
        self.run(session.feed(packet, self.service.reactor.seconds()))
        if session.bytes_acknowledged >= self._report_at and session.state is not State.DONE:
            self.report_progress()

    def report_progress(self) -> None:
        session = self.session
        acknowledged = session.bytes_acknowledged
        self._report_at = acknowledged + PROGRESS_BLOCKS * session.negotiated.blksize
        self.service.clients.progress(
            self.mac,
            self.service.reactor.seconds(),
            "tftp",
            self.name,
            acknowledged,
            session.source.size,
            session.state is State.DONE,
        )

    def datagram(self, datagram: bytes, address: Address, polled: bool) -> None:
        """What arrives on the transfer's own port: the client's ACKs, or a stranger."""
        if address != self.peer:
            self.service.stray(datagram, address, self.send)
            return
        if polled:
            self.poll_misses = 0
            self.service.counters.busy_poll_hits += 1
        packet = self.service.decode(datagram, address)
        if packet is not None:
            self.receive(packet)

    @property
    def pollable(self) -> bool:
        """Worth busy-polling for: lock-step, still running, and not a slow client."""
        return (
            self.session.negotiated.windowsize == 1
            and self.session.state is not State.DONE
            and self.poll_misses < BUSY_POLL_GIVE_UP
        )

    def _arm_timer(self) -> None:
        """Make sure the timer fires no later than the session's deadline.

        Deadlines move later with every ACK; moving the timer each time would
        cost a heap operation per packet. Instead a timer that fires early
        finds the deadline still ahead and re-arms for the rest.
        """
        deadline = self.session.deadline()
        if deadline is None:
            return
        if self.timer is not None:  # pending: it is set to None when it fires
            if self._timer_at <= deadline:
                return
            self.timer.cancel()
        self._timer_at = deadline
        delay = max(0.0, deadline - self.service.reactor.seconds())
        self.timer = self.service.reactor.callLater(delay, self._on_timer)

    def _on_timer(self) -> None:
        self.timer = None
        self.run(self.session.on_timer(self.service.reactor.seconds()))

    def close(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.session.source.close()
        self.close_port()


class _RequestPort(DatagramProtocol):
    """Port 69 on one address: read requests, and in single-port mode everything."""

    noisy = False

    def __init__(self, service: TftpService, local_address: str) -> None:
        self.service = service
        self.local_address = local_address
        self.transfers: dict[Address, _Transfer] = {}

    def datagramReceived(self, datagram: bytes, address: Address) -> None:  # noqa: N802
        packet = self.service.decode(datagram, address)
        if packet is None:
            return
        current = self.transfers.get(address)
        if isinstance(packet, ReadRequest):
            self.service.read_request(packet, address, self)
        elif isinstance(packet, WriteRequest):
            self.service.refuse(
                address,
                self.write,
                Refusal(ErrorCode.ACCESS_VIOLATION, "this server is read-only"),
                packet.filename,
            )
        elif current is not None:
            current.receive(packet)
        elif not isinstance(packet, Error):
            self.service.stray(datagram, address, self.write)

    def write(self, datagram: bytes, address: Address) -> None:
        transport: Any = self.transport  # zope's interface stubs confuse mypy here
        transport.write(datagram, address)


class TftpService(Service):
    """Serves the booter directories of the catalog and the extra directory."""

    def __init__(
        self,
        config: TftpConfig,
        catalog: Callable[[], Catalog],
        reactor: Any,
        bind_addresses: list[str],
        spin_clock: Callable[[], float] = time.perf_counter,
        transfer_ports: TransferPorts | None = None,
    ) -> None:
        """`spin_clock` times busy polls only; protocol time comes from `reactor`."""
        self.config = config
        self.catalog = catalog
        self.reactor = reactor
        self.bind_addresses = bind_addresses
        self.limits = TransferLimits(
            max_blksize=blksize_for_mtu(config.mtu), max_windowsize=config.max_windowsize
        )
        self.counters = TftpCounters()
        self.clients = ClientTracker()
        self.transfers: set[_Transfer] = set()
        self.request_ports: list[Any] = []
        self.chain_files: Mapping[str, Path] = {}
        """The signed chains' shim and GRUB by TFTP name (`Runtime.chain_files`)."""
        self.grub: ChoiceSettings | None = None
        """GRUB's configuration is served with this image choice; None: not served."""
        self._namespace: tuple[tuple[object, ...], TftpNamespace] | None = None
        self._malformed_log = OncePerInterval()
        self.grub_arrivals = GrubArrivals()
        self._grub_check: DelayedCall | None = None
        """The next look for silent GRUBs; scheduled only while a client is waited for."""
        self.transfer_ports: TransferPorts = transfer_ports or DatagramMux(
            reactor, self._spin_budget, self._spin_missed, spin_clock
        )

    # -- life cycle -----------------------------------------------------------

    def startService(self) -> None:  # noqa: N802
        super().startService()
        for address in self.bind_addresses:
            # Port 0 (tests): the first listener's pick is every other one's port too.
            number = self.config.port or (self.ports[0] if self.ports else 0)
            try:
                port = listen_udp(self.reactor, number, _RequestPort(self, address), address)
            except OSError as error:
                if not is_ipv6(address):
                    raise
                log.warn(
                    "TFTP not listening on {address} port {port}: {reason}; IPv6 clients "
                    "cannot reach it there",
                    address=address,
                    port=number,
                    reason=error.strerror or str(error),
                )
                continue
            self.request_ports.append(port)
            log.info(
                "TFTP listening on {address}:{port} ({mode})",
                address=listen_label(address),
                port=port.getHost().port,
                mode="single port" if self.config.single_port else "a port per transfer",
            )

    def stopService(self) -> None:  # noqa: N802
        super().stopService()
        if self._grub_check is not None and self._grub_check.active():
            self._grub_check.cancel()
        for transfer in list(self.transfers):
            transfer.close()
        self.transfers.clear()
        self.transfer_ports.close()
        for port in self.request_ports:
            port.stopListening()
        self.request_ports.clear()

    @property
    def ports(self) -> list[int]:
        """The request ports actually bound (useful with port 0 in tests)."""
        return [port.getHost().port for port in self.request_ports]

    def namespace(self) -> TftpNamespace:
        """The request names of this catalog, programs directory and signed chain (all swap
        on reload); built again only when one of them changed."""
        catalog, programs = self.catalog(), self.config.extra_dir
        key = (catalog, programs, self.chain_files, self.grub)
        cached = self._namespace
        if cached is None or any(a is not b for a, b in zip(cached[0], key, strict=True)):
            namespace = TftpNamespace(catalog, programs, self.chain_files, self.grub)
            cached = self._namespace = (key, namespace)
        return cached[1]

    # -- busy polling (see udp_mux) --------------------------------------------

    def _spin_budget(self) -> float:
        """Poll only while the server is quiet: polling delays every other transfer."""
        budget = self.config.busy_poll_us / 1e6
        if budget <= 0 or len(self.transfers) > BUSY_POLL_MAX_TRANSFERS:
            return 0.0
        return budget if any(transfer.pollable for transfer in self.transfers) else 0.0

    def _spin_missed(self) -> None:
        self.counters.busy_poll_misses += 1
        for transfer in self.transfers:
            if transfer.pollable:
                transfer.poll_misses += 1

    # -- packets ----------------------------------------------------------------

    def decode(self, datagram: bytes, address: Address) -> Packet | None:
        try:
            return parse(datagram)
        except MalformedPacket as error:
            self.counters.malformed_packets += 1
            host = address[0]
            if self._malformed_log.allow(host, self.reactor.seconds()):
                log.warn(
                    "malformed TFTP packet from {client}: {reason} (further ones from "
                    "this client are counted, not logged, for a minute)",
                    client=join_host_port(*address),
                    reason=str(error),
                )
            return None

    def stray(self, datagram: bytes, address: Address, write: Callable[..., None]) -> None:
        """A packet for a transfer that does not exist or is not the sender's."""
        self.counters.stray_packets += 1
        if datagram[:2] != b"\x00\x05":  # never answer an error with an error
            write(build(Error(ErrorCode.UNKNOWN_TRANSFER_ID, "unknown transfer ID")), address)

    def refuse(
        self, address: Address, write: Callable[..., None], refusal: Refusal, name: str
    ) -> None:
        self.counters.requests_refused += 1
        write(build(Error(refusal.code, refusal.reason)), address)
        log.warn(
            "refused {file!r} to {client}: {reason}",
            file=name,
            client=join_host_port(*address),
            reason=refusal.reason,
            code=int(refusal.code),
        )

    def _watch_grubs(self) -> None:
        """Look again when the next waiting client's patience runs out (one timer at most)."""
        due = self.grub_arrivals.next_due()
        if due is None or (self._grub_check is not None and self._grub_check.active()):
            return
        delay = max(due - self.reactor.seconds(), 0.0)
        self._grub_check = self.reactor.callLater(delay, self.report_silent_grubs)

    def report_silent_grubs(self) -> None:
        """Say why a PC that took GRUB from us never came back (docs/protocols/pxe.md §8.3)."""
        self._grub_check = None
        for silent in self.grub_arrivals.silent(self.reactor.seconds()):
            self.counters.grub_silent += 1
            mac = self.clients.mac_of(silent.client)
            log.warn(
                "{client}{who} took GRUB from us and asked us for nothing since: its GRUB reads "
                "its configuration from the next-server (siaddr) of the DHCP ACK it got, which "
                "is not this server. Beside a site's DHCP server, have that server name this "
                "one as next-server (docs/operations.md, Secure Boot)",
                client=silent.client,
                who=f" [{mac}]" if mac else "",
                mac=mac,
                outcome=GRUB_SILENT,
            )
        self._watch_grubs()

    def read_request(self, request: ReadRequest, address: Address, port: _RequestPort) -> None:
        self.counters.requests += 1
        now = self.reactor.seconds()
        self.grub_arrivals.requested(address[0], request.filename, now)
        self._watch_grubs()
        for transfer in self.transfers:
            if transfer.peer == address and transfer.name == request.filename:
                # The client repeated its request: our first answer was lost.
                transfer.run(transfer.session.retransmit_initial(now))
                return
        if len(self.transfers) >= self.config.max_transfers:
            self.refuse(
                address, port.write, Refusal(ErrorCode.NOT_DEFINED, "server busy"), request.filename
            )
            return
        resolved = self.namespace().resolve(request.filename)
        if isinstance(resolved, Refusal):
            self.refuse(address, port.write, resolved, request.filename)
            return
        if isinstance(resolved, Rendered):
            source = self._rendered(resolved, request.mode, address, now)
        else:
            try:
                source = self._open(resolved.path, request.mode)
            except OSError as error:
                refusal = Refusal(ErrorCode.ACCESS_VIOLATION, f"cannot read: {error.strerror}")
                self.refuse(address, port.write, refusal, request.filename)
                return
        try:
            limits = self.limits.for_ipv6() if is_ipv6(address[0]) else self.limits
            negotiated = negotiate(request.options, source.size, limits)
            session = ReadSession(
                source,
                negotiated,
                self.config.retry_schedule,
                min_timeout=self.config.min_retry_timeout,
                adaptive=self.config.adaptive_timeout,
            )
        except Exception:
            source.close()  # never leak the file; the datagram boundary logs the rest
            raise
        transfer = _Transfer(self, session, address, request.filename)
        if self.config.single_port:
            port.transfers[address] = transfer
            transfer.attach(port.write, lambda: port.transfers.pop(address, None))
        else:
            try:
                own = self.transfer_ports.open(port.local_address, transfer.datagram)
            except OSError as error:
                source.close()
                refusal = Refusal(ErrorCode.NOT_DEFINED, f"no transfer port: {error.strerror}")
                self.refuse(address, port.write, refusal, request.filename)
                return
            transfer.attach(own.send, own.close)
        self.transfers.add(transfer)
        self.counters.transfers_started += 1
        mac = self.clients.mac_of(address[0])
        self.clients.note(address[0], "tftp", now, f"TFTP {request.filename}", mac)
        if mac and self.clients.registry is not None:
            transfer.watch_progress(mac)
        log.info(
            "sending {file!r} to {client}{who} ({mode}, blksize {blksize}, windowsize "
            "{windowsize}{options})",
            file=request.filename,
            client=join_host_port(*address),
            who=f" [{mac}]" if mac else "",
            mac=mac,
            mode=request.mode,
            blksize=negotiated.blksize,
            windowsize=negotiated.windowsize,
            options="" if negotiated.acknowledged else ", no options",
            path=str(resolved.path) if isinstance(resolved, Resolved) else None,
        )
        transfer.run(session.start(now))

    def _rendered(self, rendered: Rendered, mode: str, address: Address, now: float) -> BlockSource:
        """A configuration made for this request; one made for a client is logged with its
        MAC, as the iPXE script is, so the lab can time it."""
        if rendered.mac is not None:
            self.clients.note(
                address[0],
                "grub config",
                now,
                rendered.summary,
                rendered.mac,
                rendered.image,
                kind="pc",
            )
            log.info(
                "{mac} GRUB configuration for {client}: {summary}",
                mac=rendered.mac,
                client=address[0],
                summary=rendered.summary,
            )
        content = netascii_bytes(rendered.content) if mode == "netascii" else rendered.content
        return BytesSource(content)

    @staticmethod
    def _open(path: Path, mode: str) -> BlockSource:
        stream: BinaryIO = path.open("rb", buffering=READ_BUFFER)
        if mode == "netascii":
            return NetasciiSource(stream)
        return OctetSource(stream, path.stat().st_size)

    def finished(self, transfer: _Transfer, end: Finished) -> None:
        self.transfers.discard(transfer)
        transfer.close()
        session = transfer.session
        if transfer.mac is not None:
            transfer.report_progress()  # done, however it ended
        self.counters.bytes_sent += session.bytes_sent
        self.counters.retransmissions += session.retransmissions
        fields = {
            "file": transfer.name,
            "client": join_host_port(*transfer.peer),
            "outcome": end.outcome.value,
            "detail": end.detail,
            "bytes": session.bytes_sent,
            "retransmissions": session.retransmissions,
            "seconds": round(self.reactor.seconds() - transfer.started, 3),
            "rto_ms": None if session.rto is None else round(session.rto * 1000, 1),
        }
        if end.outcome is Outcome.COMPLETED:
            self.counters.transfers_completed += 1
            self.clients.note(
                transfer.peer[0],
                "tftp done",
                self.reactor.seconds(),
                f"TFTP {transfer.name} done",
                transfer.mac,
                step_bytes=session.bytes_acknowledged,
            )
            log.info(
                "sent {file!r} to {client}: {bytes} bytes in {seconds}s "
                "({retransmissions} retransmissions, {pace})",
                pace="no round trip timed" if session.rto is None else f"rto {fields['rto_ms']} ms",
                **fields,
            )
        elif end.outcome is Outcome.ABORTED_AFTER_OPTIONS:
            self.counters.transfers_aborted += 1
            log.debug("{client} ended {file!r} after option negotiation ({detail})", **fields)
        else:
            self.counters.transfers_failed += 1
            log.warn("transfer of {file!r} to {client} failed: {outcome}: {detail}", **fields)
