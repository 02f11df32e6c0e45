"""Building a complete NBI set on Linux: `netboot nbi create`.

The set gets the layout of docs/protocols/nbi.md §2: `<arch>/booter` for every
architecture, the kernel beside it as `mach.macosx` (with `mach.macosx.mkext`)
and the prelinked kernel as `x86_64/kernelcache`, the root image as
`NetBoot.dmg` (`NetInstall.dmg` for install images) converted to UDZO unless
told otherwise, optional PC boot files under `pc/`, and an NBImageInfo.plist
that says so. It is assembled in a hidden directory beside OUT and renamed
into place only once `validate` finds no error in it, so a failed build
leaves nothing behind and a running server never sees half a set.

A root image from a directory (`--root-dir`) is an HFS+ volume, the file
system NetBoot clients mount. Debian has no mkfs.hfsplus; xorriso writes
HFS+ (as the HFS+ side of a hybrid ISO 9660 image with an Apple Partition
Map, the layout of System Image Utility's images), so that is what we use.
It records names, data, modes and times; it cannot give files root:wheel
ownership, hard links, extended attributes, BSD flags or HFS+ compression,
which a bootable macOS system volume needs: such a root must still come from
macOS (hdiutil, System Image Utility, AutoNBI), and `--root-image` converts
it here.
"""

from __future__ import annotations

import plistlib
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from netboot.errors import ImageError
from netboot.macaddr import parse_mac
from netboot.nbi.model import PLIST_NAME
from netboot.nbi.problems import Problem, Severity
from netboot.udif.conversion import OutputFormat
from netboot.udif.detect import ImageFormat, detect_format

ROOT_FORMATS = ("UDZO", "UDRO", "ULFO", "keep")
XORRISO_HFSPLUS = ("xorriso", "-as", "mkisofs", "-quiet", "-hfsplus")


@dataclass(frozen=True)
class PcPairSpec:
    """One `PCKernels` entry for `netboot nbi create`: a firmware family's own kernel,
    initrds and command line, copied under `pc/<family>/`."""

    family: str
    kernel: Path
    initrds: tuple[Path, ...] = ()
    command_line: str | None = None


@dataclass(frozen=True)
class SetSpec:
    """What `netboot nbi create` was asked for."""

    name: str
    index: int
    booter: Path
    kernel: Path | None = None
    kernelcache: Path | None = None
    mkext: Path | None = None
    root_image: Path | None = None
    root_dir: Path | None = None
    image_type: str = "HTTP"
    architectures: tuple[str, ...] = ("i386",)
    install: bool = False
    models: tuple[str, ...] = ()
    disabled_models: tuple[str, ...] = ()
    """`DisabledSystemIdentifiers`: models deliberately left out (never also in `models`)."""
    macs: tuple[str, ...] = ()
    pc_kernel: Path | None = None
    pc_initrds: tuple[Path, ...] = ()
    pc_command_line: str | None = None
    pc_pairs: tuple[PcPairSpec, ...] = ()
    """`PCKernels`: further families' own kernel/initrd pairs (an arm64 one beside x86's)."""
    root_format: str = "UDZO"
    description: str | None = None
    enabled: bool = True
    default: bool = False
    arch_files: tuple[tuple[str, Path], ...] = ()
    """More files for every architecture's directory: (name there, source)."""
    plist_extra: Mapping[str, object] = field(default_factory=dict)
    """More NBImageInfo.plist keys (osVersion, imageType, ...), written as given."""


def create_set(
    spec: SetSpec,
    out: Path,
    *,
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
) -> tuple[Path, list[Problem]]:
    """Build `out` (an `X.nbi` directory); returns it and the warnings validation left.

    Raises ImageError naming the input or the plist key at fault; then
    nothing exists at `out` that was not there before.
    """
    _check_spec(spec, out)
    if out.exists() and not overwrite:
        raise ImageError(str(out), "-", "already exists (use --force to replace it)")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp", dir=out.parent))
    try:
        plist = _populate(spec, staging, progress)
        with (staging / PLIST_NAME).open("wb") as handle:
            plistlib.dump(plist, handle)
        # Imported here: the checks bring the whole catalog, and `netboot nbi
        # --help` imports this module for ROOT_FORMATS.
        from netboot.nbi.edit import judge

        problems = judge(staging.parent, PurePosixPath(staging.name), plist)
        errors = [p for p in problems if p.severity is Severity.ERROR]
        if errors:
            raise ImageError(str(out / PLIST_NAME), errors[0].key, errors[0].message)
        staging.chmod(0o755)
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out, [p for p in problems if p.severity is not Severity.ERROR]


def _check_spec(spec: SetSpec, out: Path) -> None:
    if not out.name.endswith(".nbi") or out.name == ".nbi":
        raise ImageError(str(out), "-", "the set's directory must be named NAME.nbi")
    if spec.root_image is not None and spec.root_dir is not None:
        raise ImageError(str(out), "RootPath", "give --root-image or --root-dir, not both")
    if spec.root_format not in ROOT_FORMATS:
        raise ImageError(str(out), "RootPath", f"root format must be one of {ROOT_FORMATS}")
    inputs = [spec.booter, spec.kernel, spec.kernelcache, spec.mkext, spec.root_image]
    inputs += [spec.pc_kernel, *spec.pc_initrds, *(source for _, source in spec.arch_files)]
    inputs += [path for pair in spec.pc_pairs for path in (pair.kernel, *pair.initrds)]
    for path in inputs:
        if path is not None and not path.is_file():
            raise ImageError(str(path), "-", "not found (or not a file)")
    if spec.root_dir is not None and not spec.root_dir.is_dir():
        raise ImageError(str(spec.root_dir), "-", "not a directory")
    for mac in spec.macs:
        try:
            parse_mac(mac)
        except ValueError as error:
            raise ImageError(str(out), "EnabledMACAddresses", str(error)) from None


def _populate(
    spec: SetSpec, staging: Path, progress: Callable[[int], None] | None
) -> dict[str, object]:
    for arch in spec.architectures:
        directory = staging / arch
        directory.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(spec.booter, directory / "booter")
        if spec.kernel is not None:
            shutil.copyfile(spec.kernel, directory / "mach.macosx")
        if spec.mkext is not None:
            shutil.copyfile(spec.mkext, directory / "mach.macosx.mkext")
        if spec.kernelcache is not None:
            (directory / "x86_64").mkdir(exist_ok=True)
            shutil.copyfile(spec.kernelcache, directory / "x86_64" / "kernelcache")
        for name, source in spec.arch_files:
            shutil.copyfile(source, directory / name)
    plist: dict[str, object] = {
        "Name": spec.name,
        "Index": spec.index,
        "Type": spec.image_type,
        "BootFile": "booter",
        "Architectures": list(spec.architectures),
        "Kind": 1,
        "IsInstall": spec.install,
        "IsEnabled": spec.enabled,
        "IsDefault": spec.default,
        "Language": "Default",
        # Written even when empty: bsdpy requires these keys.
        "EnabledSystemIdentifiers": list(spec.models),
        "DisabledSystemIdentifiers": list(spec.disabled_models),
        **spec.plist_extra,
    }
    if spec.description:
        plist["Description"] = spec.description
    if spec.macs:
        plist["EnabledMACAddresses"] = [parse_mac(mac) for mac in spec.macs]
    root_name = "NetInstall.dmg" if spec.install else "NetBoot.dmg"
    if spec.root_image is not None:
        _root_from_image(spec.root_image, staging / root_name, spec.root_format, progress)
        plist["RootPath"] = root_name
    elif spec.root_dir is not None:
        _root_from_directory(spec.root_dir, staging / root_name, spec.name, spec.root_format)
        plist["RootPath"] = root_name
    else:
        plist["Type"] = "BootFileOnly"
    if spec.pc_kernel is not None:
        (staging / "pc").mkdir()
        plist["PCKernel"] = _copy_pc(spec.pc_kernel, staging)
        if spec.pc_initrds:
            plist["PCInitrd"] = [_copy_pc(initrd, staging) for initrd in spec.pc_initrds]
        if spec.pc_command_line:
            plist["PCCommandLine"] = spec.pc_command_line
    pairs: dict[str, object] = {}
    for pair in spec.pc_pairs:
        if pair.family in pairs:
            raise ImageError(str(pair.kernel), "PCKernels", f"{pair.family} is given twice")
        (staging / "pc" / pair.family).mkdir(parents=True)
        entry: dict[str, object] = {"Kernel": _copy_pc(pair.kernel, staging, pair.family)}
        if pair.initrds:
            entry["Initrd"] = [_copy_pc(i, staging, pair.family) for i in pair.initrds]
        if pair.command_line:
            entry["CommandLine"] = pair.command_line
        pairs[pair.family] = entry
    if pairs:
        plist["PCKernels"] = pairs
    return plist


def _copy_pc(source: Path, staging: Path, family: str | None = None) -> str:
    """Copy a PC boot file into `pc/` (a family's pair: `pc/<family>/`); its path in the set."""
    target = (
        PurePosixPath("pc", source.name)
        if family is None
        else PurePosixPath("pc", family, source.name)
    )
    if (staging / target).exists():
        raise ImageError(str(source), "PCInitrd", f"two PC boot files are named {target}")
    shutil.copyfile(source, staging / target)
    return str(target)


def _root_from_image(
    source: Path, target: Path, root_format: str, progress: Callable[[int], None] | None
) -> None:
    with source.open("rb") as stream:
        found = detect_format(stream)
    if found in (ImageFormat.UNKNOWN, ImageFormat.EMPTY, ImageFormat.SPARSE_IMAGE):
        raise ImageError(
            str(source),
            "RootPath",
            f"is not a disk image a Mac can mount ({found}): expected a UDIF .dmg, a "
            "partitioned disk (APM, GPT, MBR) or an HFS+/APFS volume",
        )
    if root_format == "keep":
        shutil.copyfile(source, target)
        return
    # The writer (and the reader and codecs it brings) loads only when a root is
    # converted: `netboot nbi --help` reads ROOT_FORMATS from this module.
    from netboot.udif.layout import plan_root_layout
    from netboot.udif.source import open_source
    from netboot.udif.writer import write_image

    with open_source(source) as opened:
        layout = plan_root_layout(opened)
        write_image(opened, target, OutputFormat(root_format), layout=layout, progress=progress)


def _root_from_directory(directory: Path, target: Path, volume: str, root_format: str) -> None:
    """An HFS+ volume holding `directory`, made by xorriso (see the module docstring)."""
    if shutil.which("xorriso") is None:
        raise ImageError(
            str(directory),
            "RootPath",
            "building an HFS+ root from a directory needs xorriso (Debian's xorriso "
            "package); Linux has no other HFS+ formatter. Or bring a disk image made on "
            "macOS and pass it with --root-image",
        )
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        raw = Path(scratch) / "root.img"
        done = subprocess.run(
            [*XORRISO_HFSPLUS, "-V", volume[:27], "-o", str(raw), str(directory)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise ImageError(str(directory), "RootPath", f"xorriso failed: {done.stderr.strip()}")
        if root_format == "keep":
            shutil.move(raw, target)
        else:
            from netboot.udif.writer import write_image

            # xorriso's image is already an APM disk (its HFS+ side), so it is kept.
            write_image(raw, target, OutputFormat(root_format))


def split_list(values: Sequence[str]) -> tuple[str, ...]:
    """Repeated options and comma-separated lists alike: `--arch i386 --arch arm`, `--macs a,b`."""
    return tuple(item.strip() for value in values for item in value.split(",") if item.strip())
