"""`netboot nbi create --from-installer`: a set from a macOS 10.7-10.15 installer.

The input is an `Install … .app` directory, its `InstallESD.dmg`, or a
`BaseSystem.dmg`. We read them with the HFS+ reader, chunk by chunk and never
mounted (BaseSystem.dmg inside InstallESD.dmg is opened in place through the
outer volume), let `installer.py` decide what to take, copy the booter,
kernelcache and PlatformSupport.plist out, and hand everything to
`create_set`, which assembles the set beside OUT and renames it into place
only when it validates. The root image is copied as it is (streamed; never
modified: a changed BaseSystem.dmg fails its chunklist check), unless a
`--root-format` asks for a conversion. Scratch files live in a hidden
directory beside OUT and are removed whatever happens.

What cannot be done is refused with an ImageError naming the input: macOS
11 and later (SharedSupport.dmg, APFS base systems), 10.7/10.8 base systems
without a prebuilt kernelcache, and a NetInstall set from a 10.13-10.15
installer (see `installer.plan_root`).
"""

from __future__ import annotations

import plistlib
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from netboot.errors import HfsError, ImageError
from netboot.hfs.errors import HfsApfsVolume
from netboot.hfs.volume import EntryKind, FileReader, HfsVolume, open_disk
from netboot.nbi.create import SetSpec, create_set
from netboot.nbi.installer import (
    BASE_SYSTEM_IMAGE,
    BootFiles,
    Refusal,
    SetKind,
    VolumeRole,
    app_images,
    classify,
    locate_boot_files,
    plan_root,
    refuse_apfs,
    refuse_big_sur,
)
from netboot.nbi.mac_models import (
    ModelScope,
    PlatformSupport,
    PlatformSupportError,
    parse_platform_support,
    scope_models,
)
from netboot.nbi.problems import Problem
from netboot.udif.reader import UdifImage
from netboot.udif.source import open_source

COPY_BLOCK = 1 << 20
_T = TypeVar("_T")


@dataclass(frozen=True)
class InstallerRequest:
    """What `netboot nbi create --from-installer` was asked for."""

    source: Path
    name: str
    index: int
    wanted: SetKind | None = None
    """None: NetInstall when the installer allows it, else NetBoot."""
    include_t2: bool = False
    exclude_models: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    """Given: these replace the installer's supported-model list."""
    image_type: str = "HTTP"
    root_format: str = "keep"
    description: str | None = None
    macs: tuple[str, ...] = ()
    enabled: bool = True
    default: bool = False


@dataclass(frozen=True)
class InstallerResult:
    out: Path
    warnings: list[Problem]
    kind: SetKind
    os_description: str
    scope: ModelScope | None
    notes: list[str] = field(default_factory=list)
    """What the admin should know (board ids not resolved, what was left out)."""


def create_from_installer(
    request: InstallerRequest,
    out: Path,
    *,
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
) -> InstallerResult:
    """Build `out` from the installer; ImageError (nothing written) when it cannot be done."""
    if out.exists() and not overwrite:
        raise ImageError(str(out), "-", "already exists (use --force to replace it)")
    out.parent.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        found = stack.enter_context(_open_installer(request.source))
        plan = _must(plan_root(found.esd_holds_base_system, request.wanted), request.source)
        boot = _must(locate_boot_files(_VolumeTree(found.base, found.base_label)), request.source)
        scratch = Path(stack.enter_context(_scratch_directory(out)))
        booter = _extract(found.base, boot.booter, scratch / "booter")
        kernelcache = _extract(found.base, boot.kernelcache, scratch / "kernelcache")
        support, arch_files = _platform_support(found.base, boot, scratch, request.source)
        if plan.kind is SetKind.NETINSTALL:
            assert found.install_esd is not None
            root_image = found.install_esd
        elif found.base_system_file is not None:
            root_image = found.base_system_file
        else:
            assert found.install_volume is not None
            root_image = _extract(found.install_volume, BASE_SYSTEM_IMAGE, scratch / "root.dmg")
        if plan.kernel_flags is not None:
            boot_plist = scratch / "com.apple.Boot.plist"
            boot_plist.write_bytes(plistlib.dumps({"Kernel Flags": plan.kernel_flags}))
            arch_files.append(("com.apple.Boot.plist", boot_plist))
        scope, notes = _scope(request, support)
        spec = SetSpec(
            name=request.name,
            index=request.index,
            booter=booter,
            kernelcache=kernelcache,
            root_image=root_image,
            image_type=request.image_type,
            install=plan.kind is SetKind.NETINSTALL,
            models=request.models or (scope.enabled if scope else ()),
            disabled_models=scope.excluded if scope and not request.models else (),
            macs=request.macs,
            root_format=request.root_format,
            description=request.description or boot.os_version.description,
            enabled=request.enabled,
            default=request.default,
            arch_files=tuple(arch_files),
            plist_extra={
                "osVersion": boot.os_version.user_visible,
                "imageType": plan.kind.value,
                "SupportsDiskless": False,
                "BackwardCompatible": False,
            },
        )
        built, warnings = create_set(spec, out, overwrite=overwrite, progress=progress)
    return InstallerResult(built, warnings, plan.kind, boot.os_version.description, scope, notes)


def _must(outcome: _T | Refusal, source: Path) -> _T:
    if isinstance(outcome, Refusal):
        raise ImageError(str(source), "-", outcome.message)
    return outcome


# ---- finding the volumes ------------------------------------------------------------


@dataclass
class _Found:
    base: HfsVolume
    base_label: str
    install_esd: Path | None = None
    """The InstallESD.dmg file on the host, when there is one."""
    install_volume: HfsVolume | None = None
    esd_holds_base_system: bool = False
    base_system_file: Path | None = None
    """BaseSystem.dmg as a host file (given, or beside InstallESD.dmg in the app)."""


@contextmanager
def _open_installer(source: Path) -> Iterator[_Found]:
    with ExitStack() as stack:
        if source.is_dir():
            shared = _shared_support(source)
            images = _must(app_images(_HostTree(shared, source.name)), source)
            esd = shared / images.install_esd if images.install_esd else None
            base_file = shared / images.base_system if images.base_system else None
        else:
            esd, base_file = source, None
        first = esd or base_file
        assert first is not None
        volume = stack.enter_context(_hfs_volume(first))
        role = classify(_VolumeTree(volume, first.name))
        if role is VolumeRole.SHARED_SUPPORT:
            raise ImageError(str(source), "-", refuse_big_sur(first.name).message)
        if role is VolumeRole.BASE_SYSTEM:
            yield _Found(base=volume, base_label=first.name, base_system_file=first)
            return
        if role is not VolumeRole.INSTALL_ESD:
            raise ImageError(
                str(first),
                "-",
                "is neither an InstallESD.dmg (BaseSystem.dmg or Packages/ at its root) nor "
                "a BaseSystem.dmg (System/Library/CoreServices/SystemVersion.plist)",
            )
        found = _Found(base=volume, base_label=first.name, install_esd=first, install_volume=volume)
        if _is_file(volume, BASE_SYSTEM_IMAGE):
            reader = volume.open_file(volume.lookup(BASE_SYSTEM_IMAGE))
            label = f"{first.name}/{BASE_SYSTEM_IMAGE}"
            found.base = stack.enter_context(_nested_volume(reader, label))
            found.base_label = label
            found.esd_holds_base_system = True
        elif base_file is not None:
            found.base = stack.enter_context(_hfs_volume(base_file))
            found.base_label = base_file.name
            found.base_system_file = base_file
        else:
            raise ImageError(
                str(first),
                "-",
                "holds no BaseSystem.dmg: from macOS 10.13 it sits beside InstallESD.dmg "
                "in the app's Contents/SharedSupport/; pass the Install macOS ….app "
                "directory or that BaseSystem.dmg",
            )
        yield found


def _shared_support(app: Path) -> Path:
    for candidate in (app / "Contents" / "SharedSupport", app):
        if candidate.is_dir() and any(
            (candidate / name).is_file()
            for name in ("InstallESD.dmg", BASE_SYSTEM_IMAGE, "SharedSupport.dmg")
        ):
            return candidate
    raise ImageError(
        str(app),
        "-",
        "is a directory without Contents/SharedSupport/InstallESD.dmg, BaseSystem.dmg or "
        "SharedSupport.dmg: not an Install macOS ….app (or a stub that downloads macOS later)",
    )


@contextmanager
def _hfs_volume(path: Path) -> Iterator[HfsVolume]:
    """The HFS+ volume of an image file on the host; APFS is refused by name."""
    try:
        with open_source(path) as source:
            yield _volume_in(source.read, source.size, path.name)
    except HfsError as error:
        raise ImageError(str(path), "-", str(error)) from None


@contextmanager
def _nested_volume(reader: FileReader, label: str) -> Iterator[HfsVolume]:
    """A UDIF image that is a file on another HFS+ volume, read in place."""
    image = UdifImage.open_storage(label, _FileStorage(reader))
    try:
        yield _volume_in(image.read, image.size, label)
    except HfsError as error:
        raise ImageError(label, "-", str(error)) from None
    finally:
        image.close()


def _volume_in(read: Callable[[int, int], bytes], size: int, label: str) -> HfsVolume:
    """The first HFS+ partition; an APFS one means macOS 11 or later, refused as such."""
    try:
        return open_disk(read, size, label)
    except HfsApfsVolume:
        raise ImageError(label, "-", refuse_apfs(label).message) from None


class _FileStorage:
    """`UdifImage` storage over a file on an HFS+ volume."""

    def __init__(self, reader: FileReader) -> None:
        self.reader = reader

    def size(self) -> int:
        return self.reader.size

    def pread(self, size: int, offset: int) -> bytes:
        try:
            return self.reader.read(offset, size)
        except HfsError as error:
            raise OSError(str(error)) from None

    def close(self) -> None:
        pass


class _VolumeTree:
    """`installer.InstallerTree` over an HFS+ volume."""

    def __init__(self, volume: HfsVolume, label: str) -> None:
        self.volume = volume
        self.label = label

    def is_file(self, path: str) -> bool:
        return _is_file(self.volume, path)

    def is_dir(self, path: str) -> bool:
        return _kind(self.volume, path) is EntryKind.DIRECTORY

    def read_small(self, path: str, limit: int) -> bytes:
        try:
            return self.volume.read_file(path, limit)
        except HfsError as error:
            raise ValueError(str(error)) from None


class _HostTree:
    """`installer.InstallerTree` over a host directory (the app's SharedSupport)."""

    def __init__(self, root: Path, label: str) -> None:
        self.root = root
        self.label = label

    def is_file(self, path: str) -> bool:
        return (self.root / path).is_file()

    def is_dir(self, path: str) -> bool:
        return (self.root / path).is_dir()

    def read_small(self, path: str, limit: int) -> bytes:
        with (self.root / path).open("rb") as handle:
            data = handle.read(limit + 1)
        if len(data) > limit:
            raise ValueError(f"{path} is over {limit} bytes")
        return data


def _kind(volume: HfsVolume, path: str) -> EntryKind | None:
    try:
        return volume.lookup(path).kind
    except HfsError:
        return None


def _is_file(volume: HfsVolume, path: str) -> bool:
    return _kind(volume, path) is EntryKind.FILE


# ---- copying out --------------------------------------------------------------------


@contextmanager
def _scratch_directory(out: Path) -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix=f".{out.name}.installer", dir=out.parent) as scratch:
        yield scratch


def _extract(volume: HfsVolume, path: str, target: Path) -> Path:
    """Stream a file off the volume, a MiB at a time."""
    try:
        reader = volume.open_file(volume.lookup(path))
        with target.open("wb") as out:
            for block in reader.iter_blocks(COPY_BLOCK):
                out.write(block)
    except HfsError as error:
        raise ImageError(volume.name, "-", f"cannot copy {path}: {error}") from None
    return target


def _platform_support(
    volume: HfsVolume, boot: BootFiles, scratch: Path, source: Path
) -> tuple[PlatformSupport | None, list[tuple[str, Path]]]:
    if boot.platform_support is None:
        return None, []
    copy = _extract(volume, boot.platform_support, scratch / "PlatformSupport.plist")
    try:
        support = parse_platform_support(copy.read_bytes())
    except PlatformSupportError as error:
        raise ImageError(
            str(source), "EnabledSystemIdentifiers", f"{boot.platform_support}: {error}"
        ) from None
    return support, [("PlatformSupport.plist", copy)]


def _scope(
    request: InstallerRequest, support: PlatformSupport | None
) -> tuple[ModelScope | None, list[str]]:
    notes: list[str] = []
    if support is None:
        notes.append(
            "the installer has no PlatformSupport.plist: EnabledSystemIdentifiers left empty "
            "(every model may select the set)"
        )
        return None, notes
    scope = scope_models(support, exclude_t2=not request.include_t2, exclude=request.exclude_models)
    if scope.unknown_board_ids:
        notes.append(
            "board ids with no known model (those Macs are not enabled): "
            + ", ".join(scope.unknown_board_ids)
        )
    if scope.excluded:
        notes.append("left out (DisabledSystemIdentifiers): " + ", ".join(scope.excluded))
    return scope, notes
