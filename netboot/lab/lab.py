"""An isolated boot lab: a namespace, a bridge, our daemon, and QEMU guests.

`Lab` is the API the tests and `netboot lab` share. `up()` creates the
network namespace `nblab-<name>` holding a bridge with the server's address,
and starts `netboot serve` in it as a real process: full DHCP on a pool of
the lab subnet, TFTP, HTTP, and answers to IPv6 router solicitations (the
lab is IPv4-only; without them iPXE ROMs wait ~13 s:
docs/protocols/pxe.md §6.3). `boot()`
adds a tap device, powers on a QEMU guest, and follows it through the
daemon's JSON log and the serial console until the marker the demo image's
initrd prints, or a timeout. Nothing leaves the namespace; the host's
interfaces are never touched. `down()` stops every process and deletes the
namespace with everything in it, also after Ctrl-C or a failed boot; names
that are taken are refused rather than reused.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote

from netboot.errors import NetbootError
from netboot.lab.initrd import MARKER
from netboot.lab.qemu import OVMF_VARS, choose_accel, guest_command, missing_pieces
from netboot.lab.stages import Progress
from netboot.nbi.catalog import scan_catalog

STATE_ROOT = Path("/run/netboot-lab")
DEFAULT_SUBNET = "10.250.0"
READY = "netboot .* ready"


class LabError(NetbootError):
    """The lab cannot be set up or used (names taken, tools missing, daemon down)."""


@dataclass
class LabState:
    """What `lab up` leaves for `lab boot` and `lab down` (a JSON file)."""

    name: str
    namespace: str
    bridge: str
    subnet: str
    root: str
    directory: str
    daemon_pid: int = 0
    guests: int = 0
    assignments: dict[str, str] = field(default_factory=dict)
    """Guest MAC to the PC image it boots (`lab boot --image`)."""
    nfs: bool = False

    @property
    def server(self) -> str:
        return f"{self.subnet}.1"


@dataclass
class BootResult:
    firmware: str
    accel: str
    result: str
    stages: dict[str, float] = field(default_factory=dict)
    bytes: dict[str, int] = field(default_factory=dict)
    serial_log: str = ""
    pcap: str = ""
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _ip(*args: str, namespace: str | None = None, check: bool = True) -> None:
    command = ["ip", *args] if namespace is None else ["ip", "-n", namespace, *args]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise LabError(f"{' '.join(command)}: {done.stderr.strip()}")


def _namespaces() -> set[str]:
    done = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False)
    return {line.split()[0] for line in done.stdout.splitlines() if line.strip()}


class Lab:
    def __init__(self, state: LabState) -> None:
        self.state = state
        self._daemon: subprocess.Popen[bytes] | None = None
        """The daemon, when this process started it (and must reap it)."""
        self._lock = threading.Lock()
        """Guests may boot at once (threads): their numbers and the state file are shared."""

    # -- life cycle -------------------------------------------------------------------

    @classmethod
    def up(
        cls,
        name: str = "lab",
        root: Path | None = None,
        subnet: str = DEFAULT_SUBNET,
        state_root: Path = STATE_ROOT,
        nfs: bool = False,
    ) -> Lab:
        """Create the namespace and start the daemon; refuses names already taken.

        With `nfs` the daemon also runs nfs-ganesha, so NFS images are offered.
        """
        if os.geteuid() != 0:
            raise LabError("the lab needs root (network namespaces and tap devices)")
        namespace = f"nblab-{name}"
        state_file = state_root / f"{name}.json"
        if namespace in _namespaces() or state_file.exists():
            raise LabError(
                f"a lab named {name!r} exists (namespace {namespace}); "
                f"`netboot lab down --name {name}` removes it"
            )
        state_root.mkdir(parents=True, exist_ok=True)
        directory = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=state_root))
        image_root = root if root is not None else directory / "nbimages"
        state = LabState(
            name, namespace, "nblab0", subnet, str(image_root.resolve()), str(directory), nfs=nfs
        )
        lab = cls(state)
        try:
            if root is None:
                lab._build_demo(image_root)
            lab._network()
            lab._start_daemon()
            lab._save()
        except BaseException:
            lab.down()
            raise
        return lab

    @classmethod
    def attach(cls, name: str = "lab", state_root: Path = STATE_ROOT) -> Lab:
        state_file = state_root / f"{name}.json"
        try:
            state = LabState(**json.loads(state_file.read_text()))
        except (OSError, ValueError, TypeError):
            raise LabError(f"no lab named {name!r} is up (`netboot lab up` starts one)") from None
        return cls(state)

    def down(self) -> None:
        """Stop the daemon and every guest, delete the namespace and the lab's files."""
        state = self.state
        if state.daemon_pid:
            with suppress(ProcessLookupError, PermissionError):
                os.killpg(state.daemon_pid, signal.SIGTERM)
                if self._daemon is not None:  # our child: wait reaps it
                    with suppress(subprocess.TimeoutExpired):
                        self._daemon.wait(10.0)
                else:
                    _wait_gone(state.daemon_pid, 10.0)
                os.killpg(state.daemon_pid, signal.SIGKILL)
        if state.namespace in _namespaces():
            pids = subprocess.run(
                ["ip", "netns", "pids", state.namespace], capture_output=True, text=True
            ).stdout.split()
            for pid in pids:
                with suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            _ip("netns", "del", state.namespace, check=False)
        Path(state.directory).parent.joinpath(f"{state.name}.json").unlink(missing_ok=True)
        shutil.rmtree(state.directory, ignore_errors=True)

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.down()

    # -- set-up -----------------------------------------------------------------------

    def _build_demo(self, image_root: Path) -> None:
        from netboot.lab.assets import pc_boot_files
        from netboot.nbi.demo import build_demo_set

        image_root.mkdir(parents=True, exist_ok=True)
        build_demo_set(image_root, pc_files=pc_boot_files())

    def _network(self) -> None:
        state = self.state
        _ip("netns", "add", state.namespace)
        _ip("link", "set", "lo", "up", namespace=state.namespace)
        _ip("link", "add", state.bridge, "type", "bridge", namespace=state.namespace)
        _ip("addr", "add", f"{state.server}/24", "dev", state.bridge, namespace=state.namespace)
        _ip("link", "set", state.bridge, "up", namespace=state.namespace)

    def _config(self) -> Path:
        state = self.state
        directory = Path(state.directory)
        config = directory / "netboot.toml"
        # ganesha's state in the lab's directory: labs side by side must not share it
        assignments = [f"{mac}={image}" for mac, image in state.assignments.items()]
        nfs = f'"ganesha"\nstate_dir = "{directory}/nfs"' if state.nfs else '"off"'
        config.write_text(
            f'[server]\nroot = "{state.root}"\ninterfaces = ["{state.bridge}"]\n'
            "allow_root = true\n"
            f'[dhcp]\nmode = "full"\npool = "{state.subnet}.100-{state.subnet}.199"\n'
            f'lease_database = "{directory}/leases.sqlite3"\n'
            "answer_router_solicitations = true\n"
            f'[admin]\nlisten = ""\n[nfs]\nmode = {nfs}\n'
            '[logging]\nformat = "json"\nlevel = "debug"\n'
            f"[pxe]\nassignments = {json.dumps(assignments)}\n"
        )
        return config

    def _start_daemon(self) -> None:
        state = self.state
        log = Path(state.directory) / "daemon.log"
        with log.open("wb") as sink:
            process = subprocess.Popen(
                [
                    "ip",
                    "netns",
                    "exec",
                    state.namespace,
                    sys.executable,
                    "-m",
                    "netboot",
                    "serve",
                    "--config",
                    str(self._config()),
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=sink,
                start_new_session=True,
            )
        state.daemon_pid = process.pid
        self._daemon = process
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise LabError(f"the daemon exited ({process.returncode}); see {log}")
            if '"ready' in log.read_text() or " ready: serving" in log.read_text():
                return
            time.sleep(0.1)
        raise LabError(f"the daemon did not get ready in 60 s; see {log}")

    def _save(self) -> None:
        path = Path(self.state.directory).parent / f"{self.state.name}.json"
        path.write_text(json.dumps(asdict(self.state)))

    @property
    def daemon_log(self) -> Path:
        return Path(self.state.directory) / "daemon.log"

    # -- guests ------------------------------------------------------------------------

    def boot(
        self,
        firmware: str = "bios",
        image: str | None = None,
        accel: str = "auto",
        timeout: float = 120.0,
        ipxe_rom: bool = True,
    ) -> BootResult:
        """Power on one guest and follow it to the marker (or the timeout).

        `ipxe_rom=False` (UEFI only) boots with the firmware's own PXE, as real
        PCs do, instead of the iPXE in the NIC's option ROM.
        """
        missing = missing_pieces(firmware)
        chosen = "tcg"
        if missing:
            return BootResult(firmware, chosen, "fail", error="missing: " + ", ".join(missing))
        chosen = choose_accel(accel)
        state = self.state
        with self._lock:
            state.guests += 1
            number = state.guests
            self._save()
        guest_dir = Path(state.directory) / f"guest{number}-{firmware}"
        guest_dir.mkdir()
        tap, mac = f"nbtap{number}", f"52:54:00:4e:42:{number % 256:02x}"
        serial, pcap = guest_dir / "serial.log", guest_dir / "boot.pcap"
        result = BootResult(firmware, chosen, "fail", serial_log=str(serial), pcap=str(pcap))
        kernel, initrds = self._pc_paths(image)
        if image is not None:
            self._assign(mac, image)
        progress = Progress(mac, time.time(), kernel, initrds)
        processes: list[subprocess.Popen[bytes]] = []
        stack = ExitStack()
        log: TextIO | None = None
        try:
            _ip("tuntap", "add", tap, "mode", "tap", namespace=state.namespace)
            _ip("link", "set", tap, "master", state.bridge, namespace=state.namespace)
            _ip("link", "set", tap, "up", namespace=state.namespace)
            processes.append(self._capture(tap, pcap))
            uefi_vars = None
            if firmware == "uefi":
                uefi_vars = guest_dir / "OVMF_VARS.fd"
                shutil.copyfile(OVMF_VARS, uefi_vars)
            command = guest_command(firmware, chosen, tap, mac, serial, uefi_vars, ipxe_rom)
            log = stack.enter_context(self.daemon_log.open())
            log.seek(0, os.SEEK_END)
            progress.powered_on = time.time()
            guest = self._spawn(command, guest_dir / "qemu.log")
            processes.append(guest)
            result.error = self._follow(guest, progress, serial, log, timeout)
            if result.error is None:
                result.result = "ok"
        finally:
            for process in reversed(processes[1:]):
                stop_process(process)
            if processes:
                stop_capture(processes[0], pcap)
            _ip("link", "del", tap, namespace=state.namespace, check=False)
            if log is not None:
                time.sleep(0.2)  # the daemon logs a transfer when it ends
                progress.feed_text(log.read())
            stack.close()
            result.stages = progress.ordered()
            result.bytes = {"tftp": progress.tftp_bytes, "http": progress.http_bytes}
        return result

    def _assign(self, mac: str, image: str) -> None:
        """This guest boots `image`: a `[pxe] assignments` entry, applied by SIGHUP."""
        with self._lock:
            self.state.assignments[mac] = image
            self._save()
            with self.daemon_log.open() as log:
                log.seek(0, os.SEEK_END)
                self._config()
                os.kill(self.state.daemon_pid, signal.SIGHUP)
                deadline = time.monotonic() + 15
                seen = ""
                while time.monotonic() < deadline:
                    seen += log.read()
                    if "reload rejected" in seen:
                        raise LabError(f"the daemon refused the new assignment; see {log.name}")
                    if '"reloaded' in seen:
                        return
                    time.sleep(0.05)
        raise LabError(f"the daemon did not reload its configuration; see {self.daemon_log}")

    def _pc_paths(self, image: str | None) -> tuple[str | None, tuple[str, ...]]:
        """URL paths of the image's kernel and initrds, as the access log shows them."""
        catalog = scan_catalog(Path(self.state.root))
        for nbi_set in catalog.servable:
            info = nbi_set.info
            if info is None or nbi_set.pc_kernel is None:
                continue
            if image is not None and image not in (
                info.name,
                nbi_set.path.name.removesuffix(".nbi"),
            ):
                continue
            kernel = "/" + quote(str(nbi_set.pc_kernel))
            return kernel, tuple("/" + quote(str(i)) for i in nbi_set.pc_initrds)
        return None, ()

    def _capture(self, tap: str, pcap: Path) -> subprocess.Popen[bytes]:
        if shutil.which("dumpcap") is None:
            pcap.write_bytes(b"")
            return subprocess.Popen(["true"])
        process = self._spawn(capture_command(tap, str(pcap)), pcap.with_suffix(".log"))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and "Capturing on" not in _text(pcap.with_suffix(".log")):
            time.sleep(0.05)
        return process

    def _spawn(self, command: list[str], log: Path) -> subprocess.Popen[bytes]:
        with log.open("wb") as sink:
            return subprocess.Popen(
                ["ip", "netns", "exec", self.state.namespace, *command],
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def _follow(
        self,
        guest: subprocess.Popen[bytes],
        progress: Progress,
        serial: Path,
        log: TextIO,
        timeout: float,
    ) -> str | None:
        """Watch the serial console and the daemon's log until the marker; None when reached."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            progress.feed_text(log.read())
            exited = guest.poll() is not None  # it powers off right after the marker
            if MARKER.encode() in _bytes(serial):
                progress.reached("marker", time.time())
                return None
            if exited:
                return f"the guest stopped before the marker (QEMU exit {guest.returncode})"
            time.sleep(0.05)
        return f"no marker on the serial console within {timeout:.0f} s"


@contextmanager
def running_lab(name: str = "lab", root: Path | None = None, **kwargs: Any) -> Iterator[Lab]:
    lab = Lab.up(name, root, **kwargs)
    try:
        yield lab
    finally:
        lab.down()


def capture_command(interface: str, pcap: str) -> list[str]:
    """dumpcap itself (tshark's capture engine): stopped by SIGINT it closes a complete
    file, with no tshark in between to be killed while its child still buffers."""
    return ["dumpcap", "-q", "-i", interface, "-w", pcap]


def stop_capture(process: subprocess.Popen[bytes], pcap: Path) -> None:
    """Stop dumpcap once it has caught up with the traffic, then let it close its file.

    On a loaded machine dumpcap lags behind the wire: packets wait in its
    socket, and a dumpcap told to stop discards them. So wait until the file
    has not grown for a second (at most ten), then SIGINT it alone.
    """
    last, steady_since, deadline = -1, time.monotonic(), time.monotonic() + 10
    while time.monotonic() < deadline and process.poll() is None:
        size = pcap.stat().st_size if pcap.exists() else 0
        if size != last:
            last, steady_since = size, time.monotonic()
        elif time.monotonic() - steady_since >= 1.0:
            break
        time.sleep(0.1)
    stop_process(process, gently=True)


def stop_process(process: subprocess.Popen[bytes], gently: bool = False) -> None:
    """End a process and its group; `gently`: SIGINT to the leader alone (dumpcap),
    which it answers by writing out what it holds and closing its file."""
    if process.poll() is None:
        with suppress(ProcessLookupError):
            if gently:
                os.kill(process.pid, signal.SIGINT)
            else:
                os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(15 if gently else 5)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _wait_gone(pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)


def _bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def _text(path: Path) -> str:
    return _bytes(path).decode("utf-8", "replace")
