"""Several full-mode daemons on one bridge, sharing one PostgreSQL lease database.

The lab of issue #21, for its tests and its benchmark alike: `peer_service`
makes a bridge segment with one namespace per daemon plus one for clients,
writes each daemon a configuration (its own `server.id`, the shared pool and
lease database URL, everything but DHCP off), starts them as real processes and
waits until each has seen every other's heartbeat. `PeerService.rows` reads
the lease table back from the database, so a test can count duplicates where
they would be: in what the daemons wrote.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import psycopg

from netboot_lab.daemon import Daemon
from netboot_lab.factories import make_set
from netboot_lab.netns import LabError, Segment, bridge_segment, netboot_in

DEFAULT_NAMES = ("alpha", "beta")
ADMIN_PORT = 9067
"""Each daemon's admin listener, on its own namespace's loopback: `netboot status` there."""


@dataclass(frozen=True)
class PeerSettings:
    subnet: str
    """The first three octets of the segment's network; daemons are .1, .2, ..."""
    pool: tuple[str, str]
    prefix: int = 24
    """The segment's prefix length: below 24 for a pool larger than a /24 holds."""
    lease_time: int = 60
    heartbeat_interval: float = 1.0
    log_level: str = "info"


def peer_config(work: Path, name: str, url: str, settings: PeerSettings) -> Path:
    """A full-mode daemon named `name` on eth0, its leases in the shared database."""
    root = work / "images"
    if not root.exists():
        make_set(root, "Alpha")
    config = work / f"{name}.toml"
    config.write_text(
        f'[server]\nroot = "{root}"\ninterfaces = ["eth0"]\nid = "{name}"\n'
        f'state_database = "{work / name}-state.sqlite3"\n'
        f'[dhcp]\nmode = "full"\npool = "{settings.pool[0]}-{settings.pool[1]}"\n'
        f'lease_database = "{url}"\nlease_time = {settings.lease_time}\n'
        f"heartbeat_interval = {settings.heartbeat_interval}\nwatch_rivals = true\n"
        "[bsdp]\nenabled = false\n[http]\nenabled = false\n[tftp]\nenabled = false\n"
        f'[admin]\nlisten = "127.0.0.1:{ADMIN_PORT}"\n[logging]\nlevel = "{settings.log_level}"\n'
    )
    return config


@dataclass
class PeerService:
    segment: Segment
    names: tuple[str, ...]
    daemons: dict[str, Daemon]
    url: str
    work: Path

    def address_of(self, name: str) -> str:
        return self.segment.hosts[self.names.index(name)].address

    @property
    def clients(self) -> str:
        """The namespace for clients: the segment's last host."""
        return self.segment.hosts[-1].namespace

    def rows(self) -> list[tuple[str, str, str, str]]:
        """(address, mac, state, server_id) of every active offer or lease in the database."""
        with psycopg.connect(self.url, autocommit=True) as conn:
            return [
                (str(IPv4Address(address)), mac, state, server)
                for address, mac, state, server in conn.execute(
                    "SELECT address, mac, state, server_id FROM lease"
                    " WHERE state IN ('offered', 'bound') AND expires > extract(epoch FROM now())"
                )
            ]

    def status(self, name: str) -> dict[str, Any]:
        """`netboot status --json` run in the daemon's namespace, parsed."""
        state: dict[str, Any] = json.loads(self.status_text(name, "--json"))
        return state

    def status_text(self, name: str, *args: str) -> str:
        """What `netboot status` prints in the daemon's namespace."""
        host = self.segment.hosts[self.names.index(name)]
        done = netboot_in(host.namespace, "status", *args)
        if done.returncode != 0:
            raise LabError(f"netboot status in {name}'s namespace: {done.stderr.strip()}")
        return done.stdout

    def log_of(self, name: str) -> str:
        """Every line the daemon has written so far (read or not by a wait)."""
        daemon = self.daemons[name]
        with contextlib.suppress(AssertionError):
            daemon.wait_for(r"(?!)", timeout=0.5)
        return "\n".join(daemon.lines)


@contextlib.contextmanager
def peer_service(
    url: str, work: Path, settings: PeerSettings, names: Sequence[str] = DEFAULT_NAMES
) -> Iterator[PeerService]:
    """The daemons `names` running and aware of each other; stopped at the end."""
    names = tuple(names)
    with bridge_segment(len(names) + 1, settings.subnet, settings.prefix) as segment:
        daemons: dict[str, Daemon] = {}
        try:
            for name, host in zip(names, segment.hosts, strict=False):
                config = peer_config(work, name, url, settings)
                daemons[name] = Daemon(["--config", str(config)], netns=host.namespace)
            for daemon in daemons.values():
                daemon.wait_ready()
            for name, daemon in daemons.items():
                for other in names:
                    if other != name:
                        daemon.seen_or_wait(rf"DHCP peer {other} is live")
            yield PeerService(segment, names, daemons, url, work)
        finally:
            for daemon in daemons.values():
                daemon.stop(timeout=15)
