"""A boot-storm lab: the files, the servers and the crowd of clients, and what they measure.

Shared by `benchmarks/storm.py` (the measurement) and the storm and crash tests
under tests/reliability, so all three run the same clients against the same
servers and count failures the same way.

The lab is a veth pair (netboot_lab.netns.veth_pair) on 10.229.0.0/16, which nothing
else uses: the server namespace holds 10.229.0.1 and runs `netboot serve` in
full DHCP mode (or dnsmasq); the client namespace holds 10.229.0.2, a fixed
address per Mac (10.229.2.x and up) and, ahead of time, every address of the
DHCP pool (10.229.4.0-10.229.7.255), so a PC can use whichever address it is
leased as its source without an `ip` command in the middle of the storm. No
server here pings an address before offering it, so the pool addresses being
up on the client side changes nothing for them.

The files are served by both servers from the same bytes: a 1 MiB PXE loader
and an 8 MiB kernel in a TFTP directory (our `tftp.extra_dir`, dnsmasq's
`--tftp-root`), and an NBI set made by `netboot nbi create` with a booter and
kernelcache of the same sizes and an HFS+ root image (xorriso) as UDZO.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

from netboot.nbi.create import XORRISO_HFSPLUS, SetSpec, create_set
from netboot_lab.daemon import Daemon
from netboot_lab.factories import PE_BOOTER
from netboot_lab.netns import VethPair, add_addresses, real_pid, start_until_logged
from netboot_lab.peers import DNSMASQ_ALONE, DNSMASQ_READY
from netboot_lab.process import stop_process
from netboot_lab.storm_client import PXE_STAGES, STAGES, ClientSpec, StormSpec

SUBNET = "10.229.0"
PREFIX = 16
POOL = (IPv4Address("10.229.4.0"), IPv4Address("10.229.7.255"))
"""1024 addresses: more than the largest storm, so no client waits for a free one."""
MAC_FIRST = IPv4Address("10.229.2.1")
"""Macs' fixed addresses count up from here, below the pool."""
MAX_CLIENTS = 500
SET_NAME = "Storm"
LOADER = "storm.kpxe"
PC_KERNEL = "vmlinuz"
MIB = 1 << 20
BOOTER_SIZE = 1 * MIB
KERNEL_SIZE = 8 * MIB
ROOT_CONTENT_SIZE = 6 * MIB
"""Random bytes in the root volume: enough for a UDZO of several chunks."""
START_TIMEOUT = 60.0
SAMPLE_INTERVAL = 0.05
CLIENT_SLACK = 15.0
"""Seconds the client process may outlive the storm's own deadline before it is killed.

Its journeys end at the deadline whatever happens; the slack covers Python's
start-up and reading the files it compares downloads with.
"""


# -- files ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class StormFiles:
    work: Path
    images: Path
    """The image root: `Storm.nbi`."""
    pxe: Path
    """The TFTP directory of PC files: LOADER and PC_KERNEL."""
    tftp: dict[str, Path]
    """Every name a client asks TFTP for -> the file with the bytes it must receive."""


def build_files(
    work: Path,
    booter_size: int = BOOTER_SIZE,
    kernel_size: int = KERNEL_SIZE,
    seed: int = 10,
) -> StormFiles:
    """The loader, kernel and NBI set both servers serve; random but reproducible bytes."""
    rng = random.Random(seed)
    booter = PE_BOOTER + rng.randbytes(booter_size - len(PE_BOOTER))
    kernel = rng.randbytes(kernel_size)
    pxe = work / "pxe"
    pxe.mkdir(parents=True)
    (pxe / LOADER).write_bytes(booter)
    (pxe / PC_KERNEL).write_bytes(kernel)

    content = work / "root-content"
    content.mkdir()
    for n in range(4):
        (content / f"file{n}.bin").write_bytes(rng.randbytes(ROOT_CONTENT_SIZE // 4))
    (content / "README.txt").write_text("a NetBoot root for the storm\n" * 100)
    raw = work / "root.img"
    subprocess.run(
        [*XORRISO_HFSPLUS, "-V", "Storm", "-o", str(raw), str(content)],
        capture_output=True,
        check=True,
    )
    images = work / "images"
    create_set(
        SetSpec(
            name=SET_NAME,
            index=1,
            booter=pxe / LOADER,
            kernelcache=pxe / PC_KERNEL,
            root_image=raw,
            default=True,
        ),
        images / f"{SET_NAME}.nbi",
    )
    raw.unlink()
    shutil.rmtree(content)
    nbi = images / f"{SET_NAME}.nbi"
    tftp = {
        LOADER: pxe / LOADER,
        PC_KERNEL: pxe / PC_KERNEL,
        f"{SET_NAME}.nbi/i386/booter": nbi / "i386" / "booter",
        f"{SET_NAME}.nbi/i386/x86_64/kernelcache": nbi / "i386" / "x86_64" / "kernelcache",
    }
    missing = [str(path) for path in tftp.values() if not path.is_file()]
    if missing:
        raise RuntimeError(f"nbi create laid out the set differently: no {', '.join(missing)}")
    return StormFiles(work, images, pxe, tftp)


def root_url(lab: VethPair) -> str:
    """Where our HTTP service serves the set's root image (what ACK[SELECT] names)."""
    return f"http://{lab.server_ip}/{SET_NAME}.nbi/NetBoot.dmg"


# -- clients -------------------------------------------------------------------------------


def client_specs(count: int, macs: float = 0.5) -> tuple[ClientSpec, ...]:
    """`count` clients, a share `macs` of them Macs, interleaved so both kinds start early."""
    if not 1 <= count <= MAX_CLIENTS:
        raise ValueError(f"between 1 and {MAX_CLIENTS} clients, not {count}")
    specs = []
    mac_count = 0
    for index in range(count):
        # Spread the Macs evenly: client n is a Mac when the share says one is due.
        is_mac = math.floor((index + 1) * macs) > math.floor(index * macs)
        if is_mac:
            address = str(mac_address(mac_count))
            mac_count += 1
            specs.append(
                ClientSpec(index, "mac", f"00:16:cb:29:{index >> 8:02x}:{index & 255:02x}", address)
            )
        else:
            specs.append(ClientSpec(index, "pc", f"02:29:00:00:{index >> 8:02x}:{index & 255:02x}"))
    return tuple(specs)


def mac_address(n: int) -> IPv4Address:
    """The n-th Mac's fixed address: .1-.250 of 10.229.2, then of 10.229.3, ..."""
    return MAC_FIRST + (n // 250) * 256 + n % 250


def give_addresses(lab: VethPair, clients: Sequence[ClientSpec]) -> None:
    """Every Mac's address and the whole pool, on the client's veth end."""
    pool = (str(POOL[0] + n) for n in range(int(POOL[1]) - int(POOL[0]) + 1))
    macs = (client.address for client in clients if client.address)
    add_addresses(lab.client, lab.client_if, [*macs, *pool], PREFIX)


def storm_spec(
    lab: VethPair,
    files: StormFiles,
    clients: Sequence[ClientSpec],
    *,
    stages: Sequence[str] = STAGES,
    deadline: float = 120.0,
    spread: float = 1.0,
    blksize: int = 1468,
    windowsize: int | None = None,
) -> StormSpec:
    return StormSpec(
        interface=lab.client_if,
        clients=tuple(clients),
        files={name: str(path) for name, path in files.tftp.items()},
        stages=tuple(stages),
        spread=spread,
        deadline=deadline,
        blksize=blksize,
        windowsize=windowsize,
        pc_kernel=PC_KERNEL,
        pc_root_url=root_url(lab),
    )


@dataclass
class ClientRun:
    """The client process of one storm, running in the client namespace."""

    process: subprocess.Popen[bytes]
    output: Path
    errors: Path
    deadline: float

    def wait(self) -> dict[str, Any]:
        """The client's report; raises if it crashed or overran its deadline."""
        try:
            status = self.process.wait(timeout=self.deadline + CLIENT_SLACK)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise RuntimeError(f"storm client hung; stderr:\n{self.errors.read_text()}") from None
        if status != 0 or not self.output.read_text().strip():
            raise RuntimeError(f"storm client exited {status}; stderr:\n{self.errors.read_text()}")
        report: dict[str, Any] = json.loads(self.output.read_text())
        return report

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def start_clients(
    lab: VethPair, spec: StormSpec, work: Path, label: str, cpus: set[int] | None = None
) -> ClientRun:
    """The client process in the client namespace; on `cpus` only, if given."""
    spec_path = work / f"{label}.spec.json"
    spec_path.write_text(json.dumps(spec.to_json()))
    output, errors = work / f"{label}.out.json", work / f"{label}.err"
    command = [sys.executable, "-m", "netboot_lab.storm_client", str(spec_path)]
    pinned = ["taskset", "-c", ",".join(map(str, sorted(cpus)))] if cpus else []
    with output.open("wb") as out, errors.open("wb") as err:
        process = subprocess.Popen(
            [*pinned, "ip", "netns", "exec", lab.client, *command],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
        )
    return ClientRun(process, output, errors, spec.deadline)


# -- servers -------------------------------------------------------------------------------


def netboot_config(
    lab: VethPair, files: StormFiles, lease_database: Path, log_level: str = "info"
) -> Path:
    """Full DHCP over the pool, the PC loader for BIOS ROMs, the PXE directory on TFTP."""
    config = files.work / "netboot-storm.toml"
    config.write_text(
        f'[server]\nroot = "{files.images}"\ninterfaces = ["{lab.server_if}"]\n'
        f'[dhcp]\nmode = "full"\npool = "{POOL[0]}-{POOL[1]}"\n'
        f'lease_database = "{lease_database}"\nrouter = "{lab.server_ip}"\n'
        f'[tftp]\nextra_dir = "{files.pxe}"\n'
        f'[pxe]\nboot_files = {{ bios = "{LOADER}" }}\n'
        f'[logging]\nlevel = "{log_level}"\n'
        '[admin]\nlisten = ""\n'
    )
    return config


def cpu_split() -> tuple[set[int], set[int]] | None:
    """CPUs for the server and for the client process; None on a single CPU.

    A storm of lock-step transfers keeps client and server busy in turn; on
    shared CPUs the client's event loop, which costs more per datagram the
    slower the server answers (fewer datagrams per wake-up), takes CPU time
    from the very server it waits for. Apart, each side has a CPU as real
    clients do, and the server's time is its own.
    """
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None
    return {cpus[0]}, set(cpus[1:])


def pin(pid: int, cpus: set[int]) -> None:
    """Keep every thread of `pid` on `cpus`; threads it starts later inherit that."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            os.sched_setaffinity(int(task.name), cpus)


def start_netboot(lab: VethPair, config: Path) -> Daemon:
    """OUR SERVER: `netboot serve` in the server namespace, once it says it is ready."""
    daemon = Daemon(["--config", str(config)], netns=lab.server)
    try:
        daemon.wait_ready()
    except AssertionError:
        daemon.__exit__(None, None, None)
        raise
    return daemon


def dnsmasq_command(lab: VethPair, files: StormFiles, state: Path, clients: int) -> list[str]:
    """dnsmasq as the same full DHCP server plus TFTP, and nothing else.

    No DNS (--port=0), no config file, no ping before an offer (ours does not
    ping either), the PC loader as the boot file, the same TFTP directory, a
    lease limit the size of the pool and room for every client's transfers at
    once (--tftp-max defaults to 50).
    """
    size = int(POOL[1]) - int(POOL[0]) + 1
    return [
        *DNSMASQ_ALONE,
        f"--interface={lab.server_if}",
        "--bind-interfaces",
        f"--dhcp-range={POOL[0]},{POOL[1]},255.255.0.0,1h",
        f"--dhcp-lease-max={size}",
        f"--dhcp-leasefile={state / 'dnsmasq.leases'}",
        f"--pid-file={state / 'dnsmasq.pid'}",
        f"--dhcp-boot={LOADER}",
        "--enable-tftp",
        f"--tftp-root={files.pxe}",
        f"--tftp-max={2 * clients + 16}",
        "--no-ping",
        "--log-facility=-",
        "--user=root",
        "--group=root",
    ]


@contextlib.contextmanager
def dnsmasq(lab: VethPair, files: StormFiles, state: Path, clients: int) -> Iterator[int]:
    """dnsmasq in the server namespace; yields its pid once its DHCP socket is bound."""
    (state / "dnsmasq.leases").unlink(missing_ok=True)
    command = dnsmasq_command(lab, files, state, clients)
    process = start_until_logged(
        lab.server, command, state / "dnsmasq.log", DNSMASQ_READY, START_TIMEOUT
    )
    try:
        yield real_pid(process.pid)
    finally:
        stop_process(process)


# -- watching a server ---------------------------------------------------------------------


def _status_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def _cpu_seconds(pid: int) -> float:
    """utime + stime of `pid` so far, from /proc/PID/stat (fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Watch:
    """A server's memory and CPU over a storm: RSS sampled, VmHWM at the end, CPU time."""

    pid: int
    peak_rss_kib: int = 0
    start_rss_kib: int = 0
    cpu_seconds: float = 0.0
    _cpu_before: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Watch:
        self.start_rss_kib = _status_kib(self.pid, "VmRSS")
        self._cpu_before = _cpu_seconds(self.pid)
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(SAMPLE_INTERVAL):
            with contextlib.suppress(OSError, ValueError):
                self.peak_rss_kib = max(self.peak_rss_kib, _status_kib(self.pid, "VmRSS"))

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with contextlib.suppress(OSError, ValueError):
            # The high-water mark catches a peak between two samples.
            self.peak_rss_kib = max(self.peak_rss_kib, _status_kib(self.pid, "VmHWM"))
            self.cpu_seconds = _cpu_seconds(self.pid) - self._cpu_before

    @property
    def peak_rss_mib(self) -> float:
        return self.peak_rss_kib / 1024


# -- reading a storm's report ----------------------------------------------------------------


def percentile(values: Sequence[float], share: float) -> float:
    """Nearest-rank percentile (`share` in 0-100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, math.ceil(share / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class StormSummary:
    clients: int
    failures: int
    seconds: float
    """From the storm's start until the last client finished its last stage."""
    pxe_seconds: float
    """Until the last client had its kernel: the PXE part (DHCP, loader, kernel)."""
    stages: dict[str, dict[str, float]]
    """Per stage: p50, p99 and max seconds, over the clients that finished it."""
    retries: int
    """Failed attempts the clients made good on by trying again."""
    errors: list[str]
    client_cpu_seconds: float
    tftp_packets: dict[str, int]
    """TFTP datagrams received and sent by all clients; `extra_received` beyond one a block."""

    def as_json(self) -> dict[str, Any]:
        return {
            "clients": self.clients,
            "failures": self.failures,
            "seconds": round(self.seconds, 3),
            "pxe_seconds": round(self.pxe_seconds, 3),
            "stages": self.stages,
            "retries": self.retries,
            "errors": self.errors,
            "client_cpu_seconds": round(self.client_cpu_seconds, 2),
            "tftp_packets": self.tftp_packets,
        }


def summarize(report: dict[str, Any]) -> StormSummary:
    journeys = report["journeys"]
    stages: dict[str, dict[str, float]] = {}
    for stage in STAGES:
        times = [j["stages"][stage] for j in journeys if stage in j["stages"]]
        if times:
            stages[stage] = {
                "p50": round(percentile(times, 50), 4),
                "p99": round(percentile(times, 99), 4),
                "max": round(max(times), 4),
            }
    failed = [j for j in journeys if not j["ok"]]
    last_stage = [max(j["ended"].values(), default=report["seconds"]) for j in journeys]
    kernels = [j["ended"].get(PXE_STAGES[-1], report["seconds"]) for j in journeys]
    return StormSummary(
        clients=len(journeys),
        failures=len(failed),
        seconds=report["seconds"] if failed else max(last_stage),
        pxe_seconds=max(kernels),
        stages=stages,
        retries=sum(len(j["failed_attempts"]) for j in journeys),
        errors=[f"client {j['index']} ({j['kind']} {j['mac']}): {j['error']}" for j in failed],
        client_cpu_seconds=report["cpu_seconds"],
        tftp_packets={
            key: sum(j["tftp_packets"][key] for j in journeys)
            for key in ("received", "sent", "extra_received")
        },
    )


def run_storm(
    lab: VethPair,
    spec: StormSpec,
    work: Path,
    label: str,
    pid: int,
    client_cpus: set[int] | None = None,
) -> tuple[dict[str, Any], Watch]:
    """One storm against the server process `pid`: the client's report and the server's watch."""
    with Watch(pid) as watch:
        run = start_clients(lab, spec, work, label, client_cpus)
        try:
            report = run.wait()
        finally:
            run.kill()
    return report, watch
