"""The real daemon in a network namespace, downloaded from by clients others wrote.

curl (its TFTP support, with --tftp-blksize), tftp-hpa and atftp run in a
client namespace against `netboot serve` in a server namespace; every file
must arrive byte for byte. Then the server is bombarded with garbage and
traversal attempts, and must still serve.
"""

from __future__ import annotations

import hashlib
import random
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from netboot_lab.daemon import Daemon
from netboot_lab.factories import make_set
from netboot_lab.netns import VethPair, run_in
from tests.netns import veth_lab

SIZES = {"empty": 0, "one-block": 512, "block-and-one": 513, "twenty-mib": 20 * 1024 * 1024}
TIMEOUT = 120


def require_clients(*names: str) -> None:
    missing = [name for name in names if shutil.which(name) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (Debian: curl, tftp-hpa, atftp)")


@dataclass
class Served:
    lab: VethPair
    root: Path
    files: dict[str, bytes]
    daemon: Daemon
    work: Path

    def run(self, *command: str) -> subprocess.CompletedProcess[str]:
        """Run a client command in the client namespace."""
        return run_in(self.lab.client, *command, timeout=TIMEOUT)

    def curl_twenty_mib(self, label: str) -> None:
        """Download the 20 MiB file with curl at blksize 1468; it must arrive whole."""
        out = self.work / label
        done = self.run(
            "curl",
            "-sS",
            "--tftp-blksize",
            "1468",
            "-o",
            str(out),
            f"tftp://{self.lab.server_ip}/Alpha.nbi/i386/twenty-mib",
        )
        assert done.returncode == 0, done.stderr
        self.expect("twenty-mib", out)

    def expect(self, name: str, downloaded: Path) -> None:
        assert downloaded.exists(), f"{downloaded} was not written"
        got = downloaded.read_bytes()
        want = self.files[name]
        assert len(got) == len(want)
        assert hashlib.sha256(got).digest() == hashlib.sha256(want).digest()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("tftp")
    root = tmp / "images"
    set_dir = make_set(root, "Alpha")
    rng = random.Random(1350)
    files: dict[str, bytes] = {}
    for name, size in SIZES.items():
        files[name] = rng.randbytes(size)
        (set_dir / "i386" / name).write_bytes(files[name])
    extra = tmp / "pxe"
    extra.mkdir()
    files["undionly.kpxe"] = rng.randbytes(70_000)
    (extra / "undionly.kpxe").write_bytes(files["undionly.kpxe"])
    config = tmp / "netboot.toml"
    config.write_text(f'[tftp]\nextra_dir = "{extra}"\n')
    work = tmp / "work"
    work.mkdir()
    with veth_lab() as lab:
        args = ["--config", str(config), "--root", str(root), "--interface", lab.server_if]
        with Daemon(args, netns=lab.server) as daemon:
            daemon.wait_ready()
            yield Served(lab, root, files, daemon, work)
            assert daemon.stop() == 0
    assert "Traceback" not in "\n".join(daemon.lines)


# curl 7.88 fails every empty TFTP file ("getpeername() failed", exit 71), from
# dnsmasq just the same; tftp-hpa and atftp cover the empty file.
@pytest.mark.parametrize("name", [name for name in SIZES if name != "empty"])
@pytest.mark.parametrize("blksize", [512, 1468, 8192])
def test_curl_downloads_byte_identical_files(served: Served, name: str, blksize: int) -> None:
    require_clients("curl")
    out = served.work / f"curl-{name}-{blksize}"
    done = served.run(
        "curl",
        "--silent",
        "--show-error",
        "--max-time",
        str(TIMEOUT),
        "--tftp-blksize",
        str(blksize),
        "-o",
        str(out),
        f"tftp://{served.lab.server_ip}/Alpha.nbi/i386/{name}",
    )
    assert done.returncode == 0, done.stderr
    served.expect(name, out)


@pytest.mark.parametrize("name", list(SIZES))
def test_tftp_hpa_downloads_byte_identical_files(served: Served, name: str) -> None:
    require_clients("tftp")
    out = served.work / f"hpa-{name}"
    done = served.run(
        "tftp",
        "-m",
        "binary",
        served.lab.server_ip,
        "-c",
        "get",
        f"/Alpha.nbi/i386/{name}",
        str(out),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    served.expect(name, out)


@pytest.mark.parametrize("name", list(SIZES))
@pytest.mark.parametrize("options", [[], ["blksize 1468"], ["blksize 1468", "windowsize 4"]])
def test_atftp_downloads_byte_identical_files(
    served: Served, name: str, options: list[str]
) -> None:
    require_clients("atftp")
    out = served.work / f"atftp-{name}-{len(options)}"
    option_args = [arg for option in options for arg in ("--option", option)]
    done = served.run(
        "atftp",
        *option_args,
        "-g",
        "-r",
        f"Alpha.nbi/i386/{name}",
        "-l",
        str(out),
        served.lab.server_ip,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    served.expect(name, out)


@pytest.mark.parametrize("windowsize", [1, 4, 16])
def test_our_client_with_windows(served: Served, windowsize: int) -> None:
    out = served.work / f"ours-{windowsize}"
    done = served.run(
        sys.executable,
        "-m",
        "netboot",
        "tftp",
        "get",
        "--blksize",
        "1468",
        "--windowsize",
        str(windowsize),
        served.lab.server_ip,
        "Alpha.nbi/i386/twenty-mib",
        "-o",
        str(out),
    )
    assert done.returncode == 0, done.stderr
    assert f"windowsize={windowsize}" in done.stderr
    served.expect("twenty-mib", out)


def test_pxe_programs_by_bare_name(served: Served) -> None:
    require_clients("curl")
    out = served.work / "undionly.kpxe"
    done = served.run("curl", "-sS", "-o", str(out), f"tftp://{served.lab.server_ip}/undionly.kpxe")
    assert done.returncode == 0, done.stderr
    served.expect("undionly.kpxe", out)


@pytest.mark.parametrize(
    "name",
    [
        "../../../../etc/passwd",
        "Alpha.nbi/i386/../../../../../etc/passwd",
        "Alpha.nbi/NBImageInfo.plist",
        "Alpha.nbi/NetBoot.dmg",
        "/etc/passwd",
        "Alpha.nbi\\i386\\empty",
    ],
)
def test_traversal_attempts_are_refused(served: Served, name: str) -> None:
    require_clients("tftp")
    out = served.work / "refused"
    done = served.run("tftp", "-m", "binary", served.lab.server_ip, "-c", "get", name, str(out))
    assert "Error code" in done.stdout + done.stderr
    assert not out.exists() or out.stat().st_size == 0


def _client_socket_script(server_ip: str, seed: int) -> str:
    """Python run in the client namespace: garbage at port 69 and at a live transfer port."""
    return f"""
import random, socket, struct
rng = random.Random({seed})
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
for _ in range(2000):
    s.sendto(rng.randbytes(rng.randrange(0, 700)), ("{server_ip}", 69))
for opcode in range(0, 8):
    s.sendto(struct.pack("!H", opcode) + rng.randbytes(30), ("{server_ip}", 69))
# Open a transfer and spray its port with garbage from a second socket. Like a real
# client, retransmit the request: the burst above may have filled the server's socket
# buffer, and the kernel drops what does not fit.
for attempt in range(10):
    s.sendto(b"\\x00\\x01Alpha.nbi/i386/twenty-mib\\x00octet\\x00", ("{server_ip}", 69))
    try:
        data, transfer = s.recvfrom(70000)
    except TimeoutError:
        continue
    if data[:2] == b"\\x00\\x03":
        break
stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
stranger.settimeout(2)
for _ in range(500):
    stranger.sendto(rng.randbytes(rng.randrange(0, 600)), transfer)
    s.sendto(rng.randbytes(rng.randrange(0, 600)), transfer)
for attempt in range(10):
    stranger.sendto(b"\\x00\\x04\\x00\\x01", transfer)
    try:
        print(stranger.recvfrom(100)[0][:4].hex())
        break
    except TimeoutError:
        continue
"""


def test_garbage_never_stops_the_server(served: Served) -> None:
    require_clients("curl")
    done = served.run(sys.executable, "-c", _client_socket_script(served.lab.server_ip, 7))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "00050005"  # the stranger's ACK got ERROR 5
    served.curl_twenty_mib("after-garbage")
    assert served.daemon.process.poll() is None


@pytest.mark.parametrize(
    "client",
    [
        [
            "curl",
            "-sS",
            "--tftp-blksize",
            "512",
            "-o",
            "{out}",
            "tftp://{server}/Alpha.nbi/i386/big",
        ],
        [
            "atftp",
            "--option",
            "blksize 512",
            "--option",
            "windowsize 8",
            "-g",
            "-r",
            "Alpha.nbi/i386/big",
            "-l",
            "{out}",
            "{server}",
        ],
        [
            sys.executable,
            "-m",
            "netboot",
            "tftp",
            "get",
            "--blksize",
            "512",
            "--windowsize",
            "8",
            "{server}",
            "Alpha.nbi/i386/big",
            "-o",
            "{out}",
        ],
    ],
    ids=["curl", "atftp", "netboot"],
)
def test_block_numbers_roll_over_past_65535(tmp_path: Path, client: list[str]) -> None:
    """33 MiB at blksize 512 is 67585 blocks: wire numbers wrap to 0 and go on."""
    require_clients(client[0])
    root = tmp_path / "images"
    set_dir = make_set(root, "Alpha")
    big = random.Random(65536).randbytes(33 * 1024 * 1024 + 100)
    (set_dir / "i386" / "big").write_bytes(big)
    out = tmp_path / "big"
    with (
        veth_lab("10.231.1") as lab,
        Daemon(["--root", str(root), "--interface", lab.server_if], netns=lab.server) as daemon,
    ):
        daemon.wait_ready()
        command = [arg.format(out=out, server=lab.server_ip) for arg in client]
        done = run_in(lab.client, *command, timeout=TIMEOUT)
        assert done.returncode == 0, done.stdout + done.stderr
        assert hashlib.sha256(out.read_bytes()).digest() == hashlib.sha256(big).digest()
        assert daemon.stop() == 0


def test_single_port_mode_serves_standard_clients(tmp_path: Path) -> None:
    """Every transfer on port 69, told apart by client address and port."""
    require_clients("curl", "tftp", "atftp")
    root = tmp_path / "images"
    set_dir = make_set(root, "Alpha")
    payload = random.Random(69).randbytes(3 * 1024 * 1024 + 7)
    (set_dir / "i386" / "kernel").write_bytes(payload)
    config = tmp_path / "netboot.toml"
    config.write_text("[tftp]\nsingle_port = true\n")
    with (
        veth_lab("10.231.2") as lab,
        Daemon(
            ["--config", str(config), "--root", str(root), "--interface", lab.server_if],
            netns=lab.server,
        ) as daemon,
    ):
        daemon.wait_ready()
        name = "Alpha.nbi/i386/kernel"
        clients = {
            "curl": [
                "curl",
                "-sS",
                "--tftp-blksize",
                "1468",
                "-o",
                "{out}",
                f"tftp://{lab.server_ip}/{name}",
            ],
            "hpa": ["tftp", "-m", "binary", lab.server_ip, "-c", "get", name, "{out}"],
            "atftp": [
                "atftp",
                "--option",
                "windowsize 4",
                "-g",
                "-r",
                name,
                "-l",
                "{out}",
                lab.server_ip,
            ],
        }
        # All three at once: concurrent transfers share the one port.
        running = {
            label: subprocess.Popen(
                [
                    "ip",
                    "netns",
                    "exec",
                    lab.client,
                    *[arg.format(out=tmp_path / label) for arg in command],
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for label, command in clients.items()
        }
        for label, process in running.items():
            _, stderr = process.communicate(timeout=TIMEOUT)
            assert process.returncode == 0, (label, stderr)
            assert (tmp_path / label).read_bytes() == payload, label
        assert daemon.stop() == 0
    assert "(single port)" in "\n".join(daemon.lines)


def test_write_requests_are_refused(served: Served) -> None:
    require_clients("tftp")
    upload = served.work / "upload"
    upload.write_bytes(b"should never land")
    done = served.run(
        "tftp", "-m", "binary", served.lab.server_ip, "-c", "put", str(upload), "Alpha.nbi/new"
    )
    assert "Error code 2: this server is read-only" in done.stdout + done.stderr
    assert not (served.root / "Alpha.nbi" / "new").exists()


def test_stalled_clients_do_not_hold_up_others(served: Served) -> None:
    """Twenty transfers whose client never answers, and a download beside them."""
    require_clients("curl")
    stall = f"""
import socket, time
sockets = []
for _ in range(20):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(b"\\x00\\x01Alpha.nbi/i386/twenty-mib\\x00octet\\x00", ("{served.lab.server_ip}", 69))
    sockets.append(s)
print("stalled", flush=True)
time.sleep(30)
"""
    staller = subprocess.Popen(
        ["ip", "netns", "exec", served.lab.client, sys.executable, "-c", stall],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert staller.stdout is not None and staller.stdout.readline().strip() == "stalled"
        served.curl_twenty_mib("beside-stalled")
    finally:
        staller.kill()
        staller.wait()
