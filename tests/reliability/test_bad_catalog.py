"""Broken NBI sets appearing in a serving daemon: the good ones keep serving.

Issue #10's "bad catalog". An admin copies a half-written set, a plist that is
not one, or a tree with symlink loops into the image root while Macs are
booting from it. The daemon (a real `netboot serve` in a namespace, rescanning
every second and on inotify) must keep answering BSDP with the good sets and
keep serving their files over TFTP and HTTP, log each problem as a warning
naming the file (no traceback), and show it under the set in the
admin page's `/status.json`.

The set whose directory holds `x -> .` and `y -> .` is moved into a directory
made just before it: Twisted's recursive inotify watch (`autoAdd`) followed
such links from the new directory and added watches without end, so the daemon
stopped answering anything, SIGTERM included; `CatalogService` now watches by
walking without following symlinks. Without that fix this test fails.
"""

from __future__ import annotations

import json
import plistlib
import random
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from netboot_lab.daemon import Daemon
from netboot_lab.factories import make_set, plist_dict
from netboot_lab.netns import VethPair, bsdp_probe, netboot_in, run_in
from tests.netns import veth_lab

SUBNET = "10.254.1"
HTTP_PORT = 8080
ADMIN = "127.0.0.1:9067"
CLIENT_MAC = "00:16:cb:10:54:02"
ALPHA, BETA = 0x01000001, 0x01000002
"""BSDP image IDs of the good sets: Kind 1 (Mac OS X), Index 1 and 2."""
SETTLE_TIMEOUT = 30.0
"""Bounds the wait for a rescan (every 1 s, and 0.5 s after an inotify event)."""


@dataclass
class Served:
    lab: VethPair
    root: Path
    daemon: Daemon
    work: Path
    kernels: dict[str, bytes]

    def status(self) -> dict[str, Any]:
        """`/status.json` of the admin page, which listens on loopback in the server namespace."""
        done = run_in(
            self.lab.server, "curl", "-sS", "--max-time", "10", f"http://{ADMIN}/status.json"
        )
        assert done.returncode == 0, done.stderr
        answer: dict[str, Any] = json.loads(done.stdout)
        return answer

    def images(self) -> dict[str, dict[str, Any]]:
        """The catalog as the status shows it, by set path."""
        return {image["path"]: image for image in self.status()["images"]}

    def wait_images(
        self, holds: Callable[[dict[str, dict[str, Any]]], bool]
    ) -> dict[str, dict[str, Any]]:
        """Poll the status until `holds` is true of the catalog; fail after SETTLE_TIMEOUT."""
        deadline = time.monotonic() + SETTLE_TIMEOUT
        while True:
            images = self.images()
            if holds(images):
                return images
            if time.monotonic() > deadline:
                raise AssertionError(f"catalog did not settle; status images: {images}")
            time.sleep(0.25)

    def listed(self) -> list[int]:
        """The image IDs an INFORM[LIST] from the client namespace gets."""
        status, answer = bsdp_probe(self.lab.client, self.lab.client_if, "--mac", CLIENT_MAC)
        assert status == 0, answer
        (server,) = answer["servers"]
        return [image["id"] for image in server["images"]]

    def tftp(self, path: str) -> tuple[subprocess.CompletedProcess[str], bytes]:
        """`netboot tftp get` of `path`: how it ended, and what arrived."""
        out = self.work / path.replace("/", "_")
        out.unlink(missing_ok=True)
        done = netboot_in(self.lab.client, "tftp", "get", self.lab.server_ip, path, "-o", str(out))
        return done, out.read_bytes() if out.exists() else b""

    def http(self, path: str) -> tuple[int, bytes]:
        out = self.work / ("http" + path.replace("/", "_"))
        url = f"http://{self.lab.server_ip}:{HTTP_PORT}{path}"
        curl = ["curl", "-sS", "--max-time", "30", "-w", "%{http_code}"]
        done = run_in(self.lab.client, *curl, "-o", str(out), url)
        assert done.returncode == 0, done.stderr
        return int(done.stdout), out.read_bytes() if out.exists() else b""

    def assert_serves(self, name: str) -> None:
        """The set's kernel arrives whole over TFTP and over HTTP."""
        kernel = self.kernels[name]
        done, received = self.tftp(f"{name}.nbi/i386/kernel")
        assert done.returncode == 0, done.stderr
        assert received == kernel
        assert self.http(f"/{name}.nbi/i386/kernel") == (200, kernel)

    def assert_does_not_serve(self, name: str) -> None:
        """The set's booter, which is on disk, is refused over TFTP and HTTP."""
        assert (self.root / f"{name}.nbi" / "i386" / "booter").is_file()
        done, _ = self.tftp(f"{name}.nbi/i386/booter")
        assert done.returncode != 0 and "server error 1" in done.stderr, done.stderr
        assert self.http(f"/{name}.nbi/i386/booter")[0] == 404

    def logged(self, pattern: str) -> str:
        """The daemon's log line matching `pattern`, logged already or within seconds."""
        return self.daemon.seen_or_wait(pattern, timeout=SETTLE_TIMEOUT)

    def log(self) -> str:
        """What the daemon logged so far, as far as the test has read it."""
        return "\n".join(self.daemon.lines)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    root = tmp_path / "images"
    rng = random.Random(1010)
    kernels = {name: rng.randbytes(300_000 + index) for index, name in enumerate(("Alpha", "Beta"))}
    for index, (name, kernel) in enumerate(kernels.items(), start=1):
        make_set(root, name, Index=index, files={"i386/kernel": kernel})
    config = tmp_path / "netboot.toml"
    config.write_text(
        f'[server]\nrescan_interval = 1\n[admin]\nlisten = "{ADMIN}"\n[http]\nport = {HTTP_PORT}\n'
    )
    work = tmp_path / "work"
    work.mkdir()
    with veth_lab(SUBNET) as lab:
        args = ["--config", str(config), "--root", str(root), "--interface", lab.server_if]
        with Daemon(args, netns=lab.server) as daemon:
            daemon.wait_ready()
            yield Served(lab, root, daemon, work, kernels)
            assert daemon.stop() == 0
    assert "Traceback" not in "\n".join(daemon.lines)


def add_bad_sets(root: Path, staging: Path) -> dict[str, tuple[str, str]]:
    """Broken sets, added to a serving root; each with (file named, words) of its error."""
    whole = plistlib.dumps(plist_dict(Name="Truncated", Index=3))
    make_set(root, "Truncated", plist=whole[: len(whole) // 2])
    make_set(root, "Garbage", plist=random.Random(4).randbytes(4096))
    make_set(root, "BadBinary", plist=b"bplist00" + random.Random(5).randbytes(600))
    # A valid plist, in a directory with symlink loops: ELOOP ones, and cycles
    # back to the set itself, moved into a directory made just before, so that
    # a watch on the new directory finds them (what hung Twisted's autoAdd).
    loops = make_set(staging, "Loops", Index=6)
    (loops / "loop").symlink_to("loop")
    (loops / "a").symlink_to("b")
    (loops / "b").symlink_to("a")
    (loops / "x").symlink_to(".")
    (loops / "y").symlink_to(".")
    (loops / "i386" / "up").symlink_to("..")
    (root / "VethPair").mkdir()
    loops.rename(root / "VethPair" / "Loops.nbi")
    # Sets that are themselves symlink loops.
    (root / "Self.nbi").symlink_to("Self.nbi")
    (root / "Ping.nbi").symlink_to("Pong.nbi")
    (root / "Pong.nbi").symlink_to("Ping.nbi")
    plist_error = ("NBImageInfo.plist", "not a valid plist")
    return {
        "Truncated.nbi": plist_error,
        "Garbage.nbi": plist_error,
        "BadBinary.nbi": plist_error,
        "VethPair/Loops.nbi": ("VethPair/Loops.nbi/loop", "symlink loop"),
        "Self.nbi": ("Self.nbi", "symlink loop"),
        "Ping.nbi": ("Ping.nbi", "symlink loop"),
        "Pong.nbi": ("Pong.nbi", "symlink loop"),
    }


def test_bad_sets_appearing_while_serving_leave_the_good_ones_served(
    served: Served, tmp_path: Path
) -> None:
    assert served.listed() == [ALPHA, BETA]
    bad = add_bad_sets(served.root, tmp_path / "staging")
    images = served.wait_images(lambda images: bad.keys() <= images.keys())

    for path, (named, words) in bad.items():
        image = images[path]
        assert not image["valid"], image
        assert any(named in error and words in error for error in image["errors"]), image
    for good in ("Alpha.nbi", "Beta.nbi"):
        assert images[good]["valid"] and images[good]["errors"] == [], images[good]

    assert served.listed() == [ALPHA, BETA]
    served.assert_serves("Alpha")
    served.assert_serves("Beta")
    served.assert_does_not_serve("VethPair/Loops")
    for path, (named, words) in bad.items():
        served.logged(f"NBI set {re.escape(path)} appeared")
        served.logged(rf"warning .*{re.escape(named)}.*{words}")
    assert "Traceback" not in served.log()
    assert served.daemon.process.poll() is None


def test_a_plist_broken_while_serving_hides_its_set_until_it_is_fixed(served: Served) -> None:
    plist = served.root / "Beta.nbi" / "NBImageInfo.plist"
    original = plist.read_bytes()
    served.assert_serves("Beta")

    plist.write_bytes(b"\x00garbage\xff" * 50)
    images = served.wait_images(lambda images: not images["Beta.nbi"]["valid"])
    (error,) = images["Beta.nbi"]["errors"]
    assert "Beta.nbi/NBImageInfo.plist" in error and "not a valid plist" in error
    assert served.listed() == [ALPHA]
    served.assert_does_not_serve("Beta")
    served.assert_serves("Alpha")

    temporary = plist.with_name(".NBImageInfo.plist.new")
    temporary.write_bytes(original)
    temporary.replace(plist)  # as an editor saves: the fixed file appears whole
    images = served.wait_images(lambda images: images["Beta.nbi"]["valid"])
    assert images["Beta.nbi"]["errors"] == []
    assert served.listed() == [ALPHA, BETA]
    served.assert_serves("Beta")
    served.logged(r"warning .*Beta\.nbi/NBImageInfo\.plist: -: not a valid plist")
    served.daemon.wait_for(r"serving image 0x01000002 'Beta'", timeout=SETTLE_TIMEOUT)
    assert "Traceback" not in served.log()
