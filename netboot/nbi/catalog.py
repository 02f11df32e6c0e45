"""The image catalog: every NBI set under the image root, read once, immutable.

`scan_catalog(root)` finds `*.nbi` directories at the top of the root and one
level down (Apple keeps them in sharepoints such as `NetBootSP0/`, so a copied
`/Library/NetBoot` works as it is), reads each `NBImageInfo.plist`, checks its
files and then checks the sets against each other. A broken set is kept in the
catalog with its problems, so listings can show it; it is never served, and it
never stops the other sets from loading.

Services hold one `Catalog` at a time and swap it whole on reload, so a request
never sees a half-scanned root.
"""

from __future__ import annotations

import plistlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any
from xml.parsers.expat import ExpatError

from netboot.nbi.image_id import BootImageId
from netboot.nbi.model import (
    DEFAULT_PC_ARCHITECTURES,
    PLIST_NAME,
    NBImageInfo,
    ParsedImageInfo,
    parse_image_info,
)
from netboot.nbi.problems import NO_KEY, Problem, Severity
from netboot.nbi.validate import Claim, check_conflicts, check_set_files
from netboot.paths import PathOutsideRoot, SymlinkLoop, resolve_within
from netboot.udif.detect import ImageFormat

SET_SUFFIX = ".nbi"


@dataclass(frozen=True)
class NbiSet:
    """One `X.nbi` directory and everything known about it."""

    path: PurePosixPath
    """The set's directory relative to the image root."""
    parsed: ParsedImageInfo
    booters: Mapping[str, PurePosixPath] = field(default_factory=dict)
    """Booter per client architecture, relative to the image root."""
    root_image: PurePosixPath | None = None
    """The local root image relative to the image root; None when remote or absent."""
    root_image_format: ImageFormat | None = None
    pc_kernel: PurePosixPath | None = None
    """`PCKernel` relative to the image root, once found in the set."""
    pc_initrds: tuple[PurePosixPath, ...] = ()
    """`PCInitrd` relative to the image root, in boot order."""
    pc_pairs: Mapping[str, tuple[PurePosixPath, ...]] = field(default_factory=dict)
    """`PCKernels` per family: kernel then initrds relative to the image root, once found."""
    problems: tuple[Problem, ...] = ()

    @property
    def info(self) -> NBImageInfo | None:
        return self.parsed.info

    @property
    def errors(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.severity is Severity.ERROR)

    @property
    def warnings(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.severity is Severity.WARNING)

    @property
    def is_valid(self) -> bool:
        return self.info is not None and not self.errors

    @property
    def is_servable(self) -> bool:
        """Valid and enabled: what BSDP may offer."""
        return self.is_valid and self.info is not None and self.info.is_enabled

    @property
    def image_id(self) -> BootImageId | None:
        """The BSDP image ID, also for a broken set when its keys allow it."""
        if self.info is not None:
            return self.info.image_id
        fields = self.parsed.fields
        if "index" not in fields:
            return None
        try:
            return BootImageId(
                index=fields["index"],
                kind=fields.get("kind", 1),
                is_install=fields.get("is_install", False),
            )
        except ValueError:
            return None

    @property
    def claim(self) -> Claim:
        """Its bid for an Index and for being the default (an enabled IsDefault)."""
        fields = self.parsed.fields
        return Claim(
            set_path=self.path,
            value=fields.get("index"),
            is_default=bool(fields.get("is_default")) and bool(fields.get("is_enabled", True)),
            is_valid=self.is_valid,
        )

    @property
    def pc_bootable(self) -> bool:
        """Servable sets with this true can be offered to PCs (iPXE) as well as Macs."""
        found = self.pc_kernel is not None or bool(self.pc_pairs)
        return self.info is not None and self.info.pc_bootable and found

    @property
    def pc_files(self) -> tuple[PurePosixPath, ...]:
        """The kernels and initrds PCs fetch (every family's), relative to the image root."""
        primary = (self.pc_kernel, *self.pc_initrds) if self.pc_kernel is not None else ()
        return (*primary, *(path for files in self.pc_pairs.values() for path in files))

    @property
    def booter(self) -> PurePosixPath | None:
        """The booter of the first listed architecture that has one."""
        return next(iter(self.booters.values()), None)

    def summary(self, root_label: str | None = None) -> dict[str, Any]:
        """The JSON object `netboot images list --json` prints for this set."""
        fields = self.parsed.fields
        image_id = self.image_id
        image_type = fields.get("image_type")
        return {
            "id": int(image_id) if image_id is not None else None,
            "index": fields.get("index"),
            "name": fields.get("name"),
            "description": fields.get("description"),
            "kind": fields.get("kind", 1 if "index" in fields else None),
            "is_install": fields.get("is_install", False),
            "is_enabled": fields.get("is_enabled", True),
            "is_default": fields.get("is_default", False),
            "type": str(image_type) if image_type is not None else None,
            "architectures": list(fields.get("architectures", ("ppc",))),
            "booter": str(self.booter) if self.booter else None,
            "booters": {arch: str(path) for arch, path in self.booters.items()},
            "root_path": fields.get("root_path"),
            "root_image": str(self.root_image) if self.root_image else None,
            "root_image_format": str(self.root_image_format) if self.root_image_format else None,
            "supports_diskless": fields.get("supports_diskless", False),
            "pc_kernel": str(self.pc_kernel) if self.pc_kernel else None,
            "pc_initrds": [str(initrd) for initrd in self.pc_initrds],
            "pc_command_line": fields.get("pc_command_line"),
            "pc_architectures": list(fields.get("pc_architectures", DEFAULT_PC_ARCHITECTURES))
            if "pc_kernel" in fields
            else [],
            "pc_kernels": {
                family: {
                    "kernel": pair.kernel,
                    "initrds": list(pair.initrds),
                    "command_line": pair.command_line,
                }
                for family, pair in fields.get("pc_kernels", {}).items()
            },
            "pc_families": list(self.info.pc_families) if self.info is not None else [],
            "path": str(self.path),
            "valid": self.is_valid,
            "errors": [p.render(root_label) for p in self.errors],
            "warnings": [p.render(root_label) for p in self.warnings],
        }


@dataclass(frozen=True)
class Catalog:
    root: Path
    sets: tuple[NbiSet, ...] = ()

    def __iter__(self) -> Iterator[NbiSet]:
        return iter(self.sets)

    def __len__(self) -> int:
        return len(self.sets)

    @property
    def servable(self) -> tuple[NbiSet, ...]:
        return tuple(s for s in self.sets if s.is_servable)

    @property
    def problems(self) -> tuple[Problem, ...]:
        return tuple(p for s in self.sets for p in s.problems)

    def by_image_id(self, image_id: int) -> NbiSet | None:
        """The servable set with this wire image ID."""
        for nbi_set in self.servable:
            if nbi_set.image_id is not None and int(nbi_set.image_id) == image_id:
                return nbi_set
        return None

    def by_path(self, path: str) -> NbiSet | None:
        """A set by its directory (`Alpha.nbi`, `NetBootSP0/Alpha.nbi`) or bare name."""
        wanted = path.strip("/")
        for nbi_set in self.sets:
            if str(nbi_set.path) == wanted or nbi_set.path.name in (wanted, wanted + SET_SUFFIX):
                return nbi_set
        return None


def find_set_directories(root: Path) -> list[PurePosixPath]:
    """`*.nbi` directories at the top of `root` and inside its other directories."""
    found: list[PurePosixPath] = []
    for entry in sorted(root.iterdir()):
        if entry.name.startswith("."):
            continue
        if _is_set(entry):
            found.append(PurePosixPath(entry.name))
        elif entry.is_dir() and not entry.is_symlink():
            found.extend(
                PurePosixPath(entry.name, inner.name)
                for inner in sorted(entry.iterdir())
                if _is_set(inner)
            )
    return found


def _is_set(entry: Path) -> bool:
    """A `*.nbi` directory, or a `*.nbi` symlink that leads to none (a loop, a dangling
    or misdirected link): listed so that the scan reports it instead of skipping it."""
    return entry.name.endswith(SET_SUFFIX) and (entry.is_dir() or entry.is_symlink())


def read_plist(root: Path, set_path: PurePosixPath) -> ParsedImageInfo:
    """Parse a set's NBImageInfo.plist (XML or binary); problems name the file."""
    file = set_path / PLIST_NAME
    try:
        raw = (root / file).read_bytes()
    except FileNotFoundError:
        return _unreadable(file, f"{PLIST_NAME} is missing")
    except OSError as error:
        return _unreadable(file, f"cannot be read: {error.strerror}")
    try:
        plist = plistlib.loads(raw)
    except (plistlib.InvalidFileException, ExpatError, ValueError, TypeError) as error:
        return _unreadable(file, f"not a valid plist: {error}")
    except Exception as error:  # noqa: BLE001 - plistlib's binary reader raises anything
        return _unreadable(file, f"not a valid plist: {type(error).__name__}: {error}")
    return parse_image_info(plist, file)


def _unreadable(file: PurePosixPath, message: str) -> ParsedImageInfo:
    return ParsedImageInfo(None, {}, (Problem(file, NO_KEY, message),))


def scan_catalog(root: Path) -> Catalog:
    """Read every set under `root`. Raises NotADirectoryError if root is not one."""
    if not root.is_dir():
        raise NotADirectoryError(f"image root {root} is not a directory")
    sets: list[NbiSet] = []
    for set_path in find_set_directories(root):
        parsed = read_plist(root, set_path)
        nbi_set = NbiSet(path=set_path, parsed=parsed, problems=parsed.problems)
        try:
            resolve_within(root, set_path)
        except PathOutsideRoot:
            escape = Problem(
                set_path,
                NO_KEY,
                f"the set directory is a symlink to {(root / set_path).resolve()}, "
                "outside the image root",
            )
            sets.append(replace(nbi_set, problems=(escape, *nbi_set.problems)))
            continue
        except SymlinkLoop as error:  # `X.nbi -> X.nbi`: an error of the set, not of the scan
            loop = Problem(set_path, NO_KEY, str(error))
            sets.append(replace(nbi_set, problems=(loop, *nbi_set.problems)))
            continue
        if parsed.info is not None:
            findings = check_set_files(root, set_path, parsed.info)
            nbi_set = replace(
                nbi_set,
                booters=findings.booters,
                root_image=findings.root_image,
                root_image_format=findings.root_image_format,
                pc_kernel=findings.pc_kernel,
                pc_initrds=findings.pc_initrds,
                pc_pairs=findings.pc_pairs,
                problems=nbi_set.problems + tuple(findings.problems),
            )
        sets.append(nbi_set)

    conflicts = check_conflicts([s.claim for s in sets])
    sets = [replace(s, problems=s.problems + tuple(conflicts.get(s.path, ()))) for s in sets]
    return Catalog(root=root, sets=tuple(sets))
