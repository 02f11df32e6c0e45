"""NFS read throughput of the nfs-ganesha that `netboot serve` runs, for the record.

Run from the repository root, as root, after `./bootstrap.sh test`:

    .venv/bin/python benchmarks/nfs.py [--size-mb 256] [--repeat 3]

One daemon in a veth namespace pair serves the same random file (a set's
NetBoot.dmg) over HTTP (sendfile) and over NFS (its nfs-ganesha); from the
client namespace, curl reads it over HTTP and libnfs's `nfs-cat` over NFSv3 and
NFSv4, each to /dev/null, best of `--repeat`. There is no peer to beat here:
the numbers say what a Mac mounting an NFS root path can expect from this
server compared with an HTTP root path. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path

from netboot_lab.daemon import Daemon
from netboot_lab.factories import make_set
from netboot_lab.netns import VethPair, veth_pair

READY_TIMEOUT = 30.0
RUN_TIMEOUT = 300


def timed(lab: VethPair, command: list[str]) -> float:
    start = time.monotonic()
    done = subprocess.run(
        ["ip", "netns", "exec", lab.client, *command],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    elapsed = time.monotonic() - start
    if done.returncode != 0:
        raise RuntimeError(f"{command[0]} failed: {done.stderr.decode(errors='replace')}")
    return elapsed


def wait_for_nfs(lab: VethPair, url: str) -> None:
    give_up = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < give_up:
        probe = subprocess.run(
            ["ip", "netns", "exec", lab.client, "nfs-ls", url],
            capture_output=True,
            timeout=RUN_TIMEOUT,
            check=False,
        )
        if probe.returncode == 0:
            return
        time.sleep(0.5)
    raise RuntimeError("nfs-ganesha did not come up")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mb", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    size = args.size_mb * 1024 * 1024
    with tempfile.TemporaryDirectory(prefix="netboot-nfs-bench-") as work_dir:
        work = Path(work_dir)
        root = work / "images"
        set_dir = make_set(root, "Bench", Type="NFS")
        with (set_dir / "NetBoot.dmg").open("wb") as image:
            image.write(b"ER\x02\x00" + bytes(508) + b"PM" + bytes(510))
            remaining = size - 1024
            while remaining > 0:
                chunk = min(remaining, 8 * 1024 * 1024)
                image.write(os.urandom(chunk))
                remaining -= chunk
        config = work / "netboot.toml"
        config.write_text(
            f'[http]\nport = 8080\n[nfs]\nmode = "ganesha"\nstate_dir = "{work / "state"}"\n'
        )
        with veth_pair("10.238.0") as lab:
            daemon = Daemon(
                ["--config", str(config), "--root", str(root), "--interface", lab.server_if],
                netns=lab.server,
            )
            try:
                daemon.wait_ready()
                export = root.resolve()
                nfs_url = f"nfs://{lab.server_ip}{export}/Bench.nbi/NetBoot.dmg"
                wait_for_nfs(lab, f"nfs://{lab.server_ip}{export}/Bench.nbi")
                cases = {
                    "HTTP (curl)": [
                        "curl",
                        "-sS",
                        "-o",
                        "/dev/null",
                        f"http://{lab.server_ip}:8080/Bench.nbi/NetBoot.dmg",
                    ],
                    "NFSv3 (nfs-cat)": ["nfs-cat", nfs_url],
                    "NFSv4 (nfs-cat)": ["nfs-cat", nfs_url + "?version=4"],
                }
                best = {
                    name: min(timed(lab, cmd) for _ in range(args.repeat))
                    for name, cmd in cases.items()
                }
            finally:
                daemon.stop()
                daemon.__exit__(None, None, None)
    print(f"\nread of {args.size_mb} MiB to /dev/null, best of {args.repeat}, veth MTU 1500")
    print(f"{'protocol':<18}{'seconds':>9}{'MB/s':>10}")
    for name, seconds in best.items():
        print(f"{name:<18}{seconds:>9.3f}{size / seconds / 1e6:>10.1f}")


if __name__ == "__main__":
    main()
