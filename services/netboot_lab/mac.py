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

The summary is `BootLab.boot`'s: a stage's time is the seconds from the start
until that step was done (`bsdp_list` includes the time spent gathering
answers; `bsdp probe --select` lists again before it selects, so the
server logs two LISTs), and `bytes` counts what arrived over TFTP and HTTP
(plus `nfs`, the whole image, for NFS root paths).

The Mac is a namespace of its own (`<lab namespace>-mac<N>`) plugged into
the lab's bridge by a veth pair, with a static address below the lab's DHCP
pool, so it exercises exactly what a Mac on a LAN would reach and nothing
on the host. It is unplugged afterwards whatever happened (Ctrl-C too).

The root image is read by `python -m netboot_lab.root_image read-root`, run
inside the Mac's namespace, so its HTTP requests come from the Mac's address
like everything else. The Mac's files (console log, capture, downloads) go to
the lab's directory, or to an `artifacts` directory that outlives the lab.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any, TextIO
from urllib.parse import urlsplit

from netboot_lab.lab import BootLab, BootResult
from netboot_lab.netns import LabError, add_namespace, add_port, delete_namespace, ip
from netboot_lab.process import in_namespace, start_capture, stop_capture
from netboot_lab.root_image import describe

STAGES = ("bsdp_list", "bsdp_select", "booter", "kernel", "root_image")
KERNELS = ("x86_64/kernelcache", "kernelcache", "mach.macosx")
"""Where a booter looks for its kernel, beside itself on the TFTP server, best first."""
LIST_WAIT = 1.0
"""Seconds to gather ACK[LIST]s; a real Mac waits 2-4 s, one server on a bridge needs less."""
MAX_MACS = 49
"""Macs per lab at once: addresses .51-.99, below the lab's DHCP pool (.100-.199)."""
APPLE_OUI = "00:16:cb"
NFS_RETRY = 0.5


class BootStepError(Exception):
    """A step of the boot failed; the message names the stage and what went wrong."""

    def __init__(self, stage: str, message: str) -> None:
        super().__init__(f"{stage}: {message}")
        self.stage = stage


# -- the simulation --------------------------------------------------------------------


def simulate_mac(
    lab: BootLab, image: str | None, timeout: float, artifacts: Path | None = None
) -> BootResult:
    """Boot one simulated Mac in `lab` and say how far it got (`result` "ok" or "fail").

    `image` is an image name as the LIST shows it, a set directory, or an
    image ID; without one the Mac takes the server's default, as a Mac does
    when nobody holds the option key. Its console log and capture go to
    `artifacts` (with a copy of the daemon's log) when given.
    """
    result = BootResult("mac", "none", "fail")
    try:
        client = _plug_in(lab, artifacts)
    except LabError as error:
        result.error = f"setup: {error}"
        return result
    result.serial_log = str(client.console_path)
    result.pcap = str(client.pcap)
    with ExitStack() as cleanup:
        if artifacts is not None:
            cleanup.callback(lab.keep_daemon_log, client.directory)
        cleanup.callback(_unplug, client)
        console = cleanup.enter_context(client.console_path.open("w", encoding="utf-8"))
        mac = _Mac(client, console, timeout)
        daemon_log = cleanup.enter_context(_follow_from_end(lab.daemon_log))
        mac.say(
            f"simulated Mac {client.mac} at {client.address} on {client.namespace} "
            f"(lab {lab.state.name}, server {lab.state.server})"
        )
        cleanup.callback(_wire_view, console, client.pcap)  # runs once the capture is closed
        capture = start_capture("eth0", client.pcap, client.namespace)
        cleanup.callback(stop_capture, capture, client.pcap)
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

    lab: BootLab
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


def _plug_in(lab: BootLab, artifacts: Path | None) -> _Client:
    """A new namespace on the lab's bridge; `ip netns add` failing on a taken name is the lock."""
    state = lab.state
    for number in range(1, MAX_MACS + 1):
        namespace = f"{state.namespace}-mac{number}"
        try:
            add_namespace(namespace)
        except LabError:
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
            if artifacts is None:
                shutil.rmtree(client.directory, ignore_errors=True)  # an earlier Mac's
            client.directory = lab.guest_directory(f"mac{number}", artifacts)
            add_port(
                state.namespace, state.bridge, client.port,
                namespace, "eth0", f"{client.address}/24", client.mac,
            )  # fmt: skip
        except BaseException:
            _unplug(client)
            raise
        return client
    raise LabError(f"no free Mac slot: {MAX_MACS} simulated Macs are in lab {state.name!r}")


def _unplug(client: _Client) -> None:
    """Kill what still runs in the Mac's namespace and delete it (its veth pair goes with it)."""
    delete_namespace(client.namespace)
    ip("link", "del", client.port, netns=client.lab.state.namespace, check=False)


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
                in_namespace(self.client.namespace, command),
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
        for line in describe(report):
            self.say(f"  {line}")
        if report.get("error"):
            raise BootStepError("root_image", str(report["error"]))
        self.reached("root_image")

    def read_root(self, source: str) -> dict[str, Any]:
        done = self.run(
            "root_image",
            sys.executable,
            "-m",
            "netboot_lab.root_image",
            "read-root",
            source,
            "--json",
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


def _image_id_of(lab: BootLab, wanted: str) -> int | None:
    """An image ID given as a number, or the ID of a set named by its directory."""
    with suppress(ValueError):
        return int(wanted, 0)
    from netboot.nbi.catalog import scan_catalog

    nbi_set = scan_catalog(Path(lab.state.root)).by_path(wanted)
    if nbi_set is None or nbi_set.image_id is None:
        return None
    return int(nbi_set.image_id)


def _last_line(text: str | None) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


# -- the packet capture and the server's view ------------------------------------------


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


def bsdp_exchange(pcap: Path) -> list[str]:
    """The BSDP packets of a capture, one summary line each, as scapy's BSDP layer reads them.

    For instance `192.0.2.50 > 255.255.255.255 DHCP Inform BSDP LIST` and
    `192.0.2.10 > 192.0.2.50 DHCP Ack BSDP SELECT image 0x01000001`.
    """
    from scapy.layers.dhcp import DHCP
    from scapy.layers.inet import IP
    from scapy.utils import rdpcap

    from netboot.bsdp.scapy_layer import bsdp_of

    if not pcap.is_file() or pcap.stat().st_size == 0:
        return []
    lines = []
    for packet in rdpcap(str(pcap)):
        if bsdp_of(packet) is not None and IP in packet:
            lines.append(f"{packet[IP].src} > {packet[IP].dst} {packet[DHCP].summary()}")
    return lines


def _wire_view(console: TextIO, pcap: Path) -> None:
    """The BSDP exchange as the capture holds it, appended to the console log."""
    lines = bsdp_exchange(pcap)
    console.write("--- the BSDP exchange on the wire (scapy's BSDP layer) ---\n")
    console.write("".join(f"{line}\n" for line in lines) or "(no BSDP packet captured)\n")
    console.flush()


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
