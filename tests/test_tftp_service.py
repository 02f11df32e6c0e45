"""The TFTP service with a fake reactor: ports, timers, strangers, refusals, counters."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
from twisted.logger import LogLevel, globalLogPublisher

from netboot.admin.machines import MachineChange, MachineRegistry
from netboot.config import TftpConfig
from netboot.grub.config import boot_config
from netboot.nbi.catalog import Catalog, scan_catalog
from netboot.pc.choice import ChoiceSettings, pc_images
from netboot.tftp.source import BytesSource, netascii_bytes
from netboot.tftp.wire import (
    Ack,
    Data,
    Error,
    ErrorCode,
    OptionAck,
    ReadRequest,
    WriteRequest,
    build,
    parse,
)
from netboot_lab.factories import make_set
from netboot_services.clients import ClientTracker
from netboot_services.tftp import TftpService
from tests.fake_udp import FakeTransferPorts, FakeUdpReactor

CLIENT = ("10.0.0.2", 3000)
OTHER = ("10.0.0.3", 4000)
MAC = "52:54:00:77:00:10"
KERNEL = bytes(range(256)) * 8 + b"tail"  # 2052 bytes: 4 full blocks and a short one


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    set_dir = make_set(tmp_path / "images", "Alpha")
    (set_dir / "i386" / "kernel").write_bytes(KERNEL)
    return scan_catalog(tmp_path / "images")


def make_service(catalog: Catalog, **config: object) -> tuple[TftpService, FakeUdpReactor]:
    reactor = FakeUdpReactor()
    service = TftpService(
        TftpConfig(**config),  # type: ignore[arg-type]
        lambda: catalog,
        reactor,
        [""],
        transfer_ports=FakeTransferPorts(reactor),
    )
    service.startService()
    return service, reactor


def request(reactor: FakeUdpReactor, packet: object, source: tuple[str, int] = CLIENT) -> None:
    reactor.ports[69].deliver(build(packet), source)  # type: ignore[arg-type]


def sent_packets(reactor: FakeUdpReactor) -> list[tuple[int, object, tuple[str, int]]]:
    return [(port, parse(datagram), to) for port, datagram, to in reactor.take_sent()]


def transfer_port(reactor: FakeUdpReactor) -> int:
    (port,) = [p for p in reactor.open_ports() if p != 69]
    return port


def test_a_read_runs_on_its_own_port_to_completion(catalog: Catalog) -> None:
    service, reactor = make_service(catalog)
    request(reactor, ReadRequest("Alpha.nbi/i386/kernel"))
    port = transfer_port(reactor)
    received = b""
    for block in range(1, 6):
        ((from_port, packet, to),) = sent_packets(reactor)
        assert (from_port, to) == (port, CLIENT)
        assert isinstance(packet, Data) and packet.block == block
        received += packet.payload
        reactor.ports[port].deliver(build(Ack(block)), CLIENT)
    assert received == KERNEL
    assert reactor.open_ports() == [69]
    assert service.counters.transfers_completed == 1
    assert service.counters.bytes_sent == len(KERNEL)
    assert service.transfers == set()


def test_options_are_acknowledged_and_windows_sent(catalog: Catalog) -> None:
    _, reactor = make_service(catalog)
    request(
        reactor,
        ReadRequest(
            "/Alpha.nbi/i386/kernel", options={"blksize": "1024", "windowsize": "4", "tsize": "0"}
        ),
    )
    port = transfer_port(reactor)
    ((_, oack, _),) = sent_packets(reactor)
    assert oack == OptionAck({"blksize": "1024", "tsize": str(len(KERNEL)), "windowsize": "4"})
    reactor.ports[port].deliver(build(Ack(0)), CLIENT)
    blocks = [packet for _, packet, _ in sent_packets(reactor)]
    assert [b.block for b in blocks] == [1, 2, 3]  # type: ignore[attr-defined]
    assert b"".join(b.payload for b in blocks) == KERNEL  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("client", "blksize", "logged"),
    [
        (CLIENT, "1468", "10.0.0.2:3000"),
        (("fd4e:4254:0:1::2", 3000), "1448", "[fd4e:4254:0:1::2]:3000"),
        (("fe80::2%nb0", 3000), "1448", "[fe80::2%nb0]:3000"),
    ],
    ids=["ipv4", "ipv6", "ipv6-link-local"],
)
def test_an_ipv6_client_gets_the_ipv6_block_and_is_logged_in_brackets(
    catalog: Catalog, client: tuple[str, int], blksize: str, logged: str
) -> None:
    """docs/protocols/dhcpv6.md §16: at MTU 1500, 1468 fits IPv4 but not IPv6."""
    events: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(events.append)
    try:
        service, reactor = make_service(catalog)
        asked = {"blksize": "1468", "tsize": "0"}
        request(reactor, ReadRequest("Alpha.nbi/i386/kernel", options=asked), client)
        port = transfer_port(reactor)
        ((_, oack, to),) = sent_packets(reactor)
        assert to == client and oack == OptionAck({"blksize": blksize, "tsize": str(len(KERNEL))})
        for block in range(3):
            reactor.ports[port].deliver(build(Ack(block)), client)
    finally:
        globalLogPublisher.removeObserver(events.append)
    assert service.counters.transfers_completed == 1
    clients = {e["client"] for e in events if e.get("file") == "Alpha.nbi/i386/kernel"}
    assert clients == {logged}


def test_lost_packets_are_resent_on_the_retry_schedule_then_the_transfer_fails(
    catalog: Catalog,
) -> None:
    service, reactor = make_service(catalog, retry_schedule=(1.0, 3.0))
    request(reactor, ReadRequest("Alpha.nbi/i386/kernel"))
    port = transfer_port(reactor)
    assert [p for _, p, _ in sent_packets(reactor)] == [Data(1, KERNEL[:512])]
    reactor.advance(0.9)
    assert sent_packets(reactor) == []
    reactor.advance(0.1)
    assert [p for _, p, _ in sent_packets(reactor)] == [Data(1, KERNEL[:512])]
    reactor.advance(3.0)  # the second repeat takes the next block along (REACH_AHEAD_AFTER)
    assert [p for _, p, _ in sent_packets(reactor)] == [
        Data(1, KERNEL[:512]),
        Data(2, KERNEL[512:1024]),
    ]
    reactor.advance(3.0)
    ((_, error, _),) = sent_packets(reactor)
    assert isinstance(error, Error) and error.code == ErrorCode.NOT_DEFINED
    assert port not in reactor.open_ports()
    assert service.counters.transfers_failed == 1
    assert service.counters.retransmissions == 2
    assert reactor.getDelayedCalls() == []


def test_a_stranger_on_a_transfer_port_gets_error_5_and_the_transfer_goes_on(
    catalog: Catalog,
) -> None:
    service, reactor = make_service(catalog)
    request(reactor, ReadRequest("Alpha.nbi/i386/kernel"))
    port = transfer_port(reactor)
    sent_packets(reactor)
    reactor.ports[port].deliver(build(Ack(1)), OTHER)
    ((_, error, to),) = sent_packets(reactor)
    assert (error, to) == (Error(ErrorCode.UNKNOWN_TRANSFER_ID, "unknown transfer ID"), OTHER)
    reactor.ports[port].deliver(build(Error(0, "x")), OTHER)  # errors are never answered
    assert sent_packets(reactor) == []
    reactor.ports[port].deliver(build(Ack(1)), CLIENT)
    ((_, data, _),) = sent_packets(reactor)
    assert data == Data(2, KERNEL[512:1024])
    assert service.counters.stray_packets == 2


def test_write_requests_are_refused(catalog: Catalog) -> None:
    service, reactor = make_service(catalog)
    request(reactor, WriteRequest("Alpha.nbi/i386/new"))
    ((port, error, to),) = sent_packets(reactor)
    assert (port, to) == (69, CLIENT)
    assert error == Error(ErrorCode.ACCESS_VIOLATION, "this server is read-only")
    assert service.counters.requests_refused == 1
    assert reactor.open_ports() == [69]


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("../etc/passwd", ErrorCode.ACCESS_VIOLATION),
        ("Alpha.nbi/i386/../../../etc/passwd", ErrorCode.ACCESS_VIOLATION),
        ("Alpha.nbi\\i386\\booter", ErrorCode.ACCESS_VIOLATION),
        ("Alpha.nbi/NetBoot.dmg", ErrorCode.FILE_NOT_FOUND),
        ("Alpha.nbi/NBImageInfo.plist", ErrorCode.FILE_NOT_FOUND),
        ("/etc/passwd", ErrorCode.FILE_NOT_FOUND),
        ("Alpha.nbi/i386/missing", ErrorCode.FILE_NOT_FOUND),
    ],
)
def test_names_outside_the_served_directories_are_refused(
    catalog: Catalog, name: str, code: ErrorCode
) -> None:
    service, reactor = make_service(catalog)
    request(reactor, ReadRequest(name))
    ((port, error, _),) = sent_packets(reactor)
    assert port == 69
    assert isinstance(error, Error) and error.code == code
    assert reactor.open_ports() == [69]
    assert service.counters.requests_refused == 1


def test_a_repeated_request_is_answered_again_not_served_twice(catalog: Catalog) -> None:
    service, reactor = make_service(catalog)
    request(reactor, ReadRequest("Alpha.nbi/i386/kernel"))
    request(reactor, ReadRequest("Alpha.nbi/i386/kernel"))
    assert len(reactor.open_ports()) == 2
    assert [p for _, p, _ in sent_packets(reactor)] == [Data(1, KERNEL[:512])] * 2
    assert service.counters.transfers_started == 1


def test_edk2_size_probe_ends_quietly(catalog: Catalog) -> None:
    events: list[dict[str, object]] = []
    globalLogPublisher.addObserver(events.append)
    try:
        service, reactor = make_service(catalog)
        request(
            reactor, ReadRequest("Alpha.nbi/i386/kernel", options={"tsize": "0", "blksize": "1468"})
        )
        port = transfer_port(reactor)
        reactor.ports[port].deliver(build(Error(8, "User aborted the transfer")), CLIENT)
    finally:
        globalLogPublisher.removeObserver(events.append)
    assert reactor.open_ports() == [69]
    assert service.counters.transfers_aborted == 1
    assert service.counters.transfers_failed == 0
    assert not [e for e in events if e.get("log_level") in (LogLevel.warn, LogLevel.error)]


def test_malformed_packets_are_counted_and_logged_once_per_client_per_minute(
    catalog: Catalog,
) -> None:
    events: list[dict[str, object]] = []
    globalLogPublisher.addObserver(events.append)
    try:
        service, reactor = make_service(catalog)
        for _ in range(5):
            reactor.ports[69].deliver(b"\x00\x09garbage", CLIENT)
        reactor.advance(61)
        reactor.ports[69].deliver(b"\x00", CLIENT)
    finally:
        globalLogPublisher.removeObserver(events.append)
    assert service.counters.malformed_packets == 6
    warnings = [e for e in events if "malformed TFTP packet" in str(e.get("log_format"))]
    assert len(warnings) == 2
    assert sent_packets(reactor) == []


def test_single_port_mode_keeps_every_transfer_on_port_69(catalog: Catalog) -> None:
    service, reactor = make_service(catalog, single_port=True)
    request(reactor, ReadRequest("Alpha.nbi/i386/kernel"), CLIENT)
    request(reactor, ReadRequest("Alpha.nbi/i386/booter"), OTHER)
    assert reactor.open_ports() == [69]
    sends = sent_packets(reactor)
    assert {(port, to) for port, _, to in sends} == {(69, CLIENT), (69, OTHER)}
    for block in range(1, 6):
        request(reactor, Ack(block), CLIENT)
    assert (
        b"".join(p.payload for _, p, to in sent_packets(reactor) if to == CLIENT)
        == (  # type: ignore[attr-defined]
            KERNEL[512:]
        )
    )
    request(reactor, Ack(1), OTHER)
    assert service.counters.transfers_completed == 2


def test_too_many_transfers_are_refused(catalog: Catalog) -> None:
    _, reactor = make_service(catalog, max_transfers=1)
    request(reactor, ReadRequest("Alpha.nbi/i386/kernel"), CLIENT)
    request(reactor, ReadRequest("Alpha.nbi/i386/kernel"), OTHER)
    busy = [p for _, p, to in sent_packets(reactor) if to == OTHER]
    assert busy == [Error(ErrorCode.NOT_DEFINED, "server busy")]


def test_stopping_the_service_closes_every_transfer(catalog: Catalog) -> None:
    service, reactor = make_service(catalog)
    request(reactor, ReadRequest("Alpha.nbi/i386/kernel"), CLIENT)
    request(reactor, ReadRequest("Alpha.nbi/i386/booter"), OTHER)
    service.stopService()
    assert reactor.open_ports() == []
    assert reactor.getDelayedCalls() == []


def test_a_new_catalog_is_picked_up(catalog: Catalog, tmp_path: Path) -> None:
    current = [Catalog(root=catalog.root)]
    reactor = FakeUdpReactor()
    service = TftpService(
        TftpConfig(), lambda: current[0], reactor, [""], transfer_ports=FakeTransferPorts(reactor)
    )
    service.startService()
    request(reactor, ReadRequest("Alpha.nbi/i386/kernel"))
    assert isinstance(sent_packets(reactor)[0][1], Error)
    current[0] = catalog
    request(reactor, ReadRequest("Alpha.nbi/i386/kernel"))
    assert sent_packets(reactor)[0][1] == Data(1, KERNEL[:512])


def test_pxe_programs_are_served_from_the_extra_directory(catalog: Catalog, tmp_path: Path) -> None:
    extra = tmp_path / "ipxe"
    extra.mkdir()
    (extra / "undionly.kpxe").write_bytes(b"ipxe")
    _, reactor = make_service(catalog, extra_dir=extra)
    request(reactor, ReadRequest("undionly.kpxe"))
    assert sent_packets(reactor)[0][1] == Data(1, b"ipxe")


def test_grub_configuration_is_sent_from_memory_and_logged_with_the_mac(tmp_path: Path) -> None:
    make_set(
        tmp_path / "pc",
        "Demo",
        files={"pc/vmlinuz": b"MZ kernel"},
        PCKernel="pc/vmlinuz",
        PCCommandLine="console=ttyS0",
    )
    catalog = scan_catalog(tmp_path / "pc")
    service, reactor = make_service(catalog)
    service.grub = ChoiceSettings()
    events: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(events.append)
    try:
        name = "/grub/netboot/x86_64-efi/52:54:00:77:00:10.cfg"
        request(reactor, ReadRequest(name, options={"blksize": "1024", "tsize": "0"}))
        port = transfer_port(reactor)
        ((_, oack, _),) = sent_packets(reactor)
        reactor.ports[port].deliver(build(Ack(0)), CLIENT)
        ((_, data, _),) = sent_packets(reactor)
        reactor.ports[port].deliver(build(Ack(1)), CLIENT)
    finally:
        globalLogPublisher.removeObserver(events.append)
    assert isinstance(data, Data)
    expected = boot_config(pc_images(catalog, None, "efi-x64")[0]).encode()
    assert data.payload == expected
    assert oack == OptionAck({"blksize": "1024", "tsize": str(len(expected))})
    assert service.counters.transfers_completed == 1
    (logged,) = [e for e in events if "GRUB configuration" in e.get("log_format", "")]
    assert (logged["mac"], logged["client"], logged["summary"]) == (
        "52:54:00:77:00:10",
        CLIENT[0],
        "boot 'Demo'",
    )


def test_the_machines_registry_sees_steps_and_progress_every_64_blocks(tmp_path: Path) -> None:
    booter = bytes(range(256)) * 2 * 150 + b"end"  # 150 whole 512-byte blocks and a short one
    set_dir = make_set(tmp_path / "images", "Alpha")
    (set_dir / "i386" / "booter").write_bytes(booter)
    service, reactor = make_service(scan_catalog(tmp_path / "images"))
    registry = MachineRegistry()
    service.clients = ClientTracker(lookup={CLIENT[0]: MAC}.get, registry=registry)
    changes: list[MachineChange] = []
    registry.listeners.append(changes.append)
    seen: list[tuple[int, int | None, bool]] = []

    def transfer() -> dict[str, Any]:
        machine = registry.machine(MAC)
        assert machine is not None
        (only,) = machine["journeys"][0]["transfers"]
        return only

    request(reactor, ReadRequest("Alpha.nbi/i386/booter"))
    port = transfer_port(reactor)
    for block in range(1, 152):
        sent_packets(reactor)
        reactor.advance(0.01)
        reactor.ports[port].deliver(build(Ack(block)), CLIENT)
        now = transfer()
        if not seen or (now["bytes"], now["size"], now["done"]) != seen[-1]:
            seen.append((now["bytes"], now["size"], now["done"]))
    assert seen == [
        (0, len(booter), False),
        (64 * 512, len(booter), False),
        (128 * 512, len(booter), False),
        (len(booter), len(booter), True),
    ]
    machine = registry.machine(MAC)
    assert machine is not None
    assert [(s["stage"], s["detail"], s["bytes"]) for s in machine["journeys"][0]["steps"]] == [
        ("tftp", "TFTP Alpha.nbi/i386/booter", None),
        ("tftp done", "TFTP Alpha.nbi/i386/booter done", len(booter)),
    ]
    assert machine["address"] == CLIENT[0]
    # The step, the transfer's first report, 128 blocks (a second after that), the step done
    # and the transfer done: 64 blocks came within the first second, no change of their own.
    assert len(changes) == 5
    assert service.clients.recent()[0]["progress"] == "tftp done"


def test_a_client_without_a_known_mac_is_not_in_the_registry(catalog: Catalog) -> None:
    service, reactor = make_service(catalog)
    registry = MachineRegistry()
    service.clients = ClientTracker(lookup=lambda address: None, registry=registry)
    request(reactor, ReadRequest("Alpha.nbi/i386/kernel"))
    port = transfer_port(reactor)
    for block in range(1, 6):
        reactor.ports[port].deliver(build(Ack(block)), CLIENT)
    assert service.counters.transfers_completed == 1
    assert registry.machines() == []
    assert [c["progress"] for c in service.clients.recent()] == ["tftp done"]


def test_content_from_memory_is_read_in_blocks_and_converted_for_netascii() -> None:
    source = BytesSource(b"a\nb\rc" * 3)
    assert source.size == 15
    assert [source.read(6), source.read(6), source.read(6), source.read(6)] == [
        b"a\nb\rca",
        b"\nb\rca\n",
        b"b\rc",
        b"",
    ]
    source.close()
    assert netascii_bytes(b"a\nb\rc") == b"a\r\nb\r\x00c"


def test_without_the_chain_grub_cfg_is_not_rendered(catalog: Catalog) -> None:
    _, reactor = make_service(catalog)
    request(reactor, ReadRequest("grub/grub.cfg"))
    ((_, error, _),) = sent_packets(reactor)
    assert isinstance(error, Error) and error.code == ErrorCode.FILE_NOT_FOUND


def test_the_signed_chain_is_served_from_its_configured_files(
    catalog: Catalog, tmp_path: Path
) -> None:
    shim = tmp_path / "shimx64.efi.signed"
    shim.write_bytes(b"MZ shim")
    service, reactor = make_service(catalog)
    service.chain_files = {"sb/x64/shimx64.efi": shim}
    request(reactor, ReadRequest("sb/x64/shimx64.efi"))
    assert sent_packets(reactor)[0][1] == Data(1, b"MZ shim")


def test_a_client_whose_grub_never_comes_back_is_named_with_the_cause(
    catalog: Catalog, tmp_path: Path
) -> None:
    """Proxy mode with a site DHCP server that names another next-server: shim took GRUB
    from us, then GRUB asks that host. One warning per silent client, and a counter."""
    grub = tmp_path / "grubnetx64.efi.signed"
    grub.write_bytes(b"MZ grub")
    service, reactor = make_service(catalog)
    service.chain_files = {"sb/x64/grubx64.efi": grub}
    events: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(events.append)
    try:
        request(reactor, ReadRequest("sb/x64/grubx64.efi"), CLIENT)
        request(reactor, ReadRequest("sb/x64/grubx64.efi"), OTHER)
        reactor.advance(2.0)
        request(reactor, ReadRequest("/grub/x86_64-efi/command.lst"), OTHER)  # it came back
        for _ in range(10):
            reactor.advance(5.0)
        assert not reactor.getDelayedCalls()  # no timer while nobody is waited for
    finally:
        globalLogPublisher.removeObserver(events.append)
    warnings = [e for e in events if "took GRUB from us" in str(e.get("log_format", ""))]
    assert [e["client"] for e in warnings] == [CLIENT[0]]
    assert warnings[0]["log_level"] == LogLevel.warn
    assert service.counters.grub_silent == 1


# Busy polling needs the real transfer ports: the daemon's DatagramMux with real
# loopback sockets. The request still comes through the fake port 69; the test
# plays the reactor (calling the mux's doRead) and the spin clock.


class SpinClock:
    """Each reading costs `step` seconds of spinning."""

    def __init__(self, step: float = 10e-6) -> None:
        self.now = 0.0
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def polled_transfer(
    catalog: Catalog, client: socket.socket, busy_poll_us: int, name: str = "Alpha.nbi/i386/kernel"
) -> tuple[TftpService, Any, tuple[str, int]]:
    reactor = FakeUdpReactor()
    service = TftpService(
        TftpConfig(busy_poll_us=busy_poll_us),
        lambda: catalog,
        reactor,
        ["127.0.0.1"],
        spin_clock=SpinClock(),
    )
    service.startService()
    request(reactor, ReadRequest(name), client.getsockname())
    (mux,) = reactor.readers
    first, transfer_port = client.recvfrom(2048)
    assert parse(first) == Data(1, (catalog.root / name).read_bytes()[:512])
    return service, mux, transfer_port


def received_blocks(client: socket.socket, count: int) -> list[int]:
    return [parse(client.recvfrom(2048)[0]).block for _ in range(count)]  # type: ignore[union-attr]


def test_busy_polling_answers_acks_without_going_back_to_the_event_loop(
    catalog: Catalog, udp_client: socket.socket
) -> None:
    service, mux, port = polled_transfer(catalog, udp_client, busy_poll_us=50)
    for block in (1, 2, 3, 4):
        udp_client.sendto(build(Ack(block)), port)
    mux.doRead()  # the event loop's one wake-up
    assert received_blocks(udp_client, 4) == [2, 3, 4, 5]
    assert service.counters.busy_poll_hits == 3  # all but the ACK that woke it
    assert service.counters.busy_poll_misses == 1  # after ACK 4 nothing came in 50 us
    service.stopService()
    assert reactor_readers(mux) == set()


def reactor_readers(mux: Any) -> set[Any]:
    readers: set[Any] = mux.reactor.readers
    return readers


def test_busy_polling_stops_for_a_client_that_keeps_missing_it(
    catalog: Catalog, udp_client: socket.socket
) -> None:
    (catalog.root / "Alpha.nbi/i386/slow").write_bytes(bytes(512 * 20))
    service, mux, port = polled_transfer(catalog, udp_client, 50, "Alpha.nbi/i386/slow")
    for block in range(1, 16):
        udp_client.sendto(build(Ack(block)), port)
        mux.doRead()
        assert received_blocks(udp_client, 1) == [block + 1]
    assert service.counters.busy_poll_misses == 8  # then it stopped trying
    assert service.counters.busy_poll_hits == 0
    service.stopService()


def test_busy_polling_can_be_turned_off(catalog: Catalog, udp_client: socket.socket) -> None:
    service, mux, port = polled_transfer(catalog, udp_client, busy_poll_us=0)
    udp_client.sendto(build(Ack(1)), port)
    udp_client.sendto(build(Ack(2)), port)
    mux.doRead()  # reads both anyway (one per round), but never spins
    assert received_blocks(udp_client, 2) == [2, 3]
    assert service.counters.busy_poll_hits == service.counters.busy_poll_misses == 0
    service.stopService()


def test_busy_polling_waits_while_more_than_two_transfers_run(
    catalog: Catalog, udp_client: socket.socket
) -> None:
    service, mux, port = polled_transfer(catalog, udp_client, busy_poll_us=50)
    fake_port_69 = service.request_ports[0]
    for other in (("10.0.0.7", 1000), ("10.0.0.8", 1000)):
        fake_port_69.deliver(build(ReadRequest("Alpha.nbi/i386/kernel")), other)
    udp_client.sendto(build(Ack(1)), port)
    mux.doRead()
    assert received_blocks(udp_client, 1) == [2]
    assert service.counters.busy_poll_hits == service.counters.busy_poll_misses == 0
    service.stopService()
