"""nfs-ganesha run by the daemon, read with libnfs's standard client in a namespace."""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from netboot.nfs.ganesha import GaneshaSettings, render_config
from netboot_lab.daemon import Daemon
from netboot_lab.factories import make_set
from netboot_lab.netns import VethPair, bsdp_probe, run_in
from tests.netns import veth_lab

TIMEOUT = 60
CLIENT_MAC = "00:16:cb:12:34:56"


def test_config_exports_the_image_root_read_only_and_shadows_read_write(tmp_path: Path) -> None:
    text = render_config(
        GaneshaSettings(tmp_path / "images", tmp_path / "state", tmp_path / "shadows", 2049)
    )
    assert "Graceless = true;" in text
    exports = re.findall(
        r"Path = \"([^\"]+)\";\s+Pseudo = \"([^\"]+)\";\s+Access_Type = (\w+);", text
    )
    assert exports == [
        (str((tmp_path / "images").resolve()),) * 2 + ("RO",),
        (str((tmp_path / "shadows").resolve()),) * 2 + ("RW",),
    ]
    assert "Protocols = 3, 4;" in text
    with pytest.raises(ValueError, match="cannot be written"):
        render_config(GaneshaSettings(Path('/tmp/a"b'), tmp_path))


def require_nfs() -> None:
    missing = [
        tool
        for tool in ("ganesha.nfsd", "rpcbind", "nfs-cat", "nfs-ls")
        if shutil.which(tool) is None
    ]
    if missing:
        pytest.skip(
            f"needs {', '.join(missing)} (Debian: nfs-ganesha, nfs-ganesha-vfs, "
            "rpcbind, libnfs-utils)"
        )


def in_client(lab: VethPair, *command: str) -> subprocess.CompletedProcess[bytes]:
    return run_in(lab.client, *command, timeout=TIMEOUT, text=False)


def nfs_read(lab: VethPair, url: str, deadline: float = 30.0) -> bytes:
    """nfs-cat a URL, retrying while the server is still coming up (bounded)."""
    give_up = time.monotonic() + deadline
    while True:
        done = in_client(lab, "nfs-cat", url)
        if done.returncode == 0:
            return done.stdout
        if time.monotonic() > give_up:
            raise AssertionError(f"nfs-cat {url} kept failing: {done.stderr!r}")
        time.sleep(0.5)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def test_ganesha_serves_images_over_nfs_v3_and_v4_and_is_restarted(tmp_path: Path) -> None:
    require_nfs()
    root = tmp_path / "images"
    set_dir = make_set(root, "Alpha", Type="NFS", SupportsDiskless=True)
    image = random.Random(2049).randbytes(2 * 1024 * 1024 + 5)
    (set_dir / "NetBoot.dmg").write_bytes(b"ER\x02\x00" + bytes(508) + b"PM" + image)
    shadows = tmp_path / "shadows"
    config = tmp_path / "netboot.toml"
    config.write_text(
        f'[nfs]\nmode = "ganesha"\nstate_dir = "{tmp_path / "state"}"\nshadow_root = "{shadows}"\n'
    )
    expected = (set_dir / "NetBoot.dmg").read_bytes()
    with veth_lab("10.237.0") as lab:
        args = ["--config", str(config), "--root", str(root), "--interface", lab.server_if]
        with Daemon(args, netns=lab.server) as daemon:
            daemon.wait_ready()
            started = daemon.seen_or_wait(r"started nfs-ganesha \(pid \d+\)")
            first_pid = int(started.split("pid ")[1][:-1])
            export = str(root.resolve())
            url = f"nfs://{lab.server_ip}{export}/Alpha.nbi/NetBoot.dmg"
            assert nfs_read(lab, url) == expected
            assert nfs_read(lab, url + "?version=4") == expected

            # BSDP offers the NFS image with a root path into this export, and a shadow.
            _, answer = bsdp_probe(
                lab.client, lab.client_if, "--mac", CLIENT_MAC, "--select", "0x01000001"
            )
            selected = answer["selected"]
            assert selected["root_path"] == f"nfs:{lab.server_ip}:{export}:Alpha.nbi/NetBoot.dmg"
            assert selected["shadow_mount_path"] == f"nfs:{lab.server_ip}:{shadows.resolve()}"
            assert selected["shadow_file_path"] == "0016cb123456/Shadow"
            assert (shadows / "0016cb123456").is_dir()
            listing = in_client(lab, "nfs-ls", f"nfs://{lab.server_ip}{shadows.resolve()}")
            assert b"0016cb123456" in listing.stdout

            # Killed, ganesha comes back by itself, and serves again.
            os.kill(first_pid, signal.SIGKILL)
            daemon.wait_for(r"nfs-ganesha exited \(signal 9\); restarting in 1s")
            line = daemon.wait_for(r"started nfs-ganesha \(pid \d+\)")
            second_pid = int(line.split("pid ")[1][:-1])
            assert second_pid != first_pid
            assert nfs_read(lab, url) == expected
            assert daemon.stop() == 0
        assert not alive(second_pid)
        log = "\n".join(daemon.lines)
        assert "nfs-ganesha stopped" in log
        assert "[netboot.nfs.child] nfs-ganesha:" in log  # its own lines, forwarded


def test_without_ganesha_nfs_images_are_not_offered(tmp_path: Path) -> None:
    root = tmp_path / "images"
    make_set(root, "Served", Index=1)
    make_set(root, "OverNfs", Index=2, Type="NFS")
    config = tmp_path / "netboot.toml"
    config.write_text('[nfs]\nmode = "ganesha"\nganesha_binary = "/nonexistent/ganesha.nfsd"\n')
    with veth_lab("10.237.1") as lab:
        args = ["--config", str(config), "--root", str(root), "--interface", lab.server_if]
        with Daemon(args, netns=lab.server) as daemon:
            daemon.wait_for("is not installed: NFS images are not offered")
            daemon.wait_ready()
            _, answer = bsdp_probe(lab.client, lab.client_if)
            (server,) = answer["servers"]
            assert [image["id"] for image in server["images"]] == [0x01000001]
            assert daemon.stop() == 0


def test_shadow_root_inside_the_image_root_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "images"
    make_set(root, "Alpha")
    config = tmp_path / "netboot.toml"
    config.write_text(f'[nfs]\nshadow_root = "{root / "shadows"}"\n')
    done = subprocess.run(
        [sys.executable, "-m", "netboot", "serve", "--config", str(config), "--root", str(root)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert done.returncode == 2
    assert "nfs.shadow_root: " in done.stderr and "is inside the image root" in done.stderr
