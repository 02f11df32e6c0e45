"""The client side of a boot storm: many simulated netboot clients in one process.

Run inside the client namespace of a storm lab (`netboot_lab.storm_lab`
starts it) as `python -m netboot_lab.storm_client SPEC.json`; it prints
one JSON object with every client's journey on stdout.

Each simulated client is one coroutine. They share the namespace's interface,
as machines on one switch share a LAN, and are told apart the way a server
tells machines apart: by MAC (chaddr), by address and by UDP port.

* A PC (PXE ROM) broadcasts DISCOVER and REQUEST from port 68 with the options
  a BIOS PXE ROM sends; full-mode servers broadcast the replies to
  255.255.255.255:68, so one socket on port 68 receives them all and hands
  each to its client by xid. It then uses the leased address (the lab gives
  the whole pool to the interface beforehand) as its source.
* A Mac has a fixed address of its own (its ciaddr) and broadcasts
  INFORM[LIST] and INFORM[SELECT] from port 68 of that address; the server
  unicasts the ACKs there, to a socket bound to that address only. The
  address is fixed rather than leased because in full mode the daemon leaves
  a DISCOVER that carries a Mac's BSDP class (option 60 `AAPLBSDPC/...`, as
  Mac firmware sends it) unanswered: the BSDP handler claims it and answers
  INFORM only. With the address fixed, the storm measures everything else.

Then both fetch their booter (the file the OFFER or ACK[SELECT] named) and a
kernel by TFTP from a fresh UDP port each (RFC 1350 transfer IDs), driving
`netboot.tftp.client.ReadClient`, with every block compared to the file on
disk as it arrives; and read the root image as a mounting Mac does (UDIF
tables, partition map, volume header, catalog header node, first and last
MiB of the volume) by HTTP range requests through our UDIF reader.

Clients retry as firmware does, only faster: an unanswered DHCP/BSDP request
is sent again, a TFTP transfer that times out or fails starts over from a new
port, an HTTP read that fails is read again. That is what lets the crash
test kill the server mid-storm: whoever was cut off retries until the
restarted server answers, or until the storm's deadline, after which the
client counts as failed with the error it last saw.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import random
import resource
import socket
import sys
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from ipaddress import IPv4Address
from pathlib import Path, PurePosixPath
from typing import Any, cast

from netboot.bsdp.client import inform_list, inform_select, read_answer
from netboot.bsdp.options import MessageType as BsdpType
from netboot.dhcpwire.options import BOOTREPLY, BOOTREQUEST, MessageType, Option
from netboot.dhcpwire.packet import DhcpPacket, build_packet, parse_packet
from netboot.errors import MalformedPacket, NetbootError
from netboot.tftp.client import Deliver, ReadClient
from netboot.tftp.session import Finished, Outcome
from netboot.tftp.wire import Data, Error, ErrorCode, Packet, build, parse
from netboot.udif.partitions import read_partitions
from netboot.udif.reader import UdifImage
from netboot.udif.sector import SECTOR
from netboot.udif.volumes import check_hfs_plus
from netboot_lab.root_image import HttpRangeStorage

STAGES = ("dhcp", "tftp_booter", "tftp_kernel", "http_root")
PXE_STAGES = STAGES[:3]
"""The part of the journey dnsmasq can serve too: address, loader, kernel."""
SO_BINDTODEVICE = getattr(socket, "SO_BINDTODEVICE", 25)
BROADCAST_FLAG = 0x8000
"""The client has no address yet: servers must broadcast their replies."""
DHCP_RETRIES = (1.0, 1.0, 2.0, 2.0, 4.0)
"""Seconds to wait for each answer before asking again; the last repeats until the deadline.

PXE ROMs wait 4, 8, 16 and 32 s; a storm on a veth pair would only sit idle.
"""
REQUEST_TRIES = 3
"""REQUESTs sent for one OFFER before starting over with a DISCOVER (RFC 2131 4.4.1)."""
TFTP_RETRY_SCHEDULE = (1.0, 1.0, 2.0)
"""Our ReadClient's retransmissions before a transfer counts as lost and starts over."""
STAGE_PAUSE = 0.5
"""Seconds between a failed attempt at a stage and the next one."""
HTTP_TIMEOUT = 10.0
MIB = 1 << 20
VOLUME_TYPES = ("Apple_HFS", "Apple_HFSX")
PXE_PARAMETERS = bytes((1, 3, 43, 60, 66, 67, 128, 129, 130, 131, 132, 133, 134, 135))
CLIENT_UUID_TYPE = b"\x00"
MAC_ARCH = "i386"
MAC_MODEL = "MacBookPro11,1"


# -- what the storm is asked to do, and what it reports ---------------------------------


@dataclass(frozen=True)
class ClientSpec:
    index: int
    kind: str
    """"pc" (DHCP DORA as a BIOS PXE ROM) or "mac" (BSDP from a fixed address)."""
    mac: str
    address: str | None = None
    """A Mac's own address (its ciaddr); a PC gets its address by DHCP."""


@dataclass(frozen=True)
class StormSpec:
    interface: str
    clients: tuple[ClientSpec, ...]
    files: dict[str, str]
    """TFTP name -> local path of the same bytes: every download is compared with it."""
    stages: tuple[str, ...] = STAGES
    spread: float = 1.0
    """Clients start evenly spread over this many seconds."""
    deadline: float = 120.0
    """Seconds from the storm's start after which an unfinished client has failed."""
    blksize: int = 1468
    windowsize: int | None = None
    pc_kernel: str = "vmlinuz"
    """The kernel a PC fetches after its loader (what an iPXE or pxelinux config names)."""
    mac_kernel: str = "x86_64/kernelcache"
    """Where a Mac's booter finds its kernel, beside itself."""
    pc_root_url: str = ""
    """The disk image a PC reads by ranges (a Mac reads the one its ACK[SELECT] names)."""

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StormSpec:
        clients = tuple(ClientSpec(**item) for item in data.pop("clients"))
        return cls(clients=clients, **{**data, "stages": tuple(data.get("stages", STAGES))})

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Lease:
    """One ACK a PC received: who gave it which address, when, for how long."""

    address: str
    server: str
    acked_at: float
    """Wall-clock time (time.time()) the ACK arrived: leases outlive the process."""
    lease_time: int


@dataclass
class Attempt:
    """One try at a stage that did not succeed, for the report."""

    stage: str
    at: float
    """Seconds since the storm's start."""
    error: str


@dataclass
class Journey:
    index: int
    kind: str
    mac: str
    address: str | None = None
    started: float = 0.0
    """Seconds from the storm's start to this client's start."""
    stages: dict[str, float] = field(default_factory=dict)
    """Seconds each stage took, retries included."""
    ended: dict[str, float] = field(default_factory=dict)
    """Seconds from the storm's start to the end of each stage."""
    failed_attempts: list[Attempt] = field(default_factory=list)
    leases: list[Lease] = field(default_factory=list)
    bytes: dict[str, int] = field(default_factory=lambda: {"tftp": 0, "http": 0})
    tftp_packets: dict[str, int] = field(
        default_factory=lambda: {"received": 0, "sent": 0, "extra_received": 0}
    )
    """Datagrams of the TFTP transfers; `extra_received`: beyond one per block and the OACK
    (a server that retransmits into a lock-step transfer doubles the work on both sides)."""
    ok: bool = False
    error: str | None = None


class StageError(Exception):
    """One attempt at a stage went wrong; the client may try again."""


# -- DHCP: one socket on port 68 for every client -----------------------------------------


class DhcpPort(asyncio.DatagramProtocol):
    """The namespace's port 68 (wildcard address): broadcast replies, sorted by xid."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.waiting: dict[int, asyncio.Queue[DhcpPacket]] = {}

    @classmethod
    async def open(cls, interface: str) -> DhcpPort:
        sock = client_socket(interface, ("0.0.0.0", 68))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
        loop = asyncio.get_running_loop()
        _, port = await loop.create_datagram_endpoint(cls, sock=sock)
        return port

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        try:
            packet = parse_packet(data)
        except MalformedPacket:
            return
        queue = self.waiting.get(packet.xid)
        if queue is not None and packet.op == BOOTREPLY:
            queue.put_nowait(packet)

    def send(self, datagram: bytes) -> None:
        assert self.transport is not None
        self.transport.sendto(datagram, ("255.255.255.255", 67))

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def client_socket(interface: str, bind: tuple[str, int]) -> socket.socket:
    """A UDP socket as a netboot client has one: on `interface` only, broadcasts allowed.

    SO_REUSEADDR on every port-68 socket lets the wildcard one (PC replies) and
    the Macs' per-address ones share the port; the kernel hands a unicast to
    the socket bound to its address and a broadcast to the wildcard one.
    SO_BINDTODEVICE makes 255.255.255.255 leave through the lab's veth, as it
    would leave a machine's only NIC; the namespace has no default route.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    sock.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, interface.encode())
    sock.setblocking(False)
    sock.bind(bind)
    return sock


def mac_bytes(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))


def pxe_options(mac: str) -> list[tuple[int, bytes]]:
    """What a BIOS PXE ROM sends in DISCOVER and REQUEST (PXE 2.1 section 2.2.1)."""
    machine = mac_bytes(mac)
    return [
        (Option.MAX_MESSAGE_SIZE, (1464).to_bytes(2, "big")),
        (Option.VENDOR_CLASS, b"PXEClient:Arch:00000:UNDI:002001"),
        (Option.CLIENT_ARCHITECTURE, bytes(2)),
        (Option.CLIENT_NDI, bytes((1, 2, 1))),
        (Option.CLIENT_UUID, CLIENT_UUID_TYPE + machine + machine + bytes(4)),
        (Option.PARAMETER_REQUEST_LIST, PXE_PARAMETERS),
    ]


def dhcp_request(
    mac: str, message: MessageType, xid: int, extra: Sequence[tuple[int, bytes]]
) -> bytes:
    return build_packet(
        DhcpPacket(
            op=BOOTREQUEST,
            xid=xid,
            chaddr=mac_bytes(mac),
            flags=BROADCAST_FLAG,
            options=((Option.MESSAGE_TYPE, bytes((message,))), *extra, *pxe_options(mac)),
        )
    )


def waits(schedule: Sequence[float]) -> Iterator[float]:
    """The schedule's waits, then its last one for ever (the deadline stops the caller)."""
    yield from schedule
    while True:
        yield schedule[-1]


async def next_reply(
    queue: asyncio.Queue[DhcpPacket], kinds: Collection[int], wait: float
) -> DhcpPacket | None:
    """The first reply of one of `kinds` within `wait` seconds; None if none came."""
    loop = asyncio.get_running_loop()
    until = loop.time() + wait
    while (left := until - loop.time()) > 0:
        try:
            packet = await asyncio.wait_for(queue.get(), left)
        except TimeoutError:
            return None
        if packet.message_type in kinds:
            return packet
    return None


# -- TFTP: one transfer, on a port of its own -------------------------------------------


class Transfer(asyncio.DatagramProtocol):
    """Drives a ReadClient over one UDP socket; checks each block against the expected bytes.

    Like `netboot_services.tftp_client.Download`, but on asyncio and without a
    file: a storm of hundreds of transfers should measure the server, so the
    client keeps one timer per transfer and moves it only when it fires.
    """

    def __init__(self, client: ReadClient, server: tuple[str, int], expected: bytes) -> None:
        self.client = client
        self.server = server
        self.expected = memoryview(expected)
        self.offset = 0
        self.peer: tuple[str, int] | None = None
        self.transport: asyncio.DatagramTransport | None = None
        self.loop = asyncio.get_running_loop()
        self.timer: asyncio.TimerHandle | None = None
        self.done: asyncio.Future[Finished] = self.loop.create_future()
        self.received = 0
        """Datagrams from the server: blocks + OACK when none was sent twice."""
        self.sent = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)
        self._run(self.client.start(self.loop.time()))

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.received += 1
        if self.peer is None and addr[0] == self.server[0]:
            self.peer = (addr[0], addr[1])
        if addr != self.peer:
            if data[:2] != b"\x00\x05" and self.transport is not None:
                error = build(Error(ErrorCode.UNKNOWN_TRANSFER_ID, "not my transfer"))
                self.transport.sendto(error, addr)
            return
        packet: Packet
        if data[:2] == b"\x00\x03" and len(data) >= 4:
            # DATA is nearly every datagram: decoded here, it skips tftpy's parser, so
            # the client spends its CPU on the exchange rather than on decoding it.
            packet = Data(int.from_bytes(data[2:4], "big"), data[4:])
        else:
            try:
                packet = parse(data)
            except MalformedPacket:
                return
        self._run(self.client.feed(packet, self.loop.time()))

    def error_received(self, exc: Exception) -> None:
        """ICMP errors (a server that just died): the retry schedule deals with them."""

    def _run(self, actions: list[Any]) -> None:
        for action in actions:
            if isinstance(action, Deliver):
                end = self.offset + len(action.payload)
                if self.expected[self.offset : end] != action.payload:
                    self._finish(Finished(Outcome.PROTOCOL_ERROR, f"wrong bytes at {self.offset}"))
                    return
                self.offset = end
            elif isinstance(action, Finished):
                self._finish(action)
                return
            elif self.transport is not None:
                self.sent += 1
                self.transport.sendto(action.datagram, self.peer or self.server)
        if self.timer is None:
            self._arm()

    def _arm(self) -> None:
        deadline = self.client.deadline()
        self.timer = None if deadline is None else self.loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self.timer = None
        self._run(self.client.on_timer(self.loop.time()))
        if self.timer is None and not self.done.done():
            self._arm()

    def cancel(self) -> None:
        """Stop the timer of a transfer given up on (the journey's deadline passed)."""
        self._finish(Finished(Outcome.TIMED_OUT, "cancelled"))

    def _finish(self, finished: Finished) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if not self.done.done():
            self.done.set_result(finished)


# -- HTTP: the root image, read like a mounting Mac ----------------------------------------


class SourcedRangeStorage(HttpRangeStorage):
    """HttpRangeStorage whose connection leaves from the client's own address."""

    def __init__(self, url: str, source: str) -> None:
        super().__init__(url, timeout=HTTP_TIMEOUT)
        self._source = source

    def _connect(self) -> http.client.HTTPConnection:
        if self._connection is None:
            self._connection = http.client.HTTPConnection(
                self._host, self._port, timeout=self._timeout, source_address=(self._source, 0)
            )
        return self._connection


def read_root(url: str, source: str) -> tuple[int, str]:
    """What `netboot.lab.mac.check_root_image` reads, from `source`: (bytes, signature).

    Blocking (http.client), so the storm runs it in a thread per client.
    """
    storage = SourcedRangeStorage(url, source)
    try:
        with UdifImage.open_storage(url, storage) as image:
            _, partitions = read_partitions(image.read, image.size, url)
            volumes = [p for p in partitions if p.type in VOLUME_TYPES]
            if not volumes:
                raise StageError(f"{url}: no HFS+ partition in {partitions}")
            start, length = volumes[0].first_sector * SECTOR, volumes[0].sector_count * SECTOR
            check = check_hfs_plus(image.read, start, length, url)
            for offset in (start, max(start, start + length - MIB)):
                image.read(offset, min(MIB, length))
    finally:
        storage.close()
    return storage.bytes_read, check.signature


# -- one client ----------------------------------------------------------------------------


class Client:
    def __init__(
        self,
        spec: ClientSpec,
        storm: StormSpec,
        dhcp: DhcpPort,
        files: dict[str, bytes],
        epoch: float,
    ) -> None:
        self.spec = spec
        self.storm = storm
        self.dhcp = dhcp
        self.files = files
        self.epoch = epoch
        self.loop = asyncio.get_running_loop()
        self.journey = Journey(spec.index, spec.kind, spec.mac, spec.address)
        self.server = ""
        self.booter = ""
        self.root_url: str | None = None

    def now(self) -> float:
        return self.loop.time() - self.epoch

    async def run(self, start: float) -> Journey:
        await asyncio.sleep(max(0.0, start - self.now()))
        journey = self.journey
        journey.started = self.now()
        stage = "start"
        try:
            async with asyncio.timeout_at(self.epoch + self.storm.deadline):
                for stage in self.storm.stages:
                    began = self.now()
                    await self.retrying(stage, self.stage_step(stage))
                    journey.ended[stage] = self.now()
                    journey.stages[stage] = journey.ended[stage] - began
            journey.ok = True
        except TimeoutError:
            last = journey.failed_attempts[-1].error if journey.failed_attempts else "no answer"
            journey.error = f"{stage}: not done after {self.storm.deadline:g} s ({last})"
        except Exception as error:  # noqa: BLE001 - a crash fails this client, not the storm
            journey.error = f"{stage}: {type(error).__name__}: {error}"
        return journey

    def stage_step(self, stage: str) -> Callable[[], Any]:
        if stage == "dhcp":
            return self.dora if self.spec.kind == "pc" else self.bsdp
        if stage == "tftp_booter":
            return lambda: self.tftp(self.booter)
        if stage == "tftp_kernel":
            return lambda: self.tftp(self.kernel_path())
        if stage == "http_root":
            return self.http_root
        raise ValueError(f"unknown stage {stage!r}")

    async def retrying(self, stage: str, step: Callable[[], Any]) -> None:
        """Run `step` until it succeeds; the journey's timeout ends the tries."""
        while True:
            try:
                await step()
                return
            except (StageError, OSError, NetbootError) as error:
                self.journey.failed_attempts.append(Attempt(stage, self.now(), str(error)))
            await asyncio.sleep(STAGE_PAUSE)

    def kernel_path(self) -> str:
        if self.spec.kind == "pc":
            return self.storm.pc_kernel
        return str(PurePosixPath(self.booter).parent / self.storm.mac_kernel)

    # -- stages ------------------------------------------------------------------------

    async def dora(self) -> None:
        """DISCOVER until an OFFER, then REQUEST it until ACK; a NAK starts over."""
        mac = self.spec.mac
        schedule = waits(DHCP_RETRIES)
        while True:
            xid = random.getrandbits(32)
            queue: asyncio.Queue[DhcpPacket] = asyncio.Queue()
            self.dhcp.waiting[xid] = queue
            try:
                self.dhcp.send(dhcp_request(mac, MessageType.DISCOVER, xid, ()))
                offer = await next_reply(queue, {MessageType.OFFER}, next(schedule))
                if offer is None:
                    continue
                server = offer.option(Option.SERVER_IDENTIFIER)
                if server is None or len(server) != 4:
                    raise StageError(f"OFFER of {offer.yiaddr} without a server identifier")
                selecting = [
                    (Option.REQUESTED_ADDRESS, IPv4Address(offer.yiaddr).packed),
                    (Option.SERVER_IDENTIFIER, server),
                ]
                request = dhcp_request(mac, MessageType.REQUEST, xid, selecting)
                for _ in range(REQUEST_TRIES):
                    self.dhcp.send(request)
                    kinds = {MessageType.ACK, MessageType.NAK}
                    answer = await next_reply(queue, kinds, next(schedule))
                    if answer is None:
                        continue
                    if answer.message_type == MessageType.NAK:
                        message = answer.option(Option.MESSAGE) or b""
                        self.journey.failed_attempts.append(
                            Attempt("dhcp", self.now(), f"NAK: {message.decode(errors='replace')}")
                        )
                        break
                    self.acked(answer)
                    return
            finally:
                del self.dhcp.waiting[xid]

    def acked(self, ack: DhcpPacket) -> None:
        server = ack.option(Option.SERVER_IDENTIFIER) or b"\0\0\0\0"
        raw_time = ack.option(Option.LEASE_TIME)
        lease_time = int.from_bytes(raw_time, "big") if raw_time and len(raw_time) == 4 else 0
        lease = Lease(ack.yiaddr, str(IPv4Address(server)), time.time(), lease_time)
        self.journey.leases.append(lease)
        self.journey.address = ack.yiaddr
        self.server = ack.siaddr if ack.siaddr != "0.0.0.0" else lease.server
        file = ack.option(Option.BOOTFILE_NAME) or ack.file
        if not file:
            raise StageError(f"ACK of {ack.yiaddr} names no boot file")
        # dnsmasq sends option 67 with a terminating NUL, as some ROMs expect.
        self.booter = file.rstrip(b"\0").decode(errors="replace")

    async def bsdp(self) -> None:
        """INFORM[LIST] until an ACK[LIST], then INFORM[SELECT] of its default image."""
        address = self.spec.address
        assert address is not None
        sock = client_socket(self.storm.interface, (address, 68))
        queue: asyncio.Queue[DhcpPacket] = asyncio.Queue()
        transport, _ = await self.loop.create_datagram_endpoint(lambda: _Collect(queue), sock=sock)
        schedule = waits(DHCP_RETRIES)
        mac = mac_bytes(self.spec.mac)
        try:
            while True:
                xid = random.getrandbits(32)
                listing = inform_list(xid, mac, address, MAC_ARCH, MAC_MODEL)
                transport.sendto(build_packet(listing), ("255.255.255.255", 67))
                answer = await self.bsdp_answer(queue, xid, BsdpType.LIST, next(schedule))
                if answer is None:
                    continue
                image = answer.message.default_image_id or (
                    answer.message.images[0].image_id if answer.message.images else None
                )
                if image is None:
                    raise StageError(f"ACK[LIST] from {answer.server_id} offers no image")
                for _ in range(REQUEST_TRIES):
                    xid = random.getrandbits(32)
                    select = inform_select(
                        xid, mac, address, MAC_ARCH, MAC_MODEL, answer.server_id, image
                    )
                    transport.sendto(build_packet(select), ("255.255.255.255", 67))
                    chosen = await self.bsdp_answer(queue, xid, BsdpType.SELECT, next(schedule))
                    if chosen is None:
                        continue
                    if not chosen.file or not chosen.root_path:
                        raise StageError(f"ACK[SELECT] without booter or root path: {chosen}")
                    self.server, self.booter = chosen.siaddr, chosen.file
                    self.root_url = chosen.root_path
                    return
        finally:
            transport.close()

    @staticmethod
    async def bsdp_answer(
        queue: asyncio.Queue[DhcpPacket], xid: int, kind: BsdpType, wait: float
    ) -> Any:
        loop = asyncio.get_running_loop()
        until = loop.time() + wait
        while (left := until - loop.time()) > 0:
            try:
                packet = await asyncio.wait_for(queue.get(), left)
            except TimeoutError:
                return None
            answer = read_answer(packet, xid)
            if answer is not None and answer.message.message_type == kind:
                return answer
        return None

    async def tftp(self, name: str) -> None:
        """One download of `name`, from a new port; any failure is a StageError."""
        expected = self.files.get(name)
        if expected is None:
            raise StageError(f"{name!r}: not a file this storm knows the bytes of")
        options = {"blksize": str(self.storm.blksize), "tsize": "0"}
        if self.storm.windowsize:
            options["windowsize"] = str(self.storm.windowsize)
        reader = ReadClient(name, options, TFTP_RETRY_SCHEDULE)
        source = self.journey.address or "0.0.0.0"
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setblocking(False)
        sock.bind((source, 0))
        transfer = Transfer(reader, (self.server, 69), expected)
        transport, _ = await self.loop.create_datagram_endpoint(lambda: transfer, sock=sock)
        try:
            finished = await transfer.done
        finally:
            transport.close()
            transfer.cancel()
            packets = self.journey.tftp_packets
            packets["received"] += transfer.received
            packets["sent"] += transfer.sent
        if finished.outcome is not Outcome.COMPLETED:
            raise StageError(f"TFTP {name}: {finished.outcome.value}: {finished.detail}")
        if reader.received != len(expected):
            raise StageError(f"TFTP {name}: {reader.received} of {len(expected)} bytes")
        self.journey.bytes["tftp"] += reader.received
        blocks = reader.received // reader.blksize + 1
        oack = 1 if reader.negotiated else 0
        self.journey.tftp_packets["extra_received"] += transfer.received - blocks - oack

    async def http_root(self) -> None:
        url = self.root_url or self.storm.pc_root_url
        if not url:
            raise StageError("no root image URL")
        source = self.journey.address or "0.0.0.0"
        read, signature = await self.loop.run_in_executor(None, read_root, url, source)
        if signature != "H+":
            raise StageError(f"{url}: volume signature {signature!r}, not H+")
        self.journey.bytes["http"] += read


class _Collect(asyncio.DatagramProtocol):
    """A Mac's own port 68: every DHCP reply that dissects goes to its queue."""

    def __init__(self, queue: asyncio.Queue[DhcpPacket]) -> None:
        self.queue = queue

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        try:
            self.queue.put_nowait(parse_packet(data))
        except MalformedPacket:
            return


# -- the storm -------------------------------------------------------------------------------


async def storm(spec: StormSpec) -> dict[str, Any]:
    """Start every client within `spec.spread` seconds; gather their journeys."""
    loop = asyncio.get_running_loop()
    # One thread per client for the blocking HTTP reads: they must not queue here.
    executor = ThreadPoolExecutor(max_workers=max(1, len(spec.clients)))
    loop.set_default_executor(executor)
    files = {name: Path(path).read_bytes() for name, path in spec.files.items()}
    dhcp = await DhcpPort.open(spec.interface)
    epoch, epoch_wall = loop.time(), time.time()
    count = len(spec.clients)
    clients = [Client(client, spec, dhcp, files, epoch) for client in spec.clients]
    usage_before = resource.getrusage(resource.RUSAGE_SELF)
    try:
        journeys = await asyncio.gather(
            *(client.run(spec.spread * n / count) for n, client in enumerate(clients))
        )
    finally:
        dhcp.close()
        executor.shutdown(wait=False, cancel_futures=True)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "seconds": loop.time() - epoch,
        # The start by the wall clock, which journeys' seconds count from: the crash
        # test lines them up with when it killed and restarted the server.
        "epoch_wall": epoch_wall,
        "cpu_seconds": (usage.ru_utime - usage_before.ru_utime)
        + (usage.ru_stime - usage_before.ru_stime),
        "journeys": [asdict(journey) for journey in journeys],
    }


def main(argv: Sequence[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m netboot_lab.storm_client SPEC.json", file=sys.stderr)
        return 2
    spec = StormSpec.from_json(json.loads(Path(argv[0]).read_text()))
    result = asyncio.run(storm(spec))
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    # Threads still blocked in an HTTP read of a failed client must not hold the exit.
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
