"""Fuzzed DHCPv6 at UDP 547 (issue #20): the IPv6 half of `netboot_lab.fuzzer`.

Run by the fuzzer (`--target6`) after its IPv4 blast, while its prober still
asks for a BSDP list and a TFTP file: the daemon's other services must not
notice. The shapes, in the spirit of the IPv4 generator:

* valid messages of every client type (Solicit with and without Rapid Commit,
  Request, Renew, Rebind, Release, Decline, Confirm, Information-request) from
  DUIDs of every type, PXE, HTTP-boot and iPXE clients among them, built with
  our own codec (`netboot.dhcp6wire`), often wrapped in one or more
  Relay-forwards with an Interface-Id;
* the same, damaged: an option cut short, an option length of 0xFFFF or one
  past the end, a DUID of 0, 1, 2 or 200 bytes or of an unknown type, relays
  nested deeper than the server accepts, a relay without option 9 or with two,
  unknown message types, byte-level mutation (`fuzzer.mutate`);
* random bytes.

Counting is closed-loop as on port 67: a batch of at most `BATCH` datagrams or
`fuzzer.BUFFER_BUDGET` bytes of kernel charge, then an Information-request (from
port 546, where servers answer clients) the daemon answers with a Reply
carrying its transaction id; the next batch waits for that Reply, so the
daemon's socket never overflows and its `dhcp6` counters can be compared
exactly: `datagrams` must equal what was sent, and `malformed` at least what
`parse_message` refuses (the decision core may call more messages malformed,
e.g. a Solicit without a Client Identifier).

Few DUIDs are used by the well-formed messages (`DUID_POOL`), so the daemon's
pool is never drained by the fuzz: a real client must still get an address
afterwards, which the harness checks with dhclient -6.
"""

from __future__ import annotations

import random
import select
import socket
import time
from collections import Counter
from dataclasses import dataclass, field
from ipaddress import IPv6Address
from typing import Any

from netboot.dhcp6wire.duid import Duid, build_duid
from netboot.dhcp6wire.ia import IaAddress, IaNa, build_ia_na
from netboot.dhcp6wire.options import (
    ALL_DHCP_RELAY_AGENTS_AND_SERVERS,
    CLIENT_PORT,
    HARDWARE_TYPE_ETHERNET,
    MAX_RELAY_DEPTH,
    PXE_ENTERPRISE_NUMBER,
    SERVER_PORT,
    DuidType,
    MessageType,
    Option,
)
from netboot.dhcp6wire.packet import (
    Dhcp6Message,
    RawOption,
    RelayMessage,
    build_message,
    build_options,
    parse_message,
)
from netboot.dhcp6wire.values import (
    VendorClass,
    build_client_arch_types,
    build_elapsed_time,
    build_oro,
    build_user_class,
    build_vendor_class,
)
from netboot.errors import MalformedPacket
from netboot_lab.fuzzer import BUFFER_BUDGET, SYNC_ATTEMPTS, SYNC_TIMEOUT, kernel_charge, mutate

BATCH = 200
DUID_POOL = 64
"""Distinct well-formed client identities: bounds the leases the fuzz can take."""
MAX_DATAGRAM = 65507 - 40
CLIENT_TYPES = (
    MessageType.SOLICIT,
    MessageType.REQUEST,
    MessageType.CONFIRM,
    MessageType.RENEW,
    MessageType.REBIND,
    MessageType.RELEASE,
    MessageType.DECLINE,
    MessageType.INFORMATION_REQUEST,
)
ARCHES = (0, 6, 7, 9, 10, 11, 15, 16, 0xFFFF)
VENDOR_TEXTS = (b"PXEClient:Arch:00007:UNDI:003016", b"HTTPClient:Arch:00016", b"PXEClient", b"")
SYNC_DUID = build_duid(Duid(DuidType.LL, bytes.fromhex("02fe00fe0547"), HARDWARE_TYPE_ETHERNET))


class Fuzz6Error(Exception):
    """The daemon stopped answering the syncs: the counts cannot be vouched for."""


def random_duid(rng: random.Random, well_formed: bool) -> bytes:
    """A DUID of any type; from the small pool when `well_formed`, else anything."""
    if well_formed:
        n = rng.randrange(DUID_POOL)
        mac = bytes((0x02, 0xF0, 0x00, 0x00, n >> 8, n & 0xFF))
        kind = n % 4
        if kind == 0:
            return build_duid(Duid(DuidType.LL, mac, HARDWARE_TYPE_ETHERNET))
        if kind == 1:
            return build_duid(Duid(DuidType.LLT, mac, HARDWARE_TYPE_ETHERNET, time=n))
        if kind == 2:
            return build_duid(Duid(DuidType.EN, mac, enterprise_number=343))
        return build_duid(Duid(DuidType.UUID, mac + bytes(10)))
    roll = rng.random()
    if roll < 0.3:
        return rng.randbytes(rng.choice((0, 1, 2, 3, 4)))
    if roll < 0.5:
        return rng.randbytes(rng.randint(129, 300))
    if roll < 0.7:
        return rng.randrange(5, 0x10000).to_bytes(2, "big") + rng.randbytes(rng.randint(0, 20))
    return rng.choice((1, 3)).to_bytes(2, "big") + rng.randbytes(rng.randint(0, 6))


def ia_na(rng: random.Random) -> bytes:
    addresses = tuple(
        IaAddress(IPv6Address(rng.getrandbits(128)), rng.getrandbits(32), rng.getrandbits(32))
        for _ in range(rng.choice((0, 0, 1, 1, 2)))
    )
    return build_ia_na(IaNa(rng.choice((0, 1, rng.getrandbits(32))), 0, 0, addresses))


def client_message(rng: random.Random, well_formed: bool = True) -> bytes:
    """One client message of a random type, with options a boot client sends."""
    msg_type = rng.choice(CLIENT_TYPES)
    options: list[RawOption] = [
        (Option.CLIENTID, random_duid(rng, well_formed)),
        (Option.ELAPSED_TIME, build_elapsed_time(rng.randrange(0x10000))),
    ]
    if msg_type != MessageType.INFORMATION_REQUEST:
        options += [(Option.IA_NA, ia_na(rng)) for _ in range(rng.choice((0, 1, 1, 1, 2)))]
    if msg_type in (MessageType.REQUEST, MessageType.RENEW, MessageType.RELEASE) or (
        msg_type == MessageType.DECLINE
    ):
        options.append((Option.SERVERID, random_duid(rng, well_formed)))
    if msg_type == MessageType.SOLICIT and rng.random() < 0.5:
        options.append((Option.RAPID_COMMIT, b""))
    if rng.random() < 0.5:
        options.append((Option.ORO, build_oro([23, 24, 59, 60])))
    if rng.random() < 0.5:
        options.append((Option.CLIENT_ARCH_TYPE, build_client_arch_types([rng.choice(ARCHES)])))
    if rng.random() < 0.4:
        vendor = VendorClass(PXE_ENTERPRISE_NUMBER, (rng.choice(VENDOR_TEXTS),))
        options.append((Option.VENDOR_CLASS, build_vendor_class(vendor)))
    if rng.random() < 0.2:
        options.append((Option.USER_CLASS, build_user_class([b"iPXE"])))
    if rng.random() < 0.05:
        options.append((rng.randrange(0x10000), rng.randbytes(rng.randint(0, 40))))
    rng.shuffle(options)
    message = Dhcp6Message(msg_type, rng.getrandbits(24), tuple(options))
    return build_message(message)


def relayed(rng: random.Random, inner: bytes, layers: int) -> bytes:
    """`inner` wrapped in `layers` Relay-forwards, each with an Interface-Id."""
    for hop in range(layers):
        relay = RelayMessage(
            MessageType.RELAY_FORW,
            hop_count=min(hop, 255),
            link_address=IPv6Address(rng.getrandbits(128))
            if rng.random() < 0.5
            else IPv6Address(0),
            peer_address=IPv6Address(0xFE80 << 112 | rng.getrandbits(64)),
            options=((Option.RELAY_MSG, inner), (Option.INTERFACE_ID, rng.randbytes(4))),
        )
        inner = build_message(relay)
    return inner


def raw_relay(rng: random.Random, options: bytes) -> bytes:
    """A Relay-forward header over any option bytes (none, two option 9s, garbage)."""
    header = bytes((MessageType.RELAY_FORW, rng.randrange(256))) + rng.randbytes(32)
    return header + options


def damaged(rng: random.Random, datagram: bytes) -> bytes:
    """Structural damage at the option level: lengths that lie, cuts, wrong nesting."""
    buf = bytearray(datagram)
    start = 34 if buf and buf[0] in (12, 13) else 4
    roll = rng.randrange(5)
    if roll == 0 and len(buf) > start + 4:  # an option length of 0xFFFF or just past the end
        length_at = start + 2
        buf[length_at : length_at + 2] = rng.choice((0xFFFF, len(buf) - start - 3)).to_bytes(
            2, "big"
        )
    elif roll == 1:  # cut in an option
        del buf[rng.randint(min(start, len(buf)), len(buf)) :]
    elif roll == 2:  # a trailing option header with no room for its value
        buf += rng.randrange(0x10000).to_bytes(2, "big") + rng.randint(1, 0xFFFF).to_bytes(2, "big")
    elif roll == 3:  # stray bytes after the options
        buf += rng.randbytes(rng.randint(1, 3))
    else:  # a message type no client sends
        if buf:
            buf[0] = rng.choice((0, 2, 7, 10, 14, 35, 255))
    return bytes(buf)


def structured(rng: random.Random) -> tuple[str, bytes]:
    """A datagram of one of the shapes the module docstring lists, and its kind."""
    roll = rng.random()
    if roll < 0.05:
        return "random", rng.randbytes(rng.choice((0, 1, 3, 4, 34, rng.randint(0, 1500))))
    if roll < 0.30:
        return "valid", client_message(rng)
    if roll < 0.45:
        return "relayed", relayed(rng, client_message(rng), rng.randint(1, 3))
    if roll < 0.50:
        depth = rng.choice((MAX_RELAY_DEPTH, MAX_RELAY_DEPTH + 1, 32))
        return "deep-relay", relayed(rng, client_message(rng), depth)
    if roll < 0.55:
        nine = build_options([(Option.RELAY_MSG, client_message(rng))])
        return "relay-no-or-two-9", raw_relay(rng, rng.choice((b"", nine + nine, rng.randbytes(9))))
    if roll < 0.65:
        return "bad-duid", client_message(rng, well_formed=False)
    if roll < 0.75:
        return "huge-length", damaged(rng, client_message(rng))
    if roll < 0.85:
        inner = damaged(rng, client_message(rng))
        return "relayed-damaged", relayed(rng, inner, rng.randint(1, 2))
    return "mutated", mutate(
        rng, rng.choice((client_message(rng), relayed(rng, client_message(rng), 1)))
    )


def refused(datagram: bytes, crashes: list[str]) -> bool:
    """Whether our codec refuses the datagram (the daemon counts it malformed)."""
    try:
        parse_message(datagram)
    except MalformedPacket:
        return True
    except Exception as error:  # noqa: BLE001 - the codec promised MalformedPacket only
        crashes.append(f"{type(error).__name__}: {error}: {datagram[:200].hex()}")
        return True
    return False


@dataclass
class Blaster6:
    """Sends `count` fuzzed datagrams to [target]:547 from `source`, in synced batches."""

    target: IPv6Address
    source: IPv6Address
    seed: int
    count: int
    max_seconds: float
    interface: str = ""
    """This side's interface: client messages go to ff02::1:2 on it, as clients send
    them (a server drops a unicast Solicit or Information-request, RFC 8415 §16);
    relay-forwards go to `target` by unicast, as relays send them. Empty: all unicast."""
    sent: Counter[str] = field(default_factory=Counter)
    refused: int = 0
    syncs: int = 0
    sync_retries: int = 0
    send_errors: int = 0
    oracle_crashes: list[str] = field(default_factory=list)

    def run(self) -> dict[str, Any]:
        rng = random.Random(self.seed ^ 0x547)  # noqa: S311 - repeatable, not secret
        fuzz = self._socket(0)
        # Port 546: a server may answer a direct client there whatever its source port.
        sync = self._socket(CLIENT_PORT)
        started = time.monotonic()
        fuzzed = batch = charge = 0
        stopped_early = False
        try:
            while fuzzed < self.count:
                if time.monotonic() - started > self.max_seconds:
                    stopped_early = True
                    break
                kind, datagram = structured(rng)
                datagram = datagram[:MAX_DATAGRAM]
                if charge + kernel_charge(len(datagram)) > BUFFER_BUDGET or batch >= BATCH:
                    self._sync(sync, fuzz)
                    batch = charge = 0
                try:
                    fuzz.sendto(datagram, self._destination(datagram))
                except OSError:
                    self.send_errors += 1
                    continue
                self.sent[kind] += 1
                self.refused += refused(datagram, self.oracle_crashes)
                fuzzed += 1
                batch += 1
                charge += kernel_charge(len(datagram))
            self._sync(sync, fuzz)
        finally:
            fuzz.close()
            sync.close()
        elapsed = time.monotonic() - started
        return {
            "target": str(self.target),
            "count": fuzzed,
            "stopped_early": stopped_early,
            "seconds": round(elapsed, 3),
            "datagrams_per_second": round(fuzzed / elapsed, 1) if elapsed else None,
            "sent": dict(sorted(self.sent.items())),
            "sync_datagrams": self.syncs,
            "sync_retries": self.sync_retries,
            "send_errors": self.send_errors,
            "refused_by_parse_message": self.refused,
            "oracle_crashes": len(self.oracle_crashes),
            "oracle_crash_samples": self.oracle_crashes[:20],
        }

    def _destination(self, datagram: bytes) -> tuple[str, int, int, int]:
        """Where a datagram goes: a client message multicast on `interface`, a
        relay-forward (or anything without an interface) to the target."""
        if self.interface and datagram[:1] != bytes((MessageType.RELAY_FORW,)):
            index = socket.if_nametoindex(self.interface)
            return (str(ALL_DHCP_RELAY_AGENTS_AND_SERVERS), SERVER_PORT, 0, index)
        return (str(self.target), SERVER_PORT, 0, 0)

    def _socket(self, port: int) -> socket.socket:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        sock.bind((str(self.source), port))
        return sock

    def _sync(self, sync: socket.socket, fuzz: socket.socket) -> None:
        """An Information-request after the batch; return once its Reply is back."""
        for attempt in range(SYNC_ATTEMPTS):
            transaction_id = (self.seed * 7919 + self.syncs * 31 + attempt) & 0xFFFFFF
            request = Dhcp6Message(
                MessageType.INFORMATION_REQUEST,
                transaction_id,
                ((Option.CLIENTID, SYNC_DUID), (Option.ELAPSED_TIME, build_elapsed_time(0))),
            )
            sync.sendto(build_message(request), self._destination(b"\x0b"))
            self.syncs += 1
            self.sync_retries += attempt > 0
            deadline = time.monotonic() + SYNC_TIMEOUT
            while (left := deadline - time.monotonic()) > 0:
                readable, _, _ = select.select([sync, fuzz], [], [], left)
                if fuzz in readable:  # the daemon's answers to the fuzz: read and forget
                    while True:
                        try:
                            fuzz.recv(65536, socket.MSG_DONTWAIT)
                        except BlockingIOError:
                            break
                if sync in readable:
                    reply = sync.recv(65536)
                    if len(reply) >= 4 and int.from_bytes(reply[1:4], "big") == transaction_id:
                        return
        raise Fuzz6Error(f"no Reply to {SYNC_ATTEMPTS} Information-requests at 547")
