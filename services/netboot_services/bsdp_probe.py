"""Send a Mac's BSDP INFORMs from port 68 and gather the answers: `netboot bsdp probe`.

A one-shot client with a plain blocking socket: it broadcasts (or unicasts to
one server) an INFORM[LIST], collects ACK[LIST]s until the timeout, and with a
selection sends the INFORM[SELECT] to the chosen server and waits for its
ACK[SELECT] or ACK[FAILED].
"""

from __future__ import annotations

import json
import random
import select
import socket
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any

from netboot.bsdp.client import (
    Answer,
    ServerListing,
    inform_list,
    inform_select,
    preferred,
    read_answer,
)
from netboot.bsdp.options import MessageType
from netboot.dhcpwire.options import BROADCAST, CLIENT_PORT, SERVER_PORT
from netboot.dhcpwire.packet import build_packet, parse_packet
from netboot.errors import MalformedPacket
from netboot_services.dhcp import SO_BINDTODEVICE
from netboot_services.interfaces import interface_mac, ipv4_addresses


@dataclass
class ProbeResult:
    servers: dict[str, ServerListing] = field(default_factory=dict)
    selected: dict[str, Any] | None = None
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        """Every server's listing, and at the top the one a Mac would boot from: its
        `server_id`, `default_image_id` and `selected_image_id` (None when none answered)."""
        best = preferred(self.servers.values())
        return {
            "server_id": best.server_id if best is not None else None,
            "default_image_id": best.default_image_id if best is not None else None,
            "selected_image_id": best.selected_image_id if best is not None else None,
            "servers": [listing.as_json() for listing in self.servers.values()],
            "selected": self.selected,
            "error": self.error,
        }

    def dumps(self) -> str:
        return json.dumps(self.as_json(), indent=2)


def route_to(server: str) -> tuple[str, str]:
    """(interface, our source address) the kernel would use to reach `server`."""
    done = subprocess.run(
        ["ip", "-j", "route", "get", server], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise OSError(f"no route to {server}: {done.stderr.strip()}")
    route = json.loads(done.stdout)[0]
    return route["dev"], route["prefsrc"]


class Probe:
    def __init__(
        self,
        interface: str | None,
        server: str | None,
        arch: str,
        model: str,
        mac: bytes | None,
        timeout: float,
        port: int = CLIENT_PORT,
    ) -> None:
        if interface is None and server is None:
            raise ValueError("give --interface, --server, or both")
        if interface is None:
            assert server is not None
            interface, address = route_to(server)
        else:
            addresses = ipv4_addresses(interface)
            if not addresses:
                raise OSError(f"{interface} has no IPv4 address; BSDP needs one (ciaddr)")
            address = str(addresses[0].ip)
        self.interface = interface
        self.address = address
        self.server = server
        self.arch = arch
        self.model = model
        self.mac = mac or interface_mac(interface)
        self.timeout = timeout
        self.port = port
        self.datagrams: list[tuple[str, bytes]] = []
        """Every datagram sent and answered, in order: what `--show-packets` dissects."""
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        self.sock.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, interface.encode())
        self.sock.bind(("", port))

    def close(self) -> None:
        self.sock.close()

    def _exchange(self, datagram: bytes, xid: int, until_first: bool) -> list[Answer]:
        self.sock.sendto(datagram, (self.server or BROADCAST, SERVER_PORT))
        self.datagrams.append(("sent", datagram))
        answers: list[Answer] = []
        deadline = time.monotonic() + self.timeout
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([self.sock], [], [], left)
            if not ready:
                break
            reply, (source, _) = self.sock.recvfrom(65536)
            self.datagrams.append((f"from {source}", reply))
            try:
                answer = read_answer(parse_packet(reply), xid)
            except MalformedPacket:
                continue
            if answer is not None:
                answers.append(answer)
                if until_first:
                    break
        return answers

    def run(self, select_image: int | None) -> ProbeResult:
        result = ProbeResult()
        xid = random.getrandbits(32)
        request = inform_list(
            xid,
            self.mac,
            self.address,
            self.arch,
            self.model,
            reply_port=None if self.port == CLIENT_PORT else self.port,
        )
        for answer in self._exchange(build_packet(request), xid, until_first=False):
            if answer.message.message_type != MessageType.LIST:
                continue
            listing = result.servers.setdefault(answer.server_id, ServerListing(answer.server_id))
            listing.add(answer.message)
        if select_image is None:
            if not result.servers:
                result.error = f"no BSDP server answered within {self.timeout:g}s"
            return result
        return self._select(result, select_image)

    def _select(self, result: ProbeResult, image_id: int) -> ProbeResult:
        offering = [
            listing
            for listing in result.servers.values()
            if any(image.image_id == image_id for image in listing.images)
        ]
        if offering:
            best = preferred(offering)
            assert best is not None
            chosen = best.server_id
        elif self.server is not None:
            chosen = self.server
        else:
            result.error = f"no server listed image {image_id:#010x}"
            return result
        xid = random.getrandbits(32)
        request = inform_select(
            xid,
            self.mac,
            self.address,
            self.arch,
            self.model,
            chosen,
            image_id,
            reply_port=None if self.port == CLIENT_PORT else self.port,
        )
        answers = self._exchange(build_packet(request), xid, until_first=True)
        if not answers:
            result.error = f"server {chosen} did not answer the SELECT"
            return result
        answer = answers[0]
        if answer.message.message_type == MessageType.FAILED:
            result.error = f"server {chosen} answered ACK[FAILED] for {image_id:#010x}"
            return result
        result.selected = {
            "server_id": answer.server_id,
            "image_id": answer.message.selected_image_id,
            "boot_file": answer.file,
            "siaddr": answer.siaddr,
            "root_path": answer.root_path,
            "machine_name": answer.message.machine_name,
            "shadow_mount_path": answer.message.shadow_mount_path,
            "shadow_file_path": answer.message.shadow_file_path,
        }
        return result
