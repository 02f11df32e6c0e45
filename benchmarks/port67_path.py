"""Python cost of one full-mode DORA on port 67, without sockets: microseconds per exchange.

Run from the repository root (no root needed) after `./bootstrap.sh test`:

    .venv/bin/python benchmarks/port67_path.py [--clients 1024] [--rounds 4] [--repeat 5]

What is measured
----------------
The daemon's own service tree (`netboot_services.app.make_service`) for the
configuration `dhcp.py` gives `netboot serve` in full mode (BSDP on, its image
sets, the pool from 10.246.1.0, the SQLite lease database in a temporary
directory), on a Twisted `Clock` and with the host facts given rather than read,
so nothing binds a socket. Its port-67 listener (`DhcpService.wakeup`) is fed
wake-ups of `--batch` datagrams (64, `READS_PER_WAKEUP`) as the socket reader
would hand them over: `--clients` synthetic clients, relayed from 10.246.0.2
the way perfdhcp sends them, each doing DISCOVER and, after the wake-up with
every OFFER, REQUEST (SELECTING, naming the server and the offered address).
Every OFFER and ACK is logged at info level through the daemon's own observer
(`logging.format`, text by default) into /dev/null, one write per wake-up
("reactor turn"), as the daemon writes its lines.

One untimed round first makes every client's lease (its later DISCOVERs are
offered the same address, as perfdhcp's repeating clients are); then `--rounds`
timed rounds of every client's DORA. Each round is checked: one OFFER per
DISCOVER, one ACK per REQUEST. Printed per repeat and over all of them: the
best round's CPU microseconds per DORA (DISCOVER wake-up + REQUEST wake-up, the
group commit included), per DISCOVER and per REQUEST. CPU time of this process,
and the best round, because other work on a shared machine only ever adds time
(waiting for a core, a busy cache): the least is the path's own cost. `--profile N`
prints the N functions with the most self time (cProfile) of one more repeat.

This is a measurement of our Python only (no kernel, no perfdhcp): compare
before and after a change in the same minutes; `dhcp.py` says what it is worth
on the wire.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import tempfile
import time
from collections.abc import Callable
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

from twisted.internet.task import Clock
from twisted.logger import globalLogBeginner

from netboot.config import config_from_mapping
from netboot.dhcpwire.options import BOOTREQUEST, MessageType, Option
from netboot.dhcpwire.packet import DhcpPacket, build_packet, parse_packet, peek_message_type
from netboot_lab.factories import make_set
from netboot_services.app import HostFacts, make_service
from netboot_services.dhcp import Arrival, DhcpService, Outgoing, Received
from netboot_services.logging import make_observer

SERVER = "10.246.0.1"
RELAY = "10.246.0.2"
POOL_FIRST = IPv4Address("10.246.1.0")
SUBNET = IPv4Network("10.246.0.0/16")
ARRIVAL = Arrival((RELAY, 67), SERVER, 2)
PARAMETERS = bytes((1, 3, 6, 15, 28, 51, 54, 58, 59))


class TurnReactor:
    """What the log writer asks of a reactor: a turn's `callLater(0)` calls, run by
    `end_turn` after each wake-up, as the daemon's reactor runs them after the read."""

    running = True

    def __init__(self) -> None:
        self.calls: list[tuple[Callable[..., object], tuple[Any, ...]]] = []

    def callLater(self, delay: float, call: Callable[..., object], *args: Any) -> None:  # noqa: N802
        self.calls.append((call, args))

    def addSystemEventTrigger(self, *args: Any) -> None:  # noqa: N802
        """The writer's flush at shutdown: nothing is left after `end_turn`."""

    def end_turn(self) -> None:
        calls, self.calls = self.calls, []
        for call, args in calls:
            call(*args)


class Wire:
    """The socket's send side: keeps every reply of the current wake-up."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def send(self, outgoing: Outgoing, arrival: Arrival) -> bool:
        self.sent.append(outgoing.datagram)
        return True


def mac_of(client: int) -> bytes:
    return bytes((0x02, 0x4E, 0x42)) + client.to_bytes(3, "big")


def request_datagram(client: int, message: int, *options: tuple[int, bytes]) -> bytes:
    packet = DhcpPacket(
        op=BOOTREQUEST,
        xid=0x10000 + client,
        chaddr=mac_of(client) + bytes(10),
        giaddr=RELAY,
        options=(
            (Option.MESSAGE_TYPE, bytes((message,))),
            *options,
            (Option.PARAMETER_REQUEST_LIST, PARAMETERS),
        ),
    )
    return build_packet(packet)


def daemon(work: Path, log_format: str) -> DhcpService:
    """`dhcp.py`'s full-mode daemon, unstarted, logging into /dev/null."""
    root = work / "images"
    make_set(root, "Alpha", Index=1, IsDefault=True)
    make_set(root, "Beta", Index=2)
    make_set(root, "Install", Index=4096, IsInstall=True)
    last = POOL_FIRST + 9_999
    table = {
        "server": {"root": str(root)},
        "dhcp": {
            "mode": "full",
            "pool": f"{POOL_FIRST}-{last}",
            "lease_database": str(work / "leases.sqlite3"),
        },
        "logging": {"level": "info", "format": log_format},
        "admin": {"listen": ""},
    }
    config = config_from_mapping(table, "port67_path", work)
    clock = Clock()
    clock.advance(time.time())
    facts = HostFacts("bench", SUBNET, frozenset({SERVER}))
    dhcp: DhcpService = make_service(config, clock, facts).getServiceNamed("dhcp")  # type: ignore[no-untyped-call]
    return dhcp


class Bench:
    def __init__(self, service: DhcpService, turns: TurnReactor, clients: int, batch: int) -> None:
        self.service = service
        self.turns = turns
        self.clients = clients
        self.batch = batch
        self.discovers = [request_datagram(c, MessageType.DISCOVER) for c in range(clients)]
        self.requests: list[bytes] = []

    def wakeups(self, datagrams: list[bytes]) -> list[list[Received]]:
        step = self.batch
        return [
            [Received(d, ARRIVAL) for d in datagrams[i : i + step]]
            for i in range(0, len(datagrams), step)
        ]

    def run(self, wakeups: list[list[Received]], wire: Wire) -> float:
        """CPU seconds of this process to answer the wake-ups (and end each reactor turn).

        CPU time, not wall time: on a machine shared with other work, the time this
        process waits for a core is not the path's cost, and was most of the noise."""
        wakeup, end_turn = self.service.wakeup, self.turns.end_turn
        started = time.process_time()
        for received in wakeups:
            wakeup(wire, received)  # type: ignore[arg-type]
            end_turn()
        return time.process_time() - started

    def first_round(self) -> None:
        """Every client's lease made, and its REQUEST built for the address offered."""
        wire = Wire()
        self.run(self.wakeups(self.discovers), wire)
        offered = {parse_packet(d).chaddr[:6]: parse_packet(d).yiaddr for d in wire.sent}
        self.requests = [
            request_datagram(
                c,
                MessageType.REQUEST,
                (Option.REQUESTED_ADDRESS, IPv4Address(offered[mac_of(c)]).packed),
                (Option.SERVER_IDENTIFIER, IPv4Address(SERVER).packed),
            )
            for c in range(self.clients)
        ]
        self.round()

    def round(self) -> tuple[float, float]:
        """One DORA of every client: seconds for the DISCOVERs, for the REQUESTs."""
        offers, acks = Wire(), Wire()
        discovering = self.run(self.wakeups(self.discovers), offers)
        requesting = self.run(self.wakeups(self.requests), acks)
        check(offers.sent, MessageType.OFFER, self.clients)
        check(acks.sent, MessageType.ACK, self.clients)
        return discovering, requesting


def check(sent: list[bytes], kind: MessageType, clients: int) -> None:
    kinds = [peek_message_type(d) for d in sent]
    if len(sent) != clients or any(k != kind for k in kinds):
        wrong = sum(k != kind for k in kinds)
        raise SystemExit(f"expected {clients} {kind.name}s, got {len(sent)} replies, {wrong} not")


def measure(
    args: argparse.Namespace, profile: cProfile.Profile | None = None
) -> list[tuple[float, float, float]]:
    """Microseconds per DORA, per DISCOVER, per REQUEST of one fresh daemon, per round."""
    with tempfile.TemporaryDirectory(prefix="port67-path-", dir=args.tmp) as work:
        service = daemon(Path(work), args.log_format)
        bench = Bench(service, TURNS, args.clients, args.batch)
        bench.first_round()
        if profile is not None:
            profile.enable()
        timed = [bench.round() for _ in range(args.rounds)]
        if profile is not None:
            profile.disable()
        service.dispatcher.handlers[-1].lease_server.store.close()  # type: ignore[attr-defined]
    scale = 1e6 / args.clients
    return [((d + r) * scale, d * scale, r * scale) for d, r in timed]


TURNS = TurnReactor()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=4, help="timed DORAs per client")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--batch", type=int, default=64, help="datagrams per wake-up")
    parser.add_argument("--log-format", choices=("text", "json"), default="text")
    parser.add_argument("--tmp", default="/dev/shm" if Path("/dev/shm").is_dir() else None)  # noqa: S108
    parser.add_argument("--profile", type=int, default=0, metavar="N")
    args = parser.parse_args()
    sink = Path(os.devnull).open("w")  # noqa: SIM115 - the log's stream for the whole run
    observer = make_observer(args.log_format, "info", sink, TURNS)
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)
    results = []
    for number in range(1, args.repeat + 1):
        rounds = measure(args)
        results += rounds
        dora, discover, request = min(rounds)
        print(
            f"repeat {number}: {dora:7.1f} us/DORA  (DISCOVER {discover:6.1f} us,"
            f" REQUEST {request:6.1f} us; best round)",
            file=sys.stderr,
        )
    dora, discover, request = min(results)
    print(
        f"best of {len(results)} rounds: {dora:.1f} us per DORA"
        f" ({1e6 / dora:,.0f} DORA/s of Python):"
        f" DISCOVER {discover:.1f} us, REQUEST {request:.1f} us"
        f" [{args.clients} clients x {args.rounds} rounds, {args.batch} per wake-up,"
        f" {args.log_format} log]"
    )
    if args.profile:
        profile = cProfile.Profile()
        measure(args, profile)
        pstats.Stats(profile).sort_stats("tottime").print_stats(args.profile)


if __name__ == "__main__":
    main()
