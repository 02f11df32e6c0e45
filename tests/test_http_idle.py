"""When an HTTP connection counts as idle: not while the kernel is still delivering our bytes."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from netboot_services import http
from netboot_services.http import IdleChannel, unsent_bytes


class Queue:
    """What `unsent_bytes` reports, one value per look."""

    def __init__(self, *values: int) -> None:
        self.values = list(values)

    def __call__(self, transport: object) -> int:
        return self.values.pop(0)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def channel_with(clock: Clock, queue: Queue, monkeypatch: pytest.MonkeyPatch) -> IdleChannel:
    monkeypatch.setattr(http, "unsent_bytes", queue)
    channel = IdleChannel()
    channel.callLater = clock.callLater  # type: ignore[assignment]
    channel.timeOut = 30
    channel.makeConnection(StringTransport())
    return channel


def closing(channel: IdleChannel) -> bool:
    transport: StringTransport = channel.transport  # type: ignore[assignment]
    return bool(transport.disconnecting)


def test_a_queue_that_keeps_draining_keeps_the_connection(
    clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    channel = channel_with(clock, Queue(900_000, 500_000, 100_000, 0), monkeypatch)
    for _ in range(3):
        clock.advance(30)
        assert not closing(channel)  # still delivering: the timer started again
    clock.advance(30)
    assert closing(channel)  # everything delivered, then 30 s of silence


def test_a_queue_that_does_not_move_for_a_whole_timeout_is_a_stalled_reader(
    clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    channel = channel_with(clock, Queue(400_000, 400_000), monkeypatch)
    clock.advance(30)
    assert not closing(channel)
    clock.advance(30)
    assert closing(channel)


def test_an_empty_queue_times_out_as_twisted_does(
    clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    channel = channel_with(clock, Queue(0), monkeypatch)
    clock.advance(29.9)
    assert not closing(channel)
    clock.advance(0.1)
    assert closing(channel)


@pytest.fixture
def tcp_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname())
    server, _ = listener.accept()
    listener.close()
    yield server, client
    server.close()
    client.close()


class Handle:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def getHandle(self) -> socket.socket:  # noqa: N802
        return self.sock


def test_unsent_bytes_are_what_the_peer_has_not_taken(
    tcp_pair: tuple[socket.socket, socket.socket],
) -> None:
    server, client = tcp_pair
    assert unsent_bytes(Handle(server)) == 0
    server.setblocking(False)
    sent = 0
    try:
        while True:  # the client never reads: fill its window and our send queue
            sent += server.send(bytes(65536))
    except BlockingIOError:
        pass
    queued = unsent_bytes(Handle(server))
    assert 0 < queued <= sent
    client.recv(1 << 20)
    assert unsent_bytes(Handle(server)) <= queued


def test_unsent_bytes_of_something_that_is_not_a_socket_are_none() -> None:
    assert unsent_bytes(StringTransport()) == 0
