"""How long iPXE waits between its first DISCOVER and its REQUEST, from packet timestamps.

Run from the repository root, as root, after `./bootstrap.sh test` (QEMU,
iPXE's QEMU ROMs, tshark and dnsmasq come from Debian):

    .venv/bin/python benchmarks/pxe_offer.py [--repeat 3] [--timeout 40]

A QEMU BIOS guest (TCG) with a virtio NIC, whose option ROM is iPXE, boots
from the network inside a namespace of its own (a bridge and a tap device;
nothing leaves it) while tshark records DHCP on the bridge. Three servers:

* `netboot-full`: `netboot serve --dhcp-mode full`: the OFFER carries
  `PXEClient`, siaddr and the boot file, and 175.176 (no-pxedhcp);
* `dnsmasq`: dnsmasq leasing addresses with a boot file (`dhcp-boot`) but no
  PXE vendor class, the classic setup: iPXE holds the address offer and
  waits for a proxy offer that never comes (`DHCP_DISC_PROXY_TIMEOUT_SEC`);
* `dnsmasq+proxy`: the same dnsmasq without a boot file, beside `netboot
  serve` in proxy mode (the site-LAN setup).

Printed per server: the best of `--repeat` runs of first DISCOVER -> first
REQUEST (the wait the PXE issue is about), and first DISCOVER -> the first
boot-file request (TFTP RRQ or HTTP GET), i.e. DHCP done.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from netboot_lab.netns import add_bridge, add_namespace, add_tap, delete_namespace
from netboot_lab.process import (
    pcap_fields,
    spawn,
    start_capture,
    stop_capture,
    stop_process,
)

SUBNET = "10.249.0"
CAPTURE_FILTER = "udp port 67 or udp port 69 or tcp port 80"


def netboot_config(work: Path, mode: str) -> Path:
    config = work / "netboot.toml"
    root = work / "nbimages"
    root.mkdir(exist_ok=True)
    config.write_text(
        f'[server]\nroot = "{root}"\ninterfaces = ["br0"]\nallow_root = true\n'
        f'[dhcp]\nmode = "{mode}"\npool = "{SUBNET}.100-{SUBNET}.150"\n'
        f'lease_database = "{work}/leases.sqlite3"\n'
        '[admin]\nlisten = ""\n[nfs]\nmode = "off"\n'
    )
    return config


def dnsmasq(work: Path, boot_file: bool) -> list[str]:
    command = [
        "dnsmasq",
        "--no-daemon",
        "--port=0",
        "--interface=br0",
        "--bind-interfaces",
        f"--dhcp-range={SUBNET}.50,{SUBNET}.60,1h",
        f"--dhcp-leasefile={work}/dnsmasq.leases",
        f"--pid-file={work}/dnsmasq.pid",
        # dnsmasq pings an address for 3 s before offering it; without this the
        # wait measured would be dnsmasq's, not iPXE's.
        "--no-ping",
    ]
    if boot_file:
        command += ["--enable-tftp", "--tftp-root=/usr/lib/ipxe", "--dhcp-boot=undionly.kpxe"]
    return command


def one_run(server: str, timeout: float) -> tuple[float | None, float | None]:
    namespace = f"nbpo-{uuid.uuid4().hex[:6]}"
    work = Path(tempfile.mkdtemp(prefix="pxe-offer-"))
    processes: list[subprocess.Popen[bytes]] = []
    capture = work / "dhcp.pcap"
    dumpcap: subprocess.Popen[bytes] | None = None
    try:
        add_namespace(namespace)
        add_bridge(namespace, "br0", f"{SUBNET}.1/24")
        add_tap(namespace, "tap0", "br0")
        dumpcap = start_capture("br0", capture, namespace, CAPTURE_FILTER)
        netboot = [sys.executable, "-m", "netboot", "serve", "--config"]
        if server == "netboot-full":
            processes.append(
                spawn([*netboot, str(netboot_config(work, "full"))], work / "s.log", namespace)
            )
        elif server == "dnsmasq":
            processes.append(spawn(dnsmasq(work, boot_file=True), work / "s.log", namespace))
        else:
            processes.append(spawn(dnsmasq(work, boot_file=False), work / "d.log", namespace))
            processes.append(
                spawn([*netboot, str(netboot_config(work, "proxy"))], work / "s.log", namespace)
            )
        time.sleep(2.0)
        guest = spawn(
            [
                "timeout",
                str(timeout),
                "qemu-system-x86_64",
                "-machine",
                "accel=tcg",
                "-m",
                "256",
                "-display",
                "none",
                "-serial",
                f"file:{work}/serial.log",
                "-boot",
                "n",
                "-no-reboot",
                "-netdev",
                "tap,id=n0,ifname=tap0,script=no,downscript=no",
                "-device",
                "virtio-net-pci,netdev=n0,mac=52:54:00:12:34:56",
            ],
            work / "qemu.log",
            namespace,
        )
        processes.append(guest)
        guest.wait(timeout + 10)
        for process in reversed(processes):
            stop_process(process)
        stop_capture(dumpcap, capture)
        dumpcap = None
        return timings(capture)
    finally:
        for process in processes:
            stop_process(process)
        stop_capture(dumpcap, capture)
        delete_namespace(namespace)
        if not os.environ.get("KEEP"):
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work}", file=sys.stderr)


def timings(capture: Path) -> tuple[float | None, float | None]:
    """First DISCOVER to first REQUEST, and to the first boot-file request."""
    rows = pcap_fields(
        capture, "frame.time_epoch", "dhcp.option.dhcp", "tftp.opcode", "http.request.method"
    )
    discover = request = boot = None
    for stamp, dhcp, tftp, http in rows:
        at = float(stamp)
        if dhcp == "1" and discover is None:
            discover = at
        elif dhcp == "3" and request is None and discover is not None:
            request = at
        elif (tftp == "1" or http == "GET") and boot is None and discover is not None:
            boot = at
    if discover is None:
        return None, None
    return (
        request - discover if request is not None else None,
        boot - discover if boot is not None else None,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=40.0)
    parser.add_argument("--only", choices=["netboot-full", "dnsmasq", "dnsmasq+proxy"])
    options = parser.parse_args()
    if os.geteuid() != 0:
        print("needs root (network namespaces, tap devices)", file=sys.stderr)
        return 2
    servers = [options.only] if options.only else ["netboot-full", "dnsmasq", "dnsmasq+proxy"]
    best: dict[str, tuple[float | None, float | None]] = {}
    for _ in range(options.repeat):
        for server in servers:
            wait, done = one_run(server, options.timeout)
            previous = best.get(server, (None, None))
            best[server] = (_min(previous[0], wait), _min(previous[1], done))
    print(f"{'server':16} {'DISCOVER->REQUEST':>18} {'DISCOVER->boot file':>20}")
    for server, (wait, done) in best.items():
        print(f"{server:16} {_seconds(wait):>18} {_seconds(done):>20}")
    ours, classic = best.get("netboot-full", (None, None)), best.get("dnsmasq", (None, None))
    if ours[1] is not None and classic[1] is not None and classic[1] > 0:
        print(f"DHCP done, netboot-full / dnsmasq: {ours[1] / classic[1]:.3f}")
    return 0


def _min(a: float | None, b: float | None) -> float | None:
    values = [v for v in (a, b) if v is not None]
    return min(values) if values else None


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f} s"


if __name__ == "__main__":
    sys.exit(main())
