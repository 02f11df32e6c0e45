"""Transfers over a lossy link: how much slower than on a clean one, and intact or not.

Run from the repository root, as root (it creates network namespaces), after
`./bootstrap.sh test` (curl, atftp, nftables):

    .venv/bin/python benchmarks/loss.py [--losses 0,5,20] [--size-mb 14] [--peer-kb 256]
        [--cases bsdp,lockstep,window,atftp-kernel,http,curl,tftp-hpa,atftp,
                 atftp-window16,http-nginx,boot]
        [--retry-schedule 0.02,...]
        [--repeat 1] [--fixed-timeout] [--reorder 25 --jitter-ms 50]

What is measured
----------------
`netboot serve` runs in a server namespace of a veth pair (netboot_lab.netns.veth_pair,
10.254.0.0/24; nothing leaves it) and serves one NBI set with a stand-in
kernel of `--size-mb` MiB of random bytes. For each loss rate, from the client
namespace:

* BSDP: INFORM[LIST] (`netboot bsdp probe`, 1 s per try) until an ACK[LIST]
  arrives, at most 10 tries, as a Mac's firmware asks again;
* TFTP lock-step: `netboot tftp get --blksize 1468` (RFC 1350 pacing);
* TFTP window: the same with `--windowsize 16` (RFC 7440), and atftp with
  `--option "windowsize 16"`, a client someone else wrote;
* HTTP: the whole kernel as 1 MiB range requests on one connection (curl,
  `--next`), as a Mac reads a disk image; reassembled and compared;
* TFTP clients others wrote, each against us and against dnsmasq (its TFTP
  on a second address of the server's namespace, `--listen-address`,
  reached through the same veth, so both see the same link): curl
  (`--tftp-blksize 1468`, and its own `timeout 6`), tftp-hpa (RFC 1350,
  512-byte blocks), atftp lock step and atftp with windowsize 16, each
  fetching a `--peer-kb` file (256 KiB); `x peer` is our time over
  dnsmasq's in the same run (issue #17's target: at most 1.0);
* HTTP against nginx (`http-nginx`): the same 1 MiB ranges from us and from
  nginx on that second address (target: at most 1.2);
* the boot (`boot`, at losses up to 5 %): `benchmarks/boot.py --loss`'s BIOS
  QEMU guest to its marker, through our lab and through dnsmasq's classic
  setup, each with the lab's loss on its bridge (target: at most 0.5).

Our client's times include Python's start-up (about 0.4 s), atftp's and
curl's do not. Every download is compared with the file by sha256; a failed or different one
is reported as such, with the client's last words, never hidden.

How the loss is made
--------------------
`netboot_lab.loss.impair`: where the kernel has sch_netem, `tc qdisc ... netem loss
N%` on both veth ends, with `--reorder` % reordering and `--jitter-ms` of delay
variation on top. This kernel lacks sch_netem; the fallback is an nftables rule
in the input hook of both namespaces (`iifname <veth> meta l4proto { udp, tcp }
numgen random mod 100 < N drop`), so each direction loses N %, and reordering
and jitter are not possible: the output says which method ran and what it
could not do. Both veth ends' GSO is limited to one packet meanwhile, so a drop
loses one wire packet, not a sender's 64 KB buffer (without that, nginx's ranges
looked 1.3-6x as fast as ours at 5 %; with it, the medians of eight runs were
2.3 s for both).

The retransmission timeout
--------------------------
A lock-step transfer recovers each lost DATA or ACK only when the server's
retransmission timer fires, so its time under loss is about (lost round trips)
x (wait). With a fixed first wait of 1 s (`--fixed-timeout`, the daemon's
`[tftp] adaptive_timeout = false`), 2 MiB at 5 % took 154 s here (14 MiB:
about 18 minutes), and at 20 % each way a 10,000-block transfer practically
never finishes. By default this runs the daemon with its default settings:
the adaptive timeout (RFC 6298 on measured round trips, 10 ms floor, backing
off to 1 s within 31 s of patience). `--retry-schedule` sets the daemon's
schedule (the patience, and the pace before a round trip is measured).

How to read it
--------------
`x clean` is the time over the time of the same case on the clean link in the
same run (loss 0 must be among `--losses`). Loss is random: single runs of the
lossy cases vary by tens of percent, so compare medians (`--repeat 5`). Nothing
here asserts anything.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import boot  # benchmarks/boot.py, beside this file

from netboot_lab.daemon import Daemon
from netboot_lab.factories import make_set
from netboot_lab.loss import (
    TFTP_CLIENTS,
    Impairment,
    clear_impairment,
    curl_ranges,
    impair,
    impairment_possible,
    tftp_client_command,
)
from netboot_lab.netns import VethPair, bsdp_probe, ip, run_in, start_until_logged, veth_pair
from netboot_lab.nginx import ensure_nginx, nginx_config
from netboot_lab.peers import DNSMASQ_ALONE
from netboot_lab.process import spawn, stop_process

SUBNET = "10.254.0"
HTTP_PORT = 8080
CLIENT_MAC = "00:16:cb:10:54:03"
KERNEL = "Bench.nbi/i386/vmlinuz"
PEER_FILE = "Bench.nbi/i386/small"
MIB = 1024 * 1024
CLIENT_TIMEOUT = 1800
"""Seconds one transfer may take before it counts as failed."""
BSDP_TRIES = 10


@dataclass(frozen=True)
class Row:
    case: str
    loss: int
    seconds: float
    intact: str
    """"ok", "DIFFERENT" or "FAILED"."""
    note: str = ""


@dataclass
class Bench:
    lab: VethPair
    data: bytes
    work: Path
    want: str
    peer_ip: str = ""
    """dnsmasq's and nginx's address, on the server namespace's loopback."""
    small_want: str = ""
    """sha256 of PEER_FILE, the file the TFTP clients fetch from both servers."""
    nginx: Callable[[], bool] = lambda: False
    """Starts nginx on the peer address the first time it is called; whether it serves."""

    def run(self, *command: str) -> tuple[subprocess.CompletedProcess[str], float]:
        started = time.monotonic()
        try:
            done = run_in(self.lab.client, *command, timeout=CLIENT_TIMEOUT)
        except subprocess.TimeoutExpired:
            done = subprocess.CompletedProcess(command, -1, "", f"killed after {CLIENT_TIMEOUT}s")
        return done, time.monotonic() - started

    def judged(
        self, case: str, loss: int, command: Sequence[str], out: Path, want: str = ""
    ) -> Row:
        """Run a download into `out` and compare what arrived with the kernel (or `want`)."""
        out.unlink(missing_ok=True)
        done, seconds = self.run(*command)
        got = out.read_bytes() if out.exists() else None
        return self.verdict(case, loss, done, seconds, got, want)

    def verdict(
        self,
        case: str,
        loss: int,
        done: subprocess.CompletedProcess[str],
        seconds: float,
        got: bytes | None,
        want: str = "",
    ) -> Row:
        if done.returncode != 0 or got is None:
            # The reason, not atftp's closing "tftp: aborting" or its per-block chatter.
            lines = (done.stderr + done.stdout).strip().splitlines()
            words = [w for w in lines if "aborting" not in w and "wrong block" not in w]
            return Row(case, loss, seconds, "FAILED", words[-1][:80] if words else "")
        intact = "ok" if hashlib.sha256(got).hexdigest() == (want or self.want) else "DIFFERENT"
        return Row(case, loss, seconds, intact)


def bsdp_list(bench: Bench, loss: int) -> Row:
    started = time.monotonic()
    for attempt in range(1, BSDP_TRIES + 1):
        status, answer = bsdp_probe(bench.lab.client, bench.lab.client_if, "--mac", CLIENT_MAC)
        if status == 0 and answer["servers"]:
            return Row("bsdp list", loss, time.monotonic() - started, "ok", f"{attempt} tries")
    seconds = time.monotonic() - started
    return Row("bsdp list", loss, seconds, "FAILED", f"no answer in {BSDP_TRIES} tries")


def ours(windowsize: int) -> Callable[[Bench, int], Row]:
    def case(bench: Bench, loss: int) -> Row:
        out = bench.work / f"ours-{windowsize}-{loss}"
        window = ["--windowsize", str(windowsize)] if windowsize > 1 else []
        command = [sys.executable, "-m", "netboot", "tftp", "get", "--blksize", "1468", *window]
        command += [bench.lab.server_ip, KERNEL, "-o", str(out)]
        name = "tftp lockstep (ours)" if windowsize == 1 else f"tftp window{windowsize} (ours)"
        return bench.judged(name, loss, command, out)

    return case


def atftp_window(bench: Bench, loss: int) -> Row:
    out = bench.work / f"atftp-{loss}"
    command = ["atftp", "--option", "blksize 1468", "--option", "windowsize 16"]
    command += ["-g", "-r", KERNEL, "-l", str(out), bench.lab.server_ip]
    return bench.judged("tftp window16 (atftp)", loss, command, out)


def http_ranges(
    bench: Bench, loss: int, address: str = "", case: str = "http 1 MiB ranges (curl)"
) -> Row:
    """The kernel as 1 MiB ranges on one connection, reassembled; from us, or `address`."""
    url = f"http://{address or bench.lab.server_ip}:{HTTP_PORT}/{KERNEL}"
    ranges = [
        (first, min(first + MIB, len(bench.data)) - 1) for first in range(0, len(bench.data), MIB)
    ]
    parts = [bench.work / f"range-{loss}-{number}" for number in range(len(ranges))]
    for part in parts:
        part.unlink(missing_ok=True)
    command = curl_ranges(url, ranges, parts, max_time=600)
    done, seconds = bench.run(*command)
    got = b"".join(p.read_bytes() for p in parts) if all(p.exists() for p in parts) else None
    row = bench.verdict(case, loss, done, seconds, got)
    if row.intact == "DIFFERENT":
        # With curl's exit status clean (--fail-early), a wrong range is the server's fault.
        wrong = [
            f"range {n}: {p.stat().st_size} bytes"
            for n, p in enumerate(parts)
            if p.read_bytes() != bench.data[n * MIB : (n + 1) * MIB]
        ]
        row = dataclasses.replace(row, note="; ".join(wrong))
    return row


def beside_dnsmasq(client: str) -> Callable[[Bench, int], list[Row]]:
    """`client` fetching PEER_FILE from us, then from dnsmasq, over the same link."""

    def case(bench: Bench, loss: int) -> list[Row]:
        rows = []
        for server, address in (("ours", bench.lab.server_ip), ("dnsmasq", bench.peer_ip)):
            out = bench.work / f"{client}-{server}-{loss}"
            command = tftp_client_command(client, address, PEER_FILE, out)
            name = f"tftp {client} ({server})"
            rows.append(bench.judged(name, loss, command, out, bench.small_want))
        return rows

    return case


def http_beside_nginx(bench: Bench, loss: int) -> list[Row]:
    """The same ranges from us, then from nginx (on the peer address), over the same link."""
    if not bench.nginx():
        return [Row("http ranges (nginx)", loss, 0.0, "FAILED", "nginx did not start")]
    return [
        http_ranges(bench, loss, bench.lab.server_ip, "http ranges (ours)"),
        http_ranges(bench, loss, bench.peer_ip, "http ranges (nginx)"),
    ]


BOOT_LOSS_LIMIT = 5
"""The highest loss the boot case runs at: dnsmasq's classic boot takes about 20 minutes
at 5 % (a 14 MB kernel by lock-step TFTP), and hours beyond."""
BOOT_TIMEOUT = 2400.0


def lab_boot(bench: Bench, loss: int) -> list[Row]:
    """The QEMU BIOS boot to the marker under `loss` each way on the lab bridge: ours
    (`netboot lab boot --loss`: iPXE, then kernel and initrd by HTTP) against dnsmasq's
    classic setup (iPXE, kernel and initrd by TFTP), as `benchmarks/boot.py --loss` runs them.
    """
    if loss > BOOT_LOSS_LIMIT:
        return []
    rows = []
    for server, run in (("ours", boot.netboot_run), ("dnsmasq", boot.dnsmasq_run)):
        stages = run(boot.PATHS["bios"], BOOT_TIMEOUT, loss)
        name = f"boot bios to marker ({server})"
        if "marker" in stages:
            rows.append(Row(name, loss, stages["marker"], "ok"))
        else:
            rows.append(Row(name, loss, BOOT_TIMEOUT, "FAILED", "no marker"))
    return rows


def median(runs: list[Row]) -> Row:
    """The run of median time among `runs` of one case, or the first that failed: loss is
    random, and one lucky or unlucky run says little."""
    failed = [row for row in runs if row.intact != "ok"]
    if failed:
        return failed[0]
    middle = sorted(runs, key=lambda row: row.seconds)[(len(runs) - 1) // 2]
    return middle if len(runs) == 1 else dataclasses.replace(middle, note=f"median of {len(runs)}")


def one(case: Callable[[Bench, int], Row]) -> Callable[[Bench, int], list[Row]]:
    return lambda bench, loss: [case(bench, loss)]


CASES: dict[str, Callable[[Bench, int], list[Row]]] = {
    "bsdp": one(bsdp_list),
    "lockstep": one(ours(1)),
    "window": one(ours(16)),
    "atftp-kernel": one(atftp_window),
    "http": one(http_ranges),
    **{client: beside_dnsmasq(client) for client in TFTP_CLIENTS},
    "http-nginx": http_beside_nginx,
    "boot": lab_boot,
}
"""The cases by the name `--cases` knows them by, in the order they run."""


def table(rows: list[Row]) -> list[str]:
    clean = {row.case: row.seconds for row in rows if row.loss == 0 and row.intact == "ok"}
    peer = {
        (row.case.rsplit(" (", 1)[0], row.loss): row
        for row in rows
        if row.case.endswith(("(dnsmasq)", "(nginx)"))
    }
    lines = [
        "| case | loss | seconds | x clean | x peer | sha256 | note |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in sorted(rows, key=lambda r: (CASE_ORDER.get(r.case, 99), r.case, r.loss)):
        base = clean.get(row.case)
        ratio = f"{row.seconds / base:.1f}" if base and row.loss and row.intact == "ok" else "-"
        theirs = peer.get((row.case.rsplit(" (", 1)[0], row.loss))
        versus = "-"
        if row.case.endswith("(ours)") and theirs is not None and row.intact == "ok":
            versus = (
                f"{row.seconds / theirs.seconds:.2g}" if theirs.intact == "ok" else "peer failed"
            )
        cells = [
            row.case,
            f"{row.loss}%",
            f"{row.seconds:.2f}",
            ratio,
            versus,
            row.intact,
            row.note,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


CASE_ORDER = {
    "bsdp list": 0,
    "tftp lockstep (ours)": 1,
    "tftp window16 (ours)": 2,
    "tftp window16 (atftp)": 3,
    "http 1 MiB ranges (curl)": 4,
}


def peer_nginx(
    lab: VethPair, address: str, work: Path, stack: contextlib.ExitStack
) -> Callable[[], bool]:
    """nginx on `address`:HTTP_PORT serving the same kernel, started when first asked for
    (it may need installing) and stopped with `stack`."""
    started: list[bool] = []

    def start() -> bool:
        if started:
            return started[0]
        root, state = work / "nginx-root", work / "nginx-state"
        (root / KERNEL).parent.mkdir(parents=True, exist_ok=True)
        state.mkdir(exist_ok=True)
        os.link(work / "images" / "Bench.nbi" / "i386" / "vmlinuz", root / KERNEL)
        nginx = ensure_nginx()
        config = state / "nginx.conf"
        config.write_text(nginx_config(nginx, f"{address}:{HTTP_PORT}", root, state, "1"))
        command = [nginx, "-p", f"{state}/", "-c", str(config), "-g", "daemon off;"]
        process = spawn(command, state / "nginx.log", lab.server)
        stack.callback(stop_process, process)
        url = f"http://{address}:{HTTP_PORT}/{KERNEL}"
        for _ in range(100):
            probe = run_in(lab.client, "curl", "-s", "-I", "-o", "/dev/null", "-m", "1", url)
            if probe.returncode == 0:
                started.append(True)
                return True
            time.sleep(0.1)
        started.append(False)
        return False

    return start


def measure(args: argparse.Namespace) -> int:
    losses = [int(loss) for loss in args.losses.split(",")]
    schedule = args.retry_schedule
    with tempfile.TemporaryDirectory(prefix="netboot-loss-") as tmp:
        work = Path(tmp)
        data = os.urandom(int(args.size_mb * MIB))
        small = os.urandom(int(args.peer_kb * 1024))
        make_set(work / "images", "Bench", files={"i386/vmlinuz": data, "i386/small": small})
        tftp_root = work / "dnsmasq-tftp"
        (tftp_root / PEER_FILE).parent.mkdir(parents=True)
        (tftp_root / PEER_FILE).write_bytes(small)
        config = work / "netboot.toml"
        text = f"[http]\nport = {HTTP_PORT}\n"
        text += "[tftp]\n"
        if schedule is not None:
            text += f"retry_schedule = [{schedule}]\n"
        if args.fixed_timeout:
            text += "adaptive_timeout = false\n"
        config.write_text(text)
        rows: list[Row] = []
        notes: dict[int, Impairment | None] = {}
        with veth_pair(SUBNET) as lab:
            if not impairment_possible(lab):
                raise SystemExit("needs sch_netem in the kernel or nftables (Debian: nftables)")
            command = ["--config", str(config), "--root", str(work / "images")]
            # The peers' address lives on the server's loopback: the client reaches it through
            # the same lossy veth (Linux answers ARP for any local address), and the daemon,
            # bound to the veth's addresses, leaves port 69 and 8080 on it to the peers.
            peer_ip = f"{SUBNET}.3"
            ip("addr", "add", f"{peer_ip}/32", "dev", "lo", netns=lab.server)
            stack = contextlib.ExitStack()
            dnsmasq = start_until_logged(
                lab.server,
                [*DNSMASQ_ALONE, f"--listen-address={peer_ip}", "--bind-interfaces",
                 "--enable-tftp", f"--tftp-root={tftp_root}", "--log-facility=-",
                 "--user=root", "--group=root"],
                work / "dnsmasq.log",
                "TFTP root",
                30.0,
            )  # fmt: skip
            stack.callback(stop_process, dnsmasq)
            with (
                stack,
                Daemon([*command, "--interface", lab.server_if], netns=lab.server) as daemon,
            ):
                daemon.wait_ready()
                bench = Bench(lab, data, work, hashlib.sha256(data).hexdigest())
                bench.peer_ip = peer_ip
                bench.small_want = hashlib.sha256(small).hexdigest()
                bench.nginx = peer_nginx(lab, peer_ip, work, stack)
                for loss in losses:
                    if loss:
                        notes[loss] = impair(
                            lab, loss, reorder_percent=args.reorder, jitter_ms=args.jitter_ms
                        )
                    else:
                        clear_impairment(lab)
                        notes[loss] = None
                    for name in args.cases:
                        runs: dict[str, list[Row]] = {}
                        for _ in range(1 if name == "boot" else args.repeat):
                            for row in CASES[name](bench, loss):
                                runs.setdefault(row.case, []).append(row)
                                print(
                                    f"  {row.case:<28} {row.loss:>3}% {row.seconds:8.2f}s "
                                    f"{row.intact} {row.note}",
                                    file=sys.stderr,
                                    flush=True,
                                )
                        rows.extend(median(found) for found in runs.values())
                clear_impairment(lab)
                daemon.stop()
    size = f"{len(data) / MIB:g} MiB"
    pace = "fixed waits" if args.fixed_timeout else "adaptive timeout"
    shown = schedule or "the default (1,2,4,8,8)"
    print(f"Kernel {size}; server retry_schedule: {shown} s, {pace}")
    for loss, impairment in notes.items():
        if impairment is None:
            print(f"loss {loss}%: clean link")
        else:
            print(f"loss {loss}%: {impairment.method}: {impairment.note}")
    print()
    print("\n".join(table(rows)))
    ours_rows = [row for row in rows if not row.case.endswith(("(dnsmasq)", "(nginx)"))]
    return 0 if all(row.intact == "ok" for row in ours_rows) else 1


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--losses", default="0,5,20", help="Loss rates in %% each way.")
    parser.add_argument("--size-mb", type=float, default=14.0, help="Kernel size in MiB.")
    parser.add_argument(
        "--peer-kb",
        type=float,
        default=256.0,
        help="KiB of the file curl, tftp-hpa and atftp fetch from us and from dnsmasq.",
    )
    parser.add_argument(
        "--retry-schedule",
        help="The daemon's [tftp] retry_schedule, comma-separated seconds (default: its own).",
    )
    parser.add_argument(
        "--fixed-timeout",
        action="store_true",
        help="Run the daemon with [tftp] adaptive_timeout = false (expect hours at 20 %%).",
    )
    parser.add_argument(
        "--cases",
        type=lambda text: text.split(","),
        default=list(CASES),
        help=f"Comma-separated cases to run (default: all of {','.join(CASES)}).",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="Runs of each case at each loss; the table shows the median (boot runs once).",
    )
    parser.add_argument("--reorder", type=int, default=25, help="Reordering %% (netem only).")
    parser.add_argument("--jitter-ms", type=int, default=50, help="Delay jitter (netem only).")
    args = parser.parse_args(argv)
    unknown = set(args.cases) - set(CASES)
    if unknown:
        parser.error(f"unknown cases {', '.join(sorted(unknown))}; known: {', '.join(CASES)}")
    return measure(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
