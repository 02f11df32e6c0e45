"""The admin listener of a real daemon: `netboot status`, `/status.json`, `/metrics`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from netboot_lab.daemon import Daemon
from netboot_lab.factories import make_set
from netboot_lab.netns import VethPair, bsdp_probe, netboot_in, run_in
from tests.browser import CHROMIUM_FLAGS as BROWSER_FLAGS
from tests.netns import veth_lab

TIMEOUT = 60


def fetch(namespace: str, url: str) -> str:
    script = f"import urllib.request; print(urllib.request.urlopen({url!r}).read().decode())"
    done = run_in(namespace, sys.executable, "-c", script)
    assert done.returncode == 0, done.stderr
    return done.stdout


def select_and_fetch_the_booter(lab: VethPair, booter: Path) -> None:
    """A Mac's first steps: LIST, SELECT of Alpha, its booter over TFTP."""
    exit_status, answer = bsdp_probe(lab.client, lab.client_if, "--select", "0x01000001")
    assert exit_status == 0, answer
    fetched = netboot_in(
        lab.client, "tftp", "get", lab.server_ip, "Alpha.nbi/i386/booter", "-o", str(booter)
    )
    assert fetched.returncode == 0, fetched.stderr


def test_status_and_metrics_report_what_the_daemon_did(tmp_path: Path) -> None:
    root = tmp_path / "images"
    make_set(root, "Alpha", Index=1)
    make_set(root, "Broken", Index=2, Type="FTP")
    with veth_lab("10.239.0") as lab:
        args = ["--root", str(root), "--interface", lab.server_if]
        with Daemon(args, netns=lab.server) as daemon:
            daemon.wait_ready()
            select_and_fetch_the_booter(lab, tmp_path / "booter")

            status = netboot_in(lab.server, "status", "--json")
            assert status.returncode == 0, status.stderr
            state = json.loads(status.stdout)
            assert [image["path"] for image in state["images"]] == ["Alpha.nbi", "Broken.nbi"]
            assert state["images"][1]["errors"]
            assert state["counters"]["tftp"]["transfers_completed"] == 1
            assert state["counters"]["bsdp"]["list_replies"] == 1
            assert state["counters"]["bsdp"]["select_replies"] == 1
            assert state["nfs"]["mode"] == "off"
            (client,) = state["clients"]
            assert client["address"] == lab.client_ip
            assert client["image"] == "0x01000001"
            assert client["progress"] == "tftp done"
            assert list(client["stages"]) == ["bsdp list", "bsdp select", "tftp", "tftp done"]

            human = netboot_in(lab.server, "status")
            assert "1 of 2 NBI sets valid" in human.stdout

            metrics = {
                (sample.name, tuple(sorted(sample.labels.items()))): sample.value
                for family in text_string_to_metric_families(
                    fetch(lab.server, "http://127.0.0.1:9067/metrics")
                )
                for sample in family.samples
            }
            assert metrics[("netboot_tftp_transfers_completed_total", ())] == 1
            assert metrics[("netboot_bsdp_list_replies_total", ())] == 1
            assert metrics[("netboot_catalog_sets", (("state", "invalid"),))] == 1
            assert metrics[("netboot_catalog_sets", (("state", "servable"),))] == 1
            assert metrics[("netboot_nfs_available", ())] == 0
            assert metrics[("netboot_image_boots_total", (("image_id", "0x01000001"),))] == 1

            page = fetch(lab.server, "http://127.0.0.1:9067/status")
            assert "Alpha" in page and "Broken.nbi" in page and "error(s)" in page
            assert f"<td>{lab.client_ip}</td>" in page and "<b>tftp done</b>" in page
            assert daemon.stop() == 0


RANGED_READ = """
import http.client, json, sys
host, path, ranges = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
connection = http.client.HTTPConnection(host, 80, timeout=30)
got = b""
for first, last in ranges:
    connection.request("GET", path, headers={"Range": f"bytes={first}-{last}"})
    response = connection.getresponse()
    assert response.status == 206, response.status
    got += response.read()
connection.close()
print(len(got))
"""


def read_ranges(namespace: str, host: str, path: str, ranges: list[tuple[int, int]]) -> int:
    """Bytes received for `ranges` of `path`, read on one keep-alive connection, then closed."""
    done = run_in(namespace, sys.executable, "-c", RANGED_READ, host, path, json.dumps(ranges))
    assert done.returncode == 0, done.stderr
    return int(done.stdout)


def test_status_json_carries_each_machine_and_its_journey(tmp_path: Path) -> None:
    """A Mac's LIST, SELECT, booter over TFTP and root image in ranges over HTTP, as the
    machines registry files them; the address-keyed clients stay as they were."""
    root = tmp_path / "images"
    set_dir = make_set(root, "Alpha", Index=1)
    image_size = (set_dir / "NetBoot.dmg").stat().st_size
    booter_size = (set_dir / "i386" / "booter").stat().st_size
    with veth_lab("10.239.1") as lab:
        args = ["--root", str(root), "--interface", lab.server_if]
        with Daemon(args, netns=lab.server) as daemon:
            daemon.wait_ready()
            select_and_fetch_the_booter(lab, tmp_path / "booter")
            half = image_size // 2
            ranges = [(0, half - 1), (half, image_size - 1), (0, 9)]
            image = "/Alpha.nbi/NetBoot.dmg"
            assert read_ranges(lab.client, lab.server_ip, image, ranges) == image_size + 10
            # Part of a file, then the connection closes: done too, as far as we can tell.
            booter_path = "/Alpha.nbi/i386/booter"
            assert read_ranges(lab.client, lab.server_ip, booter_path, [(0, 9)]) == 10

            deadline = time.monotonic() + TIMEOUT
            while True:
                state = json.loads(fetch(lab.server, "http://127.0.0.1:9067/status.json"))
                transfers = {
                    (t["protocol"], t["name"]): (t["bytes"], t["size"], t["done"])
                    for journey in state["machines"][0]["journeys"]
                    for t in journey["transfers"]
                }
                if all(done for _, _, done in transfers.values()) or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            (client,) = state["clients"]
            assert (client["address"], client["progress"]) == (lab.client_ip, "http")
            assert list(client["stages"]) == [
                "bsdp list",
                "bsdp select",
                "tftp",
                "tftp done",
                "http",
            ]
            (machine,) = state["machines"]
            assert machine["mac"] == client["mac"]
            assert machine["address"] == lab.client_ip
            assert (machine["kind"], machine["architecture"]) == ("mac", "i386")
            assert machine["model"]  # the probe's model, whatever it says it is
            assert machine["image"] == "0x01000001" and machine["progress"] == "http"
            assert machine["server"]
            assert (machine["lease"], machine["assignment"]) == (None, None)
            (journey,) = machine["journeys"]
            assert journey["ended"] is None
            steps = [(step["stage"], step["detail"], step["bytes"]) for step in journey["steps"]]
            assert steps == [
                ("bsdp list", steps[0][1], None),
                ("bsdp select", steps[1][1], None),
                ("tftp", "TFTP Alpha.nbi/i386/booter", None),
                ("tftp done", "TFTP Alpha.nbi/i386/booter done", booter_size),
                ("http", f"HTTP {image}", None),
                ("http", f"HTTP {booter_path}", None),
            ]
            assert transfers == {
                ("tftp", "Alpha.nbi/i386/booter"): (booter_size, booter_size, True),
                ("http", image): (image_size + 10, image_size, True),
                ("http", booter_path): (10, booter_size, True),
            }
            assert daemon.stop() == 0


def test_status_without_a_daemon_exits_1() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "netboot", "status", "--admin", "http://127.0.0.1:9"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert done.returncode == 1
    assert "no netboot daemon at http://127.0.0.1:9" in done.stderr


CHROMIUM_FLAGS = [*BROWSER_FLAGS, "--hide-scrollbars", "--window-size=1200,900"]


def test_status_page_renders_in_a_browser(tmp_path: Path) -> None:
    """Headless Chromium renders the page: images, a client's progress; a screenshot."""
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("needs Debian's chromium")
    root = tmp_path / "images"
    make_set(root, "Alpha", Index=1, Name="Lab image")
    make_set(root, "Broken", Index=2, Type="FTP")
    with veth_lab("10.239.1") as lab:
        args = ["--root", str(root), "--interface", lab.server_if]
        with Daemon(args, netns=lab.server) as daemon:
            daemon.wait_ready()
            exit_status, answer = bsdp_probe(lab.client, lab.client_if, "--select", "0x01000001")
            assert exit_status == 0, answer
            url = "http://127.0.0.1:9067/status"
            profile = ["--user-data-dir=" + str(tmp_path / "profile")]
            dom = run_in(lab.server, chromium, *CHROMIUM_FLAGS, *profile, "--dump-dom", url)
            assert "Lab image" in dom.stdout and "Broken.nbi" in dom.stdout
            assert f"<td>{lab.client_ip}</td>" in dom.stdout
            assert "<b>bsdp select</b>" in dom.stdout
            shot = tmp_path / "status.png"
            taken = run_in(
                lab.server, chromium, *CHROMIUM_FLAGS, *profile, f"--screenshot={shot}", url
            )
            assert shot.is_file(), taken.stderr
            assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            assert shot.stat().st_size > 10_000  # a rendered page, not a blank one
            assert daemon.stop() == 0
