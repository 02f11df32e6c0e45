"""Fuzz driver: random and mutated datagrams at a running `netboot serve` (issue #10).

Run inside the client namespace of a lab (`netboot_lab.fuzz_harness` does):

    python -m netboot_lab.fuzzer --target 10.253.0.1 --count 50000 --seed 1 --json

It sends `--count` datagrams to UDP 67, 4011, 69 and the port of a live TFTP
transfer (then, with `--target6`, `--count6` DHCPv6 datagrams to UDP 547:
netboot_lab.fuzz6), a bounded number of malformed HTTP requests over TCP, and, all the
while, a well-behaved prober (a child process, see `--probe`) asks for a BSDP
list and a small TFTP file every ~100 ms. It prints what it sent and what the
daemon must have counted; the harness compares that with `/status.json`.

Why it is built this way
------------------------
* Exact expectations. Every datagram is classified before it is sent with the
  daemon's own code: `parse_packet` (a refusal is one `malformed` at the
  dispatcher), the BSDP policy (a BSDP packet it calls malformed is one too;
  the dispatcher counts both), `netboot.tftp.wire.parse` for TFTP (what the
  TFTP service counts as `malformed_packets`, on at most the 8192 bytes
  Twisted's UDP port reads). So the daemon's counters must equal ours; any
  difference is a datagram lost or miscounted, not noise. The same calls also
  run the reply path (policy decisions, proxy offers, `build_packet`) and
  record any exception other than MalformedPacket with the datagram that
  raised it: a crash is reported with its repro, not just as a counter.
* Closed loop, no kernel drops. A batch ends after at most 64 KiB (the
  kernel's charge, estimated) on any daemon socket, with one "sync" request
  the daemon answers on each socket the batch used: a socket is read in
  order, so the answer proves the whole batch was read. The next batch is
  generated and sent while the daemon works on this one, but no third: at
  most two batches per socket are queued, and the receive buffers (~208 KiB)
  never fill. The server namespace's UDP RcvbufErrors, which the harness
  reads, shows that they did not.
* Replies the daemon would send to itself are not sent: a datagram whose reply
  would go to the server's own address, a broadcast, or a relay at the server
  (giaddr), to port 67 or 69, would arrive as one more datagram the fuzzer
  did not send. Such datagrams are skipped and counted (`skipped_self_reply`).
* A live transfer is fuzzed two ways: from its own client (only datagrams the
  TFTP parser refuses, so the transfer survives and every one is counted
  malformed) and from strangers (anything; each is a `stray_packets`). A slow
  reader keeps the transfer alive by acknowledging one block every 0.3 s.
* TFTP read requests the fuzz turns valid start real transfers to the fuzz
  socket; it ends each with an ERROR at once, so they never pile up against
  `max_transfers` and starve the prober.
* scapy's `fuzz()` supplies part of the BOOTP/DHCP and TFTP datagrams, as
  the issue asks; the rest is generated from `random.Random(seed)` in the
  spirit of hypothesis (structures with valid and invalid fields, then
  mutations), because hypothesis cannot run outside a test function.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib
import ipaddress
import json
import random
import select
import socket
import struct
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netboot.bsdp.bindings import BindingTable
from netboot.bsdp.client import inform_list, inform_select, read_answer
from netboot.bsdp.options import VERSION_1_0, BsdpMessage, encode
from netboot.bsdp.options import decode as bsdp_decode
from netboot.bsdp.policy import BsdpPolicy, BsdpSettings
from netboot.bsdp.vendor_class import is_bsdp
from netboot.dhcp.boot import BootSettings
from netboot.dhcp.proxy import Answer, proxy_answer
from netboot.dhcp.pxe import classify
from netboot.dhcpwire.options import BOOTREQUEST, MessageType, Option
from netboot.dhcpwire.outcome_kind import OutcomeKind
from netboot.dhcpwire.packet import ZERO, DhcpPacket, build_packet, parse_packet
from netboot.errors import MalformedPacket
from netboot.http.ranges import Unsatisfiable, parse_ranges
from netboot.nbi.catalog import Catalog
from netboot.port67.arrival import Arrival
from netboot.port67.bsdp import bsdp_outcome
from netboot.tftp import wire

DHCP_PORT = 67
BOOT_SERVER_PORT = 4011
TFTP_PORT = 69
SYNC_PORT = 1000
"""The sync socket: BSDP sync requests ask for their ACK here (a reply port must be < 1024)."""
FUZZ_PORT = 1001
"""The fuzz socket: BSDP templates name it as reply port, so their ACKs come back to it."""
PROBE_PORT = 68
"""The prober's BSDP socket, where a Mac hears its ACKs."""
TWISTED_UDP_READ = 8192
"""Twisted's UDP port reads at most this many bytes of a datagram (maxPacketSize)."""
BUFFER_BUDGET = 64 * 1024
"""Estimated kernel bytes per batch on one daemon socket; two batches stay well inside
the ~208 KiB default receive buffer."""
BATCH_LIMIT = 400
"""Datagrams between two syncs at most, so the slow reader is tended often enough."""
SYNC_TIMEOUT = 2.0
SYNC_ATTEMPTS = 10
SLOW_ACK_INTERVAL = 0.3
"""Seconds between the slow reader's ACKs: well inside the daemon's first 1 s retry."""
SLOW_FILE = "fuzz-slow.bin"
CLIENT_MODEL = "MacBookPro11,1"
PROBE_MAC = bytes.fromhex("0016cbfeed01")
SYNC_MAC = bytes.fromhex("0016cbfeed02")
MAX_UDP = 65507
TIMELINE_STEP = 50_000
CRASH_SAMPLES = 20
LABELS = ("67", "4011", "69", "transfer")

KNOWN_TFTP_FILES = ("undionly.kpxe", "ipxe.efi", "Fuzz.nbi/i386/booter", SLOW_FILE)
INTERESTING_BYTES = (0x00, 0x01, 0x02, 0x7F, 0x80, 0xFE, 0xFF)
VENDOR_CLASSES = (
    b"AAPLBSDPC/i386/MacBookPro11,1",
    b"AAPLBSDPC/i386/iMac18,3",
    b"AAPLBSDPC/ppc/PowerMac3,1",
    b"AAPLBSDPC",
    b"AAPLBSDPC/",
    b"AAPLBSDPC//",
    b"AAPLBSDPC/i386",
    b"AAPLBSDPC/i386/\x00x",
    b"AAPLBSDPC/\xff\xfe/x",
    b"PXEClient:Arch:00000:UNDI:002001",
    b"PXEClient:Arch:00007:UNDI:003016",
    b"PXEClient:Arch:00009:UNDI:003016",
    b"PXEClient:Arch:00011:UNDI:003016",
    b"PXEClient:Arch:99999",
    b"PXEClient:Arch:",
    b"PXEClient",
    b"HTTPClient:Arch:00016:UNDI:003001",
    b"HTTPClient:Arch:00007",
    b"HTTPClient",
    b"MSFT 5.0",
    b"udhcp 1.36",
    b"",
)
TFTP_OPTION_NAMES = ("blksize", "tsize", "timeout", "windowsize", "BLKSIZE", "multicast", "x")
TFTP_OPTION_VALUES = (
    "0",
    "1",
    "7",
    "8",
    "512",
    "1428",
    "1468",
    "65464",
    "65465",
    "-1",
    "255",
    "256",
    "99999999999999999999999",
    "1e3",
    "0x10",
    " 8",
    "abc",
    "",
)
TFTP_MODES = ("octet", "OCTET", "netascii", "NetAscii", "mail", "binary", "", "octet\x01")
TFTP_NAMES = (
    *KNOWN_TFTP_FILES,
    "../../../etc/passwd",
    "/etc/passwd",
    "Fuzz.nbi/../../../../etc/shadow",
    "Fuzz.nbi/i386/",
    "Fuzz.nbi",
    "nope.bin",
    "\\windows\\boot.ini",
    "a" * 300,
    "Fuzz.nbi/i386/" + "b" * 300,
    "x/" * 2100,
    "\u00e9t\u00e9.bin",
    "%00",
)


def now() -> float:
    return time.monotonic()


# -- datagram shapes ------------------------------------------------------------------


def random_bytes(rng: random.Random, low: int, high: int) -> bytes:
    return rng.randbytes(rng.randint(low, high))


def random_length(rng: random.Random) -> int:
    """Mostly small, sometimes MTU-sized, rarely a fragmented giant."""
    roll = rng.random()
    if roll < 0.70:
        return rng.randint(0, 600)
    if roll < 0.97:
        return rng.randint(600, 1500)
    if roll < 0.995:
        return rng.randint(1500, 9000)
    return rng.randint(9000, MAX_UDP)


def mutate(rng: random.Random, data: bytes, rounds: int | None = None) -> bytes:
    """Byte-level damage: flips, interesting bytes, cuts, growth, moved and copied runs."""
    buf = bytearray(data)
    for _ in range(rounds if rounds is not None else rng.choice((1, 1, 1, 2, 2, 3, 4, 8))):
        operation = rng.randrange(8)
        if not buf:
            buf += rng.randbytes(rng.randint(1, 8))
            continue
        at = rng.randrange(len(buf))
        if operation == 0:
            buf[at] ^= 1 << rng.randrange(8)
        elif operation == 1:
            buf[at] = rng.randrange(256)
        elif operation == 2:
            buf[at] = rng.choice(INTERESTING_BYTES)
        elif operation == 3:
            del buf[rng.randrange(len(buf) + 1) :]
        elif operation == 4:
            buf += rng.randbytes(rng.randint(1, 64))
        elif operation == 5:
            buf[at:at] = rng.randbytes(rng.randint(1, 16))
        elif operation == 6:
            del buf[at : at + rng.randint(1, 16)]
        else:
            run = bytes(buf[at : at + rng.randint(1, 32)])
            where = rng.randrange(len(buf) + 1)
            buf[where:where] = run
    return bytes(buf)


def option_offsets(datagram: bytes) -> list[int]:
    """Where each DHCP option's length byte is, walking as far as the options go."""
    offsets = []
    at = 240
    while at + 1 < len(datagram):
        code = datagram[at]
        if code == Option.END:
            break
        if code == Option.PAD:
            at += 1
            continue
        offsets.append(at + 1)
        at += 2 + datagram[at + 1]
    return offsets


def mutate_dhcp(rng: random.Random, datagram: bytes) -> bytes:
    """Damage aimed at the option framing, then sometimes plain byte damage on top."""
    buf = bytearray(datagram)
    choice = rng.randrange(6)
    offsets = option_offsets(datagram)
    if choice == 0 and offsets:  # flip one option's length
        at = rng.choice(offsets)
        buf[at] = rng.choice(
            ((buf[at] + 1) & 0xFF, (buf[at] - 1) & 0xFF, 0, 255, rng.randrange(256))
        )
    elif choice == 1:  # drop END and the padding: options run to the end of the datagram
        end = bytes(buf).rstrip(b"\x00")
        buf = bytearray(end[:-1] if end.endswith(b"\xff") else end)
    elif choice == 2 and offsets:  # cut inside an option
        at = rng.choice(offsets)
        del buf[at + rng.randint(0, 3) :]
    elif choice == 3 and offsets:  # repeat one option
        at = rng.choice(offsets) - 1
        buf[at:at] = buf[at : at + 2 + buf[at + 1]]
    elif choice == 4:  # a message type of another length
        at = bytes(buf).find(b"\x35\x01", 240)
        if at >= 0:
            buf[at + 1] = rng.choice((0, 2, 3))
    if rng.random() < 0.5:
        return mutate(rng, bytes(buf))
    return bytes(buf)


def tlvs(items: list[tuple[int, bytes]], rng: random.Random | None = None) -> bytes:
    """Sub-options as code, length, value; with `rng`, now and then a length that lies."""
    out = bytearray()
    for code, value in items:
        length = len(value)
        if rng is not None and rng.random() < 0.05:
            length = rng.randrange(256)
        out += bytes((code & 0xFF, length & 0xFF)) + value[:255]
    return bytes(out)


def bsdp_body(rng: random.Random, server_ip: str) -> bytes:
    """Option 43 of a BSDP request: every sub-option valid, invalid or missing."""
    items: list[tuple[int, bytes]] = []
    if rng.random() < 0.9:
        items.append((1, bytes((rng.choice((1, 1, 2, 2, 3, 0, 4, 255)),))))
    if rng.random() < 0.9:
        items.append((2, rng.choice((b"\x01\x01", b"\x01\x00", b"\x00\x00", b"\x02\x00", b"\x01"))))
    if rng.random() < 0.4:
        items.append((5, rng.choice((1001, 1001, 68, 1023, 1024, 65535, 0)).to_bytes(2, "big")))
    if rng.random() < 0.4:
        server = rng.choice((socket.inet_aton(server_ip), b"\x0a\xfd\x00\x63", b"\x01\x02\x03"))
        items.append((3, server))
    if rng.random() < 0.3:
        items.append((8, rng.choice((b"\x01\x00\x00\x01", b"\x81\x00\x10\x00", rng.randbytes(4)))))
    if rng.random() < 0.3:
        items.append((12, rng.randbytes(rng.choice((2, 2, 1, 3)))))
    if rng.random() < 0.2:
        items.append((11, rng.randbytes(rng.choice((0, 1, 2, 4, 7)))))
    if rng.random() < 0.1:
        items.append((10, rng.randbytes(rng.choice((0, 0, 1)))))
    if rng.random() < 0.15:
        record = struct.pack("!IB", rng.getrandbits(32), rng.randrange(40)) + rng.randbytes(
            rng.randrange(40)
        )
        items.append((9, record))
    if rng.random() < 0.15:
        items.append((rng.choice((6, 128, 129, 130)), rng.randbytes(rng.randrange(30))))
    if rng.random() < 0.1:
        items.append((rng.randrange(256), rng.randbytes(rng.randrange(30))))
    if rng.random() < 0.2:
        rng.shuffle(items)
    body = tlvs(items, rng)
    if rng.random() < 0.1:
        body += b"\xff" + rng.randbytes(rng.randrange(8))
    return body


def pxe_body(rng: random.Random) -> bytes:
    """Option 43 of a PXE request: a boot item (71), discovery control, or junk."""
    items: list[tuple[int, bytes]] = []
    if rng.random() < 0.6:
        items.append((71, rng.choice((b"\x80\x00\x00\x00", b"\x00\x00\x00\x00", rng.randbytes(3)))))
    if rng.random() < 0.3:
        items.append((6, rng.randbytes(rng.choice((1, 1, 0, 2)))))
    if rng.random() < 0.3:
        items.append((rng.randrange(256), rng.randbytes(rng.randrange(20))))
    return tlvs(items, rng) + (b"\xff" if rng.random() < 0.7 else b"")


def random_address(rng: random.Random, client_ip: str) -> str:
    choice = rng.random()
    if choice < 0.6:
        return ZERO
    if choice < 0.85:
        return client_ip
    if choice < 0.95:
        return "10.253.9.77"
    return socket.inet_ntoa(rng.randbytes(4))


def structured_dhcp(rng: random.Random, server_ip: str, client_ip: str) -> bytes:
    """A BOOTP/DHCP message built field by field, each field valid or not."""
    options: list[tuple[int, bytes]] = []
    if rng.random() < 0.9:
        kind = rng.choice((1, 1, 3, 3, 8, 8, 8, 2, 4, 5, 6, 7, 0, 9, 255))
        options.append((Option.MESSAGE_TYPE, bytes((kind,))))
    vendor_class = rng.choice(VENDOR_CLASSES)
    if rng.random() < 0.1:
        vendor_class = mutate(rng, vendor_class, 1)
    if rng.random() < 0.9:
        options.append((Option.VENDOR_CLASS, vendor_class))
    bsdp = vendor_class.startswith(b"AAPLBSDPC")
    for _ in range(rng.randint(0, 2) if bsdp else rng.choice((0, 0, 1))):
        options.append((Option.VENDOR_SPECIFIC, bsdp_body(rng, server_ip)))
    if not bsdp and rng.random() < 0.3:
        options.append((Option.VENDOR_SPECIFIC, pxe_body(rng)))
    extras: list[tuple[int, Callable[[], bytes]]] = [
        (Option.CLIENT_ARCHITECTURE, lambda: rng.randbytes(rng.choice((2, 2, 2, 0, 1, 3, 4)))),
        (Option.CLIENT_ARCHITECTURE, lambda: rng.choice((0, 6, 7, 9, 10, 11, 16, 19)).to_bytes(2)),
        (Option.CLIENT_NDI, lambda: rng.choice((b"\x01\x02\x01", rng.randbytes(rng.randrange(5))))),
        (Option.CLIENT_UUID, lambda: rng.randbytes(rng.choice((17, 17, 16, 0, 1, 18)))),
        (Option.PARAMETER_REQUEST_LIST, lambda: rng.randbytes(rng.randrange(40))),
        (Option.MAX_MESSAGE_SIZE, lambda: rng.randbytes(rng.choice((2, 2, 1, 3)))),
        (Option.USER_CLASS, lambda: rng.choice((b"iPXE", b"iPXE\x00", b"", rng.randbytes(8)))),
        (175, lambda: tlvs([(19, b"\x01"), (rng.randrange(256), rng.randbytes(3))], rng)),
        (Option.SERVER_IDENTIFIER, lambda: rng.randbytes(rng.choice((4, 4, 0, 3, 5)))),
        (Option.REQUESTED_ADDRESS, lambda: rng.randbytes(rng.choice((4, 4, 2)))),
        (Option.CLIENT_IDENTIFIER, lambda: rng.randbytes(rng.randrange(20))),
        (Option.HOST_NAME, lambda: rng.randbytes(rng.randrange(40))),
        (Option.OVERLOAD, lambda: bytes((rng.randrange(4),))),
        (rng.randrange(1, 255), lambda: rng.randbytes(rng.randrange(256))),
    ]
    for _ in range(rng.randint(0, 6)):
        code, value = rng.choice(extras)
        options.append((code, value()))
    if rng.random() < 0.2:
        rng.shuffle(options)
    packet = DhcpPacket(
        op=rng.choice((1, 1, 1, 1, 1, 1, 2, 0, 3, 255)),
        xid=rng.getrandbits(32),
        chaddr=rng.choice((b"\x00\x16\xcb" + rng.randbytes(3), rng.randbytes(16))),
        htype=rng.choice((1, 1, 1, 1, 6, 0, 255)),
        hlen=rng.choice((6, 6, 6, 6, 0, 16, 17, 255)),
        hops=rng.choice((0, 0, 0, 1, 255)),
        secs=rng.choice((0, 4, 65535)),
        flags=rng.choice((0, 0x8000, 0xFFFF)),
        ciaddr=random_address(rng, client_ip),
        yiaddr=random_address(rng, client_ip),
        siaddr=random_address(rng, client_ip),
        giaddr=random_address(rng, client_ip) if rng.random() < 0.2 else ZERO,
        sname=rng.randbytes(rng.randrange(64)) if rng.random() < 0.1 else b"",
        file=rng.randbytes(rng.randrange(128)) if rng.random() < 0.1 else b"",
        options=tuple(options),
    )
    datagram = build_packet(packet, pad_to=rng.choice((0, 0, 300, 576)))
    if rng.random() < 0.15:
        datagram = mutate_dhcp(rng, datagram)
    return datagram


def dhcp_templates(server_ip: str, client_ip: str) -> list[bytes]:
    """Well-formed requests of every client the daemon answers, to be damaged."""
    mac = bytes.fromhex("0016cb00aa01")

    def request(
        kind: int, options: Sequence[tuple[int, bytes]], ciaddr: str = ZERO, flags: int = 0x8000
    ) -> bytes:
        packet = DhcpPacket(
            op=BOOTREQUEST,
            xid=0x12345678,
            chaddr=mac,
            flags=flags,
            ciaddr=ciaddr,
            options=((Option.MESSAGE_TYPE, bytes((kind,))), *options),
        )
        return build_packet(packet)

    def pxe(arch: int, undi: str) -> list[tuple[int, bytes]]:
        return [
            (Option.VENDOR_CLASS, f"PXEClient:Arch:{arch:05d}:UNDI:{undi}".encode()),
            (Option.CLIENT_ARCHITECTURE, arch.to_bytes(2, "big")),
            (Option.CLIENT_NDI, b"\x01\x02\x01"),
            (Option.CLIENT_UUID, bytes(1) + bytes(range(16))),
            (Option.PARAMETER_REQUEST_LIST, bytes((1, 3, 43, 60, 66, 67, 128, 129))),
        ]

    ipxe = [
        *pxe(7, "003016"),
        (Option.USER_CLASS, b"iPXE"),
        (175, bytes.fromhex("130101")),
    ]
    http_boot = [
        (Option.VENDOR_CLASS, b"HTTPClient:Arch:00016:UNDI:003001"),
        (Option.CLIENT_ARCHITECTURE, (16).to_bytes(2, "big")),
        (Option.CLIENT_UUID, bytes(17)),
    ]
    boot_item = (Option.VENDOR_SPECIFIC, bytes.fromhex("4704800000 00ff".replace(" ", "")))
    bsdp_v10 = BsdpMessage(message_type=1, version=VERSION_1_0, netboot_1_0_firmware=True)
    bsdp_v10_options = (
        (Option.MESSAGE_TYPE, bytes((MessageType.INFORM,))),
        (Option.VENDOR_CLASS, b"AAPLBSDPC/ppc/PowerMac3,1"),
        (Option.VENDOR_SPECIFIC, encode(bsdp_v10)),
    )
    return [
        request(MessageType.DISCOVER, [(Option.PARAMETER_REQUEST_LIST, b"\x01\x03\x06")]),
        request(MessageType.REQUEST, [(Option.REQUESTED_ADDRESS, socket.inet_aton(client_ip))]),
        request(MessageType.DISCOVER, pxe(0, "002001")),
        request(MessageType.DISCOVER, pxe(7, "003016")),
        request(MessageType.DISCOVER, pxe(11, "003016")),
        request(MessageType.DISCOVER, ipxe),
        request(MessageType.DISCOVER, http_boot),
        request(MessageType.REQUEST, [*pxe(7, "003016"), boot_item], ciaddr=client_ip, flags=0),
        request(MessageType.REQUEST, [*pxe(0, "002001"), boot_item], ciaddr=client_ip, flags=0),
        request(MessageType.INFORM, [(Option.PARAMETER_REQUEST_LIST, b"\x01\x03")], client_ip),
        build_packet(inform_list(1, mac, client_ip, "i386", CLIENT_MODEL, FUZZ_PORT)),
        build_packet(inform_list(2, mac, client_ip, "i386", "iMac18,3", FUZZ_PORT, (0x0100,))),
        build_packet(inform_select(3, mac, client_ip, "i386", CLIENT_MODEL, server_ip, 0x01000001)),
        build_packet(inform_select(4, mac, client_ip, "i386", CLIENT_MODEL, "10.253.9.9", 1)),
        build_packet(
            DhcpPacket(
                op=BOOTREQUEST, xid=5, chaddr=mac, ciaddr=client_ip, options=bsdp_v10_options
            )
        ),
    ]


def tftp_options(rng: random.Random) -> bytes:
    out = bytearray()
    for _ in range(rng.choice((0, 0, 1, 2, 3, 5))):
        name = rng.choice(TFTP_OPTION_NAMES)
        value = rng.choice(TFTP_OPTION_VALUES)
        out += name.encode() + b"\x00" + value.encode() + b"\x00"
    return bytes(out)


def structured_tftp(rng: random.Random) -> bytes:
    """A TFTP packet built field by field: opcode, names, modes, options, blocks."""
    opcode = rng.choice((1, 1, 1, 1, 2, 3, 4, 4, 5, 5, 6, 0, 7, 256, 0xFFFF))
    head = opcode.to_bytes(2, "big")
    if opcode in (1, 2):
        name = rng.choice(TFTP_NAMES).encode()
        if rng.random() < 0.1:
            name = rng.randbytes(rng.randrange(40))
        mode = rng.choice(TFTP_MODES).encode()
        body = name + b"\x00" + mode + b"\x00" + tftp_options(rng)
        if rng.random() < 0.1:
            body = body.rstrip(b"\x00")
    elif opcode == 3:
        body = rng.getrandbits(16).to_bytes(2, "big") + random_bytes(rng, 0, 1500)
    elif opcode == 4:
        body = rng.choice((0, 1, 2, 0xFFFF)).to_bytes(2, "big") + rng.choice((b"", b"", b"\x00"))
    elif opcode == 5:
        body = rng.choice((0, 1, 5, 8, 99)).to_bytes(2, "big") + random_bytes(rng, 0, 40)
        body += b"\x00" if rng.random() < 0.7 else b""
    elif opcode == 6:
        body = tftp_options(rng)
    else:
        body = random_bytes(rng, 0, 60)
    datagram = head + body
    if rng.random() < 0.1:
        datagram = mutate(rng, datagram)
    return datagram


def tftp_templates() -> list[bytes]:
    rrq = wire.build(wire.ReadRequest("undionly.kpxe"))
    return [
        rrq,
        wire.build(wire.ReadRequest("Fuzz.nbi/i386/booter", options={"blksize": "1468"})),
        wire.build(wire.ReadRequest(SLOW_FILE, options={"tsize": "0", "windowsize": "8"})),
        wire.build(wire.WriteRequest("upload.bin")),
        wire.build(wire.Ack(1)),
        wire.build(wire.Error(0, "client gave up")),
        wire.build(wire.Data(1, b"x" * 512)),
        wire.build(wire.OptionAck({"blksize": "512"})),
    ]


class ScapySource:
    """scapy's `fuzz()` on BOOTP()/DHCP() and TFTP layers, seeded from our generator.

    scapy draws from the global `random` module, so it is reseeded from `rng`
    before each packet: the same seed gives the same datagrams. scapy is
    imported on first use (it takes a second or two).
    """

    def __init__(self, server_ip: str) -> None:
        self.server_ip = server_ip
        self._scapy: dict[str, Any] | None = None

    def _load(self) -> dict[str, Any]:
        if self._scapy is None:
            dhcp = importlib.import_module("scapy.layers.dhcp")
            tftp = importlib.import_module("scapy.layers.tftp")
            layers = ("TFTP", "TFTP_ACK", "TFTP_DATA", "TFTP_ERROR", "TFTP_OACK", "TFTP_RRQ",
                      "TFTP_WRQ", "TFTP_Options")  # fmt: skip
            self._scapy = {
                "bsdp": importlib.import_module("netboot.bsdp.scapy_layer"),
                "BOOTP": dhcp.BOOTP,
                "DHCP": dhcp.DHCP,
                "fuzz": importlib.import_module("scapy.packet").fuzz,
                **{name: getattr(tftp, name) for name in layers},
            }
        return self._scapy

    def dhcp(self, rng: random.Random) -> bytes:
        s = self._load()
        random.seed(rng.getrandbits(64))
        cookie = b"c\x82Sc"
        fixed = [
            ("message-type", rng.choice(("discover", "request", "inform"))),
            ("vendor_class_id", rng.choice(VENDOR_CLASSES)),
            *self.bsdp_options(rng),
            "end",
        ]
        shape = rng.randrange(3)
        if shape == 0:
            packet = s["fuzz"](s["BOOTP"](op=1, options=cookie)) / s["DHCP"](options=fixed)
        elif shape == 1:
            packet = s["BOOTP"](op=1, chaddr=rng.randbytes(6), options=cookie) / s["fuzz"](
                s["DHCP"]()
            )
        else:
            packet = s["fuzz"](s["BOOTP"](options=cookie) / s["DHCP"]())
        return bytes(packet)[:MAX_UDP]

    def bsdp_options(self, rng: random.Random) -> list[tuple[str, bytes]]:
        """Option 43 for a BSDP request: our generator's, or scapy's BSDP layer fuzzed.

        The layer's way: a LIST or SELECT made of sub-option packets, each
        passed through `fuzz()` now and then (random values and lengths that
        lie), cut into option-43 instances as a receiver must join them.
        """
        if rng.random() < 0.5:
            return [("vendor_specific", bsdp_body(rng, self.server_ip))]
        s = self._load()
        layer, fuzz = s["bsdp"], s["fuzz"]
        options = [
            layer.BSDPMessageType(msg_type=rng.choice((1, 2))),
            layer.BSDPVersion(),
            layer.BSDPReplyPort(reply_port=FUZZ_PORT),
            layer.BSDPServerIdentifier(server_id=self.server_ip),
            layer.BSDPSelectedImage(**layer.image_id_parts(rng.getrandbits(32))),
            layer.BSDPMaxMessageSize(max_size=rng.choice((576, 1500, 8192))),
            layer.BSDPAttributesFilter(filters=[0x0100, 0x8100][: rng.randint(1, 2)]),
        ]
        chosen = [fuzz(option) if rng.random() < 0.3 else option for option in options]
        message = layer.BSDP(options=[o for o in chosen if rng.random() < 0.8])
        return list(layer.vendor_specific_options(message))

    def tftp(self, rng: random.Random) -> bytes:
        s = self._load()
        random.seed(rng.getrandbits(64))
        layer = rng.choice(
            (
                lambda: s["TFTP_RRQ"]() / s["TFTP_Options"](),
                lambda: s["TFTP_RRQ"](),
                lambda: s["TFTP_WRQ"](),
                lambda: s["TFTP_DATA"](),
                lambda: s["TFTP_ACK"](),
                lambda: s["TFTP_ERROR"](),
                lambda: s["TFTP_OACK"]() / s["TFTP_Options"](),
            )
        )()
        return bytes(s["fuzz"](s["TFTP"]() / layer))[:TWISTED_UDP_READ]


# -- what the daemon must make of each datagram -----------------------------------------


@dataclass
class Oracle:
    """The daemon's own decisions, run here on every datagram before it is sent."""

    server_ip: str
    client_ip: str
    crashes: list[dict[str, str]] = field(default_factory=list)
    crash_count: int = 0

    def __post_init__(self) -> None:
        self.policy = BsdpPolicy(BsdpSettings(server_name="fuzz"), BindingTable())
        self.catalog = Catalog(root=Path("/nonexistent"))
        self.boot = BootSettings(boot_files={"bios": "undionly.kpxe", "efi-x64": "ipxe.efi"})
        network = ipaddress.IPv4Network(f"{self.server_ip}/24", strict=False)
        self.self_addresses = {
            self.server_ip,
            str(network.broadcast_address),
            str(network.network_address),
            "255.255.255.255",
        }

    def _crash(self, where: str, error: BaseException, datagram: bytes) -> None:
        self.crash_count += 1
        if len(self.crashes) < CRASH_SAMPLES:
            self.crashes.append(
                {"where": where, "error": f"{type(error).__name__}: {error}", "hex": datagram.hex()}
            )

    def _is_self(self, address: str) -> bool:
        return address in self.self_addresses or address.startswith("127.")

    def dhcp(self, datagram: bytes, port: int) -> str:
        """`refused`, `bsdp-malformed`, `self-reply` (do not send) or `ok`."""
        try:
            packet = parse_packet(datagram)
        except MalformedPacket:
            return "refused"
        except Exception as error:  # noqa: BLE001 - the codec promised MalformedPacket only
            self._crash("parse_packet", error, datagram)
            return "refused"
        if packet.op == BOOTREQUEST and self._may_reply_to_self(packet):
            return "self-reply"
        try:
            return self._handlers(packet, port)
        except Exception as error:  # noqa: BLE001 - a crash is a finding, with its repro
            self._crash("dhcp handlers", error, datagram)
            return "ok"

    def _may_reply_to_self(self, packet: DhcpPacket) -> bool:
        if self._is_self(packet.giaddr) or self._is_self(packet.ciaddr):
            return True
        if not is_bsdp(packet.option(Option.VENDOR_CLASS)):
            return False  # PXE replies go to 68 or to the source, never back to 67 or 69
        try:
            reply_port = bsdp_decode(b"".join(packet.all_of(Option.VENDOR_SPECIFIC))).reply_port
        except MalformedPacket:
            return False
        return packet.ciaddr == ZERO and reply_port in (DHCP_PORT, TFTP_PORT)

    def _handlers(self, packet: DhcpPacket, port: int) -> str:
        """What BsdpHandler, then PxeHandler (proxy mode), decide; replies encoded too.

        The BSDP side is the daemon's own port-67 body (`bsdp_outcome`), so the
        oracle follows it for every message type it handles (INFORM, and the
        fast path's DISCOVER) and hands on what it leaves to the PXE handler.
        """
        arrival = Arrival((self.client_ip, FUZZ_PORT), self.server_ip, 0, port == BOOT_SERVER_PORT)
        bsdp = bsdp_outcome(self.policy, packet, arrival, self.catalog, 0.0, True)
        if bsdp is not None:
            for reply, _destination in bsdp.replies:
                build_packet(reply)
            return "bsdp-malformed" if bsdp.kind is OutcomeKind.MALFORMED else "ok"
        if packet.op != BOOTREQUEST:
            return "ok"
        client = classify(packet)
        if client.wants_boot:
            source = (self.client_ip, FUZZ_PORT)
            outcome = proxy_answer(packet, client, self.server_ip, port, source, self.boot)
            if isinstance(outcome, Answer):
                build_packet(outcome.packet)
        return "ok"

    def tftp(self, datagram: bytes) -> str:
        """`refused`, or the kind of packet the TFTP service sees (`request`, `error`, ...)."""
        try:
            packet = wire.parse(datagram[:TWISTED_UDP_READ])
        except MalformedPacket:
            return "refused"
        except Exception as error:  # noqa: BLE001 - the codec promised MalformedPacket only
            self._crash("tftp parse", error, datagram)
            return "refused"
        if isinstance(packet, wire.ReadRequest):
            return "read-request"
        if isinstance(packet, wire.WriteRequest):
            return "write-request"
        if isinstance(packet, wire.Error):
            return "error"
        return "other"


# -- the blaster ------------------------------------------------------------------------


def kernel_charge(size: int) -> int:
    """A rough upper bound of what the kernel charges a socket for one datagram.

    Each 1500-byte fragment costs a buffer of about 2.3 KiB on a veth; small
    datagrams about 1 KiB of overhead.
    """
    fragments = max(1, -(-size // 1480))
    return fragments * 1280 + size * 2


def udp_socket(address: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
    sock.bind((address, port))
    return sock


def local_address(target: str) -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect((target, DHCP_PORT))
        return str(probe.getsockname()[0])


class FuzzError(Exception):
    """The daemon stopped answering syncs: the run cannot vouch for its counts."""


@dataclass
class SlowReader:
    """A real transfer kept alive at one block per SLOW_ACK_INTERVAL: its port gets fuzzed."""

    target: str
    sock: socket.socket
    port: int | None = None
    block: int = 0
    last_ack: float = 0.0
    restarts: int = 0
    lost: int = 0
    """Transfers that ended under the fuzz (an ERROR from it, or silence)."""
    last_heard: float = 0.0

    def start(self) -> None:
        self.port, self.block = None, 0
        self.sock.sendto(wire.build(wire.ReadRequest(SLOW_FILE)), (self.target, TFTP_PORT))
        deadline = now() + 10
        while self.port is None:
            if now() > deadline:
                raise FuzzError("the slow reader's transfer did not start")
            self.tend(0.2)
        self.restarts += 1

    def tend(self, wait: float = 0.0) -> None:
        """Read what the transfer sent; acknowledge the newest block now and then."""
        while True:
            readable, _, _ = select.select([self.sock], [], [], wait)
            if not readable:
                break
            wait = 0.0
            datagram, (host, port) = self.sock.recvfrom(65536)
            if host != self.target or len(datagram) < 4:
                continue
            opcode, block = struct.unpack_from("!HH", datagram)
            if self.port is None and opcode == 3 and port != TFTP_PORT:
                self.port = port
            if port != self.port:
                continue
            self.last_heard = now()
            if opcode == 3:
                self.block = block
            elif opcode == 5:
                self.lost += 1
                self.port = None
        if self.port is not None and self.block and now() - self.last_ack >= SLOW_ACK_INTERVAL:
            self.sock.sendto(wire.build(wire.Ack(self.block)), (self.target, self.port))
            self.last_ack = now()
        if self.port is not None and self.last_heard and now() - self.last_heard > 20:
            self.lost += 1
            self.port = None


@dataclass
class Tally:
    sent: dict[str, Counter[str]] = field(default_factory=lambda: {k: Counter() for k in LABELS})
    dhcp_refused: int = 0
    dhcp_bsdp_malformed: int = 0
    skipped_self_reply: int = 0
    tftp_refused_69: int = 0
    tftp_refused_peer: int = 0
    tftp_stray_min: int = 0
    tftp_at_69: Counter[str] = field(default_factory=Counter)
    syncs: Counter[str] = field(default_factory=Counter)
    sync_retries: int = 0
    send_errors: int = 0
    accidental_transfers_ended: int = 0


@dataclass
class Sync:
    """A sync request awaiting its answer."""

    label: str
    generation: int
    token: int
    """The xid (DHCP) or the port (TFTP) its answer carries."""
    sent_at: float
    attempts: int = 1


class Blaster:
    """Generates, classifies, sends and syncs; single-threaded so the counts are exact."""

    def __init__(self, target: str, seed: int, count: int, max_seconds: float) -> None:
        self.target = target
        self.count = count
        self.max_seconds = max_seconds
        self.rng = random.Random(seed)
        self.client_ip = local_address(target)
        self.oracle = Oracle(target, self.client_ip)
        self.scapy = ScapySource(target)
        self.templates = dhcp_templates(target, self.client_ip)
        self.tftp_templates = tftp_templates()
        self.fuzz = udp_socket(self.client_ip, FUZZ_PORT)
        self.sync = udp_socket(self.client_ip, SYNC_PORT)
        self.tftp_syncs = (udp_socket(self.client_ip, 0), udp_socket(self.client_ip, 0))
        self.slow = SlowReader(target, udp_socket(self.client_ip, 0))
        self.tally = Tally()
        self.inflight: Counter[str] = Counter()
        self.batch = 0
        self.generation = 0
        self.pending: list[Sync] = []
        self.fuzzed = 0
        self.ended_ports: set[int] = set()
        self.sync_xid = random.Random(seed ^ 0x5EED).getrandbits(31)

    # -- generation ------------------------------------------------------------------

    def dhcp_datagram(self) -> tuple[str, bytes]:
        rng = self.rng
        roll = rng.random()
        if roll < 0.10:
            return "random", rng.randbytes(random_length(rng))
        if roll < 0.18:
            header = rng.randbytes(236) + b"c\x82Sc"
            return "random-after-cookie", header + rng.randbytes(random_length(rng) // 2)
        if roll < 0.62:
            return "mutated", mutate_dhcp(rng, rng.choice(self.templates))
        if roll < 0.97:
            return "structured", structured_dhcp(rng, self.target, self.client_ip)
        return "scapy", self.scapy.dhcp(rng)

    def tftp_datagram(self) -> tuple[str, bytes]:
        rng = self.rng
        roll = rng.random()
        if roll < 0.12:
            return "random", rng.randbytes(min(random_length(rng), TWISTED_UDP_READ + 100))
        if roll < 0.55:
            return "mutated", mutate(rng, rng.choice(self.tftp_templates))
        if roll < 0.97:
            return "structured", structured_tftp(rng)
        return "scapy", self.scapy.tftp(rng)

    # -- sending ---------------------------------------------------------------------

    def send(self, label: str, sock: socket.socket, datagram: bytes, port: int) -> bool:
        charge = kernel_charge(len(datagram))
        giant = charge > BUFFER_BUDGET // 2
        if giant:
            self.flush(final=True)  # alone in the socket's buffer
        elif self.inflight[label] + charge > BUFFER_BUDGET:
            self.flush()
        try:
            sock.sendto(datagram, (self.target, port))
        except OSError:
            self.tally.send_errors += 1
            return False
        self.inflight[label] += charge
        self.batch += 1
        if giant:
            self.flush(final=True)
        elif self.batch >= BATCH_LIMIT:
            self.flush()
        return True

    def step(self) -> None:
        """One fuzz datagram to one of the four targets."""
        rng, tally = self.rng, self.tally
        roll = rng.random()
        if roll < 0.55:
            port = DHCP_PORT if roll < 0.40 else BOOT_SERVER_PORT
            label = str(port)
            for _ in range(20):
                kind, datagram = self.dhcp_datagram()
                verdict = self.oracle.dhcp(datagram, port)
                if verdict != "self-reply":
                    break
                tally.skipped_self_reply += 1
            else:
                return
            if self.send(label, self.fuzz, datagram, port):
                tally.sent[label][kind] += 1
                tally.dhcp_refused += verdict == "refused"
                tally.dhcp_bsdp_malformed += verdict == "bsdp-malformed"
                self.fuzzed += 1
            return
        if roll < 0.85 or self.slow.port is None:
            kind, datagram = self.tftp_datagram()
            verdict = self.oracle.tftp(datagram)
            if self.send("69", self.fuzz, datagram, TFTP_PORT):
                tally.sent["69"][kind] += 1
                tally.tftp_at_69[verdict] += 1
                tally.tftp_refused_69 += verdict == "refused"
                tally.tftp_stray_min += verdict == "other"
                self.fuzzed += 1
            return
        port = self.slow.port
        if rng.random() < 0.5:  # from the transfer's own client: only what the parser refuses
            for _ in range(20):
                kind, datagram = self.tftp_datagram()
                datagram = datagram[:TWISTED_UDP_READ]
                if self.oracle.tftp(datagram) == "refused":
                    break
            else:
                kind, datagram = "random", rng.randbytes(rng.randrange(4))
            if self.send("transfer", self.slow.sock, datagram, port):
                tally.sent["transfer"][f"peer-{kind}"] += 1
                tally.tftp_refused_peer += 1
                self.fuzzed += 1
        else:  # from a stranger: anything, each one a stray
            kind, datagram = self.tftp_datagram()
            if self.send("transfer", self.fuzz, datagram[:TWISTED_UDP_READ], port):
                tally.sent["transfer"][f"stranger-{kind}"] += 1
                tally.tftp_stray_min += 1
                self.fuzzed += 1

    def flush(self, final: bool = False) -> None:
        """Sync this batch; return once the batch before it (with `final`, this one) is read.

        Two batches in flight keep the daemon busy while the next one is
        generated, and hold at most two budgets of kernel memory per socket.
        """
        labels = [label for label in LABELS if self.inflight[label]]
        self.inflight.clear()
        self.batch = 0
        self.generation += 1
        for label in labels:
            token = self._send_sync(label, self.generation)
            self.pending.append(Sync(label, self.generation, token, now()))
        settled_below = self.generation + 1 if final else self.generation
        while any(sync.generation < settled_below for sync in self.pending):
            self._drain_fuzz_socket()
            self.slow.tend()
            readable, _, _ = select.select([self.sync, *self.tftp_syncs], [], [], 0.05)
            for sock in readable:
                self._read_sync(sock)
            for sync in self.pending:
                if now() - sync.sent_at < SYNC_TIMEOUT:
                    continue
                if sync.attempts >= SYNC_ATTEMPTS:
                    raise FuzzError(f"no answer to {sync.attempts} syncs on {sync.label}")
                self.tally.sync_retries += 1
                sync.token = self._send_sync(sync.label, sync.generation)
                sync.sent_at, sync.attempts = now(), sync.attempts + 1
        self._drain_fuzz_socket()
        self.slow.tend()

    def _send_sync(self, label: str, generation: int) -> int:
        """A request the daemon answers, sent after the batch to the same socket."""
        self.tally.syncs[label] += 1
        if label in ("67", "4011"):
            self.sync_xid = (self.sync_xid + 1) & 0x7FFFFFFF
            packet = inform_list(
                self.sync_xid, SYNC_MAC, self.client_ip, "i386", CLIENT_MODEL, SYNC_PORT
            )
            self.sync.sendto(build_packet(packet), (self.target, int(label)))
            return self.sync_xid
        # A stray ACK gets ERROR 5 (unknown transfer ID) from the port it was sent to; the
        # two generations in flight send from two sockets, to tell their answers apart.
        port = TFTP_PORT if label == "69" else self.slow.port
        if port is None:
            raise FuzzError("the fuzzed transfer is gone")
        self.tftp_syncs[generation % 2].sendto(wire.build(wire.Ack(0)), (self.target, port))
        self.tally.tftp_stray_min += 1
        return port

    def _read_sync(self, sock: socket.socket) -> None:
        while True:
            try:
                datagram, (host, port) = sock.recvfrom(65536, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return
            if host != self.target:
                continue
            if sock is self.sync:
                try:
                    token = parse_packet(datagram).xid
                except MalformedPacket:
                    continue
                parity = None
                label = str(port)
            elif datagram[:4] == b"\x00\x05\x00\x05":
                token, parity = port, self.tftp_syncs.index(sock)
                label = "69" if port == TFTP_PORT else "transfer"
            else:
                continue
            for sync in self.pending:  # oldest first
                if (sync.label, sync.token) == (label, token) and (
                    parity is None or sync.generation % 2 == parity
                ):
                    self.pending.remove(sync)
                    break

    def _drain_fuzz_socket(self) -> None:
        """End at once every transfer a fuzzed read request started (DATA or OACK to us)."""
        known = {DHCP_PORT, BOOT_SERVER_PORT, TFTP_PORT, self.slow.port}
        while True:
            try:
                datagram, (host, port) = self.fuzz.recvfrom(65536, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return
            if (
                host != self.target
                or port in known
                or datagram[:2] not in (b"\x00\x03", b"\x00\x06")
            ):
                continue
            if port in self.ended_ports:
                continue
            if len(self.ended_ports) > 10000:
                self.ended_ports.clear()
            self.ended_ports.add(port)
            self.tally.accidental_transfers_ended += 1
            self.fuzz.sendto(wire.build(wire.Error(0, "fuzzer: not reading")), (host, port))

    def run(self) -> dict[str, Any]:
        started = now()
        self.slow.start()
        stopped_early = False
        timeline: list[tuple[int, float]] = []
        """(datagrams, seconds) every TIMELINE_STEP datagrams: does the rate hold?"""
        while self.fuzzed < self.count:
            if self.fuzzed % 256 == 0 and now() - started > self.max_seconds:
                stopped_early = True
                break
            if (
                self.fuzzed
                and self.fuzzed % TIMELINE_STEP == 0
                and (not timeline or timeline[-1][0] != self.fuzzed)
            ):
                timeline.append((self.fuzzed, round(now() - started, 2)))
            if self.slow.port is None:
                self.flush(final=True)
                self.slow.start()
            self.step()
        self.flush(final=True)
        elapsed = now() - started
        tally = self.tally
        dhcp_sent = sum(tally.sent["67"].values()) + sum(tally.sent["4011"].values())
        return {
            "target": self.target,
            "client": self.client_ip,
            "count": self.fuzzed,
            "stopped_early": stopped_early,
            "seconds": round(elapsed, 3),
            "datagrams_per_second": round(self.fuzzed / elapsed, 1) if elapsed else None,
            "timeline": timeline,
            "sent": {label: dict(sorted(c.items())) for label, c in tally.sent.items()},
            "syncs": dict(tally.syncs),
            "sync_retries": tally.sync_retries,
            "send_errors": tally.send_errors,
            "skipped_self_reply": tally.skipped_self_reply,
            "dhcp": {
                "fuzz_datagrams": dhcp_sent,
                "sync_datagrams": tally.syncs["67"] + tally.syncs["4011"],
                "refused_by_parse_packet": tally.dhcp_refused,
                "malformed_by_bsdp_policy": tally.dhcp_bsdp_malformed,
                "expected_malformed": tally.dhcp_refused + tally.dhcp_bsdp_malformed,
            },
            "tftp": {
                "refused_at_69": tally.tftp_refused_69,
                "refused_from_peer_at_transfer_port": tally.tftp_refused_peer,
                "expected_malformed": tally.tftp_refused_69 + tally.tftp_refused_peer,
                "expected_stray_min": tally.tftp_stray_min,
                "at_69_by_kind": dict(tally.tftp_at_69),
                "fuzzed_transfer_restarts": self.slow.restarts - 1,
                "fuzzed_transfer_lost": self.slow.lost,
                "fuzzed_transfer_block": self.slow.block,
                "accidental_transfers_ended": tally.accidental_transfers_ended,
            },
            "oracle_crashes": self.oracle.crash_count,
            "oracle_crash_samples": self.oracle.crashes,
        }


# -- the well-behaved prober ------------------------------------------------------------


@dataclass
class ProbeStats:
    asked: int = 0
    answered: int = 0
    first_try: int = 0
    retries: int = 0
    failed: int = 0
    latencies: list[float] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        ordered = sorted(self.latencies)

        def at(fraction: float) -> float | None:
            if not ordered:
                return None
            return round(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000, 2)

        return {
            "asked": self.asked,
            "answered": self.answered,
            "answered_first_try": self.first_try,
            "retries": self.retries,
            "failed": self.failed,
            "latency_ms_p50": at(0.5),
            "latency_ms_p99": at(0.99),
            "latency_ms_max": at(1.0),
        }


class Prober:
    """A BSDP client and a TFTP client that behave, each asking every `interval` seconds.

    A lost answer is retried (the same xid, or the last ACK again), as real
    clients do; a probe fails only if `ATTEMPTS` tries all go unanswered.
    """

    ATTEMPTS = 8
    WAIT = 1.0

    def __init__(self, target: str, tftp_file: str, tftp_sha256: str, interval: float) -> None:
        self.target = target
        self.client_ip = local_address(target)
        self.tftp_file = tftp_file
        self.tftp_sha256 = tftp_sha256
        self.interval = interval
        self.rng = random.Random()
        self.bsdp_sock = udp_socket(self.client_ip, PROBE_PORT)
        self.bsdp = ProbeStats()
        self.tftp = ProbeStats()
        self.datagrams_to_67 = 0
        self.problems: list[str] = []

    def probe_bsdp(self) -> None:
        self.bsdp.asked += 1
        xid = self.rng.getrandbits(31)
        request = build_packet(inform_list(xid, PROBE_MAC, self.client_ip, "i386", CLIENT_MODEL))
        started = now()
        for attempt in range(self.ATTEMPTS):
            self.bsdp_sock.sendto(request, (self.target, DHCP_PORT))
            self.datagrams_to_67 += 1
            deadline = now() + self.WAIT
            while (left := deadline - now()) > 0:
                readable, _, _ = select.select([self.bsdp_sock], [], [], left)
                if not readable:
                    break
                datagram, _ = self.bsdp_sock.recvfrom(65536)
                try:
                    answer = read_answer(parse_packet(datagram), xid)
                except MalformedPacket:
                    continue  # a fuzzed request's ACK can come here too
                if answer is None:
                    continue
                if not answer.message.images:
                    self.problems.append(f"BSDP ACK without images: {answer.message}")
                self.bsdp.answered += 1
                self.bsdp.first_try += attempt == 0
                self.bsdp.latencies.append(now() - started)
                return
            self.bsdp.retries += 1
        self.bsdp.failed += 1

    def probe_tftp(self) -> None:
        self.tftp.asked += 1
        started = now()
        with udp_socket(self.client_ip, 0) as sock:
            for attempt in range(self.ATTEMPTS):
                content = self._tftp_get(sock)
                if content is not None:
                    digest = hashlib.sha256(content).hexdigest()
                    if digest != self.tftp_sha256:
                        self.problems.append(f"TFTP {self.tftp_file}: sha256 {digest}")
                    self.tftp.answered += 1
                    self.tftp.first_try += attempt == 0
                    self.tftp.latencies.append(now() - started)
                    return
                self.tftp.retries += 1
        self.tftp.failed += 1

    def _tftp_get(self, sock: socket.socket) -> bytes | None:
        """One lock-step read (no options): the content, or None if it failed."""
        request = wire.build(wire.ReadRequest(self.tftp_file))
        sock.sendto(request, (self.target, TFTP_PORT))
        peer: tuple[str, int] | None = None
        expected, content, last = 1, bytearray(), request
        silences = 0
        while silences < self.ATTEMPTS:
            readable, _, _ = select.select([sock], [], [], self.WAIT)
            if not readable:
                silences += 1
                sock.sendto(last, peer or (self.target, TFTP_PORT))
                continue
            datagram, source = sock.recvfrom(65536)
            if source[0] != self.target or len(datagram) < 4:
                continue
            opcode, block = struct.unpack_from("!HH", datagram)
            if opcode == 5:
                self.problems.append(f"TFTP ERROR {block}: {datagram[4:-1]!r}")
                return None
            if opcode != 3 or (peer is not None and source != peer):
                continue
            peer = peer or source
            if block == expected:
                content += datagram[4:]
                last = wire.build(wire.Ack(block))
                sock.sendto(last, peer)
                expected += 1
                silences = 0
                if len(datagram) - 4 < 512:
                    return bytes(content)
        return None

    def run(self, stop: threading.Event) -> dict[str, Any]:
        while not stop.is_set():
            tick = now()
            self.probe_bsdp()
            self.probe_tftp()
            stop.wait(max(0.0, self.interval - (now() - tick)))
        return {
            "bsdp": self.bsdp.as_json(),
            "tftp": self.tftp.as_json(),
            "datagrams_to_67": self.datagrams_to_67,
            "problems": self.problems[:20],
        }


# -- malformed HTTP ---------------------------------------------------------------------


@dataclass(frozen=True)
class HttpCase:
    category: str
    payload: bytes
    allowed: frozenset[int]
    """Statuses that are a right answer; 4xx always is for `malformed` cases."""
    malformed: bool = True


@dataclass
class HttpResponse:
    status: int | None
    """None: the server closed (or reset) the connection without answering."""
    headers: dict[str, str]
    body: bytes
    timed_out: bool = False


def http_exchange(target: str, port: int, payload: bytes, timeout: float) -> HttpResponse:
    """Send `payload` on a new connection; read one response head (and its body if sized)."""
    with socket.create_connection((target, port), timeout=timeout) as sock:
        with contextlib.suppress(OSError):  # it may close while we still send a huge request
            sock.sendall(payload)
        data = bytearray()
        deadline = now() + timeout
        try:
            while b"\r\n\r\n" not in data:
                sock.settimeout(max(0.01, deadline - now()))
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        except TimeoutError:
            return HttpResponse(None, {}, b"", timed_out=True)
        except ConnectionResetError:
            pass
        head, _, body = bytes(data).partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/"):
            return HttpResponse(None, {}, b"")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0") or 0)
        try:
            while len(body) < length:
                sock.settimeout(max(0.01, deadline - now()))
                chunk = sock.recv(65536)
                if not chunk:
                    break
                body += chunk
        except (TimeoutError, ConnectionResetError):
            pass
        return HttpResponse(status, headers, body[:length])


def request(path: str, *headers: str, method: str = "GET") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: fuzz", *headers, "", ""]
    return "\r\n".join(lines).encode("latin-1")


def http_cases(rng: random.Random, path: str) -> Iterator[HttpCase]:
    """Endless malformed requests of every kind, and Range headers right and wrong."""
    four = frozenset(range(400, 500))
    while True:
        roll = rng.randrange(16)
        if roll == 0:
            junk = rng.randbytes(rng.randint(1, 200)).replace(b"\n", b"")
            yield HttpCase("garbage-request-line", junk + b"\r\n\r\n", four)
        elif roll == 1:
            version = rng.choice((b"HTTP/9.9", b"HTTP/1.x", b"HTTP/", b"HTTPS/1.1", b"http/1.1"))
            yield HttpCase("bad-version", b"GET / " + version + b"\r\n\r\n", four | {505})
        elif roll == 2:
            yield HttpCase("header-without-colon", request("/", "NoColonHere"), four)
        elif roll == 3:
            size = rng.choice((17 * 1024, 64 * 1024, 300 * 1024))
            yield HttpCase("huge-header", request(path, "X-Big: " + "a" * size), four)
        elif roll == 4:
            many = [f"X-{n}: {n}" for n in range(rng.choice((600, 2000)))]
            yield HttpCase("many-headers", request(path, *many), four)
        elif roll == 5:
            yield HttpCase("huge-uri", request("/" + "a" * rng.choice((20000, 70000))), four)
        elif roll == 6:
            value = rng.choice(("-1", "abc", "1, 2", "99999999999999999999999", "0x10"))
            yield HttpCase("bad-content-length", request(path, f"Content-Length: {value}"), four)
        elif roll == 7:
            body = request(path, "Transfer-Encoding: chunked") + b"zz\r\nxx\r\n0\r\n\r\n"
            yield HttpCase("bad-chunked-body", body, four)
        elif roll == 8:
            target = rng.choice(("/\x00", "/%00", "/%zz", "/%ff%fe", "/a\x7fb", "/\x01"))
            yield HttpCase("bad-path", request(target), four)
        elif roll == 9:
            target = rng.choice(
                ("/../../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "//etc/passwd", "/./../etc")
            )
            yield HttpCase("traversal", request(target), four)
        elif roll == 10:
            method = rng.choice(("FOO", "PUT", "DELETE", "CONNECT", "TRACE", "G\x00T", "GET GET"))
            yield HttpCase("unsupported-method", request("/", method=method), four | {501})
        elif roll == 11:
            yield HttpCase("http-0.9", b"GET /\r\n\r\n", four)
        elif roll == 12:
            yield HttpCase("bad-header-name", request("/", "Bad Header: x", "X\x00: y"), four)
        elif roll == 13:
            target = rng.choice(("/" + "a" * 300, path.rsplit("/", 1)[0] + "/" + "b" * 300,
                                 "/boot/" + "c" * 300, "/Fuzz.nbi" + "/d" * 2100))  # fmt: skip
            yield HttpCase("name-too-long", request(target), four)
        else:
            yield range_case(rng, path)


def range_header(rng: random.Random) -> str:
    """A Range value: well-formed, unsatisfiable, or broken in one of many ways."""

    def spec() -> str:
        first, last = rng.randrange(0, 140_000), rng.randrange(0, 140_000)
        if rng.random() < 0.7:  # well-formed; satisfiable or not depends on the size
            return rng.choice((f"{first}-{last}", f"{first}-", f"-{last}", f" {first} - {last} "))
        return rng.choice(
            (f"{first}", "-", f"{first}--{last}", f"-{first}-{last}", f"0x{first:x}-",
             f"{first}-{last}x", f"+{first}-", f"{first}-{last}-", "\xb2-3", "")
        )  # fmt: skip

    unit = rng.choice(("bytes", "bytes", "bytes", "BYTES", "items", "bytes ", ""))
    specs = ",".join(spec() for _ in range(rng.choice((1, 1, 1, 2, 3, 100, 101))))
    return f"{unit}={specs}" if rng.random() < 0.95 else specs


def range_case(rng: random.Random, path: str) -> HttpCase:
    """Whatever the header, the answer is what our own Range parser says: 200, 206 or 416."""
    header = range_header(rng)
    return HttpCase("range", request(path, f"Range: {header}"), frozenset(), malformed=False)


def range_expectation(header_line: bytes, size: int) -> int:
    value = header_line.split(b"Range: ", 1)[1].split(b"\r\n", 1)[0].decode("latin-1")
    ranges = parse_ranges(value, size)
    if ranges is None:
        return 200
    return 416 if isinstance(ranges, Unsatisfiable) else 206


def slowloris(target: str, port: int, idle: float, trickle: float) -> dict[str, Any]:
    """A request that never ends: the server must close it within `idle` of the last byte."""
    with socket.create_connection((target, port), timeout=30) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: fuzz\r\n")
        deadline = now() + trickle
        try:
            while now() < deadline:
                sock.sendall(b"X-a: b\r\n")
                time.sleep(min(idle / 3, 0.5))
        except OSError:
            return {"closed_after": 0.0, "while_trickling": True}
        last_byte = now()
        sock.settimeout(idle + 10)
        data = b""
        try:
            while chunk := sock.recv(65536):
                data += chunk
        except TimeoutError:
            return {"closed_after": None, "response": data[:40].decode("latin-1")}
        except ConnectionResetError:
            pass
        return {
            "closed_after": round(now() - last_byte, 3),
            "response": data[:40].decode("latin-1"),
        }


def fuzz_http(
    target: str, port: int, path: str, count: int, seed: int, idle: float, slow: int
) -> dict[str, Any]:
    """`count` malformed requests and `slow` slowloris connections, then one honest range."""
    rng = random.Random(seed)
    report: dict[str, Any] = {"cases": Counter(), "statuses": Counter(), "failures": []}
    whole = http_exchange(target, port, request(path), 10)
    if whole.status != 200:
        report["failures"].append(f"GET {path} before the fuzz: {whole.status}")
        return report
    size = len(whole.body)
    slow_results: list[dict[str, Any]] = []
    threads = [
        threading.Thread(
            target=lambda: slow_results.append(slowloris(target, port, idle, 2 * idle)),
            daemon=True,
        )
        for _ in range(slow)
    ]
    for thread in threads:
        thread.start()
    cases = http_cases(rng, path)
    for _ in range(count):
        case = next(cases)
        response = http_exchange(target, port, case.payload, idle + 10)
        report["cases"][case.category] += 1
        outcome = "timeout" if response.timed_out else str(response.status or "closed")
        report["statuses"][f"{case.category} {outcome}"] += 1
        if response.timed_out:
            good = False
        elif case.malformed:
            good = response.status is None or response.status in case.allowed
        else:
            good = response.status == range_expectation(case.payload, size)
        if not good and len(report["failures"]) < 20:
            report["failures"].append(f"{case.category}: {case.payload[:120]!r} -> {outcome}")
    for thread in threads:
        thread.join(timeout=4 * idle + 20)
    report["slowloris"] = slow_results
    for result in slow_results:
        closed = result.get("closed_after")
        if closed is None or closed > idle + 5:
            report["failures"].append(f"slowloris connection not closed: {result}")
    if len(slow_results) != slow:
        report["failures"].append(f"{slow - len(slow_results)} slowloris checks did not finish")
    honest = http_exchange(target, port, request(path, "Range: bytes=1-100"), 10)
    report["final_range_status"] = honest.status
    if honest.status != 206 or honest.body != whole.body[1:101]:
        report["failures"].append(f"the honest range after the fuzz got {honest.status}")
    report["cases"] = dict(report["cases"])
    report["statuses"] = dict(sorted(report["statuses"].items()))
    return report


# -- the program --------------------------------------------------------------------------


def run_prober(args: argparse.Namespace) -> int:
    """`--probe`: probe until stdin closes, then print the counts as JSON."""
    stop = threading.Event()

    def wait_for_eof() -> None:
        sys.stdin.read()
        stop.set()

    threading.Thread(target=wait_for_eof, daemon=True).start()
    prober = Prober(args.target, args.probe_file, args.probe_sha256, args.probe_interval)
    print(json.dumps(prober.run(stop)))
    return 0


def fuzz_dhcp6(args: argparse.Namespace) -> dict[str, Any]:
    """UDP 547 after the IPv4 blast, the prober still running (netboot_lab.fuzz6)."""
    from netboot_lab.fuzz6 import Blaster6, Fuzz6Error  # it imports this module's helpers

    blaster = Blaster6(
        ipaddress.IPv6Address(args.target6),
        ipaddress.IPv6Address(args.source6 or "::"),
        args.seed,
        args.count6,
        args.max_seconds,
        args.interface6 or "",
    )
    try:
        return blaster.run()
    except Fuzz6Error as error:
        return {"error": str(error)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", required=True, help="the daemon's address")
    parser.add_argument("--count", type=int, default=50_000, help="datagrams to send")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-seconds", type=float, default=3600.0, help="stop early after")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--probe", action="store_true", help="be the prober (until EOF on stdin)")
    parser.add_argument("--probe-file", default="undionly.kpxe", help="TFTP file the prober reads")
    parser.add_argument("--probe-sha256", default="", help="its expected sha256")
    parser.add_argument("--probe-interval", type=float, default=0.1)
    parser.add_argument("--http-path", default="/Fuzz.nbi/NetBoot.dmg")
    parser.add_argument("--http-port", type=int, default=80)
    parser.add_argument("--http-count", type=int, default=300, help="malformed HTTP requests")
    parser.add_argument("--http-idle", type=float, default=2.0, help="the daemon's idle_timeout")
    parser.add_argument("--slowloris", type=int, default=4, help="slowloris connections")
    parser.add_argument("--target6", help="the daemon's IPv6 address: fuzz UDP 547 too")
    parser.add_argument("--source6", help="this side's IPv6 address to send from")
    parser.add_argument(
        "--interface6", help="this side's interface: DHCPv6 client messages go to ff02::1:2 on it"
    )
    parser.add_argument("--count6", type=int, default=0, help="DHCPv6 datagrams to send")
    args = parser.parse_args(argv)
    if args.probe:
        return run_prober(args)

    prober = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "netboot_lab.fuzzer",
            "--probe",
            "--target",
            args.target,
            "--probe-file",
            args.probe_file,
            "--probe-sha256",
            args.probe_sha256,
            "--probe-interval",
            str(args.probe_interval),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    http_report: dict[str, Any] = {}

    def http() -> None:
        try:
            http_report.update(
                fuzz_http(
                    args.target,
                    args.http_port,
                    args.http_path,
                    args.http_count,
                    args.seed + 1,
                    args.http_idle,
                    args.slowloris,
                )
            )
        except OSError as error:  # the server went away: a finding, not a fuzzer crash
            http_report["failures"] = [f"HTTP fuzz stopped: {error!r}"]

    http_thread = threading.Thread(target=http, daemon=True)
    http_thread.start()
    report: dict[str, Any]
    try:
        report = Blaster(args.target, args.seed, args.count, args.max_seconds).run()
    except FuzzError as error:
        report = {"error": str(error)}
    if args.target6 and args.count6 > 0 and "error" not in report:
        report["dhcp6"] = fuzz_dhcp6(args)
    http_thread.join(timeout=120)
    report["http"] = http_report if not http_thread.is_alive() else {"failures": ["HTTP hung"]}
    probed, _ = prober.communicate(timeout=60)
    report["probe"] = json.loads(probed)
    report["seed"] = args.seed
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print(report)
    return 0 if "error" not in report else 1


if __name__ == "__main__":
    sys.exit(main())
