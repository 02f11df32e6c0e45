"""`netboot lab`: boot real firmware (QEMU) and a simulated Mac through our server.

    netboot lab up [--name N] [--root DIR]      namespace, bridge, daemon (full DHCP;
                   [--ipv6]                     IPv6-only: our DHCPv6 and RAs)
    netboot lab boot --firmware bios|uefi|uefi-arm64 ...   one guest, to the serial marker
    netboot lab mac [--image NAME] ...          a Mac's whole NetBoot, simulated
    netboot lab down [--name N]                 everything gone

`boot` and `mac` use the lab that is up, or set one up for the run and take
it down afterwards. Their files (serial or console log, packet capture, a
copy of the daemon's log) are kept in `--artifacts DIR`, by default a new
directory under /var/tmp/netboot-lab/, which outlives the lab; the JSON's
`serial_log` and `pcap` name files there. Exit status: 0 when the boot
reached its end, 1 when it did not (the JSON says where it stopped), 2 on a
bad command line or a lab that cannot be set up.

The lab itself (`netboot_lab`: processes, namespaces, QEMU) is imported
inside the commands, so the rest of the CLI never loads it.
"""

from __future__ import annotations

import json
import platform
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from netboot.errors import ImageError, NetbootError
from netboot.lab.qemu import (
    ACCELERATORS,
    ARM64,
    ARM64_NO_SECURE_HTTP_BOOT,
    FIRMWARES,
    kvm_can_run,
)

if TYPE_CHECKING:
    from netboot_lab.lab import BootLab

ARTIFACTS_ROOT = Path("/var/tmp/netboot-lab")  # noqa: S108 - kept on purpose, see artifacts_for

name_option = click.option("--name", default="lab", show_default=True, help="Lab name.")
dhcp_mode_option = click.option(
    "--dhcp-mode",
    type=click.Choice(("full", "proxy")),
    help="full (default): the daemon is the lab's DHCP server. proxy: a site DHCP server "
    "(dnsmasq) leases the addresses, naming the daemon's host as next-server, and the daemon "
    "answers PXE beside it. `lab boot` on a lab that is up must name its mode or none.",
)
ipv6_option = click.option(
    "--ipv6",
    is_flag=True,
    help="An IPv6-only lab net (fd4e:4254:0:1::/64, no IPv4 address): the daemon's DHCPv6 "
    "(full mode) and router advertisements, no DHCPv4; with --dhcp-mode proxy a site DHCPv6 "
    "server (dnsmasq) leases and sends the RAs, and the daemon's DHCPv6 answers boot "
    "clients beside it. `lab boot` on a lab that is up must match it.",
)
artifacts_option = click.option(
    "--artifacts",
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for the serial log, packet capture and daemon log, kept after the run "
    f"(default: a new directory {ARTIFACTS_ROOT}/<name>-<command>-<time>-*).",
)


def artifacts_for(name: str, command: str, given: Path | None) -> Path:
    """Where a run's files go: `given`, or a new directory named by the lab, command and time.

    /var/tmp, not /tmp or the lab's /run directory: the files are what a user
    reads after the run (and after a reboot), and the lab deletes its own.
    """
    if given is not None:
        return given
    ARTIFACTS_ROOT.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path(tempfile.mkdtemp(prefix=f"{name}-{command}-{stamp}-", dir=ARTIFACTS_ROOT))


@click.group()
def lab() -> None:
    """An isolated boot lab: our daemon and QEMU guests in a network namespace."""


@lab.command()
@name_option
@click.option(
    "--root",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Image root to serve (default: a fresh demo set with Debian's kernel).",
)
@dhcp_mode_option
@ipv6_option
def up(name: str, root: Path | None, dhcp_mode: str | None, ipv6: bool) -> None:
    """Create the lab and start the daemon in it."""
    from netboot_lab.lab import BootLab
    from netboot_lab.netns import LabError

    try:
        started = BootLab.up(name, root, dhcp_mode=dhcp_mode or "full", ipv6=ipv6)
    except (LabError, ImageError) as error:
        _fail(error)
    click.echo(
        f"lab {name!r} is up: namespace {started.state.namespace}, server "
        f"{started.state.server}, log {started.daemon_log}"
    )


@lab.command()
@name_option
def down(name: str) -> None:
    """Stop the lab's daemon and guests and delete its namespace."""
    from netboot_lab.lab import BootLab
    from netboot_lab.netns import LabError

    try:
        BootLab.attach(name).down()
    except LabError as error:
        _fail(error)
    click.echo(f"lab {name!r} is down")


@lab.command()
@name_option
@click.option("--firmware", type=click.Choice(FIRMWARES), default="bios", show_default=True)
@click.option("--image", help="PC image to boot (name or set directory); default: the default.")
@click.option("--accel", type=click.Choice(ACCELERATORS), default="auto", show_default=True)
@click.option(
    "--timeout",
    type=float,
    help="Seconds. Default: 120, or 240 for --ipv6 --http-boot (OVMF tries HTTP boot over "
    "IPv4 for ~60 s first).",
)
@click.option(
    "--ipxe-rom/--no-ipxe-rom",
    default=None,
    help="Give the NIC QEMU's iPXE option ROM. Default: BIOS guests have it (their only "
    "network boot); UEFI guests do not, so the firmware's own PXE boots, as on real PCs.",
)
@click.option(
    "--loader",
    type=click.Choice(("auto", "shim", "boot_file")),
    help="The UEFI loader this guest gets (`[pxe] loader_assignments`); default: the "
    "daemon's `uefi_loader` (the signed shim chain in the lab).",
)
@click.option(
    "--secure-boot",
    is_flag=True,
    help="UEFI with Microsoft's keys enforced and no option ROM: the signed shim -> GRUB "
    "-> kernel chain boots; the JSON's secure_boot says whether the kernel saw it on. "
    "uefi-arm64: AAVMF_VARS.ms.fd, which has no SMM (the guest can write its varstore).",
)
@click.option(
    "--http-boot",
    is_flag=True,
    help="UEFI with the firmware's PXE switched off: its own UEFI HTTP boot fetches the "
    "boot file by HTTP (no option ROM). uefi-arm64: our HTTP GRUB (netboot "
    "build-http-grub), which reads its configuration and the kernel by HTTP too; not with "
    "--secure-boot (it is unsigned).",
)
@click.option(
    "--loss",
    type=click.IntRange(0, 99),
    default=0,
    show_default=True,
    help="Percent of TCP and UDP packets dropped each way between the guests and the daemon "
    "during the boot (nftables on the lab's bridge).",
)
@click.option(
    "--delay-ms",
    type=click.IntRange(0, 10_000),
    default=0,
    show_default=True,
    help="Hold the guest's frames 0 to MS ms each way, in order (QEMU's filter-buffer "
    "releases them every MS ms: delay and jitter). Nothing here reorders: this kernel "
    "has no sch_netem.",
)
@dhcp_mode_option
@ipv6_option
@artifacts_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def boot(
    name: str,
    firmware: str,
    image: str | None,
    accel: str,
    timeout: float | None,
    ipxe_rom: bool | None,
    loader: str | None,
    secure_boot: bool,
    http_boot: bool,
    loss: int,
    delay_ms: int,
    dhcp_mode: str | None,
    ipv6: bool,
    artifacts: Path | None,
    as_json: bool,
) -> None:
    """Power on a QEMU guest and follow it to the demo initrd's serial marker.

    `uefi-arm64` is an aarch64 `virt` guest with AAVMF under TCG (~30-60 s to the
    marker), booting the arm64 demo set through the signed shimaa64 -> GRUB chain.

    `--accel auto` uses KVM only where a probe saw the guest's firmware boot
    under it, and restarts under TCG a guest that shows no first stage under
    KVM; the notes on stderr say which, and the JSON's `accel` what ran.
    Without a lab that is up, one is set up for this boot (in `--dhcp-mode`,
    IPv6-only with `--ipv6`) and taken down afterwards.
    """
    from netboot_lab.lab import IPV6_HTTP_BOOT_TIMEOUT

    if ipxe_rom is None:
        ipxe_rom = firmware == "bios"
    if firmware == "bios" and not ipxe_rom:
        raise click.UsageError("a BIOS guest network-boots only from the NIC's iPXE ROM")
    if firmware == ARM64:
        if http_boot and secure_boot:
            raise click.UsageError(ARM64_NO_SECURE_HTTP_BOOT)
        if ipxe_rom:
            raise click.UsageError("QEMU's iPXE ROMs are x86 code: no --ipxe-rom on uefi-arm64")
        if accel == "kvm" and not kvm_can_run(firmware, platform.machine()):
            host = platform.machine()
            raise click.UsageError(f"KVM cannot run an aarch64 guest on this {host} host")
    elif (secure_boot or http_boot) and firmware != "uefi":
        raise click.UsageError("--secure-boot and --http-boot need --firmware uefi or uefi-arm64")
    if http_boot and ipxe_rom:
        raise click.UsageError("--http-boot is the firmware's own: no --ipxe-rom")
    if timeout is None:
        timeout = IPV6_HTTP_BOOT_TIMEOUT if ipv6 and http_boot else 120.0
    kept = artifacts_for(name, "boot", artifacts)
    with _lab(name, dhcp_mode, ipv6) as running:
        result = running.boot(
            firmware,
            image,
            accel,
            timeout,
            ipxe_rom,
            kept,
            _note,
            secure_boot=secure_boot,
            loader=loader,
            http_boot=http_boot,
            loss=loss,
            delay_ms=delay_ms,
        )
    _print(result.as_json(), as_json, kept)
    sys.exit(0 if result.result == "ok" else 1)


@lab.command()
@name_option
@click.option("--image", help="NBI set to select (name or set directory); default: the default.")
@click.option("--timeout", type=float, default=60.0, show_default=True, help="Seconds.")
@artifacts_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def mac(
    name: str, image: str | None, timeout: float, artifacts: Path | None, as_json: bool
) -> None:
    """Run a Mac's NetBoot as a client in the lab: BSDP, TFTP, root image reads."""
    from netboot_lab.mac import simulate_mac

    kept = artifacts_for(name, "mac", artifacts)
    with _lab(name) as running:
        result = simulate_mac(running, image, timeout, kept)
    _print(result.as_json(), as_json, kept)
    sys.exit(0 if result.result == "ok" else 1)


@lab.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--version", "product_version", default="10.12.6", show_default=True)
@click.option("--build", default="16G29", show_default=True)
def installer(directory: Path, product_version: str, build: str) -> None:
    """Write a synthetic macOS installer (InstallESD.dmg, BaseSystem.dmg) into DIRECTORY.

    The same nesting as Apple's 10.7-10.12 InstallESD.dmg (HFS+ volumes in
    UDZO images, BaseSystem.dmg inside), with pseudo-random boot.efi and
    prelinkedkernel, for `netboot nbi create --from-installer` (needs xorriso).
    """
    from netboot_lab.installer import InstallerBuildError, build_installer

    try:
        made = build_installer(directory, product_version=product_version, build=build)
    except InstallerBuildError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(1)
    click.echo(f"{made.install_esd}\n{made.base_system}")


@contextmanager
def _lab(name: str, dhcp_mode: str | None = None, ipv6: bool = False) -> Iterator[BootLab]:
    """The lab that is up, or one set up now (in `dhcp_mode`, IPv6-only with `ipv6`) and
    taken down afterwards.

    A lab that is up in another DHCP mode or address family is refused rather
    than booted in the wrong one."""
    from netboot_lab.lab import BootLab
    from netboot_lab.netns import LabError

    try:
        existing: BootLab | None = BootLab.attach(name)
    except LabError:
        existing = None
    if existing is not None:
        if dhcp_mode not in (None, existing.state.dhcp_mode):
            _fail(
                LabError(
                    f"lab {name!r} is up in {existing.state.dhcp_mode} mode, not {dhcp_mode}: "
                    f"`netboot lab down --name {name}`, or another --name"
                )
            )
        if ipv6 != existing.state.ipv6:
            family = "IPv6-only" if existing.state.ipv6 else "IPv4"
            _fail(
                LabError(
                    f"lab {name!r} is up {family}, and --ipv6 was {'not ' if not ipv6 else ''}"
                    f"given: `netboot lab down --name {name}`, or another --name"
                )
            )
        yield existing
        return
    try:
        temporary = BootLab.up(name, dhcp_mode=dhcp_mode or "full", ipv6=ipv6)
    except (LabError, ImageError) as error:
        _fail(error)
    try:
        yield temporary
    finally:
        temporary.down()


def _note(text: str) -> None:
    """What the lab tells a person while it works (which accelerator, and why): stderr."""
    click.echo(f"lab: {text}", err=True)


def _print(summary: dict[str, Any], as_json: bool, artifacts: Path) -> None:
    if as_json:
        click.echo(json.dumps(summary))
        return
    click.echo(f"{summary['result']}: {summary.get('error') or 'reached the end'}")
    for stage, seconds in summary["stages"].items():
        click.echo(f"  {stage:12} {seconds:8.3f} s")
    click.echo(f"  bytes        {summary['bytes']}")
    click.echo(f"  accelerator  {summary['accel']}")
    click.echo(f"  serial log   {summary['serial_log']}")
    click.echo(f"  capture      {summary['pcap']}")
    click.echo(f"  files kept   {artifacts} (serial log, capture, daemon log)")


def _fail(error: NetbootError) -> None:
    click.echo(f"error: {error}", err=True)
    sys.exit(2)
