"""Checks of an NBI set against the files on disk, and of sets against each other.

`model.py` judges what a plist says; this module judges whether the set can be
served as it says: the booter exists for every architecture, the root image is
a disk image a Mac can attach, the PC kernel and initrds exist, no symlink leads
out of the set, and no two sets claim the same Index or the default slot. Each
finding names the file and the plist key it is about.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from netboot.firmware import Family
from netboot.nbi.model import PLIST_NAME, ImageKind, ImageType, NBImageInfo, PcKernelPair
from netboot.nbi.problems import NO_KEY, Problem, Severity
from netboot.paths import PathOutsideRoot, PathRefused, resolve_within
from netboot.pe import (
    FAMILY_MACHINES,
    MACHINE_NAMES,
    MachineCheck,
    NotPe,
    PeMachine,
    Signing,
    check_file,
    file_machine,
)
from netboot.udif.detect import ImageFormat, detect_format

ARCH_DIRECTORIES: dict[str, tuple[str, ...]] = {
    "i386": ("i386", "x86_64"),
    "arm": ("arm", "arm64"),
    "ppc": ("ppc",),
}
"""Where a client architecture's booter may sit, in order of preference.

Apple's layout is `<arch>/<BootFile>`; sets built for 64-bit-only or Apple
silicon tooling name the directory `x86_64` or `arm64`, which we accept for the
i386 and arm clients.
"""

KERNEL_NAMES = ("x86_64/kernelcache", "kernelcache", "mach.macosx", "x86_64/mach.macosx")
"""What Apple's booter loads from its own TFTP directory after it starts."""

X86_FAMILIES = frozenset({Family.BIOS, Family.EFI_IA32, Family.EFI_X64})
"""Families whose kernel may be a bzImage without an EFI stub: validate only warns (the
signature check) when it is no PE image; every other family boots only an EFI stub."""

FAT_EFI_MAGIC = b"\xb9\xfa\xf1\x0e"
"""Apple's universal (i386 + x86_64) EFI binary: the booter of macOS NBIs."""


class RootPathForm(Enum):
    LOCAL = "local"
    """A file inside the set; the server builds the URL or NFS path."""
    NFS_REMOTE = "nfs"
    """`host:/export[:path/image.dmg]` on another server."""
    HTTP_REMOTE = "http"
    """`http://host[:port]/path/image.dmg` on another server."""


_NFS_REMOTE = re.compile(r"(?P<host>[^/:\s]+):(?P<export>/(?:\\:|[^:])*)(?::(?P<image>.+))?")
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


def root_path_form(root_path: str) -> RootPathForm:
    if _URL.match(root_path):
        return RootPathForm.HTTP_REMOTE
    if _NFS_REMOTE.fullmatch(root_path):
        return RootPathForm.NFS_REMOTE
    return RootPathForm.LOCAL


@dataclass
class FileFindings:
    """What the file checks found for one set."""

    booters: dict[str, PurePosixPath] = field(default_factory=dict)
    root_image: PurePosixPath | None = None
    root_image_format: ImageFormat | None = None
    pc_kernel: PurePosixPath | None = None
    pc_initrds: tuple[PurePosixPath, ...] = ()
    pc_pairs: dict[str, tuple[PurePosixPath, ...]] = field(default_factory=dict)
    """`PCKernels` per family: the kernel, then the initrds, once all are found."""
    problems: list[Problem] = field(default_factory=list)


def check_set_files(root: Path, set_path: PurePosixPath, info: NBImageInfo) -> FileFindings:
    """Check the files `info` names inside `root/set_path`."""
    checker = _SetChecker(root, set_path)
    checker.check_booters(info)
    if info.image_type is not ImageType.BOOT_FILE_ONLY and info.root_path is not None:
        checker.check_root_path(info)
    if info.kind in (ImageKind.MAC_OS_X, ImageKind.MAC_OS_X_SERVER):
        checker.check_kernels(info)
    checker.check_pc_boot(info)
    if info.load_balance_server is not None and not _is_ip_literal(info.load_balance_server):
        checker.report(
            "LoadBalanceServer",
            f"{info.load_balance_server!r} is not an IP address; EFI cannot resolve names, "
            "so this server serves the image itself",
            Severity.WARNING,
        )
    checker.check_symlinks()
    return checker.findings


class _SetChecker:
    def __init__(self, root: Path, set_path: PurePosixPath) -> None:
        self.root = root
        self.set_path = set_path
        self.set_dir = root / set_path
        self.plist = set_path / PLIST_NAME
        self.findings = FileFindings()
        self._reported_links: set[PurePosixPath] = set()

    def report(self, key: str, message: str, severity: Severity = Severity.ERROR) -> None:
        self.findings.problems.append(Problem(self.plist, key, message, severity))

    def _locate(self, key: str, relative: str, label: str | None = None) -> Path | None:
        """Real path of a file the plist names, reporting why it is unusable.

        `label` starts each message (the family of a `PCKernels` entry)."""
        prefix = f"{label}: " if label else ""
        try:
            real = resolve_within(self.set_dir, relative)
        except PathOutsideRoot:
            self._reported_links.add(self.set_path / relative)
            linked = _is_link(self.set_dir, relative)
            detail = f" (symlink to {(self.set_dir / relative).resolve()})" if linked else ""
            self.report(key, f"{prefix}{relative}{detail} leaves the set's directory")
            return None
        except PathRefused as refused:
            self._reported_links.add(self.set_path / relative)
            self.report(key, f"{prefix}{refused}")
            return None
        if not real.exists():
            self.report(key, f"{prefix}{relative} does not exist")
            return None
        if not real.is_file():
            self.report(key, f"{prefix}{relative} is not a regular file")
            return None
        return real

    def check_booters(self, info: NBImageInfo) -> None:
        for arch in info.architectures:
            directories = ARCH_DIRECTORIES.get(arch, (arch,))
            candidates = [f"{directory}/{info.boot_file}" for directory in directories]
            if arch == "ppc":
                candidates.append(info.boot_file)  # very old ppc sets: booter at the top
            present = next((c for c in candidates if os.path.lexists(self.set_dir / c)), None)
            if present is None:
                tried = " or ".join(candidates)
                self.report("BootFile", f"{tried} does not exist (needed for {arch} clients)")
                continue
            if self._locate("BootFile", present) is not None:
                self.findings.booters[arch] = self.set_path / present

    def check_root_path(self, info: NBImageInfo) -> None:
        root_path = info.root_path
        assert root_path is not None
        form = root_path_form(root_path)
        if form is RootPathForm.LOCAL:
            real = self._locate("RootPath", root_path)
            if real is not None:
                self._check_image_format(root_path, real)
            return
        expected = RootPathForm.HTTP_REMOTE if info.image_type is ImageType.HTTP else None
        expected = RootPathForm.NFS_REMOTE if info.image_type is ImageType.NFS else expected
        if form is not expected:
            self.report(
                "RootPath",
                f"{root_path!r} is a {form.value} location but Type is {info.image_type}",
            )
            return
        host = _remote_host(root_path, form)
        if host is None:
            self.report("RootPath", f"{root_path!r} names no host and path")
        elif not _is_ip_literal(host):
            self.report(
                "RootPath",
                f"host {host!r} is a name; EFI booters cannot resolve names, "
                "so the server must (prefer an IP address)",
                Severity.WARNING,
            )

    def _check_image_format(self, relative: str, real: Path) -> None:
        try:
            with real.open("rb") as stream:
                image_format = detect_format(stream)
        except OSError as error:
            self.report("RootPath", f"{relative} cannot be read: {error.strerror}")
            return
        self.findings.root_image_format = image_format
        if image_format is ImageFormat.SPARSE_IMAGE:
            self.report(
                "RootPath",
                f"{relative} is a sparse image (UDSP); NetBoot clients need a UDIF "
                "(.dmg) or raw disk image",
            )
        elif image_format is ImageFormat.EMPTY:
            self.report("RootPath", f"{relative} is empty")
        elif image_format is ImageFormat.UNKNOWN:
            self.report(
                "RootPath",
                f"{relative} is neither a UDIF image (no koly trailer) nor a raw disk "
                "image (no Apple Partition Map, GPT, MBR, HFS+, HFSX or APFS signature)",
            )
        else:
            self.findings.root_image = self.set_path / relative

    def check_kernels(self, info: NBImageInfo) -> None:
        """Warn when an Apple booter will find no kernel next to it.

        Only Apple's booter loads a kernelcache from its own directory; a set
        whose booter is iPXE or GRUB brings its kernel by other means. We treat
        the booter as Apple's when it is a fat EFI binary or when the plist
        carries the keys only Apple's tools write (osVersion, imageType).
        """
        apple_made = info.os_version is not None or info.siu_image_type is not None
        for arch, booter in self.findings.booters.items():
            booter_dir = self.root / booter.parent
            if not (apple_made or _starts_with(self.root / booter, FAT_EFI_MAGIC)):
                continue
            if not any((booter_dir / name).is_file() for name in KERNEL_NAMES):
                self.report(
                    "BootFile",
                    f"no kernel next to {booter.relative_to(self.set_path)} for {arch} "
                    f"(looked for {', '.join(KERNEL_NAMES)}); the booter will stop after loading",
                    Severity.WARNING,
                )

    def check_pc_boot(self, info: NBImageInfo) -> None:
        """The PC keys: kernels and initrds are files in the set, each kernel for its CPU.

        A missing kernel or initrd is an error like a missing booter: a PC
        would fetch it and stop. The keys that only make sense with
        `PCKernel` are warnings without it, since Macs still boot the set.
        """
        for family, pair in info.pc_kernels.items():
            self.check_pc_pair(family, pair)
        if info.pc_kernel is None:
            for key, present in (
                ("PCInitrd", bool(info.pc_initrds)),
                ("PCCommandLine", info.pc_command_line is not None and not info.pc_kernels),
            ):
                if present:
                    self.report(key, "ignored without PCKernel", Severity.WARNING)
            return
        kernel = self._locate("PCKernel", info.pc_kernel)
        if kernel is not None:
            self.findings.pc_kernel = self.set_path / info.pc_kernel
            fits = self.check_kernel_machine(
                "PCKernel", info.pc_kernel, kernel, info.pc_architectures
            )
            if fits and any(family != Family.BIOS for family in info.pc_architectures):
                self.check_kernel_signature("PCKernel", info.pc_kernel, kernel)
        initrds = [
            self.set_path / initrd
            for initrd in info.pc_initrds
            if self._locate("PCInitrd", initrd) is not None
        ]
        self.findings.pc_initrds = tuple(initrds)
        if info.pc_command_line is not None and "${" in info.pc_command_line:
            self.report(
                "PCCommandLine",
                "iPXE settings (${...}) are not expanded: the iPXE script writes '${' as '$ {'",
                Severity.WARNING,
            )

    def check_pc_pair(self, family: str, pair: PcKernelPair) -> None:
        """One `PCKernels` entry; problems are the key's, each message starts with the family."""
        key = "PCKernels"
        found = [self._locate(key, path, family) for path in (pair.kernel, *pair.initrds)]
        kernel = found[0]
        if kernel is not None:
            fits = self.check_kernel_machine(key, pair.kernel, kernel, (family,), family)
            if fits and family != Family.BIOS:
                self.check_kernel_signature(key, pair.kernel, kernel, family)
        if all(path is not None for path in found):
            self.findings.pc_pairs[family] = tuple(
                self.set_path / path for path in (pair.kernel, *pair.initrds)
            )
        if pair.command_line is not None and "${" in pair.command_line:
            self.report(
                key,
                f"{family}: CommandLine: iPXE settings (${{...}}) are not expanded: "
                "the iPXE script writes '${' as '$ {'",
                Severity.WARNING,
            )

    def check_kernel_machine(
        self,
        key: str,
        relative: str,
        kernel: Path,
        families: tuple[str, ...],
        label: str | None = None,
    ) -> bool:
        """Whether the kernel's CPU is the one every family it is offered to runs.

        A PE image of another CPU is an error: the firmware (or GRUB, iPXE)
        refuses it, so an arm64 kernel never reaches an x86 PC or the reverse.
        A file that is no PE image, or whose PE header is cut short, is an
        error for the non-x86 families (their only kernel format is the EFI
        stub; Debian's arm64 `Image` is one). For `bios` it is what a bzImage
        without an EFI stub is, so validate demands nothing more of a BIOS
        kernel than not being another CPU's PE image; for the x86 UEFI
        families the signature check's warning says it, as it always did.
        """
        prefix = f"{label}: " if label else ""
        try:
            found: MachineCheck = file_machine(kernel)
        except OSError as error:
            self.report(key, f"{prefix}{relative} cannot be read: {error.strerror}")
            return False
        if isinstance(found, PeMachine):
            wrong = [f for f in families if found.machine not in FAMILY_MACHINES.get(f, ())]
            if not wrong:
                return True
            wanted = sorted({MACHINE_NAMES[m] for f in wrong for m in FAMILY_MACHINES[f]})
            self.report(
                key,
                f"{prefix}{relative} is an EFI image for {found.name}; "
                f"{', '.join(wrong)} PCs run {' or '.join(wanted)} images",
            )
            return False
        others = [f for f in families if f not in X86_FAMILIES]
        if not others:
            return True
        what = (
            "is not an EFI (PE/COFF) image"
            if isinstance(found, NotPe)
            else "is a truncated PE image"
        )
        self.report(
            key,
            f"{prefix}{relative} {what} ({found.detail}); "
            f"{', '.join(others)} PCs boot only a kernel with an EFI stub",
        )
        return False

    def check_kernel_signature(
        self, key: str, relative: str, kernel: Path, label: str | None = None
    ) -> None:
        """A UEFI PC with Secure Boot on (most PCs sold) runs only a signed kernel:
        shim and GRUB refuse an unsigned one ("bad shim signature"), so say so now."""
        prefix = f"{label}: " if label else ""
        try:
            found = check_file(kernel)
        except OSError as error:
            self.report(key, f"{prefix}{relative} cannot be read: {error.strerror}")
            return
        if found.signing is Signing.SIGNED:
            return
        consequence = {
            Signing.UNSIGNED: "has no Authenticode signature",
            Signing.DAMAGED: "has a damaged PE/COFF header",
            Signing.NOT_PE: "is not an EFI (PE/COFF) image",
        }[found.signing]
        self.report(
            key,
            f"{prefix}{relative} {consequence} ({found.detail}): UEFI PCs with Secure Boot on "
            "will refuse it; BIOS and Secure Boot off still boot it",
            Severity.WARNING,
        )

    def check_symlinks(self) -> None:
        """Every symlink in the set must stay inside it: TFTP serves the whole arch tree."""
        real_set = self.set_dir.resolve()
        for directory, dirnames, filenames in os.walk(self.set_dir):
            for name in dirnames + filenames:
                link = Path(directory) / name
                if not link.is_symlink():
                    continue
                relative = self.set_path / link.relative_to(self.set_dir).as_posix()
                if relative in self._reported_links:
                    continue
                try:
                    target = link.resolve()
                except (RuntimeError, OSError):
                    message = f"symlink to {link.readlink()} is a symlink loop"
                else:
                    if target == real_set or real_set in target.parents:
                        continue
                    message = f"symlink to {link.readlink()} leaves the set's directory"
                self.findings.problems.append(Problem(relative, NO_KEY, message))


def _is_link(base: Path, relative: str) -> bool:
    """True when any component of `relative` below `base` is a symlink."""
    path = base
    for part in PurePosixPath(relative).parts:
        path = path / part
        if path.is_symlink():
            return True
    return False


def _starts_with(path: Path, magic: bytes) -> bool:
    try:
        with path.open("rb") as stream:
            return stream.read(len(magic)) == magic
    except OSError:
        return False


def _remote_host(root_path: str, form: RootPathForm) -> str | None:
    if form is RootPathForm.HTTP_REMOTE:
        parts = urlsplit(root_path)
        return parts.hostname if parts.scheme in ("http", "https") and parts.path else None
    match = _NFS_REMOTE.fullmatch(root_path)
    return match.group("host") if match else None


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class Claim:
    """One set's bid for a catalog-wide slot (an Index, the default)."""

    set_path: PurePosixPath
    value: int | None
    is_default: bool
    is_valid: bool


def check_conflicts(claims: Sequence[Claim]) -> dict[PurePosixPath, list[Problem]]:
    """Duplicate Index and more than one enabled IsDefault, across the catalog.

    Sets that are valid so far claim first, in scan order; every other set that
    wants the same slot gets an error naming the set that holds it. So a broken
    set never takes an Index away from a good one.
    """
    found: dict[PurePosixPath, list[Problem]] = {}
    ordered = [c for c in claims if c.is_valid] + [c for c in claims if not c.is_valid]
    index_owner: dict[int, PurePosixPath] = {}
    default_owner: PurePosixPath | None = None
    for claim in ordered:
        plist = claim.set_path / PLIST_NAME
        if claim.value is not None:
            owner = index_owner.setdefault(claim.value, claim.set_path)
            if owner != claim.set_path:
                found.setdefault(claim.set_path, []).append(
                    Problem(plist, "Index", f"{claim.value} is already used by {owner}")
                )
        if claim.is_default:
            if default_owner is None:
                default_owner = claim.set_path
            else:
                found.setdefault(claim.set_path, []).append(
                    Problem(
                        plist,
                        "IsDefault",
                        f"{default_owner} is already the default image; only one set may be",
                    )
                )
    return found
