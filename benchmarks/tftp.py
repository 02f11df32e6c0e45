"""TFTP download speed and per-transfer memory: `netboot serve` against dnsmasq.

Run from the repository root, as root (it creates network namespaces), after
`./bootstrap.sh test` has made the venv and `apt-get install dnsmasq-base` the peer:

    .venv/bin/python benchmarks/tftp.py [--size-mb 14] [--repeat 3] [--only dnsmasq]

What is measured
----------------
Each server runs in its own server/client namespace pair (netboot_lab.netns.veth_pair);
nothing leaves them. Both serve the same random bytes (a stand-in kernel,
14 MiB by default):

* dnsmasq as a pure TFTP server (no DNS, no DHCP, no config file), from a plain
  TFTP root, as `vmlinuz`;
* ours, `python -m netboot serve`, from an image root holding the NBI set
  `Bench.nbi` with the file at `Bench.nbi/i386/vmlinuz`.

1. Block size: curl downloads the file at `--tftp-blksize` 512, 1468 and 8192.
2. Window size: atftp asks for windowsize 16 at blksize 1468 (RFC 7440;
   `--window-client netboot` uses our `netboot tftp get` instead, whose Python
   start-up is then in the time). dnsmasq does not implement windowsize and
   answers without it, so against dnsmasq the same command runs lock-step: a
   same-client baseline.

   Both servers run at once and the downloads alternate between them, case by
   case, for `--repeat` rounds; the best (smallest) wall time of each counts,
   and every download's sha256 is checked. A time includes starting
   `ip netns exec` and the client (a few milliseconds), the same for both.
   Lock-step transfers are bound by wake-up latency, not bandwidth, and vary by
   2x between rounds on a busy 2-core machine: use `--repeat 5` or more before
   reading much into a ratio.
3. Memory: a fresh server, then `--transfers` (100) concurrent downloads at
   blksize 512 from one client process that ACKs each block slowly (every
   50 ms), so the transfers stay open for `--hold` seconds. The server
   process's VmRSS (/proc/PID/status) is read before they start and sampled
   while they run; the table shows the peak growth divided by the number of
   transfers.

The veth MTU is raised to 9000 by default (`--mtu`), and both servers are told
so, because both clamp blksize to what fits one datagram (MTU - 32): at the
usual 1500 a request for 8192 is granted 1468, and the 8192 row would repeat
the 1468 one. The "granted" column shows what each server put in its OACK.

How to read the ratios
----------------------
* `netboot/dnsmasq` is our time divided by dnsmasq's, measured in the same run
  on the same machine: 1.00 is parity, 2.00 means we take twice as long, 0.50
  means we are twice as fast. Absolute seconds depend on the machine; the
  ratio is what to compare between runs.
* `speed-up` on the windowsize line is dnsmasq's best curl time at blksize 1468
  divided by ours with windowsize 16: above 1 means the window makes us faster
  than dnsmasq's best at that block size.
* Memory growth per transfer is (peak RSS - RSS before) / open transfers, in
  KiB; its ratio is ours over dnsmasq's. dnsmasq shares one open file among
  transfers of the same file and grows by less than a page for 100 of them, so
  the ratio is printed as n/a when its growth is below what RSS resolves; read
  our KiB per transfer on its own then. The RSS of a Python process includes
  allocator slack, so treat differences under ~10% as noise.

This is a measurement, not a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import selectors
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from netboot_lab.daemon import Daemon
from netboot_lab.factories import make_set
from netboot_lab.netns import LabError, VethPair, ip, real_pid, start_until_logged, veth_pair
from netboot_lab.peers import DNSMASQ_ALONE
from netboot_lab.process import stop_process

SERVERS = ("dnsmasq", "netboot")
SUBNETS = ("10.231.10", "10.231.11")
"""One namespace pair per server, so both run at once and rounds can alternate."""
BLKSIZES = (512, 1468, 8192)
WINDOW_BLKSIZE = 1468
SET_NAME = "Bench"
NETBOOT_PATH = f"{SET_NAME}.nbi/i386/vmlinuz"
"""The request name of the big file on our server: its path under the image root."""
DNSMASQ_PATH = "vmlinuz"
CLIENT_TIMEOUT = 180
"""Seconds one download may take before it counts as failed."""
START_TIMEOUT = 30.0
SLOW_ACK_INTERVAL = 0.05
"""Seconds between two ACKs of one slow transfer in the memory measurement."""
SAMPLE_INTERVAL = 0.05
RSS_RESOLUTION_KIB = 64
"""Below this total growth a per-transfer ratio says nothing (pages, allocator arenas)."""


# --------------------------------------------------------------------------------------
# Servers
# --------------------------------------------------------------------------------------


@dataclass
class Server:
    """A running TFTP server: where to ask, which process to watch, how to stop it."""

    name: str
    lab: VethPair
    path: str
    """The request name of the big file on this server."""
    pid: int
    """The server process itself (not `ip netns exec`), for /proc/PID/status."""
    stop: Callable[[], None]


def start_netboot(lab: VethPair, root: Path, config: Path | None = None) -> Daemon:
    """OUR SERVER: start `netboot serve` in the server namespace and wait until it is ready.

    The one place that knows how our daemon is started; `config` is a TOML file
    (here it sets `[tftp] mtu` to the veth MTU).
    """
    args = ["--root", str(root), "--interface", lab.server_if]
    if config is not None:
        args = ["--config", str(config), *args]
    daemon = Daemon(args, netns=lab.server)
    try:
        daemon.wait_ready()
    except AssertionError:
        daemon.__exit__(None, None, None)
        raise
    return daemon


def netboot_server(lab: VethPair, root: Path, config: Path) -> Server:
    daemon = start_netboot(lab, root, config)

    def stop() -> None:
        with contextlib.suppress(AssertionError):
            daemon.stop()
        daemon.__exit__(None, None, None)
        tracebacks = [line for line in daemon.lines if "Traceback" in line]
        if tracebacks:
            print(f"warning: netboot logged {len(tracebacks)} traceback(s)", file=sys.stderr)

    return Server("netboot", lab, NETBOOT_PATH, real_pid(daemon.process.pid), stop)


def dnsmasq_command(
    lab: VethPair, tftp_root: Path, state: Path, mtu: int, max_transfers: int
) -> list[str]:
    """dnsmasq as a TFTP server only, reading and writing nothing outside `state`.

    --port=0 turns DNS off; with no --dhcp-range there is no DHCP. The lease file
    is named (and read-only) so the default under /var/lib/misc is never used.
    --edns-packet-max sizes dnsmasq's one packet buffer, which also caps the
    TFTP block size (buffer - 4, 2263 by default), so it is raised to at least the MTU:
    then the interface MTU (read once at start) is the only cap, as for ours.
    """
    return [
        *DNSMASQ_ALONE,
        "--enable-tftp",
        f"--tftp-root={tftp_root}",
        f"--tftp-max={max_transfers}",
        f"--listen-address={lab.server_ip}",
        "--bind-interfaces",
        f"--pid-file={state / 'dnsmasq.pid'}",
        f"--dhcp-leasefile={state / 'dnsmasq.leases'}",
        "--leasefile-ro",
        f"--edns-packet-max={max(mtu, 4096)}",
        "--log-facility=-",
        "--user=root",
        "--group=root",
    ]


def dnsmasq_server(
    lab: VethPair, tftp_root: Path, state: Path, mtu: int, max_transfers: int
) -> Server:
    command = dnsmasq_command(lab, tftp_root, state, mtu, max_transfers)
    process = start_until_logged(
        lab.server, command, state / "dnsmasq.log", "TFTP root is", START_TIMEOUT
    )
    return Server(
        "dnsmasq", lab, DNSMASQ_PATH, real_pid(process.pid), lambda: stop_process(process)
    )


# --------------------------------------------------------------------------------------
# Clients (run in the client namespace)
# --------------------------------------------------------------------------------------


def in_client(lab: VethPair, command: Sequence[str], timeout: float = CLIENT_TIMEOUT) -> str:
    """Run `command` in the client namespace; return its output, raise if it failed."""
    done = subprocess.run(
        ["ip", "netns", "exec", lab.client, *command],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{command[0]} exited {done.returncode}: {done.stderr or done.stdout}")
    return done.stdout


def curl_command(host: str, path: str, out: Path, blksize: int) -> list[str]:
    # curl always sends tsize=0, blksize (512 too) and timeout=6; no windowsize.
    return [
        "curl",
        "--silent",
        "--show-error",
        "--max-time",
        str(CLIENT_TIMEOUT),
        "--tftp-blksize",
        str(blksize),
        "-o",
        str(out),
        f"tftp://{host}/{path}",
    ]


def atftp_command(host: str, path: str, out: Path, blksize: int, windowsize: int) -> list[str]:
    # atftp 0.8: each option is one "name value" argument; it sends only what is asked.
    return [
        "atftp",
        "--get",
        "--remote-file",
        path,
        "--local-file",
        str(out),
        "--option",
        f"blksize {blksize}",
        "--option",
        f"windowsize {windowsize}",
        host,
    ]


def netboot_get_command(
    host: str, path: str, out: Path, blksize: int, windowsize: int
) -> list[str]:
    """OUR CLIENT (hook): `netboot tftp get`; its Python start-up (~0.3 s) is in the time."""
    return [
        sys.executable,
        "-m",
        "netboot",
        "tftp",
        "get",
        "--blksize",
        str(blksize),
        "--windowsize",
        str(windowsize),
        host,
        path,
        "-o",
        str(out),
    ]


WINDOW_CLIENTS: dict[str, Callable[[str, str, Path, int, int], list[str]]] = {
    "atftp": atftp_command,
    "netboot": netboot_get_command,
}


def timed_download(lab: VethPair, command: list[str], out: Path, want_sha256: str) -> float:
    """Seconds one download took; fails unless every byte arrived."""
    out.unlink(missing_ok=True)
    started = time.perf_counter()
    in_client(lab, command)
    seconds = time.perf_counter() - started
    digest = hashlib.sha256(out.read_bytes()).hexdigest() if out.exists() else "missing"
    out.unlink(missing_ok=True)
    if digest != want_sha256:
        raise RuntimeError(f"{command[0]}: sha256 {digest} != {want_sha256}")
    return seconds


def probe_options(server: Server, options: dict[str, str]) -> dict[str, str]:
    """What the server acknowledged (its OACK) for an RRQ with `options`; {} if none."""
    args = [f"{key}={value}" for key, value in options.items()]
    lab = server.lab
    output = in_client(
        lab, [sys.executable, __file__, "_probe", lab.server_ip, server.path, *args], timeout=30
    )
    return dict(pair.split("=", 1) for pair in output.split())


# --------------------------------------------------------------------------------------
# Client-side helpers, run as `benchmarks/tftp.py _probe|_slow ...` inside the namespace
# --------------------------------------------------------------------------------------

OP_RRQ, OP_DATA, OP_ACK, OP_ERROR, OP_OACK = 1, 3, 4, 5, 6


def rrq(path: str, options: dict[str, str]) -> bytes:
    fields = [path, "octet", *(item for pair in options.items() for item in pair)]
    return struct.pack("!H", OP_RRQ) + b"".join(f.encode() + b"\0" for f in fields)


def tftp_error(message: str) -> bytes:
    return struct.pack("!HH", OP_ERROR, 0) + message.encode() + b"\0"


def helper_probe(host: str, path: str, pairs: Sequence[str]) -> None:
    """Print the OACK's options as key=value, then abandon the transfer."""
    options = dict(pair.split("=", 1) for pair in pairs)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        sock.sendto(rrq(path, options), (host, 69))
        reply, peer = sock.recvfrom(65536)
        sock.sendto(tftp_error("probe only"), peer)
    opcode = struct.unpack("!H", reply[:2])[0]
    if opcode == OP_OACK:
        fields = reply[2:].split(b"\0")[:-1]
        acked = zip(fields[::2], fields[1::2], strict=False)
        print(" ".join(f"{key.decode()}={value.decode()}" for key, value in acked))
    elif opcode == OP_ERROR:
        raise SystemExit(f"server refused: {reply[4:-1].decode(errors='replace')}")


@dataclass
class SlowTransfer:
    sock: socket.socket
    peer: tuple[str, int] | None = None
    block: int = -1
    """Last block received (0 for the OACK); -1 before anything arrived."""
    next_ack: float = 0.0
    acked: int = -1


def helper_slow(host: str, path: str, count: int, hold: float) -> None:
    """Open `count` downloads at blksize 512 and ACK each one block per SLOW_ACK_INTERVAL.

    Prints `open N` once every transfer has received something, keeps them open
    for `hold` seconds, then sends ERROR on each and exits; bounded by a deadline.
    """
    selector = selectors.DefaultSelector()
    transfers: list[SlowTransfer] = []
    request = rrq(path, {"blksize": "512", "tsize": "0"})
    for _ in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setblocking(False)
        transfer = SlowTransfer(sock)
        transfers.append(transfer)
        selector.register(sock, selectors.EVENT_READ, transfer)
        sock.sendto(request, (host, 69))
    deadline = time.monotonic() + START_TIMEOUT + hold
    hold_until: float | None = None
    while time.monotonic() < deadline and (hold_until is None or time.monotonic() < hold_until):
        now = time.monotonic()
        for transfer in transfers:
            if transfer.peer and transfer.block > transfer.acked and now >= transfer.next_ack:
                transfer.sock.sendto(struct.pack("!HH", OP_ACK, transfer.block), transfer.peer)
                transfer.acked = transfer.block
                transfer.next_ack = now + SLOW_ACK_INTERVAL
        for key, _ in selector.select(timeout=SLOW_ACK_INTERVAL / 5):
            transfer = key.data
            with contextlib.suppress(BlockingIOError, ConnectionRefusedError):
                while True:
                    packet, peer = transfer.sock.recvfrom(65536)
                    opcode = struct.unpack("!H", packet[:2])[0]
                    transfer.peer = peer
                    if opcode == OP_OACK:
                        transfer.block = max(transfer.block, 0)
                    elif opcode == OP_DATA:
                        transfer.block = max(transfer.block, struct.unpack("!H", packet[2:4])[0])
                    elif opcode == OP_ERROR:
                        raise SystemExit(f"server error: {packet[4:-1].decode(errors='replace')}")
        if hold_until is None and all(t.block >= 0 for t in transfers):
            print(f"open {count}", flush=True)
            hold_until = time.monotonic() + hold
    opened = sum(t.block >= 0 for t in transfers)
    for transfer in transfers:
        if transfer.peer:
            with contextlib.suppress(OSError):
                transfer.sock.sendto(tftp_error("benchmark over"), transfer.peer)
        transfer.sock.close()
    if hold_until is None:
        raise SystemExit(f"only {opened} of {count} transfers opened")


HELPERS = {"_probe", "_slow"}


def run_helper(argv: Sequence[str]) -> None:
    mode, host, path, *rest = argv
    if mode == "_probe":
        helper_probe(host, path, rest)
    else:
        helper_slow(host, path, int(rest[0]), float(rest[1]))


# --------------------------------------------------------------------------------------
# Memory
# --------------------------------------------------------------------------------------


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


@dataclass
class Memory:
    before_kib: int
    peak_kib: int
    transfers: int

    @property
    def per_transfer_kib(self) -> float:
        return (self.peak_kib - self.before_kib) / self.transfers


def measure_memory(server: Server, transfers: int, hold: float) -> Memory:
    """RSS growth of `server` while `transfers` slow downloads are open at once."""
    lab = server.lab
    slow = [sys.executable, __file__, "_slow", lab.server_ip, server.path]
    # One short transfer first, so lazy imports and first-use caches are not counted.
    in_client(lab, [*slow, "1", "0.5"], timeout=START_TIMEOUT + 10)
    before = rss_kib(server.pid)
    peak = before
    process = subprocess.Popen(
        ["ip", "netns", "exec", lab.client, *slow, str(transfers), str(hold)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + START_TIMEOUT + hold + 10
    try:
        while process.poll() is None and time.monotonic() < deadline:
            peak = max(peak, rss_kib(server.pid))
            time.sleep(SAMPLE_INTERVAL)
    finally:
        if process.poll() is None:
            process.kill()
        out, err = process.communicate(timeout=10)
    if process.returncode != 0:
        raise RuntimeError(f"slow clients failed ({process.returncode}): {err or out}")
    return Memory(before, peak, transfers)


# --------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One timed download: a client and what it asks for."""

    client: str
    blksize: int
    windowsize: int | None = None
    """None: no windowsize asked (curl cannot)."""

    @property
    def label(self) -> str:
        window = "" if self.windowsize is None else f" windowsize {self.windowsize}"
        return f"{self.client} blksize {self.blksize}{window}"

    def command(self, server: Server, out: Path) -> list[str]:
        host = server.lab.server_ip
        if self.windowsize is None:
            return curl_command(host, server.path, out, self.blksize)
        return WINDOW_CLIENTS[self.client](host, server.path, out, self.blksize, self.windowsize)

    def options(self) -> dict[str, str]:
        """The options to probe the server's answer with (what the client asks for)."""
        options = {"blksize": str(self.blksize), "tsize": "0"}
        if self.windowsize is not None:
            options["windowsize"] = str(self.windowsize)
        return options


@dataclass
class Results:
    seconds: dict[tuple[str, Case], float] = field(default_factory=dict)
    """(server, case) -> best time."""
    granted: dict[tuple[str, Case], dict[str, str]] = field(default_factory=dict)
    """(server, case) -> the server's OACK for that case's options."""
    memory: dict[str, Memory] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


MEASUREMENT_FAILURES = (LabError, RuntimeError, AssertionError, OSError, subprocess.TimeoutExpired)
"""What a failed start or download raises (AssertionError: netboot_lab.daemon's start timeout)."""


def measure_speed(
    servers: Sequence[Server],
    cases: Sequence[Case],
    repeat: int,
    work: Path,
    sha256: str,
    results: Results,
) -> None:
    """Time every case on every server, interleaved round by round.

    Both servers run at once (each in its own namespace pair), and each round
    downloads from one then the other, so a slow spell of the machine hits both
    rather than whichever happened to be measured during it.
    """
    failed: set[str] = set()
    for server in servers:
        for case in cases:
            try:
                results.granted[server.name, case] = probe_options(server, case.options())
            except MEASUREMENT_FAILURES as error:
                results.errors.append(f"{server.name} {case.label}: probe: {error}")
                failed.add(server.name)
    for round_number in range(1, repeat + 1):
        for case in cases:
            for server in servers:
                if server.name in failed:
                    continue
                out = work / f"download-{server.name}"
                try:
                    seconds = timed_download(server.lab, case.command(server, out), out, sha256)
                except MEASUREMENT_FAILURES as error:
                    results.errors.append(f"{server.name} {case.label}: {error}")
                    failed.add(server.name)
                    continue
                key = (server.name, case)
                results.seconds[key] = min(results.seconds.get(key, seconds), seconds)
                print(f"  round {round_number} {server.name} {case.label}: {seconds:.3f}s")


def start_server(name: str, lab: VethPair, tree: Path, args: argparse.Namespace) -> Server:
    if name == "dnsmasq":
        return dnsmasq_server(lab, tree / "tftproot", tree, args.mtu, args.transfers + 20)
    return netboot_server(lab, tree / "images", tree / "netboot.toml")


def prepare_tree(tree: Path, size: int, mtu: int, transfers: int) -> str:
    """Write the same random bytes as an NBI set (ours) and a plain TFTP root (dnsmasq)."""
    payload = os.urandom(size)
    set_dir = make_set(tree / "images", SET_NAME)
    (set_dir / "i386" / "vmlinuz").write_bytes(payload)
    (tree / "tftproot").mkdir()
    (tree / "tftproot" / DNSMASQ_PATH).write_bytes(payload)
    (tree / "netboot.toml").write_text(
        f"[tftp]\nmtu = {mtu}\nmax_transfers = {max(1000, transfers + 20)}\n"
    )
    return hashlib.sha256(payload).hexdigest()


def speed_cases(args: argparse.Namespace) -> list[Case]:
    return [
        *(Case("curl", blksize) for blksize in BLKSIZES),
        Case(args.window_client, WINDOW_BLKSIZE, args.windowsize),
    ]


def run(args: argparse.Namespace) -> Results:
    results = Results()
    names = [args.only] if args.only else list(SERVERS)
    with (
        tempfile.TemporaryDirectory(prefix="netboot-bench-") as temporary,
        contextlib.ExitStack() as labs_stack,
    ):
        tree = Path(temporary)
        work = tree / "work"
        work.mkdir()
        labs: dict[str, VethPair] = {}
        for name, subnet in zip(names, SUBNETS, strict=False):
            lab = labs[name] = labs_stack.enter_context(veth_pair(subnet))
            for netns, ifname in ((lab.server, lab.server_if), (lab.client, lab.client_if)):
                ip("link", "set", "dev", ifname, "mtu", str(args.mtu), netns=netns)
        sha256 = prepare_tree(tree, int(args.size_mb * 1024 * 1024), args.mtu, args.transfers)

        print(f"download speed: {', '.join(names)}, {args.repeat} round(s)", flush=True)
        with contextlib.ExitStack() as servers_stack:
            servers: list[Server] = []
            for name in names:
                try:
                    server = start_server(name, labs[name], tree, args)
                except MEASUREMENT_FAILURES as error:
                    results.errors.append(f"{name}: could not start: {error}")
                    continue
                servers_stack.callback(server.stop)
                servers.append(server)
            measure_speed(servers, speed_cases(args), args.repeat, work, sha256, results)

        for name in names if args.transfers > 0 else []:
            print(f"memory: {name}, fresh, {args.transfers} open transfers", flush=True)
            try:
                server = start_server(name, labs[name], tree, args)
            except MEASUREMENT_FAILURES as error:
                results.errors.append(f"{name}: could not start: {error}")
                continue
            try:
                results.memory[name] = measure_memory(server, args.transfers, args.hold)
            except MEASUREMENT_FAILURES as error:
                results.errors.append(f"{name} memory: {error}")
            finally:
                server.stop()
    return results


def cell(value: float | None, fmt: str = "{:.3f}") -> str:
    return "-" if value is None else fmt.format(value)


def ratio(ours: float | None, theirs: float | None) -> float | None:
    return None if ours is None or theirs is None or theirs == 0 else ours / theirs


def report(results: Results, args: argparse.Namespace) -> None:
    dnsmasq, ours = "dnsmasq", "netboot"
    *curl_cases, window_case = speed_cases(args)

    def granted(name: str, case: Case, option: str, missing: str) -> str:
        acked = results.granted.get((name, case))
        return "-" if acked is None else acked.get(option, missing)

    print()
    print(
        f"TFTP download of {args.size_mb:g} MiB with curl, best of {args.repeat}, "
        f"veth MTU {args.mtu}; granted = blksize in the server's OACK"
    )
    header = f"{'blksize':>7}  {'dnsmasq s':>9} {'granted':>7}  {'netboot s':>9} {'granted':>7}"
    print(f"{header}  {'netboot/dnsmasq':>15}")
    for case in curl_cases:
        theirs = results.seconds.get((dnsmasq, case))
        mine = results.seconds.get((ours, case))
        print(
            f"{case.blksize:>7}  {cell(theirs):>9} {granted(dnsmasq, case, 'blksize', '512'):>7}"
            f"  {cell(mine):>9} {granted(ours, case, 'blksize', '512'):>7}"
            f"  {cell(ratio(mine, theirs), '{:.2f}'):>15}"
        )
    curl_at_window_blksize = next(c for c in curl_cases if c.blksize == window_case.blksize)
    mine = results.seconds.get((ours, window_case))
    theirs_curl = results.seconds.get((dnsmasq, curl_at_window_blksize))
    theirs_same = results.seconds.get((dnsmasq, window_case))
    print()
    print(
        f"{window_case.label}: netboot {cell(mine)}s "
        f"(granted windowsize {granted(ours, window_case, 'windowsize', '1')}); "
        f"speed-up over dnsmasq with curl at blksize {window_case.blksize}: "
        f"{cell(ratio(theirs_curl, mine), '{:.2f}x')}"
    )
    print(
        f"  the same {window_case.client} command against dnsmasq "
        f"(granted windowsize {granted(dnsmasq, window_case, 'windowsize', '1')}): "
        f"{cell(theirs_same)}s; speed-up {cell(ratio(theirs_same, mine), '{:.2f}x')}"
    )
    if results.memory:
        print()
        print(f"memory with {args.transfers} open transfers (VmRSS, KiB)")
        print(f"{'server':>8}  {'before':>8}  {'peak':>8}  {'per transfer':>12}")
        for name, memory in results.memory.items():
            print(
                f"{name:>8}  {memory.before_kib:>8}  {memory.peak_kib:>8}"
                f"  {memory.per_transfer_kib:>12.1f}"
            )
        mine_memory, theirs_memory = results.memory.get(ours), results.memory.get(dnsmasq)
        if mine_memory and theirs_memory:
            theirs_growth = theirs_memory.peak_kib - theirs_memory.before_kib
            if theirs_growth < RSS_RESOLUTION_KIB:
                # A ratio to (almost) nothing is noise: say so instead of printing 700x.
                print(
                    f"netboot/dnsmasq per transfer: n/a (dnsmasq grew {theirs_growth} KiB "
                    f"in all, under the {RSS_RESOLUTION_KIB} KiB this resolves)"
                )
            else:
                mem_ratio = ratio(mine_memory.per_transfer_kib, theirs_memory.per_transfer_kib)
                print(f"netboot/dnsmasq per transfer: {cell(mem_ratio, '{:.1f}')}")
    for error in results.errors:
        print(f"error: {error}", file=sys.stderr)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--size-mb", type=float, default=14.0, help="file size in MiB")
    parser.add_argument("--repeat", type=int, default=3, help="downloads per case; best counts")
    parser.add_argument("--only", choices=SERVERS, help="measure one server only")
    parser.add_argument("--mtu", type=int, default=9000, help="veth MTU (both servers clamp)")
    parser.add_argument("--windowsize", type=int, default=16)
    parser.add_argument("--window-client", choices=sorted(WINDOW_CLIENTS), default="atftp")
    parser.add_argument(
        "--transfers", type=int, default=100, help="open transfers for memory; 0 skips it"
    )
    parser.add_argument("--hold", type=float, default=3.0, help="seconds to hold them open")
    args = parser.parse_args(argv)
    if args.repeat < 1 or not 0 <= args.transfers <= 1000 or args.mtu < 576:
        parser.error("--repeat >= 1, 0 <= --transfers <= 1000, --mtu >= 576")
    return args


def terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def exit_cleanly_on_sigterm() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C, so the finally blocks stop servers and remove namespaces."""
    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str]) -> int:
    if argv and argv[0] in HELPERS:
        run_helper(argv)
        return 0
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("needs root: it creates network namespaces", file=sys.stderr)
        return 2
    with exit_cleanly_on_sigterm():
        results = run(args)
    report(results, args)
    return 1 if results.errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
