"""The lab a fuzz run happens in, and the daemon's side of the books.

`fuzz_run` builds a catalog (one BSDP set, PXE boot files, a large file for the
fuzzed transfer), starts the real `netboot serve` in the server namespace of a
veth lab (proxy DHCP, `[admin] listen` on the namespace's loopback), runs the
fuzzer in the client namespace, and reads the daemon's counters and the server
namespace's UDP counters before and after. `problems` turns that into the
list of broken promises; the CI test and the benchmark share both, so they
check the same things and differ only in size.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from ipaddress import IPv6Address, IPv6Interface
from pathlib import Path
from typing import Any

from netboot_lab.daemon import Daemon
from netboot_lab.dhcp6_clients import Dhclient6
from netboot_lab.factories import APM_IMAGE, make_set
from netboot_lab.fuzzer import SLOW_FILE
from netboot_lab.ipv6 import (
    POOL_FIRST,
    POOL_LAST,
    SERVER_ADDRESS,
    add_ipv6,
    enable_ipv6,
    pool_range,
)
from netboot_lab.netns import LabError, VethPair, run_in, veth_pair

ADMIN = "127.0.0.1:9067"
HTTP_IDLE_TIMEOUT = 2.0
"""The daemon's [http] idle_timeout here: bounds how long a slowloris check waits."""
PROBE_FILE = "undionly.kpxe"
PROBE_CONTENT = bytes((n * 7 + n // 251) % 256 for n in range(3000))
"""The prober's TFTP file: six blocks, so each probe is a real lock-step transfer."""
ROOT_IMAGE = APM_IMAGE + bytes(range(256)) * 240
"""64 KiB (an Apple Partition Map disk) over HTTP: what every fuzzed Range header asks for."""
BAD_LOG_MARKERS = ("Traceback", "bug:", "Unhandled Error")


@dataclass
class FuzzLab:
    lab: VethPair
    daemon: Daemon
    work: Path


CLIENT6 = IPv6Interface("fd4e:4254:0:1::2/64")
"""The fuzzer's IPv6 address: a global one, so Relay-replies to it have somewhere to go."""


def dhcp6_table(work: Path) -> str:
    """`[dhcp6]` in full mode over the lab's pool, its leases in the run's own file."""
    return (
        f'[dhcp]\nlease_database = "{work / "leases.sqlite3"}"\n'
        f'[dhcp6]\nmode = "full"\npool = "{pool_range()}"\n'
    )


@contextmanager
def fuzz_lab(
    work: Path, subnet: str, log_level: str = "info", dhcp6: bool = False
) -> Iterator[FuzzLab]:
    """The daemon serving a small catalog in the server namespace of a fresh veth lab.

    With `dhcp6`, the link also carries the lab's IPv6 ULA (the server on ::1,
    the fuzzer on ::2) and the daemon serves DHCPv6 in full mode on it.
    """
    root = work / "images"
    make_set(root, "Fuzz", Index=1, IsDefault=True, root_image=ROOT_IMAGE)
    extra = work / "tftp"
    extra.mkdir()
    (extra / PROBE_FILE).write_bytes(PROBE_CONTENT)
    (extra / "ipxe.efi").write_bytes(b"MZ" + bytes(5000))
    with (extra / SLOW_FILE).open("wb") as slow:
        slow.truncate(16 * 1024 * 1024)  # sparse: at 1 block per 0.3 s it never runs out
    config = work / "netboot.toml"
    config.write_text(
        f'[admin]\nlisten = "{ADMIN}"\n'
        f'[tftp]\nextra_dir = "{extra}"\n'
        f"[http]\nidle_timeout = {HTTP_IDLE_TIMEOUT}\n"
        f'[logging]\nlevel = "{log_level}"\n' + (dhcp6_table(work) if dhcp6 else "")
    )
    with veth_pair(subnet) as lab:
        if dhcp6:
            enable_ipv6(lab)
            add_ipv6(lab.client, lab.client_if, CLIENT6)
        args = ["--config", str(config), "--root", str(root), "--interface", lab.server_if]
        with Daemon(args, netns=lab.server) as daemon:
            daemon.wait_ready()
            yield FuzzLab(lab, daemon, work)


def daemon_status(namespace: str) -> dict[str, Any]:
    """`/status.json` from the admin listener on the server namespace's loopback."""
    fetch = (
        "import sys, urllib.request\n"
        f"with urllib.request.urlopen('http://{ADMIN}/status.json', timeout=20) as r:\n"
        "    sys.stdout.write(r.read().decode())\n"
    )
    done = run_in(namespace, sys.executable, "-c", fetch, timeout=60)
    if done.returncode != 0:
        raise AssertionError(f"cannot read /status.json: {done.stderr}")
    status: dict[str, Any] = json.loads(done.stdout)
    return status


def udp_counters(namespace: str) -> dict[str, int]:
    """The `Udp:` line of /proc/net/snmp in a namespace (RcvbufErrors: kernel drops)."""
    done = run_in(namespace, "cat", "/proc/net/snmp")
    lines = [line.split()[1:] for line in done.stdout.splitlines() if line.startswith("Udp:")]
    names, values = lines[0], lines[1]
    return dict(zip(names, map(int, values), strict=True))


def resident_kib(pid: int) -> int:
    """VmRSS of a process (`ip netns exec` execs the daemon, so its pid is the daemon's)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


@dataclass
class FuzzResult:
    report: dict[str, Any]
    """What the fuzzer sent and expects (its JSON)."""
    before: dict[str, Any]
    after: dict[str, Any]
    """/status.json counters per service, before and after."""
    udp_before: dict[str, int]
    udp_after: dict[str, int]
    rss_kib: tuple[int, int]
    """The daemon's resident memory before and after the fuzz."""
    alive_after: bool
    exit_status: int
    log: list[str]
    seconds: float
    fuzzer_stderr: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def delta(self, service: str, counter: str) -> int:
        before = self.before.get(service, {}).get(counter, 0)
        return int(self.after.get(service, {}).get(counter, 0)) - int(before)

    @property
    def kernel_drops(self) -> int:
        return self.udp_after["RcvbufErrors"] - self.udp_before["RcvbufErrors"]


def fuzz_run(
    work: Path,
    subnet: str,
    *,
    count: int,
    seed: int,
    http_count: int,
    slowloris: int,
    max_seconds: float,
    log_level: str = "info",
    dhcp6_count: int = 0,
) -> FuzzResult:
    """Serve, fuzz, read the books, stop the daemon; never raises for what the daemon did.

    `dhcp6_count` > 0 turns `[dhcp6]` on and fuzzes UDP 547 with that many
    datagrams; afterwards a real client (dhclient -6) must still get an address.
    """
    started = time.monotonic()
    extra: dict[str, Any] = {}
    with fuzz_lab(work, subnet, log_level, dhcp6=dhcp6_count > 0) as lab:
        before = daemon_status(lab.lab.server)["counters"]
        rss_before = resident_kib(lab.daemon.process.pid)
        udp_before = udp_counters(lab.lab.server)
        command = [
            "ip", "netns", "exec", lab.lab.client, sys.executable, "-m",
            "netboot_lab.fuzzer", "--json",
            "--target", lab.lab.server_ip,
            "--count", str(count),
            "--seed", str(seed),
            "--max-seconds", str(max_seconds),
            "--probe-file", PROBE_FILE,
            "--probe-sha256", hashlib.sha256(PROBE_CONTENT).hexdigest(),
            "--http-count", str(http_count),
            "--http-idle", str(HTTP_IDLE_TIMEOUT),
            "--slowloris", str(slowloris),
        ]  # fmt: skip
        if dhcp6_count > 0:
            command += [
                "--target6", str(SERVER_ADDRESS.ip),
                "--source6", str(CLIENT6.ip),
                "--interface6", lab.lab.client_if,
                "--count6", str(dhcp6_count),
            ]  # fmt: skip
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=max_seconds + 180,
            check=False,
        )
        try:
            report = json.loads(done.stdout)
        except json.JSONDecodeError:
            report = {"error": f"fuzzer exited {done.returncode} without a report"}
        udp_after = udp_counters(lab.lab.server)
        alive = lab.daemon.process.poll() is None
        rss_after = resident_kib(lab.daemon.process.pid) if alive else 0
        # The counters before the real client below adds its own datagrams to them.
        after = daemon_status(lab.lab.server)["counters"] if alive else {}
        if dhcp6_count > 0 and alive:
            extra["dhcp6_client"] = real_dhcp6_client(lab)
        exit_status = lab.daemon.stop()
        log = lab.daemon.lines
    return FuzzResult(
        report=report,
        before=before,
        after=after,
        udp_before=udp_before,
        udp_after=udp_after,
        rss_kib=(rss_before, rss_after),
        alive_after=alive,
        exit_status=exit_status,
        log=log,
        seconds=time.monotonic() - started,
        fuzzer_stderr=done.stderr[-4000:],
        extra=extra,
    )


def real_dhcp6_client(lab: FuzzLab) -> str:
    """The address dhclient -6 got from the daemon after the fuzz, or why it got none."""
    if shutil.which("dhclient") is None:
        return "no dhclient (Debian: isc-dhcp-client)"
    state = lab.work / "dhclient6"
    state.mkdir(exist_ok=True)
    client = Dhclient6(lab.lab.client, lab.lab.client_if, state)
    try:
        return str(client.lease().address)
    except LabError as error:
        return f"no lease: {error}"
    finally:
        client.stop()


def problems(result: FuzzResult, count: int) -> list[str]:
    """Every promise of issue #10 the run broke, each with the numbers that show it."""
    found: list[str] = []
    report = result.report

    def expect(ok: bool, message: str) -> None:
        if not ok:
            found.append(message)

    expect(result.alive_after, "the daemon exited during the fuzz")
    expect(result.exit_status == 0, f"the daemon exited {result.exit_status} on SIGTERM")
    bad = [line for line in result.log if any(m in line for m in BAD_LOG_MARKERS)]
    expect(not bad, f"{len(bad)} bad log line(s), first: {bad[:3]}")
    if "error" in report:
        return [*found, f"fuzzer failed: {report['error']}\n{result.fuzzer_stderr}"]
    expect(
        report["count"] == count and not report["stopped_early"],
        f"sent {report['count']} of {count} datagrams (stopped early: {report['stopped_early']})",
    )
    expect(report["send_errors"] == 0, f"{report['send_errors']} datagrams could not be sent")
    expect(
        report["oracle_crashes"] == 0,
        f"our own codecs crashed {report['oracle_crashes']} times: "
        f"{report['oracle_crash_samples'][:3]}",
    )
    drops = result.kernel_drops
    expect(drops == 0, f"the kernel dropped {drops} datagrams (UDP RcvbufErrors)")
    dhcp = report["dhcp"]
    sent_dhcp = dhcp["fuzz_datagrams"] + dhcp["sync_datagrams"] + report["probe"]["datagrams_to_67"]
    got = result.delta("dhcp", "datagrams")
    expect(
        got == sent_dhcp - drops if drops == 0 else sent_dhcp - drops <= got <= sent_dhcp,
        f"dhcp datagrams counted {got}, sent {sent_dhcp} (kernel drops {drops})",
    )
    malformed = result.delta("dhcp", "malformed")
    expected = dhcp["expected_malformed"]
    expect(
        malformed == expected or (drops > 0 and expected - drops <= malformed <= expected),
        f"dhcp malformed counted {malformed}, expected {expected} "
        f"({dhcp['refused_by_parse_packet']} refused by parse_packet, "
        f"{dhcp['malformed_by_bsdp_policy']} by the BSDP policy)",
    )
    errors = result.delta("dhcp", "handler_errors")
    expect(errors == 0, f"dhcp handler_errors: {errors}")
    tftp = report["tftp"]
    tftp_malformed = result.delta("tftp", "malformed_packets")
    expect(
        tftp_malformed == tftp["expected_malformed"]
        or (drops > 0 and tftp_malformed >= tftp["expected_malformed"] - drops),
        f"tftp malformed_packets counted {tftp_malformed}, expected {tftp['expected_malformed']}",
    )
    stray = result.delta("tftp", "stray_packets")
    expect(
        stray >= tftp["expected_stray_min"] - drops,
        f"tftp stray_packets counted {stray}, expected at least {tftp['expected_stray_min']}",
    )
    expect(tftp["fuzzed_transfer_lost"] == 0, "the fuzzed transfer died under the fuzz")
    for name in ("bsdp", "tftp"):
        probe = report["probe"][name]
        expect(
            probe["asked"] > 0 and probe["answered"] == probe["asked"] and probe["failed"] == 0,
            f"{name} probes: {probe}",
        )
    expect(not report["probe"]["problems"], f"prober: {report['probe']['problems']}")
    http = report["http"]
    expect(not http.get("failures"), f"HTTP: {http.get('failures')}")
    expect(http.get("final_range_status") == 206, "no honest range answered after the HTTP fuzz")
    if "dhcp6" in report or "dhcp6_client" in result.extra:
        found += dhcp6_problems(result)
    return found


def dhcp6_problems(result: FuzzResult) -> list[str]:
    """UDP 547: every datagram counted, at least every one our codec refuses counted
    malformed, no decision crashed, and a real client got an address afterwards."""
    report = result.report.get("dhcp6", {"error": "the fuzzer sent nothing to 547"})
    if "error" in report:
        return [f"dhcp6 fuzz failed: {report['error']}"]
    found = []
    drops = result.kernel_drops
    if "dhcp6" not in result.after:
        found.append("/status.json has no dhcp6 counters")
    sent = report["count"] + report["sync_datagrams"]
    got = result.delta("dhcp6", "datagrams")
    if not (got == sent if drops == 0 else sent - drops <= got <= sent):
        found.append(f"dhcp6 datagrams counted {got}, sent {sent} (kernel drops {drops})")
    malformed, refused = result.delta("dhcp6", "malformed"), report["refused_by_parse_message"]
    if not refused - drops <= malformed <= report["count"]:
        found.append(
            f"dhcp6 malformed counted {malformed}: fewer than the {refused} parse_message "
            f"refuses, or more than the {report['count']} fuzzed"
        )
    if errors := result.delta("dhcp6", "handler_errors"):
        found.append(f"dhcp6 handler_errors: {errors}")
    if report["oracle_crashes"]:
        found.append(f"our DHCPv6 codec crashed: {report['oracle_crash_samples'][:3]}")
    if report["send_errors"] or report["stopped_early"]:
        found.append(f"dhcp6 fuzz: {report['send_errors']} send errors, stopped early "
                     f"{report['stopped_early']}")  # fmt: skip
    client = result.extra.get("dhcp6_client", "not run")
    try:
        leased = POOL_FIRST <= IPv6Address(client) <= POOL_LAST
    except ValueError:
        leased = False
    if not leased:
        found.append(f"dhclient -6 after the fuzz: {client}")
    return found


def summary(result: FuzzResult) -> dict[str, Any]:
    """The numbers worth printing: rates, counts on both sides, probe latencies."""
    report = result.report
    return {
        "seconds_total": round(result.seconds, 1),
        "fuzz_seconds": report.get("seconds"),
        "datagrams": report.get("count"),
        "datagrams_per_second": report.get("datagrams_per_second"),
        "timeline": report.get("timeline"),
        "daemon_rss_kib": {"before": result.rss_kib[0], "after": result.rss_kib[1]},
        "sent": report.get("sent"),
        "syncs": report.get("syncs"),
        "expected": {"dhcp": report.get("dhcp"), "tftp": report.get("tftp")},
        "counted": {
            "dhcp": {k: result.delta("dhcp", k) for k in result.after.get("dhcp", {})},
            "tftp": {k: result.delta("tftp", k) for k in result.after.get("tftp", {})},
            "bsdp": {k: result.delta("bsdp", k) for k in result.after.get("bsdp", {})},
            "pxe": {k: result.delta("pxe", k) for k in result.after.get("pxe", {})},
            "http": {k: result.delta("http", k) for k in result.after.get("http", {})},
            "dhcp6": {k: result.delta("dhcp6", k) for k in result.after.get("dhcp6", {})},
        },
        "dhcp6": report.get("dhcp6"),
        "dhcp6_client": result.extra.get("dhcp6_client"),
        "kernel_drops": result.kernel_drops,
        "probe": report.get("probe"),
        "http": {k: v for k, v in report.get("http", {}).items() if k != "slowloris"},
        "slowloris": report.get("http", {}).get("slowloris"),
        "log_lines": len(result.log),
    }
