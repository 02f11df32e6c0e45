"""A simulated Mac: a whole NetBoot, as a client on the lab's network.

No Mac firmware runs under QEMU, so `netboot lab mac` plays the Mac's part
with our own client tools, in the order the firmware and booter use
(docs/protocols/bsdp.md §1.1): INFORM[LIST] and INFORM[SELECT] from port
68 (`netboot bsdp probe`), the booter by TFTP from the ACK's siaddr/file,
the kernel (kernelcache or mach.macosx) from the booter's directory, then
the root image the way a mounting Mac touches it: the partition map, the
volume header, the catalog's header node, the first and last MiB of the
volume, by HTTP range requests decoded with our UDIF reader (or, for an NFS
root path, a libnfs copy checked the same way).

The summary is `Lab.boot`'s: a stage's time is the seconds from the start
until that step was done (`bsdp_list` includes the time spent gathering
answers; `bsdp probe --select` lists again before it selects, so the
server logs two LISTs), and `bytes` counts what arrived over TFTP and HTTP
(plus `nfs`, the whole image, for NFS root paths).

The Mac is a namespace of its own (`<lab namespace>-mac<N>`) plugged into
the lab's bridge by a veth pair, with a static address below the lab's DHCP
pool, so it exercises exactly what a Mac on a LAN would reach and nothing
on the host. It is unplugged afterwards whatever happened (Ctrl-C too).

`python -m netboot.lab.mac read-root URL|FILE --json` is the root-image
step on its own; the simulation runs it inside the Mac's namespace, so
its HTTP requests come from the Mac's address like everything else.
"""

from __future__ import annotations

import errno
import http.client
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any, TextIO
from urllib.parse import urlsplit

import click

from netboot.errors import NetbootError, UdifError
from netboot.lab.lab import BootResult, Lab, LabError, capture_command, stop_capture
from netboot.udif.partitions import Partition, read_partitions
from netboot.udif.reader import FileStorage, UdifImage
from netboot.udif.sector import SECTOR

STAGES = ("bsdp_list", "bsdp_select", "booter", "kernel", "root_image")
KERNELS = ("x86_64/kernelcache", "kernelcache", "mach.macosx")
"""Where a booter looks for its kernel, beside itself on the TFTP server, best first."""
LIST_WAIT = 1.0
"""Seconds to gather ACK[LIST]s; a real Mac waits 2-4 s, one server on a bridge needs less."""
MAX_MACS = 49
"""Macs per lab at once: addresses .51-.99, below the lab's DHCP pool (.100-.199)."""
APPLE_OUI = "00:16:cb"
MIB = 1 << 20
NFS_RETRY = 0.5
VOLUME_TYPES = ("Apple_HFS", "Apple_HFSX", "Apple_APFS")
FORMATS = {"zlib": "UDZO", "bzip2": "UDBZ", "lzfse": "ULFO", "lzma": "ULMO", "adc": "UDCO"}


class BootStepError(Exception):
    """A step of the boot failed; the message names the stage and what went wrong."""

    def __init__(self, stage: str, message: str) -> None:
        super().__init__(f"{stage}: {message}")
        self.stage = stage


class RootImageError(NetbootError):
    """The root image is readable but not a volume a Mac could mount."""


# -- the simulation --------------------------------------------------------------------


def simulate_mac(lab: Lab, image: str | None, timeout: float) -> BootResult:
    """Boot one simulated Mac in `lab` and say how far it got (`result` "ok" or "fail").

    `image` is an image name as the LIST shows it, a set directory, or an
    image ID; without one the Mac takes the server's default, as a Mac does
    when nobody holds the option key.
    """
    result = BootResult("mac", "none", "fail")
    try:
        client = _plug_in(lab)
    except LabError as error:
        result.error = f"setup: {error}"
        return result
    result.serial_log = str(client.console_path)
    result.pcap = str(client.pcap)
    with ExitStack() as cleanup:
        cleanup.callback(_unplug, client)
        console = cleanup.enter_context(client.console_path.open("w", encoding="utf-8"))
        mac = _Mac(client, console, timeout)
        daemon_log = cleanup.enter_context(_follow_from_end(lab.daemon_log))
        mac.say(
            f"simulated Mac {client.mac} at {client.address} on {client.namespace} "
            f"(lab {lab.state.name}, server {lab.state.server})"
        )
        capture = _capture(client)
        cleanup.callback(_stop_capture, capture, client.pcap)
        try:
            mac.boot(image)
            result.result = "ok"
            mac.say("result: ok")
        except BootStepError as failure:
            result.error = str(failure)
            mac.say(f"result: fail: {failure}")
        finally:
            result.stages = {stage: mac.stages[stage] for stage in STAGES if stage in mac.stages}
            result.bytes = dict(mac.bytes)
            _server_view(console, daemon_log, client)
    return result


@dataclass
class _Client:
    """The Mac's namespace, its wire into the lab, and where its files go."""

    lab: Lab
    number: int
    namespace: str
    port: str
    address: str
    mac: str
    directory: Path

    @property
    def console_path(self) -> Path:
        return self.directory / "serial.log"

    @property
    def pcap(self) -> Path:
        return self.directory / "boot.pcap"


def _plug_in(lab: Lab) -> _Client:
    """A new namespace on the lab's bridge; `ip netns add` failing on a taken name is the lock."""
    state = lab.state
    for number in range(1, MAX_MACS + 1):
        namespace = f"{state.namespace}-mac{number}"
        added = subprocess.run(
            ["ip", "netns", "add", namespace], capture_output=True, text=True, check=False
        )
        if added.returncode != 0:
            continue
        client = _Client(
            lab,
            number,
            namespace,
            f"nbmac{number}",
            f"{state.subnet}.{50 + number}",
            f"{APPLE_OUI}:4e:42:{number:02x}",
            Path(state.directory) / f"mac{number}",
        )
        try:
            _wire(client)
        except BaseException:
            _unplug(client)
            raise
        return client
    raise LabError(f"no free Mac slot: {MAX_MACS} simulated Macs are in lab {state.name!r}")


def _wire(client: _Client) -> None:
    state = client.lab.state
    shutil.rmtree(client.directory, ignore_errors=True)  # a previous Mac of this number
    client.directory.mkdir(parents=True)
    lab_ns, mac_ns = state.namespace, client.namespace
    _ip(lab_ns, "link", "add", client.port, "type", "veth", "peer", "name", "eth0", "netns", mac_ns)
    _ip(lab_ns, "link", "set", client.port, "master", state.bridge)
    _ip(lab_ns, "link", "set", client.port, "up")
    _ip(mac_ns, "link", "set", "lo", "up")
    _ip(mac_ns, "link", "set", "eth0", "address", client.mac)
    _ip(mac_ns, "addr", "add", f"{client.address}/24", "dev", "eth0")
    _ip(mac_ns, "link", "set", "eth0", "up")


def _unplug(client: _Client) -> None:
    """Kill what still runs in the Mac's namespace and delete it (its veth pair goes with it)."""
    pids = subprocess.run(
        ["ip", "netns", "pids", client.namespace], capture_output=True, text=True, check=False
    ).stdout.split()
    for pid in pids:
        with suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)
    subprocess.run(["ip", "netns", "del", client.namespace], capture_output=True, check=False)
    subprocess.run(
        ["ip", "-n", client.lab.state.namespace, "link", "del", client.port],
        capture_output=True,
        check=False,
    )


def _ip(namespace: str, *args: str) -> None:
    done = subprocess.run(
        ["ip", "-n", namespace, *args], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise LabError(f"ip -n {namespace} {' '.join(args)}: {done.stderr.strip()}")


class _Mac:
    """The steps of one boot, each timed from the start and written to the console log."""

    def __init__(self, client: _Client, console: TextIO, timeout: float) -> None:
        self.client = client
        self.console = console
        self.started = time.monotonic()
        self.deadline = self.started + timeout
        self.timeout = timeout
        self.stages: dict[str, float] = {}
        self.bytes: dict[str, int] = {"tftp": 0, "http": 0}

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def say(self, text: str) -> None:
        for line in text.splitlines() or [""]:
            self.console.write(f"[{self.elapsed():8.3f}] {line}\n")
        self.console.flush()

    def reached(self, stage: str) -> None:
        self.stages[stage] = round(self.elapsed(), 3)

    def run(
        self, stage: str, *command: str, stdout: int | IO[Any] = subprocess.PIPE
    ) -> subprocess.CompletedProcess[str]:
        """A command inside the Mac's namespace, bounded by what is left of the timeout."""
        left = self.deadline - time.monotonic()
        what = " ".join(command[2:5] if command[0] == sys.executable else command[:2])
        if left <= 0:
            raise BootStepError(stage, f"no time left for {what} (timeout {self.timeout:g} s)")
        try:
            return subprocess.run(
                ["ip", "netns", "exec", self.client.namespace, *command],
                stdout=stdout,
                stderr=subprocess.PIPE,
                text=True,
                timeout=left,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise BootStepError(
                stage, f"{what} was still running at the timeout ({self.timeout:g} s)"
            ) from None

    def netboot(self, stage: str, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run(stage, sys.executable, "-m", "netboot", *args)

    # -- the sequence --------------------------------------------------------------

    def boot(self, image: str | None) -> None:
        listing = self.bsdp_list()
        image_id = self.choose(listing, image)
        selected = self.bsdp_select(image_id, listing["server_id"])
        if not selected["boot_file"]:
            raise BootStepError("bsdp_select", "the ACK[SELECT] names no boot file")
        boot_file = PurePosixPath(str(selected["boot_file"]))
        siaddr = str(selected["siaddr"])
        self.tftp("booter", siaddr, str(boot_file), required=True)
        for candidate in KERNELS:
            if self.tftp("kernel", siaddr, str(boot_file.parent / candidate), required=False):
                break
        else:
            self.say(f"no kernel beside the booter on the server (tried {', '.join(KERNELS)})")
        root_path = selected.get("root_path")
        if not root_path:
            raise BootStepError("root_image", "the ACK[SELECT] names no root path")
        self.root_image(str(root_path))

    def probe(self, stage: str, *extra: str) -> dict[str, Any]:
        probe = ["bsdp", "probe", "--interface", "eth0", "--timeout", f"{LIST_WAIT:g}", "--json"]
        done = self.netboot(stage, *probe, *extra)
        try:
            answer: dict[str, Any] = json.loads(done.stdout)
        except ValueError:
            raise BootStepError(stage, f"bsdp probe failed: {_last_line(done.stderr)}") from None
        return answer

    def bsdp_list(self) -> dict[str, Any]:
        self.say(f"BSDP INFORM[LIST] broadcast from {self.client.address}:68")
        answer = self.probe("bsdp_list")
        servers: list[dict[str, Any]] = answer.get("servers") or []
        if not servers:
            raise BootStepError("bsdp_list", answer.get("error") or "no ACK[LIST] came back")
        ours = [s for s in servers if s["server_id"] == self.client.lab.state.server]
        chosen = (ours or sorted(servers, key=lambda s: -(s.get("priority") or 0)))[0]
        self.reached("bsdp_list")
        for server in servers:
            default = server.get("default_image_id") or 0
            self.say(
                f"ACK[LIST] from {server['server_id']}: priority {server.get('priority')}, "
                f"default {default:#010x}, {len(server['images'])} image(s)"
            )
            for listed in server["images"]:
                self.say(f"  {listed['id']:#010x}  {listed['name']}")
        return chosen

    def choose(self, listing: dict[str, Any], wanted: str | None) -> int:
        images: list[dict[str, Any]] = listing["images"]
        if wanted is None:
            default = listing.get("default_image_id") or 0
            if default:
                self.say(f"no image chosen: the server's default {default:#010x}")
                return int(default)
            if not images:
                raise BootStepError("bsdp_list", "the server lists no image and has no default")
            self.say(f"no default image: the first listed, {images[0]['id']:#010x}")
            return int(images[0]["id"])
        for listed in images:
            if listed["name"] == wanted:
                return int(listed["id"])
        image_id = _image_id_of(self.client.lab, wanted)
        if image_id is not None and any(listed["id"] == image_id for listed in images):
            return image_id
        names = ", ".join(repr(listed["name"]) for listed in images) or "none"
        raise BootStepError(
            "bsdp_list", f"the server does not list image {wanted!r} (it lists {names})"
        )

    def bsdp_select(self, image_id: int, server: str) -> dict[str, Any]:
        self.say(f"BSDP INFORM[SELECT] of {image_id:#010x} for server {server}")
        answer = self.probe("bsdp_select", "--select", str(image_id))
        selected: dict[str, Any] | None = answer.get("selected")
        if selected is None:
            raise BootStepError("bsdp_select", answer.get("error") or "no ACK[SELECT] came back")
        self.reached("bsdp_select")
        self.say(
            f"ACK[SELECT] from {selected['server_id']}: image {selected['image_id']:#010x}, "
            f"boot file {selected['boot_file']!r} from {selected['siaddr']}, "
            f"root path {selected['root_path']!r}, machine name {selected['machine_name']!r}"
        )
        return selected

    def tftp(self, stage: str, server: str, path: str, *, required: bool) -> bool:
        """Fetch `path`; True when it arrived. A missing optional file is no failure."""
        target = self.client.directory / PurePosixPath(path).name
        self.say(f"TFTP RRQ {path!r} from {server}")
        done = self.netboot(stage, "tftp", "get", server, path, "-o", str(target))
        if done.returncode != 0:
            why = _last_line(done.stderr)
            # TFTP error 1 is "file not found": the set simply has no such file.
            if not required and "server error 1:" in why:
                self.say(f"  not on the server ({why.rsplit(': ', 1)[-1]})")
                return False
            raise BootStepError(stage, f"TFTP {path} from {server}: {why}")
        size = target.stat().st_size
        self.bytes["tftp"] += size
        self.reached(stage)
        self.say(f"  {_last_line(done.stderr)}")
        self.say(f"  {stage}: {size} bytes in {target}")
        return True

    def root_image(self, root_path: str) -> None:
        scheme = root_path.split(":", 1)[0].lower()
        if scheme in ("http", "https"):
            self.say(f"root image over HTTP: range requests to {root_path}")
            report = self.read_root(root_path)
            self.bytes["http"] += int(report.get("bytes", 0))
        elif scheme == "nfs":
            report = self.nfs_root(root_path)
        else:
            raise BootStepError("root_image", f"unsupported root path {root_path!r}")
        for line in _describe(report):
            self.say(f"  {line}")
        if report.get("error"):
            raise BootStepError("root_image", str(report["error"]))
        self.reached("root_image")

    def read_root(self, source: str) -> dict[str, Any]:
        done = self.run(
            "root_image", sys.executable, "-m", "netboot.lab.mac", "read-root", source, "--json"
        )
        try:
            report: dict[str, Any] = json.loads(done.stdout)
        except ValueError:
            raise BootStepError(
                "root_image", f"read-root {source} failed: {_last_line(done.stderr)}"
            ) from None
        return report

    def nfs_root(self, root_path: str) -> dict[str, Any]:
        try:
            url = nfs_url(root_path)
        except ValueError as error:
            raise BootStepError("root_image", str(error)) from None
        copy = self.client.directory / PurePosixPath(urlsplit(url).path).name
        self.say(f"root image over NFS: {root_path} -> nfs-cat {url}")
        # The daemon starts nfs-ganesha as it gets ready; a Mac retries its mount too.
        tries = 0
        while True:
            tries += 1
            with copy.open("wb") as sink:
                done = self.run("root_image", "nfs-cat", url, stdout=sink)
            if done.returncode == 0:
                break
            if time.monotonic() + NFS_RETRY >= self.deadline:
                raise BootStepError(
                    "root_image", f"nfs-cat {url} failed {tries} time(s): {_last_line(done.stderr)}"
                )
            time.sleep(NFS_RETRY)
        size = copy.stat().st_size
        self.bytes["nfs"] = self.bytes.get("nfs", 0) + size
        self.say(f"  NFS read {size} bytes (attempt {tries})")
        try:
            return self.read_root(str(copy))
        finally:
            copy.unlink(missing_ok=True)  # could be gigabytes; the checks are what count


def nfs_url(root_path: str) -> str:
    """`nfs:HOST:EXPORT:SET/IMAGE` (colons in EXPORT escaped `\\:`) as a libnfs URL."""
    body = root_path[len("nfs:") :]
    fields: list[str] = []
    current = ""
    escaped = False
    for character in body:
        if escaped:
            current += character
            escaped = False
        elif character == "\\":
            escaped = True
        elif character == ":" and len(fields) < 2:
            fields.append(current)
            current = ""
        else:
            current += character
    fields.append(current)
    if len(fields) != 3 or not all(fields):
        raise ValueError(f"root path {root_path!r} is not nfs:HOST:EXPORT:PATH")
    host, export, path = fields
    return f"nfs://{host}/{export.strip('/')}/{path.lstrip('/')}"


def _image_id_of(lab: Lab, wanted: str) -> int | None:
    """An image ID given as a number, or the ID of a set named by its directory."""
    with suppress(ValueError):
        return int(wanted, 0)
    from netboot.nbi.catalog import scan_catalog

    nbi_set = scan_catalog(Path(lab.state.root)).by_path(wanted)
    if nbi_set is None or nbi_set.image_id is None:
        return None
    return int(nbi_set.image_id)


def _describe(report: dict[str, Any]) -> list[str]:
    lines = []
    if report.get("format"):
        lines.append(
            f"UDIF {report['format']}: {report.get('size', 0)} bytes expanded, "
            f"{report.get('scheme')} partition scheme"
        )
    partition = report.get("partition")
    if partition:
        lines.append(
            f"partition {partition['index']} {partition['name']!r} ({partition['type']}): "
            f"sectors {partition['first_sector']}+{partition['sector_count']}"
        )
    if report.get("signature"):
        lines.append(
            f"volume header signature {report['signature']} ({report.get('file_system')}), "
            f"block size {report.get('block_size')}, {report.get('total_blocks')} blocks"
        )
    for key, value in (report.get("details") or {}).items():
        lines.append(f"{key.replace('_', ' ')}: {value}")
    if "requests" in report:
        lines.append(
            f"read {report.get('bytes', 0)} bytes of {report.get('source')} "
            f"in {report['requests']} request(s)"
        )
    for start, length in report.get("ranges") or []:
        lines.append(f"  bytes {start}-{start + length - 1}")
    if report.get("error"):
        lines.append(f"error: {report['error']}")
    return lines


def _last_line(text: str | None) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


# -- the packet capture and the server's view ------------------------------------------


def _capture(client: _Client) -> subprocess.Popen[bytes] | None:
    """dumpcap on the Mac's eth0, started before the first packet; None without it."""
    if shutil.which("dumpcap") is None:
        client.pcap.write_bytes(b"")
        return None
    log, pcap = client.pcap.with_suffix(".log"), str(client.pcap)
    with log.open("wb") as sink:
        process = subprocess.Popen(
            ["ip", "netns", "exec", client.namespace, *capture_command("eth0", pcap)],
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and process.poll() is None:
        if b"Capturing on" in log.read_bytes():
            break
        time.sleep(0.05)
    return process


def _stop_capture(process: subprocess.Popen[bytes] | None, pcap: Path) -> None:
    if process is not None:
        stop_capture(process, pcap)


@contextmanager
def _follow_from_end(path: Path) -> Iterator[TextIO | None]:
    try:
        log = path.open(encoding="utf-8", errors="replace")
    except OSError:
        yield None
        return
    with log:
        log.seek(0, os.SEEK_END)
        yield log


def _server_view(console: TextIO, daemon_log: TextIO | None, client: _Client) -> None:
    """What the daemon logged about this Mac, appended to its console log for diagnosis."""
    if daemon_log is None:
        return
    time.sleep(0.2)  # the daemon logs a transfer when it ends
    lines = []
    for line in daemon_log.read().splitlines():
        if client.mac not in line and client.address not in line:
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        lines.append(f"{record.get('time')} {record.get('system')}: {record.get('message')}")
    console.write(f"--- the daemon's log about {client.mac} / {client.address} ---\n")
    console.write("".join(f"{line}\n" for line in lines) or "(nothing)\n")
    console.flush()


# -- reading a root image like a mounting Mac ------------------------------------------


class HttpRangeStorage:
    """A remote image as `UdifImage` storage: one keep-alive connection, Range GETs.

    A Mac mounts an HTTP root image by reading ranges of it on demand; this
    does the same, and counts the body bytes and requests so the summary can
    say how little of the image a mount needs.
    """

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{url!r} is not an http:// or https:// URL")
        self.url = url
        self._scheme = parts.scheme
        self._host = parts.hostname
        self._port = parts.port
        self._target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._timeout = timeout
        self._connection: http.client.HTTPConnection | None = None
        self._size: int | None = None
        self.bytes_read = 0
        self.requests = 0
        self.ranges: list[tuple[int, int]] = []

    def _connect(self) -> http.client.HTTPConnection:
        if self._connection is None:
            kind = (
                http.client.HTTPSConnection
                if self._scheme == "https"
                else http.client.HTTPConnection
            )
            self._connection = kind(self._host, self._port, timeout=self._timeout)
        return self._connection

    def _request(
        self, method: str, headers: dict[str, str]
    ) -> tuple[http.client.HTTPResponse, bytes]:
        # A kept-alive connection the server has closed fails on first use: one retry.
        for attempt in (1, 2):
            connection = self._connect()
            try:
                connection.request(method, self._target, headers=headers)
                response = connection.getresponse()
                body = response.read()
            except (http.client.HTTPException, OSError) as error:
                self.close()
                if attempt == 2:
                    raise OSError(errno.EIO, f"{method} {self.url}: {error}") from None
                continue
            self.requests += 1
            if response.will_close:
                self.close()
            return response, body
        raise AssertionError("unreachable")

    def size(self) -> int:
        if self._size is None:
            response, _ = self._request("HEAD", {})
            length = response.getheader("Content-Length")
            if response.status != 200 or length is None or not length.isdigit():
                raise OSError(
                    errno.EIO, f"HEAD {self.url}: {response.status} {response.reason}, no length"
                )
            self._size = int(length)
        return self._size

    def pread(self, size: int, offset: int) -> bytes:
        total = self.size()
        if size <= 0 or offset >= total:
            return b""
        last = min(offset + size, total) - 1
        response, body = self._request("GET", {"Range": f"bytes={offset}-{last}"})
        expected = last - offset + 1
        content_range = response.getheader("Content-Range") or ""
        if response.status != 206 or not content_range.startswith(f"bytes {offset}-{last}/"):
            raise OSError(
                errno.EIO,
                f"GET {self.url} bytes {offset}-{last}: {response.status} {response.reason} "
                f"({content_range or 'no Content-Range'})",
            )
        if len(body) != expected:
            raise OSError(errno.EIO, f"GET {self.url}: {len(body)} of {expected} bytes")
        self.bytes_read += len(body)
        self.ranges.append((offset, len(body)))
        return body

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


class CountingFileStorage(FileStorage):
    """A local image (an NFS copy), counted like the HTTP storage."""

    def __init__(self, fd: int) -> None:
        super().__init__(fd)
        self.bytes_read = 0
        self.requests = 0
        self.ranges: list[tuple[int, int]] = []

    def pread(self, size: int, offset: int) -> bytes:
        data = super().pread(size, offset)
        self.bytes_read += len(data)
        self.requests += 1
        self.ranges.append((offset, len(data)))
        return data


Read = Callable[[int, int], bytes]


@dataclass
class VolumeCheck:
    """What the volume header (and what it points at) said."""

    file_system: str
    signature: str
    block_size: int
    total_blocks: int
    details: dict[str, Any] = field(default_factory=dict)


def check_root_image(source: str) -> dict[str, Any]:
    """Open `source` (URL or file) as a mounting Mac would; the report's `error` says why not.

    Reads the UDIF trailer and tables, the partition map, the volume header
    of the Apple_HFS/APFS partition (or bare volume) and the structures a
    mount reads next, and the first and last MiB of the volume, which is
    where a file system keeps its metadata and its backup header.
    """
    report: dict[str, Any] = {"source": source, "bytes": 0, "requests": 0, "error": None}
    storage: HttpRangeStorage | CountingFileStorage
    try:
        if "://" in source:
            storage = HttpRangeStorage(source)
        else:
            storage = CountingFileStorage(os.open(source, os.O_RDONLY))
    except (OSError, ValueError) as error:
        report["error"] = f"{source}: {error}"
        return report
    try:
        with UdifImage.open_storage(source, storage) as image:
            report["format"] = _format_of(image)
            report["size"] = image.size
            scheme, partitions = read_partitions(image.read, image.size, source)
            report["scheme"] = scheme
            report["partitions"] = [
                f"{p.index}:{p.type}:{p.first_sector}+{p.sector_count}" for p in partitions
            ]
            volume = _volume_partition(partitions, source)
            report["partition"] = {
                "index": volume.index,
                "name": volume.name,
                "type": volume.type,
                "first_sector": volume.first_sector,
                "sector_count": volume.sector_count,
            }
            start, length = volume.first_sector * SECTOR, volume.sector_count * SECTOR
            where = (
                f"{source}: partition {volume.index} {volume.name!r} ({volume.type})"
                if volume.index
                else f"{source}: bare {volume.type} volume"
            ) + f" at byte {start}"
            try:
                if volume.type == "Apple_APFS":
                    check = check_apfs(image.read, start, length, where)
                else:
                    check = check_hfs_plus(image.read, start, length, where)
                # The first and last MiB of the volume, as a mount and a backup-header check read.
                for offset in (start, max(start, start + length - MIB)):
                    image.read(offset, min(MIB, length))
            except (UdifError, OSError) as error:
                raise RootImageError(f"{where}: unreadable: {error}") from None
            report.update(
                file_system=check.file_system,
                signature=check.signature,
                block_size=check.block_size,
                total_blocks=check.total_blocks,
                details=check.details,
            )
    except (NetbootError, OSError) as error:
        # The reader names the image by a Path, which folds "http://" to "http:/".
        report["error"] = str(error).replace(str(Path(source)), source)
    finally:
        storage.close()
        report["bytes"] = storage.bytes_read
        report["requests"] = storage.requests
        report["ranges"] = [list(piece) for piece in storage.ranges[:100]]
    return report


def _format_of(image: UdifImage) -> str:
    """hdiutil's name for the chunk types used (as `netboot dmg info` says it)."""
    found = {FORMATS[name] for name in image.chunk_counts() if name in FORMATS}
    if len(found) > 1:
        return "mixed"
    return found.pop() if found else "UDRO"


def _volume_partition(partitions: list[Partition], source: str) -> Partition:
    for wanted in VOLUME_TYPES:
        for partition in partitions:
            if partition.type == wanted:
                return partition
    listed = ", ".join(f"{p.index} {p.type}" for p in partitions) or "nothing"
    raise RootImageError(
        f"{source}: no Apple_HFS or Apple_APFS partition to mount (the disk holds {listed})"
    )


def check_hfs_plus(read: Read, start: int, length: int, where: str) -> VolumeCheck:
    """HFS+/HFSX volume header (TN1150) at `start` + 1024, and its catalog's header node.

    `where` names the volume in errors. Raises RootImageError saying what is wrong.
    """
    header = read(start + 1024, 512)
    signature = header[0:2]
    if len(header) < 512 or signature not in (b"H+", b"HX"):
        raise RootImageError(
            f"{where}: volume header signature is {signature!r}, not 'H+' (HFS+) or 'HX' (HFSX)"
        )
    version, _attributes, last_mounted = struct.unpack_from(">HI4s", header, 2)
    file_count, folder_count, block_size, total_blocks = struct.unpack_from(">IIII", header, 32)
    if version not in (4, 5):
        raise RootImageError(f"{where}: HFS+ version {version}, not 4 or 5")
    if block_size < 512 or block_size & (block_size - 1) or block_size > 1 << 16:
        raise RootImageError(f"{where}: block size {block_size} is not a power of two >= 512")
    volume_bytes = block_size * total_blocks
    if total_blocks == 0 or volume_bytes > length:
        raise RootImageError(
            f"{where}: {total_blocks} blocks of {block_size} bytes do not fit the "
            f"{length}-byte partition"
        )
    details: dict[str, Any] = {
        "last_mounted_by": last_mounted.decode("mac_roman"),
        "files": file_count,
        "folders": folder_count,
    }
    # The catalog B-tree: a mount reads its header node (node descriptor, header record).
    catalog_size, _clump, _blocks, first_block, first_count = struct.unpack_from(
        ">QIIII", header, 0x110
    )
    node_at = start + first_block * block_size
    if catalog_size == 0 or first_count == 0 or first_block >= total_blocks:
        raise RootImageError(f"{where}: the catalog file's extents are empty or out of the volume")
    node = read(node_at, 512)
    kind = struct.unpack_from(">b", node, 8)[0]
    if kind != 1:
        raise RootImageError(
            f"{where}: catalog header node at byte {node_at} has kind {kind}, not 1 (header)"
        )
    depth, _root, leaf_records = struct.unpack_from(">HII", node, 14)
    node_size = struct.unpack_from(">H", node, 14 + 18)[0]
    if node_size < 512 or node_size & (node_size - 1):
        raise RootImageError(f"{where}: catalog node size {node_size} at byte {node_at}")
    details.update(catalog_records=leaf_records, catalog_depth=depth, catalog_node_size=node_size)
    # The alternate volume header, 1024 bytes before the end of the volume (a fsck's backup).
    alternate = read(start + length - 1024, 2)
    details["alternate_header"] = (
        "present" if alternate == signature else f"missing ({alternate!r})"
    )
    return VolumeCheck(
        "HFS+" if signature == b"H+" else "HFSX",
        signature.decode(),
        block_size,
        total_blocks,
        details,
    )


def check_apfs(read: Read, start: int, length: int, where: str) -> VolumeCheck:
    """APFS container superblock (Apple File System Reference): NXSB at +32, its checksum.

    `where` names the container in errors. Raises RootImageError saying what is wrong.
    """
    head = read(start, 4096)
    if len(head) < 4096 or head[32:36] != b"NXSB":
        raise RootImageError(f"{where}: superblock magic is {head[32:36]!r}, not 'NXSB' (APFS)")
    block_size = int.from_bytes(head[36:40], "little")
    block_count = int.from_bytes(head[40:48], "little")
    if block_size < 4096 or block_size & (block_size - 1) or block_size > 1 << 16:
        raise RootImageError(f"{where}: block size {block_size} is not a power of two >= 4096")
    if block_count == 0 or block_size * block_count > length:
        raise RootImageError(
            f"{where}: {block_count} blocks of {block_size} bytes do not fit the "
            f"{length}-byte partition"
        )
    block = head if block_size == 4096 else read(start, block_size)
    stored = int.from_bytes(block[0:8], "little")
    computed = fletcher64(block[8:block_size])
    if stored != computed:
        raise RootImageError(
            f"{where}: superblock checksum is {stored:016x}, the block sums to {computed:016x}"
        )
    return VolumeCheck("APFS", "NXSB", block_size, block_count, {"checksum": "valid"})


def fletcher64(data: bytes) -> int:
    """The APFS object checksum of `data` (an object without its first 8 bytes)."""
    first = second = 0
    for (word,) in struct.iter_unpack("<I", data[: len(data) - len(data) % 4]):
        first = (first + word) % 0xFFFFFFFF
        second = (second + first) % 0xFFFFFFFF
    low = 0xFFFFFFFF - ((first + second) % 0xFFFFFFFF)
    high = 0xFFFFFFFF - ((first + low) % 0xFFFFFFFF)
    return (high << 32) | low


@click.group()
def main() -> None:
    """The simulated Mac's own steps (run inside its namespace by `netboot lab mac`)."""


@main.command("read-root")
@click.argument("source")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def read_root(source: str, as_json: bool) -> None:
    """Read a root image (an http:// URL or a file) as a mounting Mac would, and check it.

    Exit status 0 when the volume checks out, 1 otherwise.
    """
    report = check_root_image(source)
    if as_json:
        click.echo(json.dumps(report))
    else:
        for line in _describe(report):
            click.echo(line)
    sys.exit(0 if report["error"] is None else 1)


if __name__ == "__main__":
    main()
