"""The HTTP service of the real daemon, in a namespace, read by curl and raw sockets."""

from __future__ import annotations

import random
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from netboot_lab.daemon import Daemon
from netboot_lab.factories import make_set
from netboot_lab.netns import VethPair
from tests.netns import veth_lab

TIMEOUT = 120
PORT = 8080
GIB = 1024 * 1024 * 1024


@dataclass
class Served:
    lab: VethPair
    root: Path
    data: bytes
    daemon: Daemon
    work: Path

    def url(self, path: str) -> str:
        return f"http://{self.lab.server_ip}:{PORT}{path}"

    def curl(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            ["ip", "netns", "exec", self.lab.client, "curl", "-sS", "--max-time", "60", *args],
            capture_output=True,
            timeout=TIMEOUT,
            check=False,
        )

    def python(self, script: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ip", "netns", "exec", self.lab.client, sys.executable, "-c", script],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("http")
    root = tmp / "images"
    set_dir = make_set(root, "Alpha")
    make_set(root / "NetBootSP0", "Spaced Name", Index=3)
    make_set(root, "Off", Index=2, IsEnabled=False)
    data = random.Random(9110).randbytes(3 * 1024 * 1024 + 17)
    (set_dir / "kernel").write_bytes(data)
    (set_dir / "empty").write_bytes(b"")
    (set_dir / "one").write_bytes(b"x")
    with (set_dir / "sparse.img").open("wb") as sparse:
        sparse.truncate(GIB)
    config = tmp / "netboot.toml"
    config.write_text(f"[http]\nport = {PORT}\nidle_timeout = 1\n")
    with veth_lab("10.236.0") as lab:
        args = ["--config", str(config), "--root", str(root), "--interface", lab.server_if]
        with Daemon(args, netns=lab.server) as daemon:
            daemon.wait_ready()
            yield Served(lab, root, data, daemon, tmp)
            assert daemon.stop() == 0
    assert "Traceback" not in "\n".join(daemon.lines)


def headers_and_body(output: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = output.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, body


def get(served: Served, path: str, *headers: str) -> tuple[int, dict[str, str], bytes]:
    args = ["-i", "--path-as-is"]
    for header in headers:
        args += ["-H", header]
    done = served.curl(*args, served.url(path))
    assert done.returncode == 0, done.stderr
    return headers_and_body(done.stdout)


@pytest.mark.parametrize(
    ("spec", "start", "end"),
    [
        ("0-99", 0, 99),  # first bytes
        ("-100", -100, None),  # suffix: the last 100
        ("1000-1999", 1000, 1999),  # middle
        ("3000000-", 3000000, None),  # open-ended
        ("3145000-99999999", 3145000, None),  # past the end: clipped
    ],
)
def test_single_ranges(served: Served, spec: str, start: int, end: int | None) -> None:
    status, headers, body = get(served, "/Alpha.nbi/kernel", f"Range: bytes={spec}")
    expected = served.data[start : None if end is None else end + 1]
    assert status == 206
    assert body == expected
    size = len(served.data)
    first = start % size
    assert headers["content-range"] == f"bytes {first}-{first + len(expected) - 1}/{size}"
    assert int(headers["content-length"]) == len(expected)


def test_multiple_ranges_come_as_multipart_byteranges(served: Served) -> None:
    status, headers, body = get(served, "/Alpha.nbi/kernel", "Range: bytes=0-9,100-109,-5")
    assert status == 206
    boundary = re.fullmatch(r"multipart/byteranges; boundary=(\S+)", headers["content-type"])
    assert boundary is not None
    assert int(headers["content-length"]) == len(body)
    parts = body.split(f"--{boundary.group(1)}".encode())
    assert parts[-1] == b"--\r\n"
    payloads = []
    for part in parts[1:-1]:
        head, _, payload = part.partition(b"\r\n\r\n")
        assert b"Content-Range: bytes " in head
        payloads.append(payload.removesuffix(b"\r\n"))
    assert payloads == [served.data[0:10], served.data[100:110], served.data[-5:]]


def test_unsatisfiable_range_is_416(served: Served) -> None:
    status, headers, _ = get(served, "/Alpha.nbi/kernel", "Range: bytes=99999999-")
    assert status == 416
    assert headers["content-range"] == f"bytes */{len(served.data)}"


def test_head_has_the_headers_of_get_and_no_body(served: Served) -> None:
    done = served.curl("-I", served.url("/Alpha.nbi/kernel"))
    status, headers, body = headers_and_body(done.stdout)
    assert status == 200 and body == b""
    assert int(headers["content-length"]) == len(served.data)
    assert headers["accept-ranges"] == "bytes"
    assert headers["etag"].startswith('"') and headers["last-modified"].endswith("GMT")
    assert headers["content-type"] == "application/octet-stream"
    _, image_headers, _ = headers_and_body(
        served.curl("-I", served.url("/Alpha.nbi/NetBoot.dmg")).stdout
    )
    assert image_headers["content-type"] == "application/x-apple-diskimage"


def test_conditional_requests(served: Served) -> None:
    _, headers, _ = get(served, "/Alpha.nbi/kernel")
    etag, modified = headers["etag"], headers["last-modified"]
    assert get(served, "/Alpha.nbi/kernel", f"If-None-Match: {etag}")[0] == 304
    assert get(served, "/Alpha.nbi/kernel", 'If-None-Match: "other"')[0] == 200
    assert get(served, "/Alpha.nbi/kernel", f"If-Modified-Since: {modified}")[0] == 304
    status, _, body = get(served, "/Alpha.nbi/kernel", f"If-Range: {etag}", "Range: bytes=0-3")
    assert (status, body) == (206, served.data[:4])
    status, _, body = get(served, "/Alpha.nbi/kernel", 'If-Range: "old"', "Range: bytes=0-3")
    assert (status, body) == (200, served.data)


@pytest.mark.parametrize(("name", "content"), [("empty", b""), ("one", b"x")])
def test_tiny_files(served: Served, name: str, content: bytes) -> None:
    status, headers, body = get(served, f"/Alpha.nbi/{name}")
    assert (status, body, headers["content-length"]) == (200, content, str(len(content)))


def test_a_sparse_gibibyte_streams_whole_and_in_ranges(served: Served) -> None:
    done = served.curl(
        "-o",
        "/dev/null",
        "-w",
        "%{http_code} %{size_download}",
        served.url("/Alpha.nbi/sparse.img"),
    )
    assert done.stdout.decode() == f"200 {GIB}"
    status, headers, body = get(served, "/Alpha.nbi/sparse.img", f"Range: bytes={GIB - 16}-")
    assert (status, body) == (206, bytes(16))
    assert headers["content-range"] == f"bytes {GIB - 16}-{GIB - 1}/{GIB}"


def test_sets_in_sharepoints_and_escaped_names(served: Served) -> None:
    status, _, body = get(served, "/NetBootSP0/Spaced%20Name.nbi/i386/booter")
    booter = served.root / "NetBootSP0" / "Spaced Name.nbi" / "i386" / "booter"
    assert (status, body) == (200, booter.read_bytes())


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/Alpha.nbi/../../../../etc/passwd", 400),
        ("/Alpha.nbi/%2e%2e/%2e%2e/etc/passwd", 400),
        ("/Alpha.nbi/%2E%2E/%2E%2E/etc/passwd", 400),
        ("/Alpha.nbi/.%2e/Off.nbi/NetBoot.dmg", 400),
        ("/Alpha.nbi/kernel%00.txt", 400),
        ("/Alpha.nbi/..%5c..%5cetc%5cpasswd", 400),
        ("/Alpha.nbi/i386%2f..%2f..%2fOff.nbi", 400),
        ("/Alpha.nbi/%ff", 400),
        ("/etc/passwd", 404),
        ("/Off.nbi/NetBoot.dmg", 404),
        ("/Alpha.nbi/missing", 404),
        ("/Alpha.nbi/", 404),
        ("/", 404),
    ],
)
def test_traversal_and_unknown_paths_are_refused(served: Served, path: str, status: int) -> None:
    assert get(served, path)[0] == status


def test_a_symlink_leaving_the_set_is_404(served: Served) -> None:
    link = served.root / "Alpha.nbi" / "passwd"
    link.symlink_to("/etc/passwd")
    try:
        assert get(served, "/Alpha.nbi/passwd")[0] == 404
        served.daemon.wait_for(r"refused /Alpha.nbi/passwd to 10\.236\.0\.2: 404")
    finally:
        link.unlink()


RAW_CLIENT = """
import socket, time
def ask(payload, wait=5.0):
    s = socket.create_connection(("{server}", {port}), timeout=wait)
    reply = b""
    try:
        s.sendall(payload)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server may hang up on an oversized request before reading it all
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            reply += chunk
            if b"\\r\\n\\r\\n" in reply and not payload.startswith(b"GET /Alpha"):
                break
    except (socket.timeout, ConnectionResetError):
        pass
    s.close()
    return reply.split(b"\\r\\n", 1)[0].decode("latin-1")
print(ask(b"NONSENSE\\r\\n\\r\\n"))
big = b"a" * 100000
print(ask(b"GET /Alpha.nbi/one HTTP/1.1\\r\\nHost: x\\r\\nX-Big: " + big + b"\\r\\n\\r\\n"))
for count in (10000, 1500):
    ranges = ",".join(f"{{n}}-{{n}}" for n in range(count)).encode()
    print(ask(b"GET /Alpha.nbi/one HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n"
              b"Range: bytes=" + ranges + b"\\r\\n\\r\\n"))
# Slowloris: half a request, then silence; the server must hang up after its idle timeout.
slow = socket.create_connection(("{server}", {port}), timeout=10)
slow.sendall(b"GET /Alpha.nbi/one HTTP/1.1\\r\\nHost: x\\r\\n")
start = time.monotonic()
closed = slow.recv(100) == b""
print("closed" if closed else "open", round(time.monotonic() - start))
"""


def test_bad_requests_are_answered_and_idle_connections_closed(served: Served) -> None:
    done = served.python(RAW_CLIENT.format(server=served.lab.server_ip, port=PORT))
    assert done.returncode == 0, done.stderr
    malformed, huge, ten_thousand, many, slow = done.stdout.splitlines()
    assert malformed.startswith("HTTP/1.1 400")
    # Headers over Twisted's 16 KiB limit: a 4xx, or the connection is simply cut.
    assert huge == "" or huge.startswith("HTTP/1.1 4")
    # 10,000 ranges do not fit Twisted's header limit; 1,500 do, and are more than we
    # answer in parts: the whole file is served instead.
    assert ten_thousand == "" or ten_thousand.startswith("HTTP/1.1 4")
    assert many == "HTTP/1.1 200 OK"
    status, seconds = slow.split()
    assert status == "closed" and int(seconds) <= 5
    assert get(served, "/Alpha.nbi/one")[0] == 200  # and others are still served


def test_directory_listings_only_when_configured(tmp_path: Path) -> None:
    root = tmp_path / "images"
    make_set(root, "Alpha")
    config = tmp_path / "netboot.toml"
    config.write_text(f"[http]\nport = {PORT}\ndirectory_listing = true\n")
    with veth_lab("10.236.1") as lab:
        args = ["--config", str(config), "--root", str(root), "--interface", lab.server_if]
        with Daemon(args, netns=lab.server) as daemon:
            daemon.wait_ready()
            done = subprocess.run(
                [
                    "ip",
                    "netns",
                    "exec",
                    lab.client,
                    "curl",
                    "-sS",
                    "-i",
                    f"http://{lab.server_ip}:{PORT}/Alpha.nbi/",
                ],
                capture_output=True,
                timeout=TIMEOUT,
                check=False,
            )
            status, headers, body = headers_and_body(done.stdout)
            assert status == 200
            assert headers["content-type"] == "text/html; charset=utf-8"
            for name in ("NBImageInfo.plist", "NetBoot.dmg", "i386/"):
                assert f">{name}</a>".encode() in body
            assert b'href="/Alpha.nbi/i386/"' in body
            assert daemon.stop() == 0
