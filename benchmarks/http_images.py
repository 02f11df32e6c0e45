"""HTTP download throughput and per-client memory: `netboot serve` against nginx.

Run from the repository root, as root (it creates network namespaces), after
`./bootstrap.sh test` has made the venv; nginx-light is installed with apt-get
if no `nginx` is on PATH (any host nginx service the package starts is stopped
and disabled again):

    .venv/bin/python benchmarks/http_images.py [--size-mb 256] [--repeat 3]
        [--case download,memory,ranges] [--connections 8,64] [--nginx-workers auto]

The ranges case needs wrk (`apt-get install wrk`, one of bootstrap.sh's test
packages); the issue's comparison is against one nginx worker:

    .venv/bin/python benchmarks/http_images.py --case ranges --nginx-workers 1 --repeat 5

What is measured
----------------
Both servers run at once in one server/client namespace pair (netboot_lab.netns.veth_pair,
veth MTU 1500); nothing leaves it. They serve the same random bytes (`--size-mb`,
256 MiB by default, behind an Apple Partition Map header so the catalog accepts
the set) at the same relative path, `Bench.nbi/NetBoot.dmg`, from the same inode
(the nginx root holds a hard link), so both read the same page cache:

* nginx with a config file of its own (in a temp dir): `sendfile on`,
  `tcp_nopush on`, `access_log off`, `worker_processes auto` as in Debian's stock
  config (one worker per core; `--nginx-workers 1` for a one-process peer),
  listening on the namespace address, port 8081;
* ours, `python -m netboot serve`, one Python process (Twisted reactor), port
  8080, sending whole files and single ranges with sendfile (multipart ranges in
  256 KiB `os.pread` chunks).

1. Throughput: curl downloads the whole file to /dev/null from the client
   namespace, with 1 stream and with 16 concurrent curl processes. MB/s is
   10^6 bytes per second: all bytes received divided by the wall time from
   starting the first curl to the exit of the last (connection set-up
   included). Rounds alternate nginx and ours case by case for `--repeat`
   rounds; the best (highest) of each counts. Before timing, one full download
   from each server is checked against the file's sha256 (it also warms the
   page cache). Each server's CPU time during its best run (utime and stime
   from /proc/PID/stat; all nginx workers summed) is printed as user + sys
   CPU seconds per GiB sent.
2. Memory: a fresh `netboot serve`, then 20 curls (`--clients`) download a
   4 GiB *sparse* file (`Sparse.nbi/NetBoot.dmg`; zeros after the header, so the
   disk is not what is measured) with `--limit-rate 20M` and `--max-time 10`, so
   all 20 responses stay open for ~10 seconds with the server's send buffers
   full. Our VmRSS (/proc/PID/status) is read after one short warm-up request
   and sampled every 50 ms while they run; the peak growth is printed in MiB.

How to read it
--------------
* `netboot/nginx` is our MB/s divided by nginx's from the same run on the same
  machine: 1.00 is parity, 0.50 means we deliver half nginx's throughput.
  Absolute MB/s depend on the machine (client and servers share its cores, and
  curl's own CPU is part of the cost); compare ratios between runs.
* CPU per GiB says where the limit is. Ours is one thread: when its CPU seconds
  approach the wall time of a run it is CPU-bound on one core, while nginx's
  workers use both. `user` is Python and Twisted; `sys` is the kernel: the TCP
  work (on a veth pair the receiving side often runs in the sender's context,
  so part of the client's cost lands here, for both servers) and, for us only,
  copying every byte twice, page cache to a fresh buffer (os.pread) and buffer
  to socket (send), where nginx's sendfile hands the kernel page references.
* Runs on a shared 2-core machine vary: our 16-stream rate has been seen to drop
  by ~2x in single rounds with the same bytes and twice the sys time. The best
  of several rounds is what the table keeps; use `--repeat 5` before reading
  much into a ratio, and the single-stream row (~0.1 s per download at these
  rates) is the noisiest.
* Memory growth is what 20 slow clients cost us in all; divided by 20 it is
  the per-client cost, which should stay near a chunk or two (256-512 KiB)
  however large the file. Python's allocator keeps freed memory, so treat
  differences under a few MiB as noise.

This is a measurement, not a test: nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TypeVar

from netboot_lab.daemon import Daemon
from netboot_lab.factories import APM_IMAGE, make_set
from netboot_lab.netns import VethPair, veth_pair
from netboot_lab.nginx import ensure_nginx, host_nginx_pids, nginx_config

SERVERS = ("nginx", "netboot")
SUBNET = "10.231.20"
NETBOOT_PORT = 8080
NGINX_PORT = 8081
SET_NAME = "Bench"
SPARSE_SET_NAME = "Sparse"
BIG_PATH = f"{SET_NAME}.nbi/NetBoot.dmg"
SPARSE_PATH = f"{SPARSE_SET_NAME}.nbi/NetBoot.dmg"
STREAMS = (1, 16)
T = TypeVar("T")
CASES = ("download", "memory", "ranges")
WRK_SCRIPT = Path(__file__).with_name("wrk_ranges.lua")
RANGE_SEED = 18
"""The seed of wrk's random offsets: rounds of one run ask for the same sequence."""
MB = 1_000_000
MIB = 1024 * 1024
GIB = 1024 * MIB
WRITE_CHUNK = 16 * MIB
START_TIMEOUT = 30.0
DOWNLOAD_TIMEOUT = 600.0
"""Seconds one timed download (all its streams) may take before it counts as failed."""
SAMPLE_INTERVAL = 0.05
CURL_TIMED_OUT = 28
"""curl's exit status when --max-time ends a transfer: expected in the memory run."""


# --------------------------------------------------------------------------------------
# /proc
# --------------------------------------------------------------------------------------


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def children(pid: int) -> list[int]:
    with contextlib.suppress(OSError):
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return []


@dataclass(frozen=True)
class Cpu:
    """CPU seconds in user space and in the kernel."""

    user: float
    system: float

    def __sub__(self, other: Cpu) -> Cpu:
        return Cpu(self.user - other.user, self.system - other.system)

    @property
    def total(self) -> float:
        return self.user + self.system


def cpu_seconds(pids: Sequence[int]) -> Cpu:
    """utime and stime of `pids` (all their threads); gone processes count 0."""
    user = system = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            stat = Path(f"/proc/{pid}/stat").read_text()
            fields = stat.rsplit(")", 1)[1].split()
            user += int(fields[11])  # fields 14 and 15 of proc(5)
            system += int(fields[12])
    tick = os.sysconf("SC_CLK_TCK")
    return Cpu(user / tick, system / tick)


# --------------------------------------------------------------------------------------
# Servers
# --------------------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    base_url: str
    pid: int
    """The server process itself (not `ip netns exec`): nginx's master, or our Python."""

    def worker_pids(self) -> list[int]:
        """The processes that do the work: nginx's workers, or our one process."""
        return (children(self.pid) or [self.pid]) if self.name == "nginx" else [self.pid]


def in_client(lab: VethPair, command: Sequence[str], timeout: float = START_TIMEOUT) -> str:
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


def wait_serving(lab: VethPair, url: str, poll: Callable[[], int | None]) -> None:
    """Poll `url` (HEAD) from the client until it answers 200; fail if the server exits."""
    deadline = time.monotonic() + START_TIMEOUT
    last = ""
    while time.monotonic() < deadline:
        if (status := poll()) is not None:
            raise RuntimeError(f"server exited ({status}) before serving {url}")
        command = ["curl", "-s", "-I", "-o", "/dev/null", "-w", "%{http_code}", "-m", "2", url]
        done = subprocess.run(
            ["ip", "netns", "exec", lab.client, *command],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        last = done.stdout.strip()
        if last == "200":
            return
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer 200 within {START_TIMEOUT}s (last: {last!r})")


@contextlib.contextmanager
def nginx_server(
    nginx: str, lab: VethPair, root: Path, state: Path, workers: str
) -> Iterator[Server]:
    config = state / "nginx.conf"
    config.write_text(nginx_config(nginx, f"{lab.server_ip}:{NGINX_PORT}", root, state, workers))
    error_log = state / "nginx-error.log"
    command = [nginx, "-p", f"{state}/", "-e", str(error_log), "-c", str(config)]
    with (state / "nginx-stderr.log").open("wb") as stderr:
        process = subprocess.Popen(
            ["ip", "netns", "exec", lab.server, *command, "-g", "daemon off;"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        base_url = f"http://{lab.server_ip}:{NGINX_PORT}"
        try:
            wait_serving(lab, f"{base_url}/{BIG_PATH}", process.poll)
        except RuntimeError as error:
            log = error_log.read_text(errors="replace") if error_log.exists() else ""
            raise RuntimeError(f"nginx: {error}\n{log}") from None
        yield Server("nginx", base_url, process.pid)
    finally:
        workers_pids = children(process.pid)
        if process.poll() is None:
            process.terminate()  # SIGTERM: fast shutdown, the master stops its workers
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                for pid in workers_pids:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                process.kill()
                process.wait()


@contextlib.contextmanager
def netboot_server(lab: VethPair, root: Path, config: Path) -> Iterator[Server]:
    """OUR SERVER: `netboot serve` in the server namespace, ready to serve the big file."""
    daemon = Daemon(
        ["--config", str(config), "--root", str(root), "--interface", lab.server_if],
        netns=lab.server,
    )
    try:
        daemon.wait_ready()
        base_url = f"http://{lab.server_ip}:{NETBOOT_PORT}"
        try:
            wait_serving(lab, f"{base_url}/{BIG_PATH}", daemon.process.poll)
        except RuntimeError as error:
            raise RuntimeError(f"netboot: {error}\n" + "\n".join(daemon.lines[-20:])) from None
        pid = daemon.process.pid
        if Path(f"/proc/{pid}/comm").read_text().strip() == "ip":  # ip forked, not exec'd
            pid = children(pid)[0]
        yield Server("netboot", base_url, pid)
    finally:
        with contextlib.suppress(AssertionError):
            daemon.stop()
        daemon.__exit__(None, None, None)
        tracebacks = [line for line in daemon.lines if "Traceback" in line]
        if tracebacks:
            print(f"warning: netboot logged {len(tracebacks)} traceback(s)", file=sys.stderr)


# --------------------------------------------------------------------------------------
# Client helper, run as `benchmarks/http_images.py _fetch ...` inside the client namespace
# --------------------------------------------------------------------------------------


def helper_fetch(url: str, count: int, max_time: float, limit_rate: str) -> None:
    """Start `count` curls of `url` to /dev/null at once; print JSON: wall time and results.

    The time runs from starting the first curl to the exit of the last, so the
    Python start-up of this helper is not in it.
    """
    command = ["curl", "--silent", "--show-error", "--max-time", f"{max_time:g}", "-o", "/dev/null"]
    command += ["-w", "%{http_code} %{size_download}"]
    if limit_rate != "-":
        command += ["--limit-rate", limit_rate]
    started = time.perf_counter()
    processes = [
        subprocess.Popen(
            [*command, url],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]
    results = []
    try:
        for process in processes:
            out, err = process.communicate(timeout=max_time + 30)
            code, size = [*out.split(), "0", "0"][:2]
            result = {"exit": process.returncode, "code": code, "bytes": int(size), "err": err}
            results.append(result)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "results": results}))


HELPERS = {"_fetch"}


def run_helper(argv: Sequence[str]) -> None:
    _, url, count, max_time, limit_rate = argv
    helper_fetch(url, int(count), float(max_time), limit_rate)


@dataclass
class Fetch:
    seconds: float
    exits: list[int]
    codes: list[str]
    sizes: list[int]
    errors: list[str]


def fetch(
    lab: VethPair, url: str, count: int, max_time: float, limit_rate: str = "-"
) -> subprocess.Popen[str]:
    """Start the helper in the client namespace; read it with `finish_fetch`."""
    return subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            lab.client,
            sys.executable,
            __file__,
            "_fetch",
            url,
            str(count),
            str(max_time),
            limit_rate,
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def kill_fetch(process: subprocess.Popen[str]) -> None:
    """Stop the helper and its curls: one process group of their own (see fetch)."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.communicate(timeout=10)


def finish_fetch(process: subprocess.Popen[str], timeout: float) -> Fetch:
    try:
        out, err = process.communicate(timeout=timeout)
    finally:  # a timeout, or Ctrl-C / SIGTERM while waiting: leave no helper behind
        kill_fetch(process)
    if process.returncode != 0:
        raise RuntimeError(f"fetch helper exited {process.returncode}: {err or out}")
    data = json.loads(out)
    results = data["results"]
    return Fetch(
        data["seconds"],
        [r["exit"] for r in results],
        [r["code"] for r in results],
        [r["bytes"] for r in results],
        [r["err"].strip() for r in results if r["err"].strip()],
    )


def timed_download(server: Server, lab: VethPair, streams: int, size: int) -> tuple[float, Cpu]:
    """(MB/s, server CPU seconds) for `streams` concurrent full downloads."""
    pids = server.worker_pids()
    cpu_before = cpu_seconds(pids)
    process = fetch(lab, f"{server.base_url}/{BIG_PATH}", streams, DOWNLOAD_TIMEOUT)
    result = finish_fetch(process, DOWNLOAD_TIMEOUT + 60)
    cpu = cpu_seconds(pids) - cpu_before
    if any(result.exits) or any(c != "200" for c in result.codes) or set(result.sizes) != {size}:
        raise RuntimeError(
            f"{server.name}: exits {result.exits}, codes {result.codes}, sizes "
            f"{result.sizes} (want {size}): {result.errors[:3]}"
        )
    return streams * size / result.seconds / MB, cpu


def verify_download(server: Server, lab: VethPair, out: Path, want_sha256: str) -> None:
    """One full download to a file, checked against the sha256 of what was written."""
    out.unlink(missing_ok=True)
    try:
        url = f"{server.base_url}/{BIG_PATH}"
        command = ["curl", "--silent", "--show-error", "--fail", "-o", str(out), url]
        in_client(lab, [*command, "--max-time", str(int(DOWNLOAD_TIMEOUT))], DOWNLOAD_TIMEOUT + 30)
        digest = hashlib.sha256()
        with out.open("rb") as stream:
            while block := stream.read(WRITE_CHUNK):
                digest.update(block)
    finally:
        out.unlink(missing_ok=True)
    if digest.hexdigest() != want_sha256:
        raise RuntimeError(f"{server.name}: sha256 {digest.hexdigest()} != {want_sha256}")


# --------------------------------------------------------------------------------------
# Memory
# --------------------------------------------------------------------------------------


@dataclass
class Memory:
    before_kib: int
    peak_kib: int
    clients: int
    exits: list[int]
    received: int
    """Bytes all clients received in all."""

    @property
    def growth_mib(self) -> float:
        return (self.peak_kib - self.before_kib) / 1024

    @property
    def per_client_kib(self) -> float:
        return (self.peak_kib - self.before_kib) / self.clients


def measure_memory(server: Server, lab: VethPair, args: argparse.Namespace) -> Memory:
    url = f"{server.base_url}/{SPARSE_PATH}"
    # One short request first, so lazy imports and first-use caches are not counted.
    in_client(lab, ["curl", "-s", "-f", "-o", "/dev/null", "-r", "0-1048575", "-m", "10", url])
    before = rss_kib(server.pid)
    peak = before
    process = fetch(lab, url, args.clients, args.max_time, args.limit_rate)
    deadline = time.monotonic() + args.max_time + START_TIMEOUT
    try:
        while process.poll() is None and time.monotonic() < deadline:
            peak = max(peak, rss_kib(server.pid))
            time.sleep(SAMPLE_INTERVAL)
    except BaseException:
        kill_fetch(process)
        raise
    result = finish_fetch(process, timeout=30)
    bad = [e for e in result.exits if e not in (0, CURL_TIMED_OUT)]
    if bad or any(c not in ("200", "000") for c in result.codes):
        raise RuntimeError(f"slow clients: exits {result.exits}, codes {result.codes}")
    return Memory(before, peak, args.clients, result.exits, sum(result.sizes))


# --------------------------------------------------------------------------------------
# Ranges (wrk)
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RangeRun:
    """One wrk run: its totals, as its Lua `done` printed them."""

    requests: int
    bytes: int
    seconds: float
    p50_ms: float
    p99_ms: float
    cpu: Cpu

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds

    @property
    def mb_per_s(self) -> float:
        return self.bytes / self.seconds / MB

    @property
    def cpu_ms_per_request(self) -> float:
        return self.cpu.total * 1000 / self.requests


def median_of(runs: Sequence[RangeRun], value: Callable[[RangeRun], float]) -> float | None:
    """The median of `value` over `runs`; None when there are none."""
    return statistics.median(value(run) for run in runs) if runs else None


def check_range(server: Server, lab: VethPair, file: Path, offset: int, length: int) -> None:
    """One range from `server` must be the file's bytes at that offset, with status 206."""
    url = f"{server.base_url}/{BIG_PATH}"
    command = ["curl", "--silent", "--show-error", "--fail", "-o", "-", "-w", "\n%{http_code}"]
    command += ["-r", f"{offset}-{offset + length - 1}", "--max-time", "30", url]
    done = subprocess.run(
        ["ip", "netns", "exec", lab.client, *command], capture_output=True, timeout=60, check=False
    )
    body, _, status = done.stdout.rpartition(b"\n")
    with file.open("rb") as stream:
        stream.seek(offset)
        want = stream.read(length)
    if done.returncode != 0 or status != b"206" or body != want:
        raise RuntimeError(
            f"{server.name}: range {offset}+{length}: exit {done.returncode}, status "
            f"{status!r}, {len(body)} bytes, equal {body == want}: {done.stderr[-300:]!r}"
        )


def timed_ranges(
    server: Server, lab: VethPair, connections: int, args: argparse.Namespace, size: int
) -> RangeRun:
    """wrk with `connections` keep-alive connections of random ranges for `--duration` s."""
    length = int(args.range_kib * 1024)
    threads = min(2, connections)
    command = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{args.duration:g}s"]
    command += ["--timeout", "10s", "-s", str(WRK_SCRIPT), f"{server.base_url}/{BIG_PATH}"]
    command += ["--", str(size), str(length), str(RANGE_SEED)]
    pids = server.worker_pids()
    cpu_before = cpu_seconds(pids)
    out = in_client(lab, command, timeout=args.duration + START_TIMEOUT)
    cpu = cpu_seconds(pids) - cpu_before
    line = next((x for x in out.splitlines() if x.startswith("{")), None)
    if line is None:
        raise RuntimeError(f"{server.name}: wrk printed no totals: {out[-500:]}")
    totals = json.loads(line)
    errors = {k: totals[k] for k in ("connect", "read", "write", "status", "timeout") if totals[k]}
    requests = totals["requests"]
    average = totals["bytes"] / requests if requests else 0.0
    if errors or not length <= average <= length + 1024:
        raise RuntimeError(
            f"{server.name} {connections} connections: errors {errors}, {requests} requests, "
            f"{average:.0f} bytes per response (want {length} and headers)"
        )
    return RangeRun(
        requests,
        totals["bytes"],
        totals["duration_us"] / 1e6,
        totals["p50_us"] / 1000,
        totals["p99_us"] / 1000,
        cpu,
    )


def measure_ranges(
    servers: Sequence[Server], lab: VethPair, args: argparse.Namespace, size: int, results: Results
) -> None:
    failed: set[str] = set()
    for round_number in range(1, args.repeat + 1):
        for connections in args.connections:
            for server in servers:
                if server.name in failed:
                    continue
                try:
                    run = timed_ranges(server, lab, connections, args, size)
                except MEASUREMENT_FAILURES as error:
                    results.errors.append(f"{server.name} ranges, {connections} conn: {error}")
                    failed.add(server.name)
                    continue
                results.ranges.setdefault((server.name, connections), []).append(run)
                print(
                    f"  round {round_number} {server.name} {connections:>3} connections: "
                    f"{run.per_second:7.0f} req/s {run.mb_per_s:7.1f} MB/s, "
                    f"p50 {run.p50_ms:.1f} ms p99 {run.p99_ms:.1f} ms, server CPU "
                    f"{run.cpu.user:.2f}s user + {run.cpu.system:.2f}s sys",
                    flush=True,
                )


# --------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------


@dataclass
class Results:
    mb_per_s: dict[tuple[str, int], float] = field(default_factory=dict)
    """(server, streams) -> best MB/s."""
    cpu: dict[tuple[str, int], Cpu] = field(default_factory=dict)
    """(server, streams) -> server CPU seconds during that best run."""
    memory: Memory | None = None
    ranges: dict[tuple[str, int], list[RangeRun]] = field(default_factory=dict)
    """(server, connections) -> every round's wrk run."""
    errors: list[str] = field(default_factory=list)


MEASUREMENT_FAILURES = (
    RuntimeError,
    AssertionError,
    OSError,
    ValueError,
    subprocess.TimeoutExpired,
)
"""What a failed start or download raises (AssertionError: netboot_lab.daemon's start timeout)."""


def prepare_tree(tree: Path, size: int, sparse_size: int) -> str:
    """Write the big file (ours and, hard-linked, nginx's), the sparse file and the config."""
    images = tree / "images"
    set_dir = make_set(images, SET_NAME, Index=1)
    digest = hashlib.sha256()
    with (set_dir / "NetBoot.dmg").open("wb") as stream:
        head = APM_IMAGE[:size]
        stream.write(head)
        digest.update(head)
        left = size - len(head)
        while left > 0:
            block = os.urandom(min(WRITE_CHUNK, left))
            stream.write(block)
            digest.update(block)
            left -= len(block)
    (tree / "nginx-root" / f"{SET_NAME}.nbi").mkdir(parents=True)
    (tree / "nginx-root" / BIG_PATH).hardlink_to(set_dir / "NetBoot.dmg")
    sparse_dir = make_set(images, SPARSE_SET_NAME, Index=2)
    with (sparse_dir / "NetBoot.dmg").open("wb") as stream:
        stream.write(APM_IMAGE)
        stream.truncate(sparse_size)
    (tree / "netboot.toml").write_text(
        f"[http]\nport = {NETBOOT_PORT}\n[dhcp]\nport = 0\n[tftp]\nport = 0\n"
    )
    (tree / "nginx").mkdir()
    return digest.hexdigest()


def measure_speed(
    servers: Sequence[Server], lab: VethPair, args: argparse.Namespace, size: int, results: Results
) -> None:
    failed: set[str] = set()
    for round_number in range(1, args.repeat + 1):
        for streams in STREAMS:
            for server in servers:
                if server.name in failed:
                    continue
                try:
                    rate, cpu = timed_download(server, lab, streams, size)
                except MEASUREMENT_FAILURES as error:
                    results.errors.append(f"{server.name} {streams} stream(s): {error}")
                    failed.add(server.name)
                    continue
                key = (server.name, streams)
                if rate > results.mb_per_s.get(key, 0.0):
                    results.mb_per_s[key] = rate
                    results.cpu[key] = cpu
                print(
                    f"  round {round_number} {server.name} {streams:>2} stream(s): "
                    f"{rate:8.1f} MB/s, server CPU {cpu.user:.2f}s user + {cpu.system:.2f}s sys",
                    flush=True,
                )


def run(args: argparse.Namespace) -> Results:
    results = Results()
    nginx = ensure_nginx()
    size = int(args.size_mb * MIB)
    try:
        with (
            tempfile.TemporaryDirectory(prefix="netboot-bench-http-") as temporary,
            veth_pair(SUBNET) as lab,
        ):
            tree = Path(temporary)
            print(f"writing {args.size_mb:g} MiB of random bytes", flush=True)
            sha256 = prepare_tree(tree, size, int(args.sparse_gb * GIB))
            images, config = tree / "images", tree / "netboot.toml"
            big = images / BIG_PATH
            with contextlib.ExitStack() as stack:
                servers: list[Server] = []
                try:
                    servers.append(
                        stack.enter_context(
                            nginx_server(
                                nginx, lab, tree / "nginx-root", tree / "nginx", args.nginx_workers
                            )
                        )
                    )
                    servers.append(stack.enter_context(netboot_server(lab, images, config)))
                except MEASUREMENT_FAILURES as error:
                    results.errors.append(f"could not start: {error}")
                for server in list(servers):
                    try:
                        verify_download(server, lab, tree / "download", sha256)
                        check_range(server, lab, big, size // 3, min(size, MIB))
                    except MEASUREMENT_FAILURES as error:
                        results.errors.append(f"{server.name} content check: {error}")
                        servers.remove(server)
                names = ", ".join(s.name for s in servers)
                if "download" in args.case:
                    print(f"throughput: {names}, {args.repeat} round(s)", flush=True)
                    measure_speed(servers, lab, args, size, results)
                if "ranges" in args.case:
                    print(
                        f"ranges: {names}, {args.range_kib:g} KiB at random offsets, "
                        f"{args.duration:g}s per run, {args.repeat} round(s)",
                        flush=True,
                    )
                    measure_ranges(servers, lab, args, size, results)

            if "memory" in args.case and args.clients > 0:
                print(
                    f"memory: fresh netboot, {args.clients} clients, "
                    f"curl --limit-rate {args.limit_rate} "
                    f"for {args.max_time:g}s on a {args.sparse_gb:g} GiB sparse file",
                    flush=True,
                )
                try:
                    with netboot_server(lab, images, config) as server:
                        results.memory = measure_memory(server, lab, args)
                except MEASUREMENT_FAILURES as error:
                    results.errors.append(f"memory: {error}")
    finally:
        if host_nginx_pids():
            results.errors.append("an nginx is running on the host (not started by us)")
    return results


def cell(value: float | None, fmt: str) -> str:
    return "-" if value is None else fmt.format(value)


def report(results: Results, args: argparse.Namespace) -> None:
    if "download" in args.case:
        report_download(results, args)
    if "ranges" in args.case:
        report_ranges(results, args)
    memory = results.memory
    if memory is not None:
        timed_out = sum(e == CURL_TIMED_OUT for e in memory.exits)
        print()
        print(
            f"memory: netboot VmRSS {memory.before_kib / 1024:.1f} MiB before, peak "
            f"{memory.peak_kib / 1024:.1f} MiB with {memory.clients} clients on a "
            f"{args.sparse_gb:g} GiB sparse file: growth {memory.growth_mib:.1f} MiB "
            f"({memory.per_client_kib:.0f} KiB per client); they received "
            f"{memory.received / MIB:.0f} MiB in all, {timed_out} stopped by --max-time"
        )
    for error in results.errors:
        print(f"error: {error}", file=sys.stderr)


def report_ranges(results: Results, args: argparse.Namespace) -> None:
    print()
    print(
        f"random {args.range_kib:g} KiB ranges of {args.size_mb:g} MiB on keep-alive "
        f"connections (wrk, {args.duration:g}s), median of {args.repeat}; nginx "
        f"worker_processes {args.nginx_workers}"
    )
    print(
        f"{'conns':>5}  {'nginx req/s':>11}  {'netboot req/s':>13}  {'nginx MB/s':>10}  "
        f"{'netboot MB/s':>12}  {'netboot/nginx':>13}  {'CPU ms/req nginx, ours':>22}"
    )
    for connections in args.connections:
        runs = {name: results.ranges.get((name, connections), []) for name in SERVERS}
        rate = {name: median_of(runs[name], lambda run: run.per_second) for name in SERVERS}
        mb = {name: median_of(runs[name], lambda run: run.mb_per_s) for name in SERVERS}
        cpu = {name: median_of(runs[name], lambda run: run.cpu_ms_per_request) for name in SERVERS}
        theirs, mine = rate["nginx"], rate["netboot"]
        ratio = mine / theirs if mine is not None and theirs else None
        print(
            f"{connections:>5}  {cell(theirs, '{:.0f}'):>11}  {cell(mine, '{:.0f}'):>13}  "
            f"{cell(mb['nginx'], '{:.1f}'):>10}  {cell(mb['netboot'], '{:.1f}'):>12}  "
            f"{cell(ratio, '{:.2f}'):>13}  "
            f"{cell(cpu['nginx'], '{:.3f}'):>10}, {cell(cpu['netboot'], '{:.3f}'):>10}"
        )


def report_download(results: Results, args: argparse.Namespace) -> None:
    print()
    print(
        f"HTTP download of {args.size_mb:g} MiB with curl to /dev/null, best of {args.repeat}, "
        f"veth MTU 1500; MB/s = 10^6 bytes/s over wall time"
    )
    print(f"{'streams':>7}  {'nginx MB/s':>10}  {'netboot MB/s':>12}  {'netboot/nginx':>13}")
    for streams in STREAMS:
        theirs = results.mb_per_s.get(("nginx", streams))
        mine = results.mb_per_s.get(("netboot", streams))
        ratio = mine / theirs if mine is not None and theirs else None
        print(
            f"{streams:>7}  {cell(theirs, '{:.1f}'):>10}  {cell(mine, '{:.1f}'):>12}"
            f"  {cell(ratio, '{:.2f}'):>13}"
        )
    print()
    print("server CPU seconds per GiB sent, user + sys (in the best run)")
    print(f"{'streams':>7}  {'nginx':>16}  {'netboot':>16}")
    size_gib = args.size_mb / 1024

    def per_gib(name: str, streams: int) -> str:
        cpu = results.cpu.get((name, streams))
        if cpu is None:
            return "-"
        gib = streams * size_gib
        return f"{cpu.user / gib:.2f} + {cpu.system / gib:.2f}"

    for streams in STREAMS:
        print(f"{streams:>7}  {per_gib('nginx', streams):>16}  {per_gib('netboot', streams):>16}")


def comma_list(kind: Callable[[str], T]) -> Callable[[str], tuple[T, ...]]:
    """An argparse type: "a,b,c" as a tuple of `kind`."""

    def parse(text: str) -> tuple[T, ...]:
        return tuple(kind(item.strip()) for item in text.split(",") if item.strip())

    return parse


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--size-mb", type=float, default=256.0, help="file size in MiB")
    parser.add_argument("--repeat", type=int, default=3, help="downloads per case; best counts")
    parser.add_argument(
        "--clients", type=int, default=20, help="slow clients for memory; 0 skips it"
    )
    parser.add_argument("--sparse-gb", type=float, default=4.0, help="sparse file size in GiB")
    parser.add_argument("--limit-rate", default="20M", help="curl --limit-rate of slow clients")
    parser.add_argument("--max-time", type=float, default=10.0, help="seconds slow clients run")
    parser.add_argument(
        "--nginx-workers",
        default="auto",
        help="nginx worker_processes: auto (one per core, Debian's default) or a number",
    )
    parser.add_argument(
        "--case",
        type=comma_list(str),
        default=CASES,
        help=f"what to measure, comma-separated: {', '.join(CASES)} (default: all)",
    )
    parser.add_argument(
        "--connections",
        type=comma_list(int),
        default=(8, 64),
        help="keep-alive connection counts of the ranges case, comma-separated",
    )
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run")
    parser.add_argument("--range-kib", type=float, default=1024.0, help="bytes per range, KiB")
    args = parser.parse_args(argv)
    if unknown := set(args.case) - set(CASES):
        parser.error(f"--case: unknown {', '.join(sorted(unknown))}; choose from {CASES}")
    if not all(1 <= c <= 1000 for c in args.connections) or not 0 < args.duration <= 60:
        parser.error("1 <= --connections <= 1000, 0 < --duration <= 60")
    if not 0 < args.range_kib * 1024 <= args.size_mb * MIB:
        parser.error("0 < --range-kib <= --size-mb * 1024")
    if "ranges" in args.case and shutil.which("wrk") is None:
        parser.error("--case ranges needs wrk: apt-get install wrk")
    if args.repeat < 1 or not 0 <= args.clients <= 200 or args.size_mb * MIB < len(APM_IMAGE):
        parser.error("--repeat >= 1, 0 <= --clients <= 200, --size-mb >= 0.004")
    if not 0 < args.max_time <= 120:
        parser.error("0 < --max-time <= 120")
    if args.nginx_workers != "auto" and not args.nginx_workers.isdigit():
        parser.error("--nginx-workers: auto or a number")
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
