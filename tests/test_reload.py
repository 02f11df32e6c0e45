"""SIGHUP under load: the configuration and catalog change while transfers run on."""

from __future__ import annotations

import hashlib
import json
import random
import signal
import subprocess
from pathlib import Path
from typing import Any

from netboot_lab.daemon import Daemon
from netboot_lab.factories import make_set
from netboot_lab.netns import VethPair, bsdp_probe, netboot_in, run_in
from tests.netns import veth_lab

TIMEOUT = 120
GIB = 1024 * 1024 * 1024


def probe(lab: VethPair) -> dict[str, Any]:
    """The one server's answer to a LIST."""
    _, answer = bsdp_probe(lab.client, lab.client_if)
    (server,) = answer["servers"]
    return server  # type: ignore[no-any-return]


def test_sighup_reloads_config_and_catalog_without_dropping_transfers(tmp_path: Path) -> None:
    root = tmp_path / "images"
    set_dir = make_set(root, "Alpha", Index=1)
    kernel = random.Random(1).randbytes(20 * 1024 * 1024)
    (set_dir / "i386" / "kernel").write_bytes(kernel)
    with (set_dir / "big.img").open("wb") as big:
        big.truncate(GIB)
    config = tmp_path / "netboot.toml"
    # With its own [nfs] table the daemon reads this very file (tests/daemon.py).
    settings = (
        '[server]\nrescan_interval = 3600\n[http]\nport = 8080\n[nfs]\nmode = "off"\n'
        "[bsdp]\npriority = {}\n"
    )
    config.write_text(settings.format(100))
    with veth_lab("10.240.0") as lab:
        args = ["--config", str(config), "--root", str(root), "--interface", lab.server_if]
        with Daemon(args, netns=lab.server) as daemon:
            daemon.wait_ready()
            assert probe(lab)["priority"] == 100
            downloads = {
                "tftp": [
                    "curl",
                    "-sS",
                    "--limit-rate",
                    "4M",
                    "--tftp-blksize",
                    "1468",
                    "-o",
                    str(tmp_path / "kernel"),
                    f"tftp://{lab.server_ip}/Alpha.nbi/i386/kernel",
                ],
                "http": [
                    "curl",
                    "-sS",
                    "--limit-rate",
                    "200M",
                    "-o",
                    str(tmp_path / "big"),
                    f"http://{lab.server_ip}:8080/Alpha.nbi/big.img",
                ],
            }
            running = {
                name: subprocess.Popen(
                    ["ip", "netns", "exec", lab.client, *command], stderr=subprocess.PIPE, text=True
                )
                for name, command in downloads.items()
            }
            daemon.wait_for(r"sending 'Alpha.nbi/i386/kernel'")

            # While both run: a new set, a new priority, then SIGHUP.
            make_set(tmp_path / "staging", "Beta", Index=2).rename(root / "Beta.nbi")
            config.write_text(settings.format(200))
            daemon.process.send_signal(signal.SIGHUP)
            daemon.wait_for(r"reloaded \(config: ")
            after = probe(lab)
            assert after["priority"] == 200
            assert [image["id"] for image in after["images"]] == [0x01000001, 0x01000002]

            # A broken configuration is refused; the running one stays.
            config.write_text('[server]\nrooot = 1\n[nfs]\nmode = "off"\n')
            daemon.process.send_signal(signal.SIGHUP)
            daemon.wait_for(r"reload rejected: .*server\.rooot: unknown key")
            assert probe(lab)["priority"] == 200

            for name, process in running.items():
                _, stderr = process.communicate(timeout=TIMEOUT)
                assert process.returncode == 0, (name, stderr)
            assert hashlib.sha256((tmp_path / "kernel").read_bytes()).digest() == (
                hashlib.sha256(kernel).digest()
            )
            assert (tmp_path / "big").stat().st_size == GIB
            assert daemon.stop() == 0
    log = "\n".join(daemon.lines)
    assert "sent 'Alpha.nbi/i386/kernel'" in log
    assert "Traceback" not in log


def test_a_file_added_under_the_root_is_seen_without_a_signal(tmp_path: Path) -> None:
    """inotify: a new set shows up long before the (hour-long) rescan interval."""
    root = tmp_path / "images"
    make_set(root, "Alpha", Index=1)
    config = tmp_path / "netboot.toml"
    config.write_text("[server]\nrescan_interval = 3600\n")
    with veth_lab("10.240.1") as lab:
        args = ["--config", str(config), "--root", str(root), "--interface", lab.server_if]
        with Daemon(args, netns=lab.server) as daemon:
            daemon.wait_ready()
            make_set(tmp_path / "staging", "Beta", Index=2).rename(root / "Beta.nbi")
            daemon.wait_for("NBI set Beta.nbi appeared", timeout=30)
            assert [image["id"] for image in probe(lab)["images"]] == [0x01000001, 0x01000002]
            assert daemon.stop() == 0


def test_a_restart_only_change_keeps_the_old_value_everywhere_and_says_so(
    tmp_path: Path,
) -> None:
    """http.port 8080 -> 8081 and SIGHUP: the listener stays on 8080, and so do the root
    paths Macs are sent to; `netboot status --json` names the option that waits."""
    root = tmp_path / "images"
    make_set(root, "Alpha", Index=1)
    config = tmp_path / "netboot.toml"
    settings = (
        '[server]\nrescan_interval = 3600\n[http]\nport = {}\n[nfs]\nmode = "off"\n'
        '[admin]\nlisten = "127.0.0.1:9067"\n'
    )
    config.write_text(settings.format(8080))
    with veth_lab("10.240.2") as lab:
        args = ["--config", str(config), "--root", str(root), "--interface", lab.server_if]
        with Daemon(args, netns=lab.server) as daemon:
            daemon.wait_ready()
            config.write_text(settings.format(8081))
            daemon.process.send_signal(signal.SIGHUP)
            daemon.wait_for(r"reloaded \(config: ")
            status, answer = bsdp_probe(lab.client, lab.client_if, "--select", "0x01000001")
            assert status == 0, answer
            root_path = answer["selected"]["root_path"]
            assert root_path == f"http://{lab.server_ip}:8080/Alpha.nbi/NetBoot.dmg"
            fetched = subprocess.run(
                ["ip", "netns", "exec", lab.client, "curl", "-sS", "-o", "/dev/null",
                 "-w", "%{http_code}", root_path],
                capture_output=True, text=True, timeout=TIMEOUT, check=False,
            )  # fmt: skip
            assert fetched.stdout == "200", fetched.stderr
            state = netboot_in(lab.server, "status", "--json")
            assert state.returncode == 0, state.stderr
            assert json.loads(state.stdout)["restart_pending"] == ["http.port"]
            human = netboot_in(lab.server, "status").stdout
            assert "waiting for a restart (old values in force): http.port" in human
            admin = "http://127.0.0.1:9067/"
            metrics = run_in(lab.server, "curl", "-sS", admin + "metrics").stdout
            assert "\nnetboot_restart_pending 1.0\n" in metrics
            page = run_in(lab.server, "curl", "-sS", admin + "status").stdout
            assert "waiting for a restart" in page and "http.port" in page
            assert daemon.stop() == 0
    log = "\n".join(daemon.lines)
    assert "changes to http.port take effect after a restart" in log
