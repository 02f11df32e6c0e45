"""TFTP and HTTP over IPv6: the real daemon in a namespace, read by clients others wrote.

The veth pair gets the IPv6 lab net's addresses (docs/protocols/dhcpv6.md §16;
server `fd4e:4254:0:1::1`) besides its IPv4 ones, and each end its kernel-made
link-local address. curl (`tftp://[addr]/…`, `http://[addr]:port/…` with
Range, a link-local URL with `%25zone`), tftp-hpa (`-6`), atftp and our own
`netboot tftp get` fetch files byte for byte; the iPXE script asked over IPv6
names IPv6 URLs; the log and the status page name IPv6 clients `[addr]:port`.
A daemon in single-port mode serves IPv6 too, and one on an interface without
IPv6 still starts.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from netboot_lab.daemon import Daemon
from netboot_lab.factories import make_set
from netboot_lab.netns import VethPair, ip, run_in
from tests.netns import veth_lab

TIMEOUT = 120
HTTP_PORT = 8080
SERVER6 = "fd4e:4254:0:1::1"
CLIENT6 = "fd4e:4254:0:1::2"
MAC_OF_CLIENT = "52:54:00:4e:42:66"
SIZES = {"one-block": 512, "block-and-one": 513, "two-mib": 2 * 1024 * 1024 + 7}


def require_clients(*names: str) -> None:
    missing = [name for name in names if shutil.which(name) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (Debian: curl, tftp-hpa, atftp)")


def link_local(namespace: str, interface: str) -> str:
    """The kernel-made fe80:: address of `interface`, once duplicate detection is done."""
    deadline = time.monotonic() + 10
    while True:
        listed = json.loads(ip("-j", "-6", "addr", "show", "dev", interface, netns=namespace))
        infos = [info for link in listed for info in link.get("addr_info", [])]
        done = [i for i in infos if i.get("scope") == "link" and not i.get("tentative")]
        if done:
            return str(done[0]["local"])
        assert time.monotonic() < deadline, f"no link-local address on {interface}: {infos}"
        time.sleep(0.1)


def add_ipv6(lab: VethPair) -> tuple[str, str]:
    """The lab net's ULA on both ends (no duplicate detection), the client's MAC fixed;
    returns the server's and the client's link-local addresses."""
    ip("link", "set", lab.client_if, "address", MAC_OF_CLIENT, netns=lab.client)
    for namespace, interface, address in (
        (lab.server, lab.server_if, SERVER6),
        (lab.client, lab.client_if, CLIENT6),
    ):
        ip("addr", "add", f"{address}/64", "dev", interface, "nodad", netns=namespace)
    return link_local(lab.server, lab.server_if), link_local(lab.client, lab.client_if)


@dataclass
class Served:
    lab: VethPair
    files: dict[str, bytes]
    daemon: Daemon
    work: Path
    server_link_local: str
    client_link_local: str

    def run(self, *command: str) -> subprocess.CompletedProcess[str]:
        return run_in(self.lab.client, *command, timeout=TIMEOUT)

    def expect(self, name: str, downloaded: Path) -> None:
        assert downloaded.exists(), f"{downloaded} was not written"
        got = downloaded.read_bytes()
        assert len(got) == len(self.files[name])
        assert hashlib.sha256(got).digest() == hashlib.sha256(self.files[name]).digest()

    def curl(self, url: str, out: Path, *options: str) -> None:
        done = self.run("curl", "-sS", "-g", "--max-time", str(TIMEOUT), *options, "-o", str(out),
                        url)  # fmt: skip
        assert done.returncode == 0, done.stderr


def serve(tmp: Path, extra_config: str = "") -> tuple[Path, dict[str, bytes]]:
    """An image root with a PC set and a programs directory; the configuration file."""
    root = tmp / "images"
    set_dir = make_set(
        root,
        "Alpha",
        files={"pc/vmlinuz": b"kernel " * 1000, "pc/initrd.img": b"initrd " * 100},
        Index=1,
        PCKernel="pc/vmlinuz",
        PCInitrd="pc/initrd.img",
    )
    rng = random.Random(8200)
    files = {name: rng.randbytes(size) for name, size in SIZES.items()}
    for name, data in files.items():
        (set_dir / "i386" / name).write_bytes(data)
    programs = tmp / "pxe"
    programs.mkdir()
    files["ipxe.efi"] = rng.randbytes(90_000)
    (programs / "ipxe.efi").write_bytes(files["ipxe.efi"])
    config = tmp / "netboot.toml"
    config.write_text(
        f'[tftp]\nextra_dir = "{programs}"\n{extra_config}\n'
        f"[http]\nport = {HTTP_PORT}\nidle_timeout = 1\n"
        '[dhcp]\nmode = "proxy"\n'
    )
    return config, files


def daemon_args(config: Path, tmp: Path, lab: VethPair) -> list[str]:
    return ["--config", str(config), "--root", str(tmp / "images"), "--interface", lab.server_if]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("ipv6")
    config, files = serve(tmp)
    work = tmp / "work"
    work.mkdir()
    with veth_lab("10.241.0") as lab:
        server_ll, client_ll = add_ipv6(lab)
        args = daemon_args(config, tmp, lab)
        with Daemon(args, netns=lab.server) as daemon:
            daemon.wait_ready()
            yield Served(lab, files, daemon, work, server_ll, client_ll)
            assert daemon.stop() == 0
    log = "\n".join(daemon.lines)
    assert "Traceback" not in log
    assert "::ffff:" not in log  # IPv4 clients stay IPv4


def test_listens_on_every_address_of_both_families(served: Served) -> None:
    log = "\n".join(served.daemon.lines)
    for address in (served.lab.server_ip, f"[{SERVER6}]", f"[{served.server_link_local}%nb0]"):
        assert f"TFTP listening on {address}:69" in log
        assert f"HTTP listening on {address}:{HTTP_PORT}" in log


@pytest.mark.parametrize("name", list(SIZES))
@pytest.mark.parametrize("blksize", [512, 1448, 8192])
def test_curl_fetches_by_tftp_over_ipv6(served: Served, name: str, blksize: int) -> None:
    require_clients("curl")
    out = served.work / f"curl6-{name}-{blksize}"
    served.curl(f"tftp://[{SERVER6}]/Alpha.nbi/i386/{name}", out, "--tftp-blksize", str(blksize))
    served.expect(name, out)


def test_a_tftp_client_over_ipv6_is_logged_in_brackets_with_the_ipv6_block(served: Served) -> None:
    require_clients("curl")
    out = served.work / "curl6-logged"
    served.curl(f"tftp://[{SERVER6}]/ipxe.efi", out, "--tftp-blksize", "1468")
    served.expect("ipxe.efi", out)
    line = served.daemon.seen_or_wait(rf"sending 'ipxe.efi' to \[{re.escape(CLIENT6)}\]:\d+")
    # 1468 fits IPv4 at MTU 1500; over IPv6 the header is 20 bytes larger.
    assert "blksize 1448" in line
    assert f"[{MAC_OF_CLIENT}]" in line  # the MAC, from the kernel's neighbour table
    served.daemon.seen_or_wait(rf"sent 'ipxe.efi' to \[{re.escape(CLIENT6)}\]:\d+: 90000 bytes")


def test_curl_fetches_from_our_link_local_address_with_its_zone(served: Served) -> None:
    require_clients("curl")
    zone = served.lab.client_if
    out = served.work / "curl6-link-local"
    served.curl(f"tftp://[{served.server_link_local}%25{zone}]/ipxe.efi", out)
    served.expect("ipxe.efi", out)
    served.daemon.seen_or_wait(
        rf"sending 'ipxe.efi' to \[{re.escape(served.client_link_local)}%nb0\]:\d+"
    )
    out = served.work / "curl6-link-local-http"
    served.curl(f"http://[{served.server_link_local}%25{zone}]:{HTTP_PORT}/boot/ipxe.efi", out)
    served.expect("ipxe.efi", out)


@pytest.mark.parametrize("name", list(SIZES))
def test_tftp_hpa_fetches_over_ipv6(served: Served, name: str) -> None:
    require_clients("tftp")
    out = served.work / f"hpa6-{name}"
    done = served.run(
        "tftp", "-6", "-m", "binary", SERVER6, "-c", "get", f"/Alpha.nbi/i386/{name}", str(out)
    )
    assert done.returncode == 0, done.stdout + done.stderr
    served.expect(name, out)


@pytest.mark.parametrize("options", [(), ("blksize 1448", "windowsize 8")], ids=["plain", "window"])
def test_atftp_fetches_over_ipv6(served: Served, options: tuple[str, ...]) -> None:
    require_clients("atftp")
    out = served.work / f"atftp6-{len(options)}"
    extra = [word for option in options for word in ("--option", option)]
    done = served.run(
        "atftp", *extra, "-g", "-r", "/Alpha.nbi/i386/two-mib", "-l", str(out), SERVER6
    )
    assert done.returncode == 0, done.stdout + done.stderr
    served.expect("two-mib", out)


@pytest.mark.parametrize("via", ["ula", "link-local"])
def test_our_own_client_fetches_over_ipv6(served: Served, via: str) -> None:
    """`netboot tftp get` with a window, to the ULA or to our link-local address."""
    host = SERVER6 if via == "ula" else f"{served.server_link_local}%{served.lab.client_if}"
    out = served.work / f"ours6-{via}"
    done = served.run(
        sys.executable, "-m", "netboot", "tftp", "get", "--windowsize", "8", "--blksize", "1468",
        host, "Alpha.nbi/i386/two-mib", "-o", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "blksize=1448" in done.stderr and "windowsize=8" in done.stderr
    served.expect("two-mib", out)


def test_curl_fetches_by_http_over_ipv6_with_ranges(served: Served) -> None:
    require_clients("curl")
    url = f"http://[{SERVER6}]:{HTTP_PORT}/Alpha.nbi/i386/two-mib"
    whole = served.work / "http6-whole"
    served.curl(url, whole)
    served.expect("two-mib", whole)
    part = served.work / "http6-range"
    served.curl(url, part, "-r", "1000-1999")
    assert part.read_bytes() == served.files["two-mib"][1000:2000]
    request = '"GET /Alpha.nbi/i386/two-mib" 206'
    served.daemon.seen_or_wait(rf"{re.escape(CLIENT6)} \[{MAC_OF_CLIENT}\] {request}")


@pytest.mark.parametrize("via", ["ula", "link-local"])
def test_the_ipxe_script_asked_over_ipv6_names_ipv6_urls(served: Served, via: str) -> None:
    """docs/protocols/dhcpv6.md §16: asked on our link-local address, the script names
    the interface's ULA, never a zone iPXE could not read."""
    require_clients("curl")
    host = SERVER6 if via == "ula" else f"{served.server_link_local}%25{served.lab.client_if}"
    out = served.work / f"script6-{via}"
    served.curl(f"http://[{host}]:{HTTP_PORT}/boot.ipxe?mac={MAC_OF_CLIENT}&arch=7", out)
    script = out.read_text()
    assert f"kernel http://[{SERVER6}]:{HTTP_PORT}/Alpha.nbi/pc/vmlinuz" in script, script
    assert "%" not in script


def test_the_status_page_shows_ipv6_clients(served: Served) -> None:
    require_clients("curl")
    served.curl(f"tftp://[{SERVER6}]/ipxe.efi", served.work / "status6")
    done = run_in(served.lab.server, "curl", "-sS", "http://127.0.0.1:9067/status.json")
    assert done.returncode == 0, done.stderr
    state = json.loads(done.stdout)
    addresses = {client["address"]: client["mac"] for client in state["clients"]}
    assert addresses.get(CLIENT6) == MAC_OF_CLIENT
    machines = {machine["mac"]: machine for machine in state["machines"]}
    assert machines[MAC_OF_CLIENT]["address"] in (CLIENT6, f"{served.client_link_local}%nb0")


def test_single_port_mode_serves_ipv6(tmp_path: Path) -> None:
    require_clients("curl", "tftp")
    config, files = serve(tmp_path, "single_port = true")
    with veth_lab("10.241.1") as lab:
        add_ipv6(lab)
        args = daemon_args(config, tmp_path, lab)
        with Daemon(args, netns=lab.server) as daemon:
            daemon.wait_ready()
            for blksize in ("512", "1448"):
                out = tmp_path / f"single-{blksize}"
                done = run_in(
                    lab.client, "curl", "-sS", "-g", "--tftp-blksize", blksize, "-o", str(out),
                    f"tftp://[{SERVER6}]/Alpha.nbi/i386/two-mib", timeout=TIMEOUT,
                )  # fmt: skip
                assert done.returncode == 0, done.stderr
                assert out.read_bytes() == files["two-mib"]
            out = tmp_path / "single-hpa"
            done = run_in(lab.client, "tftp", "-6", "-m", "binary", SERVER6, "-c", "get",
                          "/ipxe.efi", str(out), timeout=TIMEOUT)  # fmt: skip
            assert done.returncode == 0, done.stdout + done.stderr
            assert out.read_bytes() == files["ipxe.efi"]
            assert re.search(r"TFTP listening on \[fd4e:4254:0:1::1\]:69 \(single port\)",
                             "\n".join(daemon.lines))  # fmt: skip
            assert daemon.stop() == 0
    assert "Traceback" not in "\n".join(daemon.lines)


def test_an_interface_without_ipv6_is_served_over_ipv4(tmp_path: Path) -> None:
    require_clients("curl")
    config, files = serve(tmp_path)
    with veth_lab("10.241.2") as lab:
        ip("link", "set", lab.server_if, "down", netns=lab.server)
        run_in(lab.server, "sysctl", "-qw", f"net.ipv6.conf.{lab.server_if}.disable_ipv6=1")
        ip("link", "set", lab.server_if, "up", netns=lab.server)
        args = daemon_args(config, tmp_path, lab)
        with Daemon(args, netns=lab.server) as daemon:
            daemon.wait_ready()
            daemon.seen_or_wait(r"nb0 has no IPv6 address: TFTP and HTTP serve it over IPv4 only")
            out = tmp_path / "v4"
            done = run_in(lab.client, "curl", "-sS", "-o", str(out),
                          f"tftp://{lab.server_ip}/ipxe.efi", timeout=TIMEOUT)  # fmt: skip
            assert done.returncode == 0, done.stderr
            assert out.read_bytes() == files["ipxe.efi"]
            assert daemon.stop() == 0
