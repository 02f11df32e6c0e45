"""Ranges on keep-alive connections, the way a NetBooting Mac reads its root image.

The daemon serves a single range with sendfile and remembers which file a
request path resolved to (`KnownFiles`); these tests hold it to what a fresh
resolution would answer: a file replaced or re-linked during a session is the
new one, a link that now leaves the set is refused, a slow reader gets every
byte, and clients that hang up mid-body leave no open descriptors behind.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from netboot.lab.stages import Progress
from netboot_lab.daemon import Daemon
from netboot_lab.factories import make_set
from tests.netns import veth_lab
from tests.test_http_clients import PORT, TIMEOUT
from tests.test_http_clients import Served as ClientSide

MIB = 1024 * 1024

CLIENT = """
import http.client, json, socket, sys, time
steps = json.loads(sys.argv[1])
connection = http.client.HTTPConnection("{server}", {port}, timeout=30)
out = []
for step in steps:
    if step["do"] == "pause":
        # Tell the test we are between requests; wait for it to change the files.
        print("paused", flush=True)
        sys.stdin.readline()
        continue
    connection.request("GET", step["path"], headers={{"Range": step["range"]}})
    response = connection.getresponse()
    body = response.read()
    out.append({{"status": response.status, "body": body.hex()}})
print(json.dumps(out), flush=True)
"""


class Served(ClientSide):
    """test_http_clients's daemon and client side, with a set named Mac."""

    @property
    def set_dir(self) -> Path:
        return self.root / "Mac.nbi"

    def client(self, steps: list[dict[str, str]]) -> subprocess.Popen[str]:
        """The session script on one connection, started; it pauses where `steps` say."""
        script = CLIENT.format(server=self.lab.server_ip, port=PORT)
        command = [sys.executable, "-c", script, json.dumps(steps)]
        return subprocess.Popen(
            ["ip", "netns", "exec", self.lab.client, *command],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def pid(self) -> int:
        """The daemon's Python process (`ip netns exec` may fork rather than exec)."""
        pid = self.daemon.process.pid
        if Path(f"/proc/{pid}/comm").read_text().strip() == "ip":
            pid = int(Path(f"/proc/{pid}/task/{pid}/children").read_text().split()[0])
        return pid

    def open_fds(self) -> int:
        return len(list(Path(f"/proc/{self.pid()}/fd").iterdir()))

    def until_served(self, path: str, seconds: float = TIMEOUT) -> None:
        """Wait until `path` is served again: a test that made the set invalid (a symlink
        leaving it) leaves the set out of the catalog until the next rescan, which
        inotify triggers half a second after the change, later on a busy machine."""
        deadline = time.monotonic() + seconds
        while True:
            done = self.curl("-o", "/dev/null", "-w", "%{http_code}", "-r", "0-0", self.url(path))
            if done.stdout == b"206":
                return
            assert time.monotonic() < deadline, f"{path} not served again: {done.stdout!r}"
            time.sleep(0.2)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("keepalive")
    root = tmp / "images"
    set_dir = make_set(root, "Mac")
    with (set_dir / "sparse.img").open("wb") as sparse:
        sparse.truncate(1024 * MIB)
    config = tmp / "netboot.toml"
    config.write_text(f"[http]\nport = {PORT}\nidle_timeout = 30\n")
    with veth_lab("10.236.2") as lab:
        args = ["--config", str(config), "--root", str(root), "--interface", lab.server_if]
        with Daemon(args, netns=lab.server) as daemon:
            daemon.wait_ready()
            yield Served(lab, root, b"", daemon, tmp)
            assert daemon.stop() == 0
    assert "Traceback" not in "\n".join(daemon.lines)


def replace_file(path: Path, data: bytes) -> None:
    """Write a new file and rename it over `path`: a new inode, as an admin's copy makes."""
    fresh = path.with_name(path.name + ".new")
    fresh.write_bytes(data)
    fresh.replace(path)


def relink(link: Path, target: str) -> None:
    """Point the symlink `link` at `target` atomically (a new link renamed over it)."""
    fresh = link.with_name(link.name + ".new")
    fresh.symlink_to(target)
    fresh.replace(link)


def run_session(
    served: Served, steps: list[dict[str, str]], between: list[Callable[[], None]]
) -> list[dict[str, object]]:
    """Run the client's steps on one connection; at each pause, call the next of `between`."""
    client = served.client(steps)
    assert client.stdin is not None and client.stdout is not None
    try:
        for change in between:
            assert client.stdout.readline().strip() == "paused"
            change()
            client.stdin.write("\n")
            client.stdin.flush()
        out, err = client.communicate(timeout=TIMEOUT)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
    assert client.returncode == 0, err
    answers: list[dict[str, object]] = json.loads(out)
    return answers


def test_a_file_replaced_during_a_session_is_served_new(served: Served) -> None:
    # Not NetBoot.dmg itself: the catalog checks that one, and random bytes would
    # take the set out of service.
    path = served.set_dir / "Other.dmg"
    old = random.Random(1).randbytes(3 * MIB)
    new = random.Random(2).randbytes(2 * MIB + 5)
    path.write_bytes(old)
    steps = [
        {"do": "get", "path": "/Mac.nbi/Other.dmg", "range": "bytes=1048576-2097151"},
        {"do": "get", "path": "/Mac.nbi/Other.dmg", "range": "bytes=0-99"},
        {"do": "pause"},
        {"do": "get", "path": "/Mac.nbi/Other.dmg", "range": "bytes=1048576-2097151"},
        {"do": "get", "path": "/Mac.nbi/Other.dmg", "range": "bytes=2097152-"},
    ]
    answers = run_session(served, steps, [lambda: replace_file(path, new)])
    assert [a["status"] for a in answers] == [206, 206, 206, 206]
    bodies = [bytes.fromhex(str(a["body"])) for a in answers]
    assert bodies[0] == old[MIB : 2 * MIB] and bodies[1] == old[:100]
    assert bodies[2] == new[MIB : 2 * MIB] and bodies[3] == new[2 * MIB :]


def test_a_file_rewritten_in_place_while_a_connection_holds_it_is_served_new(
    served: Served,
) -> None:
    # The connection keeps the file open between its quick ranges (HeldFile): the
    # same inode with new bytes and a new size must still be read as it is now.
    path = served.set_dir / "Inplace.dmg"
    old = random.Random(5).randbytes(3 * MIB)
    new = random.Random(6).randbytes(2 * MIB + 7)
    path.write_bytes(old)
    inode = path.stat().st_ino
    steps = [
        {"do": "get", "path": "/Mac.nbi/Inplace.dmg", "range": "bytes=0-99"},
        {"do": "get", "path": "/Mac.nbi/Inplace.dmg", "range": "bytes=1048576-2097151"},
        {"do": "get", "path": "/Mac.nbi/Inplace.dmg", "range": "bytes=2097152-"},
        {"do": "pause"},
        {"do": "get", "path": "/Mac.nbi/Inplace.dmg", "range": "bytes=2097152-"},
        {"do": "get", "path": "/Mac.nbi/Inplace.dmg", "range": "bytes=0-99"},
    ]

    def rewrite() -> None:
        with path.open("r+b") as file:
            file.truncate(0)
            file.write(new)
        assert path.stat().st_ino == inode

    answers = run_session(served, steps, [rewrite])
    assert [a["status"] for a in answers] == [206] * 5
    bodies = [bytes.fromhex(str(a["body"])) for a in answers]
    assert bodies[:3] == [old[:100], old[MIB : 2 * MIB], old[2 * MIB :]]
    assert bodies[3:] == [new[2 * MIB :], new[:100]]


def test_a_relinked_name_follows_its_new_target_and_is_refused_once_it_leaves(
    served: Served, tmp_path: Path
) -> None:
    first = random.Random(3).randbytes(MIB)
    second = random.Random(4).randbytes(MIB)
    (served.set_dir / "v1.dmg").write_bytes(first)
    (served.set_dir / "v2.dmg").write_bytes(second)
    outside = tmp_path / "secret"
    outside.write_bytes(b"not for clients")
    link = served.set_dir / "Current.dmg"
    link.symlink_to("v1.dmg")
    wanted = {"do": "get", "path": "/Mac.nbi/Current.dmg", "range": "bytes=0-9"}
    steps = [wanted, wanted, {"do": "pause"}, wanted, {"do": "pause"}, wanted]
    try:
        answers = run_session(
            served, steps, [lambda: relink(link, "v2.dmg"), lambda: relink(link, str(outside))]
        )
    finally:
        link.unlink()
        served.until_served("/Mac.nbi/v1.dmg")
    statuses = [a["status"] for a in answers]
    bodies = [bytes.fromhex(str(a["body"])) for a in answers]
    assert statuses[:3] == [206, 206, 206]
    assert bodies[:3] == [first[:10], first[:10], second[:10]]
    assert statuses[3] == 404 and bodies[3] == b"not found\n"
    served.daemon.wait_for(r"refused /Mac.nbi/Current.dmg to 10\.236\.2\.2: 404")


SLOW_READER = """
import socket, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.connect(("{server}", {port}))
s.settimeout(30)
def ask(spec, slow):
    request = b"GET /Mac.nbi/sparse.img HTTP/1.1\\r\\nHost: x\\r\\nRange: bytes=" + spec
    s.sendall(request + b"\\r\\n\\r\\n")
    data = b""
    while b"\\r\\n\\r\\n" not in data:
        data += s.recv(4096)
    head, _, body = data.partition(b"\\r\\n\\r\\n")
    fields = dict(line.lower().split(b": ", 1) for line in head.split(b"\\r\\n")[1:])
    length = int(fields[b"content-length"])
    started = time.monotonic()
    while len(body) < length:
        chunk = s.recv(65536 if not slow else 16384)
        if not chunk:
            break
        body += chunk
        if slow:
            time.sleep(0.01)
    return head.split(b"\\r\\n")[0].decode(), len(body), body.count(0), time.monotonic() - started
print(ask(b"0-7", False))
print(ask(b"1048576-5242879", True))
print(ask(b"0-7", False))
"""


def test_a_slow_reader_gets_every_byte_and_keeps_its_connection(served: Served) -> None:
    done = served.python(SLOW_READER.format(server=served.lab.server_ip, port=PORT))
    assert done.returncode == 0, done.stderr
    first, slow, last = done.stdout.splitlines()
    assert first.startswith("('HTTP/1.1 206") and last.startswith("('HTTP/1.1 206")
    status, length, zeros, seconds = slow.strip("()").split(", ")
    assert status == "'HTTP/1.1 206 Partial Content'"
    assert int(length) == 4 * MIB and int(zeros) == 4 * MIB
    # 4 MiB at 16 KiB per 10 ms takes over 2 s: the body waited on the reader many times.
    assert float(seconds) > 1.0


HANG_UP = """
import socket
for round in range(20):
    s = socket.create_connection(("{server}", {port}), timeout=30)
    s.sendall(b"GET /Mac.nbi/sparse.img HTTP/1.1\\r\\nHost: x\\r\\nRange: bytes=0-\\r\\n\\r\\n")
    s.recv(65536)
    s.close()
print("done")
"""


def test_clients_that_hang_up_mid_body_leave_no_open_descriptors(served: Served) -> None:
    before = served.open_fds()
    done = served.python(HANG_UP.format(server=served.lab.server_ip, port=PORT))
    assert done.returncode == 0 and done.stdout.strip() == "done", done.stderr
    deadline = time.monotonic() + 30
    while served.open_fds() > before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert served.open_fds() <= before


def test_ranges_are_logged_first_then_summarised_and_the_lab_still_counts_every_byte(
    tmp_path: Path,
) -> None:
    """One line for a path's first range, one summary when the path changes or the
    connection closes; the lab's reading of the JSON log sees the fetch and every byte."""
    root = tmp_path / "images"
    set_dir = make_set(root, "Mac")
    (set_dir / "Root.dmg").write_bytes(random.Random(5).randbytes(4 * MIB))
    (set_dir / "Other.dmg").write_bytes(random.Random(6).randbytes(2 * MIB))
    config = tmp_path / "netboot.toml"
    config.write_text(f"[http]\nport = {PORT}\nidle_timeout = 30\n")
    root_ranges = [f"bytes={n * MIB}-{(n + 1) * MIB - 1}" for n in (0, 3, 1, 2)]
    steps = [{"do": "get", "path": "/Mac.nbi/Root.dmg", "range": r} for r in root_ranges]
    steps += [{"do": "get", "path": "/Mac.nbi/Other.dmg", "range": "bytes=0-99"}] * 3
    with veth_lab("10.236.3") as lab:
        args = ["--config", str(config), "--root", str(root), "--interface", lab.server_if]
        with Daemon([*args, "--log-format", "json"], netns=lab.server) as daemon:
            daemon.wait_ready()
            answers = run_session(Served(lab, root, b"", daemon, tmp_path), steps, [])
            assert [a["status"] for a in answers] == [206] * 7
            daemon.wait_for(r'"path": "/Mac.nbi/Other.dmg".*"ranges": 2')  # at the close
            assert daemon.stop() == 0
    records = [json.loads(line) for line in daemon.lines if line.startswith("{")]
    access = [r for r in records if r["system"] == "netboot.http" and "status" in r]
    assert [(r["path"], r["bytes"], r.get("ranges")) for r in access] == [
        ("/Mac.nbi/Root.dmg", MIB, None),
        ("/Mac.nbi/Root.dmg", 3 * MIB, 3),  # when the path changed
        ("/Mac.nbi/Other.dmg", 100, None),
        ("/Mac.nbi/Other.dmg", 200, 2),  # when the connection closed
    ]
    assert access[1]["range"] == "bytes=2097152-3145727" and access[1]["status"] == 206
    assert re.search(r'"GET /Mac.nbi/Root.dmg" 206 3145728 "-" \(3 ranges over [0-9.]+ s\)$',
                     access[1]["message"])  # fmt: skip
    progress = Progress("-", 0.0, "/Mac.nbi/Root.dmg", address=lab.client_ip)
    progress.feed_lines(daemon.lines)
    assert "kernel" in progress.stages
    assert progress.http_bytes == 4 * MIB + 300


RESPONSES = """
import hashlib, json, socket, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, {rcvbuf})
s.connect(("{server}", {port}))
s.settimeout(30)
data = b""
def response():
    global data
    while b"\\r\\n\\r\\n" not in data:
        data += s.recv(65536)
    head, _, data = data.partition(b"\\r\\n\\r\\n")
    fields = dict(line.lower().split(b": ", 1) for line in head.split(b"\\r\\n")[1:])
    length = int(fields[b"content-length"])
    while len(data) < length:
        data += s.recv(65536)
    body, data = data[:length], data[length:]
    return head, fields, body
"""
"""A client script's start: one connection, and `response()` to read the next answer."""

EAGER = (
    RESPONSES
    + """
def ask(spec):
    return b"GET /Mac.nbi/Eager.dmg HTTP/1.1\\r\\nHost: x\\r\\nRange: bytes=%s\\r\\n\\r\\n" % spec
def answer():
    head, fields, body = response()
    return [head.split(b" ")[1].decode(), fields[b"content-range"].decode(),
            hashlib.sha256(body).hexdigest()]
s.sendall(ask(b"0-9"))  # the first one makes the file known
out = [answer()]
s.sendall(ask(b"0-4194303"))
time.sleep(0.3)  # the 4 MiB is still going out when the next ones arrive
s.sendall(ask(b"10-19"))
time.sleep(0.1)
s.sendall(ask(b"0-9") + ask(b"20-29"))  # and two in one write
out += [answer() for _ in range(4)]
print(json.dumps(out))
"""
)


def test_requests_sent_while_a_range_goes_out_are_answered_after_it_in_order(
    served: Served,
) -> None:
    body = random.Random(7).randbytes(4 * MIB + 100)
    (served.set_dir / "Eager.dmg").write_bytes(body)
    done = served.python(EAGER.format(server=served.lab.server_ip, port=PORT, rcvbuf=4096))
    assert done.returncode == 0, done.stderr
    size = len(body)
    expected = [
        ["206", f"bytes {a}-{b}/{size}", hashlib.sha256(body[a : b + 1]).hexdigest()]
        for a, b in ((0, 9), (0, 4 * MIB - 1), (10, 19), (0, 9), (20, 29))
    ]
    assert json.loads(done.stdout) == expected


HEADS = (
    RESPONSES
    + """
ask = b"GET /Mac.nbi/Heads.dmg HTTP/1.1\\r\\nHost: x\\r\\nRange: bytes=100-4195\\r\\n\\r\\n"
def head():
    return response()[0].decode("latin-1")
out = []
s.sendall(ask)  # the file is not known yet: twisted.web's Request
out.append(head())
s.sendall(ask)  # known now, and plain: QuickRange
out.append(head())
s.sendall(ask + ask)  # pipelined: twisted.web's again, for a known file
out += [head(), head()]
print(json.dumps(out))
"""
)


def test_both_paths_send_the_same_response_head_for_the_same_range(served: Served) -> None:
    body = random.Random(8).randbytes(10_000)
    (served.set_dir / "Heads.dmg").write_bytes(body)
    done = served.python(HEADS.format(server=served.lab.server_ip, port=PORT, rcvbuf=65536))
    assert done.returncode == 0, done.stderr
    # The Date may tick between responses; everything else must be byte for byte the same.
    heads = [re.sub(r"\r\nDate: [^\r]+", "\r\nDate: -", head) for head in json.loads(done.stdout)]
    assert heads[0].startswith("HTTP/1.1 206 Partial Content\r\n")
    assert "\r\nContent-Range: bytes 100-4195/10000\r\n" in heads[0]
    assert "\r\nContent-Length: 4096" in heads[0]
    assert heads[1:] == [heads[0]] * 3, heads
