"""`netboot nbi`: build an NBI set, and change one's plist safely.

Exit status: 0 done, 1 when the input or the result is not valid (nothing is
written then), 2 on a bad command line.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from netboot.errors import ImageError, UdifError
from netboot.firmware import FAMILIES
from netboot.nbi.create import ROOT_FORMATS, PcPairSpec, SetSpec, create_set, split_list
from netboot.nbi.problems import Problem

if TYPE_CHECKING:
    from netboot.nbi.from_installer import InstallerRequest

existing_file = click.Path(exists=True, dir_okay=False, path_type=Path)
set_directory = click.Path(exists=True, file_okay=False, path_type=Path)


@click.group()
def nbi() -> None:
    """Build NBI sets and edit their NBImageInfo.plist."""


@nbi.command()
@click.option("--name", required=True, help="Name shown in the Mac's boot picker.")
@click.option("--index", required=True, type=click.IntRange(1, 65535), help="Image Index.")
@click.option("--booter", type=existing_file, help="EFI booter (boot.efi).")
@click.option(
    "--from-installer",
    "installer",
    type=click.Path(exists=True, path_type=Path),
    help="macOS 10.7-10.15 InstallESD.dmg, BaseSystem.dmg or Install ….app: take the "
    "booter, kernelcache, root image and models from it.",
)
@click.option(
    "--netboot",
    "set_kind",
    flag_value="netboot",
    help="With --from-installer: serve the base system itself (NetBoot.dmg).",
)
@click.option(
    "--netinstall",
    "set_kind",
    flag_value="netinstall",
    help="With --from-installer: a NetInstall set, or fail (default: NetInstall when possible).",
)
@click.option(
    "--include-t2", is_flag=True, help="With --from-installer: keep T2 Macs (they cannot NetBoot)."
)
@click.option(
    "--exclude-model",
    "exclude_models",
    multiple=True,
    help="With --from-installer: leave this model out (repeat).",
)
@click.option("--kernel", type=existing_file, help="Kernel, as <arch>/mach.macosx.")
@click.option("--kernelcache", type=existing_file, help="As <arch>/x86_64/kernelcache.")
@click.option("--mkext", type=existing_file, help="Kext archive, as <arch>/mach.macosx.mkext.")
@click.option("--root-image", type=existing_file, help="Disk image to serve as the root.")
@click.option("--root-dir", type=set_directory, help="Directory to make an HFS+ root from.")
@click.option(
    "--root-format",
    type=click.Choice(ROOT_FORMATS),
    help="Form of the root image in the set (keep: copy as given). "
    "Default: UDZO, or keep with --from-installer.",
)
@click.option("--type", "image_type", type=click.Choice(["HTTP", "NFS"]), default="HTTP")
@click.option("--arch", "architectures", multiple=True, help="Client architecture (i386).")
@click.option("--install", is_flag=True, help="A NetInstall/NetRestore image (IsInstall).")
@click.option("--models", multiple=True, help="Only this Mac model (repeat: iMac18,3).")
@click.option("--macs", multiple=True, help="Only these MAC addresses (comma-separated).")
@click.option("--pc-kernel", type=existing_file, help="Linux kernel for PCs (PCKernel).")
@click.option("--pc-initrd", "pc_initrds", multiple=True, type=existing_file, help="PCInitrd.")
@click.option("--pc-cmdline", help="Kernel command line for PCs (PCCommandLine).")
@click.option(
    "--pc-kernel-for",
    "pc_kernels_for",
    multiple=True,
    metavar="FAMILY=FILE",
    help="A firmware family's own kernel (PCKernels), e.g. efi-arm64=vmlinuz (repeat).",
)
@click.option(
    "--pc-initrd-for",
    "pc_initrds_for",
    multiple=True,
    metavar="FAMILY=FILE",
    help="An initrd of that family's pair, in order (repeat).",
)
@click.option(
    "--pc-cmdline-for",
    "pc_cmdlines_for",
    multiple=True,
    metavar="FAMILY=TEXT",
    help="That family's command line (else --pc-cmdline).",
)
@click.option("--description", help="Description shown to admins.")
@click.option("--disabled", is_flag=True, help="Write IsEnabled false (enable it later).")
@click.option("--default", "is_default", is_flag=True, help="Write IsDefault true.")
@click.option("--force", is_flag=True, help="Replace OUT if it exists.")
@click.option("--quiet", is_flag=True, help="Print nothing on success.")
@click.argument("out", type=click.Path(path_type=Path))
def create(
    name: str,
    index: int,
    booter: Path | None,
    installer: Path | None,
    set_kind: str | None,
    include_t2: bool,
    exclude_models: tuple[str, ...],
    kernel: Path | None,
    kernelcache: Path | None,
    mkext: Path | None,
    root_image: Path | None,
    root_dir: Path | None,
    root_format: str | None,
    image_type: str,
    architectures: tuple[str, ...],
    install: bool,
    models: tuple[str, ...],
    macs: tuple[str, ...],
    pc_kernel: Path | None,
    pc_initrds: tuple[Path, ...],
    pc_cmdline: str | None,
    pc_kernels_for: tuple[str, ...],
    pc_initrds_for: tuple[str, ...],
    pc_cmdlines_for: tuple[str, ...],
    description: str | None,
    disabled: bool,
    is_default: bool,
    force: bool,
    quiet: bool,
    out: Path,
) -> None:
    """Build the NBI set OUT.nbi: layout, NBImageInfo.plist, root image as UDZO.

    With --from-installer the booter, kernelcache, root image, osVersion and
    EnabledSystemIdentifiers come from a macOS 10.7-10.15 installer (macOS 11
    and later are refused: APFS base systems cannot NetBoot).
    """
    model_list = tuple(model.strip() for model in models if model.strip())
    if installer is not None:
        given = [
            option
            for option, value in (
                ("--booter", booter),
                ("--kernel", kernel),
                ("--kernelcache", kernelcache),
                ("--mkext", mkext),
                ("--root-image", root_image),
                ("--root-dir", root_dir),
                ("--install", True if install else None),
                ("--pc-kernel", pc_kernel),
                ("--pc-kernel-for", pc_kernels_for or None),
            )
            if value is not None
        ]
        if given:
            raise click.UsageError(f"--from-installer finds these itself: drop {', '.join(given)}")
        # Loaded only for this option: the HFS+ reader is not needed by the rest of `nbi`.
        from netboot.nbi.from_installer import InstallerRequest
        from netboot.nbi.installer import SetKind

        request = InstallerRequest(
            source=installer,
            name=name,
            index=index,
            wanted=SetKind(set_kind) if set_kind else None,
            include_t2=include_t2,
            exclude_models=split_list(exclude_models),
            models=model_list,
            image_type=image_type,
            root_format=root_format or "keep",
            description=description,
            macs=split_list(macs),
            enabled=not disabled,
            default=is_default,
        )
        _create_from_installer(request, out, force=force, quiet=quiet)
        return
    if booter is None:
        raise click.UsageError("Missing option '--booter' (or give --from-installer).")
    if set_kind is not None or include_t2 or exclude_models:
        raise click.UsageError(
            "--netboot, --netinstall, --include-t2 and --exclude-model go with --from-installer"
        )
    spec = SetSpec(
        name=name,
        index=index,
        booter=booter,
        kernel=kernel,
        kernelcache=kernelcache,
        mkext=mkext,
        root_image=root_image,
        root_dir=root_dir,
        image_type=image_type,
        architectures=split_list(architectures) or ("i386",),
        install=install,
        models=model_list,
        macs=split_list(macs),
        pc_kernel=pc_kernel,
        pc_initrds=pc_initrds,
        pc_command_line=pc_cmdline,
        pc_pairs=pc_pairs(pc_kernels_for, pc_initrds_for, pc_cmdlines_for),
        root_format=root_format or "UDZO",
        description=description,
        enabled=not disabled,
        default=is_default,
    )
    try:
        built, warnings = create_set(spec, out, overwrite=force)
    except (ImageError, UdifError) as error:
        _fail(error)
    _report(warnings, quiet, f"built {built}", built.parent)


def pc_pairs(
    kernels: tuple[str, ...], initrds: tuple[str, ...], command_lines: tuple[str, ...]
) -> tuple[PcPairSpec, ...]:
    """`--pc-kernel-for`, `--pc-initrd-for` and `--pc-cmdline-for` as `PCKernels` pairs,
    in the order the kernels were given; a usage error names the option and the entry."""

    def split(option: str, entry: str) -> tuple[str, str]:
        family, equals, value = entry.partition("=")
        family = family.strip()
        if not equals or not value or family not in FAMILIES:
            known = ", ".join(FAMILIES)
            raise click.UsageError(f"{option} {entry!r}: want FAMILY=VALUE, FAMILY one of {known}")
        return family, value

    kernel_of: dict[str, Path] = {}
    for entry in kernels:
        family, value = split("--pc-kernel-for", entry)
        if family in kernel_of:
            raise click.UsageError(f"--pc-kernel-for: {family} is given twice")
        kernel_of[family] = Path(value)
    initrds_of: dict[str, list[Path]] = {}
    for entry in initrds:
        family, value = split("--pc-initrd-for", entry)
        initrds_of.setdefault(family, []).append(Path(value))
    command_line_of = dict(split("--pc-cmdline-for", entry) for entry in command_lines)
    for family in (*initrds_of, *command_line_of):
        if family not in kernel_of:
            raise click.UsageError(f"{family}: an initrd or command line needs --pc-kernel-for")
    return tuple(
        PcPairSpec(
            family,
            kernel,
            tuple(initrds_of.get(family, ())),
            command_line_of.get(family),
        )
        for family, kernel in kernel_of.items()
    )


def _create_from_installer(
    request: InstallerRequest, out: Path, *, force: bool, quiet: bool
) -> None:
    from netboot.nbi.from_installer import create_from_installer

    try:
        result = create_from_installer(request, out, overwrite=force)
    except (ImageError, UdifError) as error:
        _fail(error)
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    _report(
        result.warnings,
        quiet,
        f"built {result.out} ({result.kind.value} set, {result.os_description})",
        result.out.parent,
    )


@nbi.command()
@click.argument("set_dir", metavar="SET", type=set_directory)
def enable(set_dir: Path) -> None:
    """Offer SET to clients (IsEnabled true)."""
    _edit(set_dir, lambda _current: {"IsEnabled": True}, f"{set_dir}: enabled")


@nbi.command()
@click.argument("set_dir", metavar="SET", type=set_directory)
def disable(set_dir: Path) -> None:
    """Stop offering SET (IsEnabled false); the files stay."""
    _edit(set_dir, lambda _current: {"IsEnabled": False}, f"{set_dir}: disabled")


@nbi.command("set-default")
@click.argument("set_dir", metavar="SET", type=set_directory)
def set_default_command(set_dir: Path) -> None:
    """Make SET the default image, and no other set of its image root."""
    from netboot.nbi.edit import set_default

    try:
        cleared = set_default(set_dir)
    except ImageError as error:
        _fail(error)
    click.echo(f"{set_dir}: default")
    for other in cleared:
        click.echo(f"{other}: no longer default")


@nbi.command()
@click.argument("set_dir", metavar="SET", type=set_directory)
@click.argument("assignments", metavar="KEY=VALUE...", nargs=-1, required=True)
def edit(set_dir: Path, assignments: tuple[str, ...]) -> None:
    """Set plist keys (KEY= removes one); refused, and nothing written, if invalid.

    Booleans take true/false, Index and Kind integers, arrays a comma- or
    space-separated list (model identifiers, which hold commas, spaces only):
    `netboot nbi edit X.nbi Name="Lab image" Index=12
    EnabledSystemIdentifiers="iMac18,3 MacBookPro14,1"`. A family's own kernel
    pair is set a field at a time, `PCKernels.efi-arm64.Kernel=pc/efi-arm64/vmlinuz`
    (fields Kernel, Initrd, CommandLine), and `PCKernels.efi-arm64=` removes it.
    """
    from netboot.nbi.edit import nested_changes, parse_assignments

    try:
        changes = parse_assignments(list(assignments))
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    done = f"{set_dir}: {', '.join(changes)} changed"
    _edit(set_dir, lambda current: nested_changes(current, changes), done)


def _edit(set_dir: Path, decide: Callable[[dict[str, Any]], Mapping[str, Any]], done: str) -> None:
    """Apply the changes `decide` makes of the current plist (read under the set's lock)."""
    from netboot.nbi.edit import update_set

    try:
        warnings = update_set(set_dir, decide)
    except ImageError as error:
        _fail(error)
    _report(warnings, False, done, set_dir.parent)


def _report(warnings: list[Problem], quiet: bool, done: str, root: Path) -> None:
    for problem in warnings:
        click.echo(problem.render(str(root)), err=True)
    if not quiet:
        click.echo(done)


def _fail(error: Exception) -> None:
    click.echo(f"error: {error}", err=True)
    sys.exit(1)
