"""Network namespaces the tests create and remove themselves (root only).

Every address used lives inside a namespace made here, so no test traffic can
reach any other host. With NETBOOT_REQUIRE_ALL=1 the skip for non-root users
turns into a failure (see conftest.py).
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest


def require_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to create network namespaces")
    if subprocess.run(["ip", "-V"], capture_output=True, check=False).returncode != 0:
        pytest.skip("needs iproute2 (ip)")


def ip(*args: str, netns: str | None = None) -> str:
    command = ["ip", *args] if netns is None else ["ip", "-n", netns, *args]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout


@dataclass(frozen=True)
class Lab:
    """Two namespaces joined by a veth pair: `server` and `client`."""

    server: str
    client: str
    server_if: str
    client_if: str
    server_ip: str
    client_ip: str


@contextmanager
def veth_lab(subnet: str = "10.231.0") -> Iterator[Lab]:
    """A server and a client namespace on `<subnet>.0/24`, removed afterwards."""
    require_root()
    tag = uuid.uuid4().hex[:6]
    lab = Lab(
        server=f"nbs-{tag}",
        client=f"nbc-{tag}",
        server_if="nb0",
        client_if="nb1",
        server_ip=f"{subnet}.1",
        client_ip=f"{subnet}.2",
    )
    try:
        for name in (lab.server, lab.client):
            ip("netns", "add", name)
            ip("link", "set", "lo", "up", netns=name)
        ip(
            "link",
            "add",
            lab.server_if,
            "netns",
            lab.server,
            "type",
            "veth",
            "peer",
            "name",
            lab.client_if,
            "netns",
            lab.client,
        )
        for name, ifname, address in (
            (lab.server, lab.server_if, lab.server_ip),
            (lab.client, lab.client_if, lab.client_ip),
        ):
            ip("addr", "add", f"{address}/24", "dev", ifname, netns=name)
            ip("link", "set", ifname, "up", netns=name)
        yield lab
    finally:
        for name in (lab.server, lab.client):
            subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)
