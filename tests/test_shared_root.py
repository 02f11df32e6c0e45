"""Several servers, one image root: two real daemons on one bridge serving the same
read-only root, as a farm over shared storage (NFS mounted read-only, a synchronised
copy) does, with root paths on one HTTP origin (`http.base_url`).

A Mac must see every server with the same image IDs, pick the least busy one (each
server's priority drops by one per Mac bound to it), and get root paths that all
lead to the one origin; a change to the root reaches both servers on reload, and
neither writes into the root (it is mounted read-only, so a write would fail).
"""

from __future__ import annotations

import plistlib
import signal
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from netboot_lab.daemon import Daemon
from netboot_lab.factories import make_set
from netboot_lab.netns import Host, bsdp_probe, run_in
from tests.netns import bridge_lab, require_root

SHARED = 0x0100_1000  # Index 4096: the same image on every server of the farm
INSTALL = 0x8100_1001
ADDED = 0x0100_1002
ORIGIN_PORT = 8080


@contextmanager
def read_only_view(source: Path, view: Path) -> Iterator[Path]:
    """`source` bind-mounted read-only at `view`: what the daemons get as their root."""
    require_root()
    view.mkdir()
    subprocess.run(["mount", "--bind", str(source), str(view)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(view)], check=True)
        yield view
    finally:
        subprocess.run(["umount", str(view)], check=True)


def listings(client: Host, mac: str, *extra: str) -> dict[str, Any]:
    status, answer = bsdp_probe(
        client.namespace, client.interface, "--mac", mac, "--timeout", "1.5", *extra
    )
    assert status == 0, answer
    return answer


def by_server(answer: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {server["server_id"]: server for server in answer["servers"]}


def images_of(server: dict[str, Any]) -> list[tuple[int, str]]:
    return [(image["id"], image["name"]) for image in server["images"]]


def test_two_servers_over_one_read_only_root_agree_and_spread_macs(tmp_path: Path) -> None:
    source = tmp_path / "origin"
    sharepoint = source / "NetBootSP0"
    shared = make_set(sharepoint, "Shared", Name="Shared", Index=4096, IsDefault=True)
    make_set(sharepoint, "Install", Name="Install", Index=4097, IsInstall=True)
    with ExitStack() as stack:
        root = stack.enter_context(read_only_view(source, tmp_path / "root"))
        with pytest.raises(OSError, match="Read-only file system"):
            (root / "written").write_bytes(b"")
        segment = stack.enter_context(bridge_lab(3, "10.236.0"))
        first, second, client = segment.hosts
        origin = f"http://{first.address}:{ORIGIN_PORT}/"
        daemons: list[Daemon] = []
        for host, http in ((first, f"port = {ORIGIN_PORT}"), (second, "enabled = false")):
            # Only `first` serves HTTP: the origin both servers send Macs to.
            config = tmp_path / f"{host.namespace}.toml"
            config.write_text(
                f'[server]\nrescan_interval = 3600\n[http]\n{http}\nbase_url = "{origin}"\n'
                '[nfs]\nmode = "off"\n'
            )
            args = ["--config", str(config), "--root", str(root), "--interface", host.interface]
            daemons.append(stack.enter_context(Daemon(args, netns=host.namespace)))
        for daemon in daemons:
            daemon.wait_ready()

        # Both servers answer, with the same image IDs, and neither is busier yet.
        seen = by_server(listings(client, "00:16:cb:00:00:01"))
        assert set(seen) == {first.address, second.address}
        expected = [(SHARED, "Shared"), (INSTALL, "Install")]
        assert [images_of(server) for server in seen.values()] == [expected, expected]
        assert {server["priority"] for server in seen.values()} == {32768}

        # Mac 1 takes either; the one it bound to is then busier, so Mac 2 takes the other.
        booted: dict[str, str] = {}
        for mac in ("00:16:cb:00:00:01", "00:16:cb:00:00:02"):
            selected = listings(client, mac, "--select", hex(SHARED))["selected"]
            assert selected["image_id"] == SHARED
            # Wherever it boots, the root image comes from the one origin.
            assert selected["root_path"] == origin + quote("NetBootSP0/Shared.nbi/NetBoot.dmg")
            booted[mac] = selected["server_id"]
        assert set(booted.values()) == {first.address, second.address}
        after = by_server(listings(client, "00:16:cb:00:00:03"))
        assert {address: s["priority"] for address, s in after.items()} == {
            first.address: 32767,
            second.address: 32767,
        }
        fetched = run_in(client.namespace, "curl", "-sSf", selected["root_path"], text=False)
        assert fetched.returncode == 0, fetched.stderr
        assert fetched.stdout == (shared / "NetBoot.dmg").read_bytes()

        # The shared copy changes (a set renamed, one added); a reload shows it on both.
        plist_file = shared / "NBImageInfo.plist"
        plist = plistlib.loads(plist_file.read_bytes())
        plist_file.write_bytes(plistlib.dumps({**plist, "Name": "Shared, updated"}))
        make_set(sharepoint, "Added", Name="Added", Index=4098)
        for daemon in daemons:
            daemon.process.send_signal(signal.SIGHUP)
            daemon.wait_for(r"reloaded \(config: ")
            daemon.seen_or_wait("NBI set NetBootSP0/Added.nbi appeared")
        reloaded = by_server(listings(client, "00:16:cb:00:00:04"))
        expected = [(SHARED, "Shared, updated"), (ADDED, "Added"), (INSTALL, "Install")]
        assert [images_of(server) for server in reloaded.values()] == [expected, expected]

        for daemon in daemons:
            assert daemon.stop() == 0
            log = "\n".join(daemon.lines)
            assert "Traceback" not in log
            assert "Read-only file system" not in log
