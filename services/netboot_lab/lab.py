"""An isolated boot lab: a namespace, a bridge, our daemon, and QEMU guests.

`BootLab` is the API the tests and `netboot lab` share. `up()` creates the
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

A boot's files (serial log, packet capture, QEMU's log) go to the lab's own
directory, which `down()` deletes, or to an `artifacts` directory that
outlives the lab, with a copy of the daemon's log beside them.
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
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, TextIO
from urllib.parse import quote

from netboot.errors import ImageError
from netboot.lab.initrd import MARKER
from netboot.lab.qemu import (
    FIRMWARE_FAMILIES,
    SECURE_BOOT_ENABLED,
    AccelChoice,
    choose_accel,
    fall_back_now,
    guest_command,
    missing_pieces,
    uefi_vars_template,
)
from netboot.lab.stages import Progress, console_failure
from netboot.nbi.catalog import scan_catalog
from netboot.settings import chain_file
from netboot_lab.ipv6 import without_dad
from netboot_lab.loss import clear_interface, impair_interface
from netboot_lab.netns import (
    LabError,
    add_bridge,
    add_namespace,
    add_port,
    add_tap,
    delete_namespace,
    ip,
    namespaces,
    start_until_logged,
)
from netboot_lab.peers import DNSMASQ6_READY, DNSMASQ_READY, dnsmasq6, site_dnsmasq
from netboot_lab.process import (
    read_bytes,
    read_text,
    spawn,
    start_capture,
    stop_capture,
    stop_process,
    wait_gone,
)
from netboot_lab.qemu import probe_kvm

STATE_ROOT = Path("/run/netboot-lab")
DEFAULT_SUBNET = "10.250.0"
LAB6_PREFIX = "fd4e:4254:0:1::"
"""The IPv6 lab net (`up(ipv6=True)`): a ULA /64, the server at ::1, no IPv4 address."""
LAB6_SERVER = f"{LAB6_PREFIX}1"
LAB6_POOL = f"{LAB6_PREFIX}1000-{LAB6_PREFIX}1fff"
LAB6_SITE = f"{LAB6_PREFIX}2"
"""The site's DHCPv6 server on the IPv6 lab net in proxy mode (`up(ipv6=True, dhcp_mode="proxy")`):
it leases `LAB6_POOL` and sends the router advertisements."""
ADMIN_PORT = 9067
"""The lab daemon's admin listener port, on the lab's server address."""
DHCP_MODES = ("full", "proxy")
IPV6_HTTP_BOOT_TIMEOUT = 240.0
"""Seconds an HTTPv6 lab boot needs under TCG (`lab boot --ipv6 --http-boot`'s default):
OVMF's HTTP boot spends ~60 s in DHCPv4 before it tries HTTPv6 (nothing answers it on the
IPv6-only net; docs/protocols/dhcpv6.md §15), and the kernel's download takes as long as on
IPv4 after that."""
SITE_INTERFACE = "eth0"
SITE_RA = ("--enable-ra", f"--ra-param={SITE_INTERFACE},10,1800")
"""The IPv6 site's router advertisements (dnsmasq): M=1 O=1 and the on-link /64 for its
stateful range, every 10 s, router lifetime 1800 s as our own RAs (without a default
router EDK2's PXEv6 waits 10 s for a route: docs/protocols/dhcpv6.md §13)."""
FIRST_STAGE_GRACE = 30.0
"""Seconds a guest that `--accel auto` put under KVM gets to show its first stage (a
DHCP exchange or serial output) before it is restarted under TCG."""


def _ignore(note: str) -> None:
    """Where notes go when nobody listens."""


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
    loaders: dict[str, str] = field(default_factory=dict)
    """Guest MAC to the UEFI loader it gets (`lab boot --loader`: `[pxe] loader_assignments`)."""
    nfs: bool = False
    dhcp_mode: str = "full"
    """`full`: the daemon is the lab's DHCP server. `proxy`: a site DHCP server (dnsmasq, in
    its own namespace on the bridge) leases the addresses and the daemon answers beside it."""
    site_pid: int = 0
    site_next_server: bool = True
    """Proxy mode: the site's server names the daemon's host as next-server."""
    site_ipxe_url: bool = True
    """IPv6 proxy mode: the site's DHCPv6 server hands iPXE clients (user class `iPXE`)
    the daemon's script URL as option 59, the one setting iPXE needs from it: iPXE takes
    its options only from the server that leased its address (docs/protocols/dhcpv6.md §17)."""
    ipv6: bool = False
    """An IPv6-only lab net (`LAB6_PREFIX`/64, no IPv4 address): our DHCPv6 and router
    advertisements, no DHCPv4 (docs/protocols/dhcpv6.md §15)."""

    @property
    def server(self) -> str:
        """The daemon's address on the lab net (IPv6 on an IPv6 lab)."""
        return LAB6_SERVER if self.ipv6 else f"{self.subnet}.1"

    @property
    def server_host(self) -> str:
        """`server` as the host part of a URL or HOST:PORT: an IPv6 address in brackets."""
        return f"[{self.server}]" if self.ipv6 else self.server

    @property
    def admin_url(self) -> str:
        """The daemon's admin console and API, on the lab's own address (inside the lab)."""
        return f"http://{self.server_host}:{ADMIN_PORT}"

    @property
    def admin_token_file(self) -> Path:
        return Path(self.directory) / "admin-token"

    @property
    def site_namespace(self) -> str:
        """Where the site's DHCP server runs in proxy mode: a host of its own on the bridge."""
        return f"{self.namespace}-site"

    @property
    def site_server(self) -> str:
        return LAB6_SITE if self.ipv6 else f"{self.subnet}.2"


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
    secure_boot: bool = False
    """Read back from the guest: its kernel said Secure Boot was enabled."""
    loss: int = 0
    """Percent of the lab's TCP and UDP packets dropped each way during the boot."""
    delay_ms: int = 0
    """Milliseconds QEMU held the guest's frames at most, each way (`guest_command`)."""

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


class BootLab:
    """The QEMU lab: its namespace and bridge, the daemon in it, and the guests it boots."""

    def __init__(self, state: LabState) -> None:
        self.state = state
        self._daemon: subprocess.Popen[bytes] | None = None
        """The daemon, when this process started it (and must reap it)."""
        self._site: subprocess.Popen[bytes] | None = None
        """The site's DHCP server (proxy mode), when this process started it."""
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
        dhcp_mode: str = "full",
        site_next_server: bool = True,
        ipv6: bool = False,
        site_ipxe_url: bool = True,
    ) -> BootLab:
        """Create the namespace and start the daemon; refuses names already taken.

        With `nfs` the daemon also runs nfs-ganesha, so NFS images are offered.
        With `dhcp_mode` "proxy" a site DHCP server (dnsmasq) leases the guests'
        addresses and the daemon runs in proxy mode beside it; the site server
        names the daemon's host as next-server, the one setting Debian's signed
        GRUB needs from it (docs/protocols/pxe.md §8.3), and nothing else of a boot;
        `site_next_server` False leaves that out, as a site that was not told.
        With `ipv6` the lab net is IPv6-only (`LAB6_PREFIX`/64 on the bridge, no IPv4
        address) and the daemon serves it with DHCPv6 instead of DHCP: in full mode with
        its own router advertisements; in proxy mode beside a site DHCPv6 server
        (dnsmasq at `LAB6_SITE`, leasing `LAB6_POOL` and sending the RAs), boot
        options only (docs/protocols/dhcpv6.md §17); the site names the daemon's iPXE
        script for iPXE clients, unless `site_ipxe_url` is False.
        """
        if dhcp_mode not in DHCP_MODES:
            raise LabError(
                f"the lab runs DHCP in {' or '.join(DHCP_MODES)} mode, not {dhcp_mode!r}"
            )
        if os.geteuid() != 0:
            raise LabError("the lab needs root (network namespaces and tap devices)")
        namespace = f"nblab-{name}"
        state_file = state_root / f"{name}.json"
        if {namespace, f"{namespace}-site"} & namespaces() or state_file.exists():
            raise LabError(
                f"a lab named {name!r} exists (namespace {namespace}); "
                f"`netboot lab down --name {name}` removes it"
            )
        state_root.mkdir(parents=True, exist_ok=True)
        directory = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=state_root))
        image_root = root if root is not None else directory / "nbimages"
        state = LabState(
            name,
            namespace,
            "nblab0",
            subnet,
            str(image_root.resolve()),
            str(directory),
            nfs=nfs,
            dhcp_mode=dhcp_mode,
            site_next_server=site_next_server,
            ipv6=ipv6,
            site_ipxe_url=site_ipxe_url,
        )
        lab = cls(state)
        try:
            if root is None:
                lab._build_demo(image_root)
            lab._http_grub()
            lab._network()
            if dhcp_mode == "proxy":
                lab._start_site_server()
            lab._start_daemon()
            lab._save()
        except BaseException:
            lab.down()
            raise
        return lab

    @classmethod
    def attach(cls, name: str = "lab", state_root: Path = STATE_ROOT) -> BootLab:
        state_file = state_root / f"{name}.json"
        try:
            state = LabState(**json.loads(state_file.read_text()))
        except (OSError, ValueError, TypeError):
            raise LabError(f"no lab named {name!r} is up (`netboot lab up` starts one)") from None
        return cls(state)

    def down(self) -> None:
        """Stop the daemon and every guest, delete the namespace and the lab's files."""
        state = self.state
        if state.site_pid:
            with suppress(ProcessLookupError, PermissionError):
                os.killpg(state.site_pid, signal.SIGTERM)
            if self._site is not None:
                stop_process(self._site)
        if state.daemon_pid:
            with suppress(ProcessLookupError, PermissionError):
                os.killpg(state.daemon_pid, signal.SIGTERM)
                if self._daemon is not None:  # our child: wait reaps it
                    with suppress(subprocess.TimeoutExpired):
                        self._daemon.wait(10.0)
                else:
                    wait_gone(state.daemon_pid, 10.0)
                os.killpg(state.daemon_pid, signal.SIGKILL)
        for namespace in {state.namespace, state.site_namespace} & namespaces():
            delete_namespace(namespace)
        Path(state.directory).parent.joinpath(f"{state.name}.json").unlink(missing_ok=True)
        shutil.rmtree(state.directory, ignore_errors=True)

    def __enter__(self) -> BootLab:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.down()

    # -- set-up -----------------------------------------------------------------------

    def _build_demo(self, image_root: Path) -> None:
        """The demo set: x86's kernel for BIOS and efi-x64 PCs, and arm64's as its
        `PCKernels` pair for efi-arm64 ones: one image, the pair of each PC's family."""
        from netboot.nbi.demo import build_demo_set
        from netboot_lab.assets import arm64_boot_files, pc_boot_files

        image_root.mkdir(parents=True, exist_ok=True)
        build_demo_set(image_root, pc_files=pc_boot_files(), pc_pairs=(arm64_boot_files(),))

    @staticmethod
    def _http_grub() -> None:
        """arm64's HTTP GRUB, before the daemon starts (it looks for it at start and on
        reload). Without it only an arm64 HTTP-boot guest fails, and says what is missing."""
        from netboot_lab.assets import http_grub

        with suppress(ImageError):
            http_grub("efi-arm64")

    def _network(self) -> None:
        state = self.state
        add_namespace(state.namespace)
        if state.ipv6:
            add_bridge(state.namespace, state.bridge)
            # nodad: the daemon binds the address at once (a tentative one cannot be bound)
            ip("addr", "add", f"{state.server}/64", "dev", state.bridge, "nodad",
               netns=state.namespace)  # fmt: skip
        else:
            add_bridge(state.namespace, state.bridge, f"{state.server}/24")
        if state.dhcp_mode == "proxy":
            add_namespace(state.site_namespace)
            if state.ipv6:
                without_dad(state.site_namespace)  # dnsmasq binds its address at once
            add_port(
                state.namespace,
                state.bridge,
                "nbsite0",
                state.site_namespace,
                SITE_INTERFACE,
                f"{state.site_server}/{64 if state.ipv6 else 24}",
            )

    def _start_site_server(self) -> None:
        """dnsmasq as the site's DHCP server: the guests' addresses, and us as next-server.

        On the IPv6 lab: a stateful DHCPv6 server of `LAB6_POOL` sending the router
        advertisements, and no boot options (IPv6 has no next-server)."""
        state = self.state
        directory = Path(state.directory)
        if state.ipv6:
            first, _, last = LAB6_POOL.partition("-")
            # iPXE expands ${net0/mac} in its boot file URL itself: one site option for all.
            script = f"http://{state.server_host}/boot.ipxe?mac=${{net0/mac}}"
            url = script if state.site_ipxe_url else None
            command = [*dnsmasq6(SITE_INTERFACE, first, last, directory, ipxe_boot_url=url),
                       *SITE_RA]  # fmt: skip
            ready = DNSMASQ6_READY
        else:
            command = site_dnsmasq(
                SITE_INTERFACE,
                f"{state.subnet}.100",
                f"{state.subnet}.199",
                directory,
                next_server=state.server if state.site_next_server else None,
            )
            ready = DNSMASQ_READY
        self._site = start_until_logged(
            state.site_namespace, command, directory / "site-dhcp.log", ready, 30.0
        )
        state.site_pid = self._site.pid

    def _config(self) -> Path:
        state = self.state
        directory = Path(state.directory)
        config = directory / "netboot.toml"
        # ganesha's state in the lab's directory: labs side by side must not share it
        assignments = [f"{mac}={image}" for mac, image in state.assignments.items()]
        loaders = [f"{mac}={loader}" for mac, loader in state.loaders.items()]
        nfs = f'"ganesha"\nstate_dir = "{directory}/nfs"' if state.nfs else '"off"'
        dhcp6 = ""
        router_solicitations = "answer_router_solicitations = true\n"
        if state.ipv6 and state.dhcp_mode == "proxy":
            # Beside the site's DHCPv6 server, which leases and sends the RAs: boot options only.
            dhcp = 'mode = "off"\n'
            dhcp6 = '[dhcp6]\nmode = "proxy"\n'
            router_solicitations = ""
            loader = ""
        elif state.ipv6:
            # IPv6 only: our DHCPv6 leases the addresses and sends the router advertisements
            # (M=1 O=1, the on-link /64), so no DHCPv4 and no lifetime-0 RA of its own.
            dhcp = 'mode = "off"\n'
            dhcp6 = f'[dhcp6]\nmode = "full"\npool = "{LAB6_POOL}"\nrouter_advertisements = true\n'
            router_solicitations = ""
            loader = ""
        elif state.dhcp_mode == "proxy":
            # The site names us as next-server, so GRUB finds us: the signed chain can finish.
            dhcp = 'mode = "proxy"\n'
            loader = 'uefi_loader = { efi-x64 = "shim", efi-arm64 = "shim" }\n'
        else:
            dhcp = f'mode = "full"\npool = "{state.subnet}.100-{state.subnet}.199"\n'
            loader = ""
        config.write_text(
            f'[server]\nroot = "{state.root}"\ninterfaces = ["{state.bridge}"]\n'
            "allow_root = true\n"
            f'state_database = "{directory}/state.sqlite3"\n'
            f"[dhcp]\n{dhcp}"
            f'lease_database = "{directory}/leases.sqlite3"\n'
            f"{router_solicitations}{dhcp6}"
            f'[bsdp]\nbindings_database = "{directory}/bsdp-bindings.sqlite3"\n'
            f'[admin]\nlisten = "{state.server_host}:{ADMIN_PORT}"\n'
            f'token_file = "{directory}/admin-token"\naudit_log = "{directory}/audit.log"\n'
            f"[nfs]\nmode = {nfs}\n"
            '[logging]\nformat = "json"\nlevel = "debug"\n'
            f"[pxe]\nassignments = {json.dumps(assignments)}\n"
            f"loader_assignments = {json.dumps(loaders)}\n{loader}"
        )
        return config

    def _start_daemon(self) -> None:
        state = self.state
        log = self.daemon_log
        command = [sys.executable, "-m", "netboot", "serve", "--config", str(self._config())]
        process = spawn(command, log, state.namespace)
        state.daemon_pid = process.pid
        self._daemon = process
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise LabError(f"the daemon exited ({process.returncode}); see {log}")
            text = read_text(log)
            if '"ready' in text or " ready: serving" in text:
                return
            time.sleep(0.1)
        raise LabError(f"the daemon did not get ready in 60 s; see {log}")

    def _save(self) -> None:
        path = Path(self.state.directory).parent / f"{self.state.name}.json"
        path.write_text(json.dumps(asdict(self.state)))

    @property
    def daemon_log(self) -> Path:
        return Path(self.state.directory) / "daemon.log"

    def keep_daemon_log(self, directory: Path) -> Path:
        """A copy of the daemon's log so far in `directory` (which outlives the lab)."""
        kept = directory / "daemon.log"
        with suppress(OSError):
            shutil.copyfile(self.daemon_log, kept)
        return kept

    def guest_directory(self, label: str, artifacts: Path | None) -> Path:
        """Where one guest's files go: `artifacts` when given, else a new directory of the lab."""
        if artifacts is not None:
            artifacts.mkdir(parents=True, exist_ok=True)
            return artifacts.resolve()
        directory = Path(self.state.directory) / label
        directory.mkdir()
        return directory

    # -- guests ------------------------------------------------------------------------

    def boot(
        self,
        firmware: str = "bios",
        image: str | None = None,
        accel: str = "auto",
        timeout: float = 120.0,
        ipxe_rom: bool | None = None,
        artifacts: Path | None = None,
        note: Callable[[str], None] = _ignore,
        secure_boot: bool = False,
        loader: str | None = None,
        http_boot: bool = False,
        loss: int = 0,
        delay_ms: int = 0,
    ) -> BootResult:
        """Power on one guest and follow it to the marker (or the timeout).

        A UEFI guest boots with the firmware's own PXE, as real PCs do, unless
        `ipxe_rom` gives its NIC QEMU's iPXE option ROM (a BIOS guest always has it). With `accel`
        "auto", KVM is used only when a probe saw the firmware boot under it,
        and a guest that still shows no first stage under KVM within
        FIRST_STAGE_GRACE s is restarted under TCG; `note` hears about both.
        The result's `accel` is what the boot really ran under. `secure_boot`
        (UEFI) runs OVMF with Microsoft's keys enforced and no option ROM, so
        the firmware's PXE boots the signed shim -> GRUB -> kernel chain.
        `loader` (`auto`, `shim`, `boot_file`) overrides `[pxe] uefi_loader` for
        this guest. `http_boot` (UEFI) leaves the firmware only its UEFI HTTP boot.
        `loss` drops that percent of the TCP and UDP packets each way between the
        bridge and the daemon during this boot (nftables, for every guest of the
        lab meanwhile); `delay_ms` holds this guest's frames 0 to that many ms each
        way (QEMU's filter-buffer). Nothing here can reorder: the kernel has no
        sch_netem, and neither nftables nor QEMU's filters reorder.
        """
        if not 0 <= loss < 100:
            raise LabError(f"loss is a percent from 0 to 99, not {loss}")
        if delay_ms < 0:
            raise LabError(f"delay is milliseconds, not {delay_ms}")
        if ipxe_rom is None:
            ipxe_rom = firmware == "bios"
        ipxe_rom = ipxe_rom and not secure_boot and not http_boot
        missing = missing_pieces(
            firmware,
            secure_boot,
            lambda path: chain_file(path, Path.is_file).is_file(),
            http_boot=http_boot,
        )
        if missing:
            return BootResult(firmware, "tcg", "fail", error="missing: " + ", ".join(missing))
        choice = choose_accel(accel, lambda: probe_kvm(firmware))
        note(f"accelerator: {choice.reason}")
        state = self.state
        with self._lock:
            state.guests += 1
            number = state.guests
            self._save()
        guest_dir = self.guest_directory(f"guest{number}-{firmware}", artifacts)
        tap, mac = f"nbtap{number}", f"52:54:00:4e:42:{number % 256:02x}"
        serial, pcap = guest_dir / "serial.log", guest_dir / "boot.pcap"
        result = BootResult(
            firmware,
            choice.accel,
            "fail",
            serial_log=str(serial),
            pcap=str(pcap),
            loss=loss,
            delay_ms=delay_ms,
        )
        kernel, initrds = self._pc_paths(image, FIRMWARE_FAMILIES.get(firmware))
        if image is not None or loader is not None:
            self._assign(mac, image, loader)
        progress = Progress(mac, time.time(), kernel, initrds)
        capture: subprocess.Popen[bytes] | None = None
        guest: subprocess.Popen[bytes] | None = None
        stack = ExitStack()
        log: TextIO | None = None
        try:
            add_tap(state.namespace, tap, state.bridge)
            capture = start_capture(tap, pcap, state.namespace)
            if loss:
                impair_interface(state.namespace, state.bridge, loss)
            log = stack.enter_context(self.daemon_log.open())
            while True:
                command = self._guest_command(
                    firmware,
                    choice.accel,
                    tap,
                    mac,
                    guest_dir,
                    ipxe_rom,
                    secure_boot,
                    http_boot,
                    delay_ms,
                )
                log.seek(0, os.SEEK_END)
                progress = Progress(mac, time.time(), kernel, initrds)
                guest = spawn(command, guest_dir / "qemu.log", state.namespace)
                followed = self._follow(guest, progress, serial, log, timeout, choice)
                if not followed.fall_back:
                    result.error = followed.error
                    break
                stop_process(guest)
                note(
                    f"no first stage under KVM in {FIRST_STAGE_GRACE:.0f} s "
                    "(no DHCP, no serial output): continuing under TCG"
                )
                choice = AccelChoice("tcg", False, "TCG: the guest showed nothing under KVM")
                result.accel = choice.accel
            if result.error is None:
                result.result = "ok"
        finally:
            if guest is not None:
                stop_process(guest)
            if loss:
                clear_interface(state.namespace, state.bridge)
            stop_capture(capture, pcap)
            ip("link", "del", tap, netns=state.namespace, check=False)
            if log is not None:
                time.sleep(0.2)  # the daemon logs a transfer when it ends
                progress.feed_text(log.read())
            stack.close()
            result.secure_boot = SECURE_BOOT_ENABLED.encode() in read_bytes(serial)
            result.stages = progress.ordered()
            result.bytes = {"tftp": progress.tftp_bytes, "http": progress.http_bytes}
            if artifacts is not None:
                self.keep_daemon_log(guest_dir)
        return result

    def _guest_command(
        self,
        firmware: str,
        accel: str,
        tap: str,
        mac: str,
        guest_dir: Path,
        ipxe_rom: bool,
        secure_boot: bool = False,
        http_boot: bool = False,
        delay_ms: int = 0,
    ) -> list[str]:
        """QEMU's command line, with a fresh copy of OVMF's (AAVMF's) variables for a UEFI
        guest."""
        uefi_vars = None
        if firmware != "bios":
            template = uefi_vars_template(firmware, secure_boot)
            uefi_vars = guest_dir / template.name
            shutil.copyfile(template, uefi_vars)
        serial = guest_dir / "serial.log"
        return guest_command(
            firmware,
            accel,
            tap,
            mac,
            serial,
            uefi_vars,
            ipxe_rom,
            secure_boot,
            http_boot,
            delay_ms,
            ipv6=self.state.ipv6,
        )

    def _assign(self, mac: str, image: str | None, loader: str | None = None) -> None:
        """This guest boots `image` and gets `loader`: `[pxe] assignments` and
        `loader_assignments` entries, applied by SIGHUP."""
        with self._lock:
            if image is not None:
                self.state.assignments[mac] = image
            if loader is not None:
                self.state.loaders[mac] = loader
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

    def _pc_paths(
        self, image: str | None, family: str | None = None
    ) -> tuple[str | None, tuple[str, ...]]:
        """URL paths of the image's kernel and initrds, as the access log shows them;
        with `family`, of the first image built for it (its `PCKernels` pair for that
        family, else `PCKernel` when `PCArchitectures` names the family)."""
        catalog = scan_catalog(Path(self.state.root))
        for nbi_set in catalog.servable:
            info = nbi_set.info
            if info is None:
                continue
            if image is not None and image not in (
                info.name,
                nbi_set.path.name.removesuffix(".nbi"),
            ):
                continue
            files: tuple[PurePosixPath, ...] = ()
            if family is not None and family in nbi_set.pc_pairs:
                files = tuple(nbi_set.pc_pairs[family])
            elif nbi_set.pc_kernel is not None and (
                family is None or family in info.pc_architectures
            ):
                files = (nbi_set.pc_kernel, *nbi_set.pc_initrds)
            if files:
                kernel, *initrds = ("/" + quote(str(path)) for path in files)
                return kernel, tuple(initrds)
        return None, ()

    def _follow(
        self,
        guest: subprocess.Popen[bytes],
        progress: Progress,
        serial: Path,
        log: TextIO,
        timeout: float,
        choice: AccelChoice,
    ) -> Followed:
        """Watch the serial console and the daemon's log until the marker, the timeout,
        or (under an automatic KVM choice) a first stage that does not come."""
        started = time.monotonic()
        deadline = started + timeout
        while time.monotonic() < deadline:
            progress.feed_text(log.read())
            exited = guest.poll() is not None  # it powers off right after the marker
            console = read_bytes(serial)
            if MARKER.encode() in console:
                progress.reached("marker", time.time())
                return Followed(None)
            failure = console_failure(console) or progress.failure
            if failure is not None:
                return Followed(failure)
            if exited:
                return Followed(
                    f"the guest stopped before the marker (QEMU exit {guest.returncode})"
                )
            first_stage = bool(progress.stages) or bool(console)
            if fall_back_now(choice, first_stage, time.monotonic() - started, FIRST_STAGE_GRACE):
                return Followed("no first stage under KVM", fall_back=True)
            time.sleep(0.05)
        return Followed(f"no marker on the serial console within {timeout:.0f} s")


@dataclass(frozen=True, slots=True)
class Followed:
    """How following a guest ended: `error` None at the marker; `fall_back`: restart under TCG."""

    error: str | None
    fall_back: bool = False


@contextmanager
def running_lab(name: str = "lab", root: Path | None = None, **kwargs: Any) -> Iterator[BootLab]:
    lab = BootLab.up(name, root, **kwargs)
    try:
        yield lab
    finally:
        lab.down()
