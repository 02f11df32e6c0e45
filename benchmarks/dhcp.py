"""DHCP and DHCPv6 exchange rates: `netboot serve` in full mode against dnsmasq and Kea, and BSDP.

Run from the repository root, as root (it creates network namespaces), after
`./bootstrap.sh test` has made the venv and
`apt-get install dnsmasq-base kea-admin kea-dhcp4-server postgresql` the peers,
the load generator (Kea's perfdhcp) and the database server:

    .venv/bin/python benchmarks/dhcp.py [--rates 1000,2000,5000] [--seconds 10] [--repeat 3]

What is measured
----------------
One server/client namespace pair (netboot_lab.netns.veth_pair) on 10.246.0.0/16: the
server is 10.246.0.1, the client 10.246.0.2, and the pool (`--pool`, 10,000
addresses by default) starts at 10.246.1.0. Nothing leaves the namespaces.

1. DORA exchanges per second. Kea's perfdhcp runs in the client namespace:
   `perfdhcp -4 -l nb1 -r RATE -R CLIENTS -p SECONDS`. It starts RATE
   DISCOVER->OFFER->REQUEST->ACK exchanges a second for SECONDS seconds from
   CLIENTS different MACs (as a relay: giaddr is its address and the replies
   come to its port 67); an exchange not answered within 1 s is a drop. The
   number compared is perfdhcp's own "Rate" line: completed four-way exchanges
   per second. Each offered rate of `--rates` is a run of its own: 1000/s
   ours completes whole on a 2-core machine, 3000/s saturates ours (about
   1,300-1,800/s there), 10,000/s is more than either server completes, so both
   are measured saturated, where a server that sheds load badly completes
   fewer exchanges than it could.
   The servers take turns in the same namespace pair, each started fresh with an
   empty lease file on tmpfs (/dev/shm) for every round, with the same pool:
   * dnsmasq 2.90 as a full DHCP server and nothing else (no DNS, no config
     file, `--dhcp-lease-max` raised to the pool size, `--no-ping` so its first
     offers are not held back by the ping check; it logs each DHCP message, as it
     does by default);
   * ours, `python -m netboot serve` with `[dhcp] mode = "full"` and the pool, its
     SQLite lease database on tmpfs, logging every OFFER and ACK at info level
     (the shipped default; `--netboot-log-level` changes it).
   After each run the lease files are checked for duplicates: in ours no address
   held twice, no client holding two active leases, `PRAGMA integrity_check`
   ok; in dnsmasq's no address or MAC listed twice.
2. BSDP INFORM[LIST] -> ACK[LIST] exchanges per second. A load client in the
   client namespace (this script, as `_bsdp_load`) builds one INFORM[LIST] with
   netboot.bsdp.client, then only changes its xid. It keeps `--window`
   requests outstanding on one UDP socket bound to the client's port 68, sends
   a new one for every ACK that matches an outstanding xid, replaces a request
   unanswered for 1 s (counted as lost), and counts ACKs for `--seconds`. The
   first ACK is dissected to check it is an ACK[LIST] naming the catalog's
   images. The server is a fresh `netboot serve` (default configuration,
   proxy mode) with three NBI sets; window 1 (latency-bound) and `--window`
   are both measured.

3. DHCPv6 Solicit->Advertise->Request->Reply exchanges per second (issue #20).
   A second namespace pair, IPv6 only
   (netboot_lab.ipv6.ipv6_pair: the lab's ULA fd4e:4254:0:1::/64, the server
   on ::1, DAD off), the pool `--pool` addresses from fd4e:4254:0:1::1000.
   `perfdhcp -6 -l nb1 -r RATE -R CLIENTS -p SECONDS` sends from the client's
   link-local address to ff02::1:2, as a directly attached client does; the
   number compared is again its "Rate" line (completed four-way exchanges a
   second), at the same offered rates, servers taking turns, each fresh:
   * dnsmasq 2.90 as a stateful DHCPv6 server only (netboot_lab.peers.dnsmasq6:
     `--dhcp-range=FIRST,LAST,64,3600`, no RA, no DNS, `--dhcp-lease-max` =
     pool, one log line per message);
   * ours with `[dhcp] mode = "off"` and `[dhcp6] mode = "full"` over the pool
     (lease time 3600 s, the default; rapid commit is on, but perfdhcp -6 sends
     no Rapid Commit without -c), its lease database on tmpfs.
   Afterwards no address may be held by two DUID/IAIDs and no IA_NA hold two
   addresses: in ours read from the DHCPv6 lease table of the SQLite database
   (netboot_lab.leases6, `PRAGMA integrity_check` too), in dnsmasq's from its
   lease file. `--skip-dhcp6` leaves this part out.

4. DORA exchanges per second with the leases in PostgreSQL (issue #21): one,
   two and three of our daemons sharing one database against Kea. One private
   cluster (netboot_lab.postgres: initdb in a temporary directory, Unix socket
   only, fsync on) holds both. Each run gets a bridge segment on
   10.242.0.0/24 and fresh tables:
   * Kea 2.2 (`kea-dhcp4`, netboot_lab.kea) on .1, its lease backend
     `postgresql` over the socket, in a database of its own made by
     `kea-admin db-init pgsql`; one thread (Kea 2.2's default), no ping check,
     every lease logged at INFO; its config, pid and lock files in a temp dir;
   * N of ours (`--peers`, 1,2,3 by default; netboot_lab.dhcp_peers) on .1-.N,
     each with its own `server.id`, the same pool and database URL (a new
     schema), started and waited for until each has seen every other's
     heartbeat, logging at `--netboot-log-level` (info or debug: the start is
     read from their info lines).
   Both hand out 10.242.0.20-10.242.0.239 (220 addresses, lease time 3600 s).
   perfdhcp runs as a relay from the segment's last host (`-R 200`: fewer
   clients than addresses, clients repeat); its DISCOVERs are broadcast, so
   every one of our daemons hears each, and the hash of the client's MAC picks
   the one that answers. Afterwards the lease tables are read: no address and
   no MAC may hold two active rows (Kea: lease4; ours: lease), and the bound
   leases per `server_id` (the daemon that wrote the row last) are the split.
   `--skip-postgresql` leaves this part out; `--only netboot` leaves Kea out.

Each case is run `--repeat` times, servers alternating; the best (highest)
rate counts. With `--py-spy DIR`, the first round of each of our measurements
is sampled with py-spy (`py-spy record --format raw`, into DIR) and the
functions with the most samples are printed: where our time goes.

How to read it
--------------
* `netboot/kea` (section 4) is the rate of N of our daemons on PostgreSQL
  divided by Kea's on the same cluster in the same run. Both commit every
  lease write to the same server, so its commit (fsync) rate bounds both;
  more daemons add answering processes, not commits. On a 2-core machine the
  daemons, PostgreSQL and perfdhcp share two cores, so more daemons may well
  complete fewer exchanges; the split column shows whether each daemon took
  its share of the clients.
* `netboot/dnsmasq` is our DORA (SARR) rate divided by dnsmasq's from the same run:
  above 1 we complete more exchanges per second. Absolute rates depend on the
  machine (perfdhcp, the server and the kernel share its cores).
* Both servers are single-threaded. dnsmasq rewrites its whole lease file after
  every change, so its rate falls as leases accumulate; a longer `--seconds`
  makes that cost weigh more. Ours commits one SQLite transaction per wake-up
  of its port-67 socket (up to 64 requests: group commit, WAL,
  synchronous=FULL; cheap on tmpfs, one fsync per batch on a disk) and sends
  that wake-up's OFFERs and ACKs after it.
* Drops are expected when saturated: perfdhcp sends RATE DISCOVERs a second
  whatever the server manages; the completed rate is what counts. A server
  that reads every DISCOVER it can while REQUESTs queue behind them completes
  fewer exchanges when offered more. Ours sheds (netboot/port67/shedding.py):
  it drops DISCOVERs that waited in the socket over 0.5 s, and anything over
  1 s, and under overload answers REQUESTs first and at most 32 DISCOVERs a
  wake-up, so its completed rate should stay flat from the offered rate it
  saturates at upwards; `answered` < `sent 1st` is those dropped DISCOVERs.
  The best over all offered rates is printed too, and is the closest thing to
  each server's capacity.

This is a measurement, not a test: nothing here asserts a rate.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import itertools
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path
from types import FrameType

import psycopg

from netboot.dhcpwire.packet import build_packet, parse_packet
from netboot.errors import NetbootError
from netboot_lab.daemon import Daemon
from netboot_lab.dhcp_peers import PeerSettings, peer_service
from netboot_lab.factories import make_set
from netboot_lab.ipv6 import POOL_FIRST as POOL6_FIRST
from netboot_lab.ipv6 import ipv6_pair
from netboot_lab.kea import create_kea_database, kea_config, kea_leases, start_kea
from netboot_lab.leases6 import database_bindings, dnsmasq6_bindings, duplicate_problems
from netboot_lab.netns import LabError, VethPair, bridge_segment, start_until_logged, veth_pair
from netboot_lab.peers import DNSMASQ6_READY, DNSMASQ_ALONE, dnsmasq6
from netboot_lab.perfdhcp import V4_LAST, V6_FIRST, V6_LAST, perfdhcp_command, run_perfdhcp
from netboot_lab.postgres import PostgresMissing, PrivateCluster, private_postgres, server_binaries
from netboot_lab.process import stop_process

SERVERS = ("dnsmasq", "netboot")
SUBNET = "10.246.0"
PREFIX = 16
POOL_FIRST = IPv4Address("10.246.1.0")
TMPFS = Path("/dev/shm")  # noqa: S108 - a private TemporaryDirectory is made inside it
START_TIMEOUT = 30.0
CLIENT_SLACK = 60.0
"""Seconds a measurement may overrun its duration before it counts as hung."""
LOST_AFTER = 1.0
"""Seconds after which the BSDP load client gives up on a request and sends another."""
BSDP_MAC = bytes.fromhex("0016cb0000b1")
BSDP_MODEL = "MacBookPro11,1"
DHCP_SERVER_PORT = 67
DHCP_CLIENT_PORT = 68
DHCP6_SERVER_PORT = 547
TOP_FUNCTIONS = 15


# --------------------------------------------------------------------------------------
# Servers
# --------------------------------------------------------------------------------------


@dataclass
class Server:
    """A running DHCP server: the process to profile, how to stop it, its lease file."""

    name: str
    pid: int
    stop: Callable[[], None]
    leases: Path


def pool_last(size: int) -> IPv4Address:
    return POOL_FIRST + size - 1


def dnsmasq_command(lab: VethPair, pool_size: int, state: Path) -> list[str]:
    """dnsmasq as a full DHCP server only, its files in `state` (on tmpfs)."""
    return [
        *DNSMASQ_ALONE,
        f"--interface={lab.server_if}",
        "--bind-interfaces",
        f"--dhcp-range={POOL_FIRST},{pool_last(pool_size)},255.255.0.0,1h",
        f"--dhcp-lease-max={pool_size}",
        f"--dhcp-leasefile={state / 'dnsmasq.leases'}",
        f"--pid-file={state / 'dnsmasq.pid'}",
        "--no-ping",
        "--log-facility=-",
        "--user=root",
        "--group=root",
    ]


def start_dnsmasq(lab: VethPair, pool_size: int, state: Path) -> Server:
    (state / "dnsmasq.leases").unlink(missing_ok=True)
    command = dnsmasq_command(lab, pool_size, state)
    process = start_until_logged(
        lab.server, command, state / "dnsmasq.log", "DHCP, sockets bound exclusively", START_TIMEOUT
    )
    return Server("dnsmasq", process.pid, lambda: stop_process(process), state / "dnsmasq.leases")


def netboot_config(lab: VethPair, state: Path, pool_size: int | None, log_level: str) -> Path:
    """Our daemon on the lab's server interface; full DHCP over the pool when one is given."""
    root = state / "images"
    if not root.exists():
        make_set(root, "Alpha", Index=1, IsDefault=True)
        make_set(root, "Beta", Index=2)
        make_set(root, "Install", Index=4096, IsInstall=True)
    dhcp = ""
    if pool_size is not None:
        dhcp = (
            f'[dhcp]\nmode = "full"\npool = "{POOL_FIRST}-{pool_last(pool_size)}"\n'
            f'lease_database = "{state / "leases.sqlite3"}"\n'
        )
    config = state / ("netboot-full.toml" if pool_size else "netboot.toml")
    config.write_text(
        f'[server]\nroot = "{root}"\ninterfaces = ["{lab.server_if}"]\n{dhcp}'
        f'[logging]\nlevel = "{log_level}"\n[admin]\nlisten = ""\n'
    )
    return config


def wait_until_listening(lab: VethPair, daemon: Daemon, port: int = DHCP_SERVER_PORT) -> None:
    """For log levels above info, which hide the ready line: wait for UDP `port` to be bound."""
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        listening = subprocess.run(
            ["ip", "netns", "exec", lab.server, "ss", "-Hlun", f"sport = :{port}"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        if listening:
            return
        if daemon.process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"netboot did not start listening on UDP {port}")
        time.sleep(0.05)


def start_netboot(
    lab: VethPair, config: Path, leases: Path, log_level: str, port: int = DHCP_SERVER_PORT
) -> Server:
    """OUR SERVER: `netboot serve` in the server namespace, once it is ready."""
    for stale in leases.parent.glob(leases.name + "*"):
        stale.unlink()
    daemon = Daemon(["--config", str(config)], netns=lab.server)
    try:
        if log_level in ("debug", "info"):
            daemon.wait_ready()
        else:
            wait_until_listening(lab, daemon, port)
    except (AssertionError, RuntimeError):
        daemon.__exit__(None, None, None)
        raise

    def stop() -> None:
        with contextlib.suppress(AssertionError):
            daemon.stop()
        daemon.__exit__(None, None, None)
        tracebacks = [line for line in daemon.lines if "Traceback" in line]
        if tracebacks:
            print(f"warning: netboot logged {len(tracebacks)} traceback(s)", file=sys.stderr)

    # `ip netns exec` execs the daemon in place: this pid is the Python process.
    return Server("netboot", daemon.process.pid, stop, leases)


# --------------------------------------------------------------------------------------
# A quiet machine
# --------------------------------------------------------------------------------------


def cpu_busy(seconds: float = 1.0) -> float:
    """The share of all CPUs busy over `seconds` (from /proc/stat), 0 to 1."""

    def sample() -> tuple[int, int]:
        fields = [int(value) for value in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        idle = fields[3] + fields[4]  # idle + iowait
        return sum(fields), idle

    total_before, idle_before = sample()
    time.sleep(seconds)
    total_after, idle_after = sample()
    total = total_after - total_before
    return 0.0 if total <= 0 else 1 - (idle_after - idle_before) / total


def wait_for_quiet(limit: float, patience: float) -> float:
    """Wait (up to `patience` s) until other work uses under `limit` of the CPUs.

    Called between runs, when nothing of ours is running: on a shared machine a
    run that starts beside someone's compile measures the compile too. Returns
    the busy share last seen, which the run's line prints when it is high.
    """
    deadline = time.monotonic() + patience
    busy = cpu_busy()
    while busy >= limit and time.monotonic() < deadline:
        busy = cpu_busy()
    return busy


# --------------------------------------------------------------------------------------
# Profiling (optional)
# --------------------------------------------------------------------------------------


@contextlib.contextmanager
def sampled(pid: int, seconds: float, output: Path | None) -> Iterator[None]:
    """Run py-spy on `pid` for `seconds` while the body runs, if `output` is set."""
    if output is None:
        yield
        return
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    process = subprocess.Popen(
        [
            py_spy,
            *("record", "--pid", str(pid), "--duration", str(max(1, int(seconds)))),
            *("--rate", "200", "--format", "raw", "--output", str(output)),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield
    finally:
        try:
            _, errors = process.communicate(timeout=seconds + CLIENT_SLACK)
        except subprocess.TimeoutExpired:
            process.kill()
            _, errors = process.communicate()
        if process.returncode != 0:
            print(f"warning: py-spy failed: {errors.strip()}", file=sys.stderr)


def top_functions(raw: Path, count: int = TOP_FUNCTIONS) -> list[tuple[float, float, str]]:
    """(inclusive %, self %, function) of the most sampled functions in a py-spy raw file."""
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        if not stack or not samples.isdigit():
            continue
        weight = int(samples)
        total += weight
        frames = [re.sub(r":\d+\)$", ")", frame) for frame in stack.split(";")]
        for frame in set(frames):
            inclusive[frame] += weight
        own[frames[-1]] += weight
    if not total:
        return []
    # Below the reactor's own frames: the functions that do DHCP work.
    interesting = [
        (name, samples)
        for name, samples in inclusive.most_common()
        if samples < 0.97 * total or name in own
    ]
    return [
        (100 * samples / total, 100 * own[name] / total, name)
        for name, samples in interesting[:count]
    ]


# --------------------------------------------------------------------------------------
# DORA with perfdhcp
# --------------------------------------------------------------------------------------


@dataclass
class DoraRun:
    rate: float
    """perfdhcp's completed 4-way exchanges per second."""
    counters: dict[str, dict[str, int]]
    """perfdhcp's counters per exchange ("DISCOVER-OFFER", "REQUEST-ACK")."""
    duplicates: list[str]
    """Problems found in the lease file afterwards; empty when every lease is unique."""
    leases: int
    """Bound leases in the lease file afterwards."""


def perfdhcp(
    namespace: str, interface: str, family: int, rate: int, clients: int, seconds: int
) -> tuple[float, dict[str, dict[str, int]]]:
    """perfdhcp -4 (as a relay), or -6 from the client's link-local address to ff02::1:2."""
    command = perfdhcp_command(family, interface, rate, clients, "-p", str(seconds))
    last = V4_LAST if family == 4 else V6_LAST
    report = run_perfdhcp(namespace, command, last, seconds + CLIENT_SLACK)
    return report.rate, report.counters


def netboot_lease_problems(database: Path) -> tuple[list[str], int]:
    """Duplicates in our lease database, and how many leases are bound."""
    problems = []
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        verdict = db.execute("PRAGMA integrity_check").fetchone()[0]
        if verdict != "ok":
            problems.append(f"integrity_check: {verdict}")
        for (address,) in db.execute(
            "SELECT address FROM lease GROUP BY address HAVING count(*) > 1"
        ):
            problems.append(f"address {IPv4Address(address)} has two rows")
        for (client,) in db.execute(
            "SELECT client_id FROM lease WHERE state IN ('offered', 'bound') AND expires > ?"
            " GROUP BY client_id HAVING count(*) > 1",
            (time.time(),),
        ):
            problems.append(f"client {bytes(client).hex()} holds two active leases")
        bound = db.execute("SELECT count(*) FROM lease WHERE state = 'bound'").fetchone()[0]
    return problems, int(bound)


def dnsmasq_lease_problems(leases: Path) -> tuple[list[str], int]:
    """Duplicates in dnsmasq's lease file (`expiry mac address name client-id` lines)."""
    rows = [line.split() for line in leases.read_text().splitlines() if line.strip()]
    problems = []
    for column, what in ((2, "address"), (1, "MAC")):
        counts = collections.Counter(row[column] for row in rows)
        problems += [f"{what} {value} listed {n} times" for value, n in counts.items() if n > 1]
    return problems, len(rows)


def measure_dora(
    server: Server,
    lab: VethPair,
    offered: int,
    args: argparse.Namespace,
    profile: Path | None,
    family: Family,
) -> DoraRun:
    with sampled(server.pid, args.seconds, profile):
        rate, counters = perfdhcp(
            lab.client, lab.client_if, family.number, offered, args.clients, args.seconds
        )
    server.stop()
    problems, leases = family.lease_problems(server)
    return DoraRun(rate, counters, problems, leases)


def lease_problems4(server: Server) -> tuple[list[str], int]:
    if server.name == "netboot":
        return netboot_lease_problems(server.leases)
    return dnsmasq_lease_problems(server.leases)


# --------------------------------------------------------------------------------------
# DHCPv6: Solicit, Advertise, Request, Reply with perfdhcp -6
# --------------------------------------------------------------------------------------


def pool6_last(size: int) -> IPv6Address:
    return POOL6_FIRST + size - 1


def start_dnsmasq6(lab: VethPair, pool_size: int, state: Path) -> Server:
    """dnsmasq as a stateful DHCPv6 server only, on the IPv6 pair's server end."""
    (state / "dnsmasq6.leases").unlink(missing_ok=True)
    command = [
        *dnsmasq6(lab.server_if, str(POOL6_FIRST), str(pool6_last(pool_size)), state,
                  log_each=False),
        f"--dhcp-lease-max={pool_size}",
    ]  # fmt: skip
    process = start_until_logged(
        lab.server, command, state / "dnsmasq6.log", DNSMASQ6_READY, START_TIMEOUT
    )
    return Server("dnsmasq", process.pid, lambda: stop_process(process), state / "dnsmasq6.leases")


def netboot6_config(lab: VethPair, state: Path, pool_size: int, log_level: str) -> Path:
    """Our daemon as a full DHCPv6 server on the IPv6 pair (no DHCPv4: the link has none)."""
    root = state / "images"
    if not root.exists():
        make_set(root, "Alpha", Index=1, IsDefault=True)
    config = state / "netboot-dhcp6.toml"
    config.write_text(
        f'[server]\nroot = "{root}"\ninterfaces = ["{lab.server_if}"]\n'
        f'[dhcp]\nmode = "off"\nlease_database = "{state / "leases6.sqlite3"}"\n'
        f'[dhcp6]\nmode = "full"\npool = "{POOL6_FIRST}-{pool6_last(pool_size)}"\n'
        f'[logging]\nlevel = "{log_level}"\n[admin]\nlisten = ""\n'
    )
    return config


def start_server6(name: str, lab: VethPair, state: Path, args: argparse.Namespace) -> Server:
    if name == "dnsmasq":
        return start_dnsmasq6(lab, args.pool, state)
    config = netboot6_config(lab, state, args.pool, args.netboot_log_level)
    return start_netboot(
        lab, config, state / "leases6.sqlite3", args.netboot_log_level, DHCP6_SERVER_PORT
    )


def lease_problems6(server: Server) -> tuple[list[str], int]:
    """Addresses held twice in the server's lease store, and how many are held."""
    if server.name == "netboot":
        bindings, verdict = database_bindings(server.leases)
        problems = [] if verdict == "ok" else [f"integrity_check: {verdict}"]
    else:
        bindings, problems = dnsmasq6_bindings(server.leases), []
    return problems + duplicate_problems(bindings), len(bindings)


@dataclass(frozen=True)
class Family:
    """What differs between the DHCPv4 and the DHCPv6 exchange measurement."""

    label: str
    unit: str
    """What one exchange is called in the lines printed: DORA, SARR."""
    first: str
    last: str
    """perfdhcp's names of the two exchanges (DISCOVER-OFFER, REQUEST-ACK; ...)."""
    number: int
    """perfdhcp -4 or -6."""
    start: Callable[[str, VethPair, Path, argparse.Namespace], Server]
    lease_problems: Callable[[Server], tuple[list[str], int]]


# --------------------------------------------------------------------------------------
# DORA with leases in PostgreSQL: Kea against one, two, three of ours (issue #21)
# --------------------------------------------------------------------------------------

SHARED_SUBNET = "10.242.0"
"""The bridge segment's /24: our daemons are .1, .2, .3, Kea .1; the client follows them."""
SHARED_POOL_SIZE = 220
SHARED_POOL = (f"{SHARED_SUBNET}.20", f"{SHARED_SUBNET}.{20 + SHARED_POOL_SIZE - 1}")
"""220 addresses, the same for Kea and ours."""
SHARED_CLIENTS = 200
"""perfdhcp -R: fewer clients than addresses, so the pool never runs dry; clients repeat."""
SHARED_LEASE_TIME = 3600
KEA = "kea"
MAX_PEERS = 16
"""Our daemons are .1 to .16 of the segment, below the pool."""


def shared_label(count: int) -> str:
    return f"netboot x{count}"


@dataclass
class SharedRun:
    rate: float
    """perfdhcp's completed 4-way exchanges per second."""
    counters: dict[str, dict[str, int]]
    duplicates: list[str]
    """Addresses or MACs held twice in the lease table afterwards."""
    leases: int
    """Bound, unexpired leases in the lease table afterwards (Kea stores no offers)."""
    split: dict[str, int]
    """Our daemons only: bound leases per `server_id` (the daemon that wrote the row last)."""


def measure_kea(
    cluster: PrivateCluster, state: Path, database: str, offered: int, args: argparse.Namespace
) -> SharedRun:
    """Kea on a fresh database of the cluster, on a two-host segment like one of ours."""
    create_kea_database(cluster, database)
    with bridge_segment(2, SHARED_SUBNET) as segment:
        server, client = segment.hosts
        network = f"{SHARED_SUBNET}.0/24"
        config = kea_config(state, server.interface, network, SHARED_POOL, cluster, database)
        process = start_kea(server.namespace, config, state)
        try:
            rate, counters = perfdhcp(
                client.namespace, client.interface, 4, offered, SHARED_CLIENTS, args.seconds
            )
        finally:
            stop_process(process)
    leases = kea_leases(cluster, database)
    return SharedRun(rate, counters, shared_lease_problems(leases), len(leases), {})


def shared_lease_problems(rows: Sequence[tuple[str, str, *tuple[str, ...]]]) -> list[str]:
    """Addresses or MACs in two active rows, from rows that start (address, MAC, ...):
    ours (`PeerService.rows`) or Kea's (`kea_leases`)."""
    problems = []
    for column, what in ((0, "address"), (1, "MAC")):
        counts = collections.Counter(row[column] for row in rows)
        problems += [f"{what} {value} held {n} times" for value, n in counts.items() if n > 1]
    return problems


def measure_peers(
    cluster: PrivateCluster,
    state: Path,
    schema: str,
    count: int,
    offered: int,
    args: argparse.Namespace,
) -> SharedRun:
    """`count` of our daemons on one segment sharing a fresh schema of the cluster."""
    with psycopg.connect(cluster.url(), autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    work = state / schema
    work.mkdir()
    settings = PeerSettings(
        SHARED_SUBNET, SHARED_POOL, lease_time=SHARED_LEASE_TIME, log_level=args.netboot_log_level
    )
    names = [f"netboot{n}" for n in range(1, count + 1)]
    with peer_service(cluster.schema_url(schema), work, settings, names) as service:
        client = service.segment.hosts[-1]
        rate, counters = perfdhcp(
            client.namespace, client.interface, 4, offered, SHARED_CLIENTS, args.seconds
        )
        rows = service.rows()
        for name in names:
            tracebacks = service.log_of(name).count("Traceback")
            if tracebacks:
                print(f"warning: {name} logged {tracebacks} traceback(s)", file=sys.stderr)
    split = collections.Counter(server for _, _, held, server in rows if held == "bound")
    bound = sum(split.values())
    return SharedRun(
        rate, counters, shared_lease_problems(rows), bound, {n: split[n] for n in names}
    )


def shared_servers(args: argparse.Namespace) -> list[tuple[str, int | None]]:
    """(label, how many of our daemons; None for Kea): Kea (unless `--only netboot`), then
    ours one, two, three strong (`--peers`)."""
    kea: list[tuple[str, int | None]] = [] if args.only == "netboot" else [(KEA, None)]
    return kea + [(shared_label(count), count) for count in args.peers]


def run_shared(
    cluster: PrivateCluster, state: Path, args: argparse.Namespace, results: Results
) -> None:
    """Every offered rate against Kea and each number of our daemons, alternating, fresh
    tables (Kea: a new database; ours: a new schema) for every run."""
    runs = itertools.count(1)
    for round_number in range(1, args.repeat + 1):
        for offered in args.rates:
            for name, count in shared_servers(args):
                busy = wait_for_quiet(args.quiet_below, args.quiet_patience)
                table = f"run{next(runs)}"
                try:
                    if count is None:
                        run = measure_kea(cluster, state, f"kea_{table}", offered, args)
                    else:
                        run = measure_peers(cluster, state, table, count, offered, args)
                except (*MEASUREMENT_FAILURES, psycopg.Error, NetbootError) as error:
                    results.errors.append(f"{name} (PostgreSQL) at {offered}/s: {error}")
                    continue
                split = ", ".join(f"{n} {held}" for n, held in run.split.items())
                print(
                    f"  round {round_number} offered {offered}/s {name}: {run.rate:.0f} DORA/s "
                    f"({run.leases} leases, {len(run.duplicates)} duplicates"
                    f"{'; ' + split if split else ''}){noisy(busy, args)}",
                    flush=True,
                )
                if run.duplicates:
                    results.errors.append(
                        f"{name} (PostgreSQL): duplicates: {'; '.join(run.duplicates[:5])}"
                    )
                best = results.shared.get((name, offered))
                if best is None or run.rate > best.rate:
                    results.shared[name, offered] = run


def shared_table(results: Results, args: argparse.Namespace) -> None:
    """The best run per server and offered rate; netboot/kea; bound leases per daemon."""
    if not results.shared:
        return
    print()
    print(
        f"DHCP DORA, leases in PostgreSQL (one private cluster), perfdhcp -R {SHARED_CLIENTS} "
        f"-p {args.seconds}, pool {SHARED_POOL[0]}-{SHARED_POOL[1]}, best of {args.repeat}; "
        "split = bound leases per server_id"
    )
    print(
        f"{'offered':>7}  {'server':>10}  {'DORA/s':>7}  {'final':>7}  {'leases':>7}  "
        f"{'duplicates':>10}  {'netboot/kea':>11}  split"
    )
    for offered in args.rates:
        kea = results.shared.get((KEA, offered))
        for name, _ in shared_servers(args):
            run = results.shared.get((name, offered))
            if run is None:
                continue
            ratio = f"{run.rate / kea.rate:.2f}" if name != KEA and kea and kea.rate else ""
            split = " ".join(f"{n}={held}" for n, held in run.split.items())
            print(
                f"{offered:>7}  {name:>10}  {run.rate:>7.0f}  "
                f"{run.counters[V4_LAST]['received packets']:>7}  {run.leases:>7}  "
                f"{len(run.duplicates):>10}  {ratio:>11}  {split}"
            )
    peaks = {
        name: max((run.rate for (n, _), run in results.shared.items() if n == name), default=0.0)
        for name, _ in shared_servers(args)
    }
    print("best over all offered rates: " + ", ".join(f"{n} {r:.0f}" for n, r in peaks.items()))


# --------------------------------------------------------------------------------------
# BSDP load client (runs in the client namespace)
# --------------------------------------------------------------------------------------


def helper_bsdp_load(server: str, client: str, window: int, seconds: float) -> None:
    """Keep `window` INFORM[LIST]s in flight for `seconds`; print the ACK count as JSON."""
    from netboot.bsdp.client import inform_list, read_answer
    from netboot.bsdp.options import MessageType as BsdpType

    request = bytearray(build_packet(inform_list(1, BSDP_MAC, client, "i386", BSDP_MODEL)))
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    sock.bind((client, DHCP_CLIENT_PORT))
    target = (server, DHCP_SERVER_PORT)

    sock.settimeout(START_TIMEOUT)
    sock.sendto(request, target)
    answer = read_answer(parse_packet(sock.recv(65536)), 1)
    if answer is None or answer.message.message_type != BsdpType.LIST:
        raise SystemExit(f"the first reply is not an ACK[LIST]: {answer}")
    if not answer.message.images:
        raise SystemExit("the ACK[LIST] names no image")

    in_flight: dict[int, float] = {}
    next_xid = 2

    def send(now: float) -> None:
        nonlocal next_xid
        request[4:8] = next_xid.to_bytes(4, "big")
        sock.sendto(request, target)
        in_flight[next_xid] = now
        next_xid = next_xid + 1 if next_xid < 0xFFFFFFFF else 2

    start = time.monotonic()
    end = start + seconds
    for _ in range(window):
        send(start)
    acks = lost = 0
    next_sweep = start + LOST_AFTER
    while (now := time.monotonic()) < end:
        sock.settimeout(min(LOST_AFTER / 4, end - now))
        try:
            reply = sock.recv(65536)
        except TimeoutError:
            reply = b""
        now = time.monotonic()
        xid = int.from_bytes(reply[4:8], "big") if len(reply) > 8 and reply[0] == 2 else None
        if xid in in_flight and now < end:  # a BOOTREPLY to one of ours, in time
            del in_flight[xid]
            acks += 1
            send(now)
        if now >= next_sweep:
            for xid, sent in list(in_flight.items()):
                if now - sent > LOST_AFTER:
                    del in_flight[xid]
                    lost += 1
                    send(now)
            next_sweep = now + LOST_AFTER / 4
    print(json.dumps({"acks": acks, "lost": lost, "seconds": time.monotonic() - start}))


@dataclass
class BsdpRun:
    rate: float
    acks: int
    lost: int


def measure_bsdp(
    server: Server, lab: VethPair, window: int, seconds: int, profile: Path | None
) -> BsdpRun:
    command = [
        sys.executable,
        __file__,
        "_bsdp_load",
        lab.server_ip,
        lab.client_ip,
        str(window),
        str(seconds),
    ]
    with sampled(server.pid, seconds, profile):
        done = subprocess.run(
            ["ip", "netns", "exec", lab.client, *command],
            capture_output=True,
            text=True,
            timeout=seconds + CLIENT_SLACK,
            check=False,
        )
    if done.returncode != 0:
        raise RuntimeError(f"BSDP load client failed: {done.stderr or done.stdout}")
    result = json.loads(done.stdout)
    return BsdpRun(result["acks"] / result["seconds"], result["acks"], result["lost"])


# --------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------


@dataclass
class Results:
    dora: dict[tuple[str, int], DoraRun] = field(default_factory=dict)
    """Best run per server and offered rate."""
    dhcp6: dict[tuple[str, int], DoraRun] = field(default_factory=dict)
    """The same for DHCPv6's Solicit-Advertise-Request-Reply."""
    shared: dict[tuple[str, int], SharedRun] = field(default_factory=dict)
    """DORA with leases in PostgreSQL: best run per server ("kea", "netboot x2") and rate."""
    bsdp: dict[int, BsdpRun] = field(default_factory=dict)
    """Best run per window."""
    profiles: dict[str, Path] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


MEASUREMENT_FAILURES = (LabError, RuntimeError, AssertionError, OSError, subprocess.TimeoutExpired)


def start_server(name: str, lab: VethPair, state: Path, args: argparse.Namespace) -> Server:
    if name == "dnsmasq":
        return start_dnsmasq(lab, args.pool, state)
    config = netboot_config(lab, state, args.pool, args.netboot_log_level)
    return start_netboot(lab, config, state / "leases.sqlite3", args.netboot_log_level)


def profile_path(args: argparse.Namespace, label: str, round_number: int) -> Path | None:
    directory: Path | None = args.py_spy
    if directory is None or round_number != 1:
        return None
    directory.mkdir(parents=True, exist_ok=True)
    return directory / f"{label}.txt"


def noisy(busy: float, args: argparse.Namespace) -> str:
    """A warning for a run's line when the machine was busy with other work before it."""
    if busy < args.quiet_below:
        return ""
    return f" [machine {100 * busy:.0f}% busy before this run: noisy]"


DHCP4 = Family("DHCP", "DORA", "DISCOVER-OFFER", V4_LAST, 4, start_server, lease_problems4)
DHCP6 = Family("DHCPv6", "SARR", V6_FIRST, V6_LAST, 6, start_server6, lease_problems6)


def run_dora(
    lab: VethPair,
    state: Path,
    args: argparse.Namespace,
    results: Results,
    family: Family = DHCP4,
) -> None:
    """Every offered rate against every server, servers alternating, `--repeat` rounds."""
    names = [args.only] if args.only else list(SERVERS)
    best_runs = results.dora if family is DHCP4 else results.dhcp6
    for round_number in range(1, args.repeat + 1):
        for offered in args.rates:
            for name in names:
                label = f"{family.unit.lower()}-{offered}"
                profile = profile_path(args, label, round_number) if name == "netboot" else None
                busy = wait_for_quiet(args.quiet_below, args.quiet_patience)
                try:
                    server = family.start(name, lab, state, args)
                except MEASUREMENT_FAILURES as error:
                    results.errors.append(f"{name} ({family.label}): could not start: {error}")
                    continue
                try:
                    run = measure_dora(server, lab, offered, args, profile, family)
                except MEASUREMENT_FAILURES as error:
                    results.errors.append(f"{name} {family.unit} at {offered}/s: {error}")
                    continue
                finally:
                    server.stop()
                if profile is not None:
                    results.profiles[f"{family.unit} offered {offered}/s"] = profile
                replies = run.counters[family.last]
                print(
                    f"  round {round_number} offered {offered}/s {name}: {run.rate:.0f} "
                    f"{family.unit}/s ({replies['received packets']} final replies, "
                    f"{run.leases} leases, {len(run.duplicates)} duplicates){noisy(busy, args)}",
                    flush=True,
                )
                if run.duplicates:
                    results.errors.append(
                        f"{name} ({family.label}): duplicates: {'; '.join(run.duplicates[:5])}"
                    )
                best = best_runs.get((name, offered))
                if best is None or run.rate > best.rate:
                    best_runs[name, offered] = run


def run_bsdp(lab: VethPair, state: Path, args: argparse.Namespace, results: Results) -> None:
    config = netboot_config(lab, state, None, args.netboot_log_level)
    try:
        server = start_netboot(lab, config, state / "unused.sqlite3", args.netboot_log_level)
    except MEASUREMENT_FAILURES as error:
        results.errors.append(f"netboot (BSDP): could not start: {error}")
        return
    try:
        for round_number in range(1, args.repeat + 1):
            for window in sorted({1, args.window}):
                label = f"bsdp-window-{window}"
                profile = profile_path(args, label, round_number) if window > 1 else None
                busy = wait_for_quiet(args.quiet_below, args.quiet_patience)
                try:
                    run = measure_bsdp(server, lab, window, args.seconds, profile)
                except MEASUREMENT_FAILURES as error:
                    results.errors.append(f"BSDP window {window}: {error}")
                    continue
                if profile is not None:
                    results.profiles[f"BSDP window {window}"] = profile
                print(
                    f"  round {round_number} window {window}: {run.rate:.0f} exchanges/s "
                    f"({run.acks} ACKs, {run.lost} lost){noisy(busy, args)}",
                    flush=True,
                )
                best = results.bsdp.get(window)
                if best is None or run.rate > best.rate:
                    results.bsdp[window] = run
    finally:
        server.stop()


def load_line(args: argparse.Namespace, family: str, clients: int, pool: int) -> str:
    """What a section's perfdhcp runs are, for the line that opens it."""
    rates = ",".join(map(str, args.rates))
    return (
        f"perfdhcp {family} -r {rates} -R {clients} -p {args.seconds}, pool {pool}, "
        f"{args.repeat} round(s)"
    )


def run(args: argparse.Namespace) -> Results:
    results = Results()
    scratch = TMPFS if TMPFS.is_dir() else None
    with (
        tempfile.TemporaryDirectory(prefix="netboot-bench-dhcp-", dir=scratch) as temporary,
        veth_pair(SUBNET, prefix=PREFIX) as lab,
    ):
        state = Path(temporary)
        if not args.skip_dora:
            print(f"DORA: {load_line(args, '-4', args.clients, args.pool)}", flush=True)
            run_dora(lab, state, args, results)
        if args.only != "dnsmasq" and not args.skip_bsdp:
            print(f"BSDP INFORM[LIST]: {args.seconds} s per run, {args.repeat} round(s)")
            run_bsdp(lab, state, args, results)
    if not args.skip_dhcp6:
        with (
            tempfile.TemporaryDirectory(prefix="netboot-bench-dhcp6-", dir=scratch) as temporary,
            ipv6_pair() as lab6,
        ):
            print(f"DHCPv6 SARR: {load_line(args, '-6', args.clients, args.pool)}", flush=True)
            run_dora(lab6, Path(temporary), args, results, DHCP6)
    if not args.skip_postgresql:
        run_postgresql(args, results, scratch)
    return results


def run_postgresql(args: argparse.Namespace, results: Results, scratch: Path | None) -> None:
    """The PostgreSQL section, if our daemons log what `peer_service` waits for."""
    if args.netboot_log_level not in ("debug", "info"):
        results.errors.append(
            "PostgreSQL DORA skipped: our daemons are started once their info lines say they "
            "serve and see each other; use --netboot-log-level info or debug"
        )
        return
    servers = ", ".join(name for name, _ in shared_servers(args))
    with (
        tempfile.TemporaryDirectory(prefix="netboot-bench-dhcp-pg-", dir=scratch) as temporary,
        private_postgres() as cluster,
    ):
        load = load_line(args, "-4", SHARED_CLIENTS, SHARED_POOL_SIZE)
        print(f"DORA on PostgreSQL ({servers}): {load}", flush=True)
        run_shared(cluster, Path(temporary), args, results)


def exchange_table(
    runs: dict[tuple[str, int], DoraRun], family: Family, args: argparse.Namespace
) -> None:
    """The best run per server and offered rate, netboot/dnsmasq, and the best of each."""
    if not runs:
        return
    print()
    print(
        f"{family.label} {family.unit}, perfdhcp -R {args.clients} -p {args.seconds}, pool "
        f"{args.pool} addresses, lease files on tmpfs, best of {args.repeat}; "
        "offered = perfdhcp -r"
    )
    print(
        f"{'offered':>7}  {'server':>8}  {family.unit + '/s':>7}  {'sent 1st':>9}  "
        f"{'answered':>8}  {'final':>7}  {'leases':>7}  {'duplicates':>10}  "
        f"{'netboot/dnsmasq':>15}"
    )
    for offered in args.rates:
        for name in SERVERS:
            run = runs.get((name, offered))
            if run is None:
                continue
            first, last = run.counters[family.first], run.counters[family.last]
            peer = runs.get(("dnsmasq", offered))
            ratio = (
                f"{run.rate / peer.rate:.2f}" if name == "netboot" and peer and peer.rate else ""
            )
            print(
                f"{offered:>7}  {name:>8}  {run.rate:>7.0f}  {first['sent packets']:>9}"
                f"  {first['received packets']:>8}  {last['received packets']:>7}"
                f"  {run.leases:>7}  {len(run.duplicates):>10}  {ratio:>15}"
            )
    peaks = {
        name: max((run.rate for (n, _), run in runs.items() if n == name), default=0.0)
        for name in SERVERS
    }
    ours, theirs = peaks["netboot"], peaks["dnsmasq"]
    best_ratio = f"; netboot/dnsmasq {ours / theirs:.2f}" if ours and theirs else ""
    print(
        f"best over all offered rates: dnsmasq {theirs:.0f}, "
        f"netboot {ours:.0f} {family.unit}/s{best_ratio}"
    )


def report(results: Results, args: argparse.Namespace) -> None:
    print()
    exchange_table(results.dora, DHCP4, args)
    exchange_table(results.dhcp6, DHCP6, args)
    shared_table(results, args)
    if results.bsdp:
        print()
        print(
            f"BSDP INFORM[LIST] -> ACK[LIST], one UDP socket, {args.seconds} s, "
            f"best of {args.repeat}"
        )
        print(f"{'window':>6}  {'exchanges/s':>11}  {'ACKs':>7}  {'lost':>5}")
        for window, bsdp in sorted(results.bsdp.items()):
            print(f"{window:>6}  {bsdp.rate:>11.0f}  {bsdp.acks:>7}  {bsdp.lost:>5}")
    for label, raw in results.profiles.items():
        if not raw.exists():
            continue
        print()
        print(f"py-spy, {label} (our daemon; {raw}): inclusive %, self %, function")
        for inclusive, own, name in top_functions(raw):
            print(f"  {inclusive:5.1f} {own:5.1f}  {name}")
    if args.json:
        summary = {
            "dora": [
                {"server": name, "offered": offered, "rate": d.rate, **d.counters}
                | {"duplicates": d.duplicates, "leases": d.leases}
                for (name, offered), d in results.dora.items()
            ],
            "dhcp6": [
                {"server": name, "offered": offered, "rate": d.rate, **d.counters}
                | {"duplicates": d.duplicates, "leases": d.leases}
                for (name, offered), d in results.dhcp6.items()
            ],
            "postgresql": [
                {"server": name, "offered": offered, "rate": d.rate, **d.counters}
                | {"duplicates": d.duplicates, "leases": d.leases, "split": d.split}
                for (name, offered), d in results.shared.items()
            ],
            "bsdp": {
                str(w): {"rate": b.rate, "acks": b.acks, "lost": b.lost}
                for w, b in results.bsdp.items()
            },
            "errors": results.errors,
        }
        print(json.dumps(summary))
    for error in results.errors:
        print(f"error: {error}", file=sys.stderr)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument(
        "--rates",
        type=lambda text: [int(rate) for rate in text.split(",")],
        default=[1000, 2000, 5000],
        help="perfdhcp -r values to run, comma-separated: DORAs started per second",
    )
    parser.add_argument("--seconds", type=int, default=10, help="length of each run")
    parser.add_argument("--pool", type=int, default=10000, help="addresses in the pool")
    parser.add_argument(
        "--clients", type=int, help="perfdhcp -R: distinct clients (default: the pool size)"
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per case; best counts")
    parser.add_argument("--window", type=int, default=32, help="BSDP requests in flight")
    parser.add_argument(
        "--only", choices=SERVERS, help="DORA and DHCPv6 SARR against one server only"
    )
    parser.add_argument("--skip-dora", action="store_true")
    parser.add_argument("--skip-bsdp", action="store_true")
    parser.add_argument("--skip-dhcp6", action="store_true")
    parser.add_argument(
        "--skip-postgresql",
        action="store_true",
        help="leave out DORA with leases in PostgreSQL (Kea against several of ours)",
    )
    parser.add_argument(
        "--peers",
        type=lambda text: [int(count) for count in text.split(",")],
        default=[1, 2, 3],
        help="how many of our daemons share the PostgreSQL database, comma-separated",
    )
    parser.add_argument(
        "--netboot-log-level",
        choices=("debug", "info", "warn", "error"),
        default="info",
        help="our daemon's log level (info, the default, logs every OFFER and ACK)",
    )
    parser.add_argument(
        "--quiet-below",
        type=float,
        default=0.15,
        help="before each run, wait until other work keeps under this share of the CPUs busy",
    )
    parser.add_argument(
        "--quiet-patience", type=float, default=300, help="seconds to wait for that, at most"
    )
    parser.add_argument("--py-spy", type=Path, help="sample our daemon with py-spy into DIR")
    parser.add_argument("--json", action="store_true", help="also print a JSON summary")
    args = parser.parse_args(argv)
    args.clients = args.clients or args.pool
    if not 1 <= args.clients <= args.pool <= 65536 or args.repeat < 1 or args.window < 1:
        parser.error("need 1 <= --clients <= --pool <= 65536, --repeat >= 1, --window >= 1")
    if not all(1 <= count <= MAX_PEERS for count in args.peers):
        parser.error(f"--peers counts go from 1 to {MAX_PEERS}")
    return args


TOOL_PACKAGES = {
    "dnsmasq": "dnsmasq-base",
    "perfdhcp": "kea-admin",
    "kea-admin": "kea-admin",
    "kea-dhcp4": "kea-dhcp4-server",
    "initdb": "postgresql",
}


def needed_tools(args: argparse.Namespace) -> list[str]:
    """The programs the sections asked for need and this machine lacks."""
    tools = []
    if not (args.skip_dora and args.skip_dhcp6):
        tools += ["dnsmasq", "perfdhcp"]
    if not args.skip_postgresql:
        tools += ["perfdhcp", "kea-admin", "kea-dhcp4"]
    missing = [tool for tool in dict.fromkeys(tools) if shutil.which(tool) is None]
    if not args.skip_postgresql:
        try:
            server_binaries()
        except PostgresMissing:
            missing.append("initdb")
    return missing


def terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main(argv: Sequence[str]) -> int:
    if argv and argv[0] == "_bsdp_load":
        server, client, window, seconds = argv[1:5]
        helper_bsdp_load(server, client, int(window), float(seconds))
        return 0
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("needs root: it creates network namespaces", file=sys.stderr)
        return 2
    missing = needed_tools(args)
    if missing:
        packages = sorted({TOOL_PACKAGES[tool] for tool in missing})
        print(f"needs {', '.join(missing)} (Debian: {', '.join(packages)})", file=sys.stderr)
        return 2
    previous = signal.signal(signal.SIGTERM, terminate)  # unwind: stop servers, remove labs
    try:
        results = run(args)
    finally:
        signal.signal(signal.SIGTERM, previous)
    report(results, args)
    return 1 if results.errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
