"""Boot storm: N simulated clients netboot at once from `netboot serve`, and from dnsmasq.

Run from the repository root, as root (it creates network namespaces), after
`./bootstrap.sh test` has made the venv and `apt-get install dnsmasq-base
xorriso` the peer and the root image's builder:

    .venv/bin/python benchmarks/storm.py [--clients 200] [--macs 0.5] [--repeat 1] [--json]

What is measured
----------------
One server/client namespace pair on 10.229.0.0/16 (netboot_lab/storm_lab.py
builds it; nothing leaves the namespaces). A single client process in the
client namespace (netboot_lab/storm_client.py) plays every client, one
coroutine each, all starting evenly spread over one second (`--spread`):

* a PC, as a BIOS PXE ROM: DHCP DISCOVER -> OFFER -> REQUEST -> ACK (broadcast,
  full DHCP mode), then by TFTP from its leased address the loader the ACK
  names (1 MiB) and a kernel (8 MiB), then the root image by HTTP ranges;
* a Mac (a share `--macs` of the clients), from a fixed address of its own:
  BSDP INFORM[LIST] and INFORM[SELECT], then the booter the ACK[SELECT] names
  (1 MiB) and the kernelcache beside it (8 MiB) by TFTP, then the root image
  its root path names, read as a mounting Mac reads it: UDIF tables,
  partition map, HFS+ volume header and catalog header node, first and last
  MiB of the volume (about 2 MiB of a UDZO, by HTTP range requests, decoded
  by our UDIF reader).

TFTP transfers ask for blksize 1468 (the most a 1500-byte MTU carries) and
tsize, lock-step as PXE ROMs do (`--windowsize N` asks for RFC 7440 windows;
dnsmasq ignores it); every block is compared with the file as it arrives.
A client that gets no answer asks again (DHCP/BSDP after 1, 1, 2, 2, 4 s; a
TFTP transfer starts over after three unanswered retransmissions). A client
not done `--deadline` seconds after the storm began is a failure.

Three storms a round, each against a freshly started server with an empty
lease file on tmpfs (/dev/shm), same files, same client:

1. ours, the whole journey, PCs and Macs mixed (`netboot serve` in full DHCP
   mode, the shipped info log level: every OFFER, ACK, transfer and request
   is logged): completion time, p50/p99 per stage, failures, the daemon's
   peak RSS (VmHWM from /proc/PID/status, with VmRSS sampled every 50 ms)
   and its CPU time (utime + stime);
2. ours, the PXE part only: N PCs doing DHCP + loader + kernel;
3. dnsmasq 2.90 as the same full DHCP + TFTP server (no DNS, no config file,
   `--no-ping`, `--dhcp-boot` the same loader, `--tftp-root` the same
   directory, `--tftp-max` raised above N), the same N PCs.

`ratio` is (2) / (1's peer, 3): our PXE-part completion seconds over
dnsmasq's, both from the first client's start to the last client's kernel.
With `--repeat`, the best (shortest) storm of each kind counts; failures
add up over every storm of ours.

How to read it
--------------
* The server runs on the first CPU, the client process on the others
  (`--shared-cpus` lets them share): real clients each have a CPU of their
  own, and on shared CPUs the client's event loop, which costs more per
  datagram the slower the server answers (fewer datagrams per wake-up),
  takes CPU time from the very server it waits for. Each storm prints the
  server's and the client's CPU seconds. A storm marked `client-bound` kept
  the client busy nearly all the time: the server could have gone faster, so
  a ratio against a client-bound dnsmasq storm understates dnsmasq's lead
  (compare the CPU seconds: that is the server's own cost).
* `extra TFTP datagrams` counts what the clients received beyond one datagram
  per block and the OACK: retransmissions into a lock-step transfer, which
  double the work of both sides (0 in a healthy storm).
* Lock-step TFTP is latency-bound: with N transfers in flight the server's
  turn-around per block decides the completion time. Other work on the
  machine swings it by tens of percent between runs; run `--repeat 3` before
  reading much into a ratio, and look at the `busy` share printed for each
  storm.

This is a measurement, not a test: nothing here asserts a time.
tests/reliability/test_storm.py asserts zero failures and the memory bound.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from netboot_lab import storm_lab
from netboot_lab.netns import LabError, VethPair, real_pid, veth_pair
from netboot_lab.storm_client import PXE_STAGES, STAGES, ClientSpec, StormSpec

TMPFS = Path("/dev/shm")  # noqa: S108 - a private TemporaryDirectory is made inside it
CLIENT_BOUND = 0.9
"""A storm whose client was busy this share of the time was limited by the client."""
KINDS = ("full", "pxe", "dnsmasq")
"""The storms of a round: ours whole journey, ours PXE part, dnsmasq PXE part."""


@dataclass
class Storm:
    """One storm's outcome: the clients' summary and the server's resources."""

    kind: str
    summary: storm_lab.StormSummary
    peak_rss_mib: float
    cpu_seconds: float
    busy: float
    """Share of the CPUs other work kept busy just before this storm."""
    tracebacks: int = 0


@dataclass
class Results:
    best: dict[str, Storm] = field(default_factory=dict)
    all: list[Storm] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def cpu_busy(seconds: float = 1.0) -> float:
    """The share of all CPUs busy over `seconds` (from /proc/stat), 0 to 1."""

    def sample() -> tuple[int, int]:
        fields = [int(value) for value in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        return sum(fields), fields[3] + fields[4]  # idle + iowait

    total_before, idle_before = sample()
    time.sleep(seconds)
    total_after, idle_after = sample()
    total = total_after - total_before
    return 0.0 if total <= 0 else 1 - (idle_after - idle_before) / total


def wait_for_quiet(limit: float, patience: float) -> float:
    """Wait (up to `patience` s) until other work uses under `limit` of the CPUs; the last share."""
    deadline = time.monotonic() + patience
    busy = cpu_busy()
    while busy >= limit and time.monotonic() < deadline:
        busy = cpu_busy()
    return busy


def run_ours(
    kind: str, lab: VethPair, files: storm_lab.StormFiles, args: argparse.Namespace, busy: float
) -> Storm:
    """OUR SERVER: a fresh `netboot serve` (empty lease file) and one storm against it."""
    state = files.work
    for stale in state.glob("leases.sqlite3*"):
        stale.unlink()
    config = storm_lab.netboot_config(lab, files, state / "leases.sqlite3")
    clients = storm_lab.client_specs(args.clients, args.macs if kind == "full" else 0.0)
    stages = STAGES if kind == "full" else PXE_STAGES
    spec = spec_for(lab, files, clients, stages, args)
    daemon = storm_lab.start_netboot(lab, config)
    try:
        pid = real_pid(daemon.process.pid)
        report, watch = storm(lab, spec, state, kind, pid, args)
    finally:
        status = daemon.stop()
        daemon.__exit__(None, None, None)
    tracebacks = sum("Traceback" in line for line in daemon.lines)
    if status != 0:
        raise RuntimeError(f"netboot exited {status} after the {kind} storm")
    summary = storm_lab.summarize(report)
    return Storm(kind, summary, watch.peak_rss_mib, watch.cpu_seconds, busy, tracebacks)


def run_dnsmasq(
    lab: VethPair, files: storm_lab.StormFiles, args: argparse.Namespace, busy: float
) -> Storm:
    clients = storm_lab.client_specs(args.clients, 0.0)
    spec = spec_for(lab, files, clients, PXE_STAGES, args)
    with storm_lab.dnsmasq(lab, files, files.work, args.clients) as pid:
        report, watch = storm(lab, spec, files.work, "dnsmasq", pid, args)
    summary = storm_lab.summarize(report)
    return Storm("dnsmasq", summary, watch.peak_rss_mib, watch.cpu_seconds, busy)


def storm(
    lab: VethPair, spec: StormSpec, work: Path, label: str, pid: int, args: argparse.Namespace
) -> tuple[dict[str, Any], storm_lab.Watch]:
    """The storm against server `pid`, the server and the client on CPUs of their own."""
    split = None if args.shared_cpus else storm_lab.cpu_split()
    if split is None:
        return storm_lab.run_storm(lab, spec, work, label, pid)
    server_cpus, client_cpus = split
    storm_lab.pin(pid, server_cpus)
    return storm_lab.run_storm(lab, spec, work, label, pid, client_cpus)


def spec_for(
    lab: VethPair,
    files: storm_lab.StormFiles,
    clients: Sequence[ClientSpec],
    stages: Sequence[str],
    args: argparse.Namespace,
) -> StormSpec:
    return storm_lab.storm_spec(
        lab,
        files,
        clients,
        stages=stages,
        deadline=args.deadline,
        spread=args.spread,
        blksize=args.blksize,
        windowsize=args.windowsize,
    )


MEASUREMENT_FAILURES = (LabError, RuntimeError, AssertionError, OSError)


def run(args: argparse.Namespace) -> Results:
    results = Results()
    scratch = TMPFS if TMPFS.is_dir() else None
    with (
        tempfile.TemporaryDirectory(prefix="netboot-bench-storm-", dir=scratch) as temporary,
        veth_pair(storm_lab.SUBNET, prefix=storm_lab.PREFIX) as lab,
    ):
        files = storm_lab.build_files(
            Path(temporary), args.booter_mib * storm_lab.MIB, args.kernel_mib * storm_lab.MIB
        )
        storm_lab.give_addresses(lab, storm_lab.client_specs(args.clients, args.macs))
        for round_number in range(1, args.repeat + 1):
            for kind in KINDS:
                busy = wait_for_quiet(args.quiet_below, args.quiet_patience)
                try:
                    if kind == "dnsmasq":
                        storm = run_dnsmasq(lab, files, args, busy)
                    else:
                        storm = run_ours(kind, lab, files, args, busy)
                except MEASUREMENT_FAILURES as error:
                    results.errors.append(f"round {round_number} {kind}: {error}")
                    continue
                results.all.append(storm)
                print(f"  round {round_number} {describe(storm)}", flush=True)
                best = results.best.get(kind)
                if best is None or storm.summary.seconds < best.summary.seconds:
                    results.best[kind] = storm
    return results


def describe(storm: Storm) -> str:
    summary = storm.summary
    server = "dnsmasq" if storm.kind == "dnsmasq" else "netboot"
    part = "whole journey" if storm.kind == "full" else "PXE part"
    noisy = f" [machine {100 * storm.busy:.0f}% busy before: noisy]" if storm.busy >= 0.15 else ""
    if summary.client_cpu_seconds >= CLIENT_BOUND * summary.seconds:
        noisy += " [client-bound: the server could have gone faster]"
    extra = summary.tftp_packets["extra_received"]
    return (
        f"{server} {part}: {summary.seconds:.2f} s, {summary.failures} failures, "
        f"{summary.retries} retries, {extra} extra TFTP datagrams, "
        f"peak RSS {storm.peak_rss_mib:.1f} MiB, "
        f"CPU {storm.cpu_seconds:.1f} s (client {summary.client_cpu_seconds:.1f} s){noisy}"
    )


def summary_json(results: Results, args: argparse.Namespace) -> dict[str, Any]:
    full, pxe, peer = (results.best.get(kind) for kind in KINDS)
    ours = [storm for storm in results.all if storm.kind != "dnsmasq"]
    ratio = (
        pxe.summary.seconds / peer.summary.seconds
        if pxe is not None and peer is not None and peer.summary.seconds
        else None
    )
    return {
        "clients": args.clients,
        "macs": sum(1 for c in storm_lab.client_specs(args.clients, args.macs) if c.kind == "mac"),
        "failures": sum(storm.summary.failures for storm in ours),
        "seconds": full.summary.seconds if full else None,
        "pxe_seconds": pxe.summary.seconds if pxe else None,
        "dnsmasq_seconds": peer.summary.seconds if peer else None,
        "ratio": round(ratio, 3) if ratio is not None else None,
        "peak_rss_mib": round(max((s.peak_rss_mib for s in ours), default=0.0), 1),
        "cpu_seconds": {kind: round(storm.cpu_seconds, 2) for kind, storm in results.best.items()},
        "client_cpu_seconds": {
            kind: storm.summary.client_cpu_seconds for kind, storm in results.best.items()
        },
        "dnsmasq_peak_rss_mib": round(peer.peak_rss_mib, 1) if peer else None,
        "dnsmasq_failures": sum(s.summary.failures for s in results.all if s.kind == "dnsmasq"),
        "stages": full.summary.stages if full else {},
        "pxe_stages": pxe.summary.stages if pxe else {},
        "dnsmasq_stages": peer.summary.stages if peer else {},
        "retries": {kind: storm.summary.retries for kind, storm in results.best.items()},
        "tftp_packets": {kind: storm.summary.tftp_packets for kind, storm in results.best.items()},
        "client_errors": [error for storm in results.all for error in storm.summary.errors][:20],
        "tracebacks": sum(storm.tracebacks for storm in ours),
        "errors": results.errors,
        "settings": {
            "repeat": args.repeat,
            "spread": args.spread,
            "deadline": args.deadline,
            "blksize": args.blksize,
            "windowsize": args.windowsize,
            "cpus": "shared" if args.shared_cpus else "server on CPU 0, client on the others",
            "booter_mib": args.booter_mib,
            "kernel_mib": args.kernel_mib,
        },
    }


def report(results: Results, args: argparse.Namespace) -> None:
    summary = summary_json(results, args)
    print()
    print(
        f"Boot storm: {args.clients} clients ({summary['macs']} Macs) starting within "
        f"{args.spread:g} s, best of {args.repeat}"
    )
    for kind in KINDS:
        storm = results.best.get(kind)
        if storm is None:
            continue
        print(f"  {describe(storm)}")
        for stage, numbers in storm.summary.stages.items():
            print(
                f"    {stage:<12} p50 {numbers['p50']:7.3f} s  p99 {numbers['p99']:7.3f} s"
                f"  max {numbers['max']:7.3f} s"
            )
    if summary["ratio"] is not None:
        print(
            f"PXE part (DHCP + loader + kernel), netboot/dnsmasq: {summary['pxe_seconds']:.2f} / "
            f"{summary['dnsmasq_seconds']:.2f} s = {summary['ratio']:.2f}"
        )
    print(f"failures (ours, all storms): {summary['failures']}")
    for error in summary["client_errors"]:
        print(f"  {error}")
    if args.json:
        print(json.dumps(summary))
    for error in results.errors:
        print(f"error: {error}", file=sys.stderr)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--clients", type=int, default=200, help="simulated clients")
    parser.add_argument(
        "--macs", type=float, default=0.5, help="share of the clients that are Macs (BSDP)"
    )
    parser.add_argument("--repeat", type=int, default=1, help="rounds; the best storm counts")
    parser.add_argument(
        "--spread", type=float, default=1.0, help="seconds over which the clients start"
    )
    parser.add_argument(
        "--deadline",
        type=float,
        help="seconds after which an unfinished client has failed (default: 60 + 1 per client)",
    )
    parser.add_argument("--booter-mib", type=int, default=1, help="size of loader and booter")
    parser.add_argument("--kernel-mib", type=int, default=8, help="size of the kernels")
    parser.add_argument("--blksize", type=int, default=1468, help="TFTP blksize asked for")
    parser.add_argument("--windowsize", type=int, help="TFTP windowsize asked for (RFC 7440)")
    parser.add_argument(
        "--shared-cpus",
        action="store_true",
        help="let server and client share every CPU (default: server on the first, client on "
        "the others)",
    )
    parser.add_argument(
        "--quiet-below",
        type=float,
        default=0.15,
        help="before each storm, wait until other work keeps under this share of the CPUs busy",
    )
    parser.add_argument(
        "--quiet-patience", type=float, default=60, help="seconds to wait for that, at most"
    )
    parser.add_argument("--json", action="store_true", help="also print a JSON summary")
    args = parser.parse_args(argv)
    if not 1 <= args.clients <= storm_lab.MAX_CLIENTS:
        parser.error(f"--clients must be between 1 and {storm_lab.MAX_CLIENTS}")
    if not 0 <= args.macs <= 1 or args.repeat < 1 or args.spread < 0:
        parser.error("need 0 <= --macs <= 1, --repeat >= 1, --spread >= 0")
    if args.booter_mib < 1 or args.kernel_mib < 1:
        parser.error("--booter-mib and --kernel-mib must be at least 1")
    if args.deadline is None:
        args.deadline = 60.0 + args.clients
    return args


def terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("needs root: it creates network namespaces", file=sys.stderr)
        return 2
    missing = [tool for tool in ("dnsmasq", "xorriso") if shutil.which(tool) is None]
    if missing:
        print(f"needs {', '.join(missing)} (Debian: dnsmasq-base, xorriso)", file=sys.stderr)
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
