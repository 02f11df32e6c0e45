"""The transfer-port mux with real loopback sockets; the test plays the reactor."""

from __future__ import annotations

import socket

import pytest
from twisted.logger import LogLevel, globalLogPublisher

from netboot_services import udp_mux
from netboot_services.udp_mux import DatagramMux
from tests.fake_udp import FakeUdpReactor

Address = tuple[str, int]


def test_the_reactor_watches_the_mux_only_while_a_port_is_open() -> None:
    reactor = FakeUdpReactor()
    mux = DatagramMux(reactor)
    assert reactor.readers == set()
    first = mux.open("127.0.0.1", lambda *_: None)
    second = mux.open("127.0.0.1", lambda *_: None)
    assert reactor.readers == {mux} and mux.fileno() >= 0
    assert first.number != second.number
    first.close()
    first.close()  # twice is harmless
    assert reactor.readers == {mux}
    second.close()
    assert reactor.readers == set() and len(mux) == 0 and mux.fileno() == -1


def test_every_ready_socket_gets_one_datagram_per_round(udp_client: socket.socket) -> None:
    mux = DatagramMux(FakeUdpReactor())
    order: list[tuple[int, bytes]] = []
    ports = [
        mux.open("127.0.0.1", lambda data, _address, _polled, n=n: order.append((n, data)))
        for n in range(3)
    ]
    for port in ports:
        for text in (b"a", b"b"):
            udp_client.sendto(text, ("127.0.0.1", port.number))
    mux.doRead()
    assert sorted(order[:3]) == [(0, b"a"), (1, b"a"), (2, b"a")]  # nobody waits behind a backlog
    assert sorted(order[3:]) == [(0, b"b"), (1, b"b"), (2, b"b")]
    mux.close()


def test_rounds_are_bounded_so_the_reactor_gets_its_turn(
    udp_client: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(udp_mux, "MAX_ROUNDS", 4)
    mux = DatagramMux(FakeUdpReactor())
    seen: list[bytes] = []
    port = mux.open("127.0.0.1", lambda data, _a, _p: seen.append(data))
    for n in range(6):
        udp_client.sendto(bytes([n]), ("127.0.0.1", port.number))
    mux.doRead()
    assert seen == [bytes([n]) for n in range(4)]
    mux.doRead()
    assert len(seen) == 6
    mux.close()


def test_the_sender_address_and_replies_go_through_the_port(udp_client: socket.socket) -> None:
    mux = DatagramMux(FakeUdpReactor())
    port = mux.open("127.0.0.1", lambda data, address, _p: port.send(data.upper(), address))
    udp_client.sendto(b"ping", ("127.0.0.1", port.number))
    mux.doRead()
    assert udp_client.recvfrom(100) == (b"PING", ("127.0.0.1", port.number))
    mux.close()


def test_a_crashing_handler_is_logged_once_and_the_others_are_served(
    udp_client: socket.socket,
) -> None:
    events: list[dict[str, object]] = []
    globalLogPublisher.addObserver(events.append)
    try:
        mux = DatagramMux(FakeUdpReactor())
        served: list[bytes] = []

        def crash(data: bytes, address: Address, polled: bool) -> None:
            raise RuntimeError("bug")

        bad = mux.open("127.0.0.1", crash)
        good = mux.open("127.0.0.1", lambda data, _a, _p: served.append(data))
        for _ in range(3):
            udp_client.sendto(b"x", ("127.0.0.1", bad.number))
            udp_client.sendto(b"y", ("127.0.0.1", good.number))
        mux.doRead()
        mux.close()
    finally:
        globalLogPublisher.removeObserver(events.append)
    assert served == [b"y"] * 3
    failures = [e for e in events if e.get("log_level") == LogLevel.critical]
    assert len(failures) == 1 and "crashed its handler" in str(failures[0]["log_format"])


def test_an_icmp_unreachable_left_on_a_socket_is_read_and_dropped(
    udp_client: socket.socket,
) -> None:
    mux = DatagramMux(FakeUdpReactor())
    seen: list[bytes] = []
    port = mux.open("127.0.0.1", lambda data, _a, _p: seen.append(data))
    gone = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    gone.bind(("127.0.0.1", 0))
    gone_address = gone.getsockname()
    gone.close()
    port.send(b"to nobody", gone_address)  # loopback answers with port unreachable
    mux.doRead()  # the pending error wakes the socket; reading it clears it
    udp_client.sendto(b"after", ("127.0.0.1", port.number))
    mux.doRead()
    assert seen == [b"after"]
    mux.close()


def test_a_port_closed_by_a_handler_mid_round_is_skipped(udp_client: socket.socket) -> None:
    mux = DatagramMux(FakeUdpReactor())
    seen: list[int] = []
    ports: list[udp_mux.MuxedPort] = []

    def close_all(data: bytes, address: Address, polled: bool) -> None:
        seen.append(len(seen))
        for port in list(ports):
            port.close()

    ports.extend(mux.open("127.0.0.1", close_all) for _ in range(3))
    for port in ports:
        udp_client.sendto(b"x", ("127.0.0.1", port.number))
    mux.doRead()
    assert seen == [0]
    assert len(mux) == 0
