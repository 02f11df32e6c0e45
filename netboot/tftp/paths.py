"""Which file a TFTP request name means, or why it is refused.

What is served:

* the booter directories of every servable NBI set, by their path under the
  image root (`Alpha.nbi/i386/booter`, `Alpha.nbi/i386/x86_64/kernelcache`):
  Apple's booter fetches the kernel from its own directory, so the whole
  directory is published, and nothing else of the set (not the plist, not the
  disk image, which go by HTTP or NFS);
* the PC kernel and initrds of every servable set that has them, each by its
  path under the image root (`Alpha.nbi/pc/vmlinuz`), so an iPXE without HTTP
  can fetch them by `tftp://`; only those files, not their directory;
* every file under an optional extra directory, by its path there
  (`undionly.kpxe`, `ipxe/ipxe.efi`): the PXE programs. That directory is
  the admin's: a file there may be a link to a file elsewhere (Debian's
  `ipxe.efi` links to `/boot/ipxe.efi`), see `netboot.paths`;
* the signed chains' shim and GRUB by their virtual names
  (`sb/x64/shimx64.efi`, `sb/x64/grubx64.efi`), each from the file the
  configuration names (`[pxe] shim_files`, `grub_files`, links allowed);
* with the chain on, GRUB's configuration, made in memory rather than read
  from a file (`Rendered`): `/grub/grub.cfg`, the same for everyone (also
  at the names of upstream GRUB's own search, `grub.cfg-01-<mac>` ...), and
  the per-client file it sources, rendered from the catalog (`netboot.grub`).
  GRUB's module lists (`/grub/x86_64-efi/command.lst` ...) are "not found",
  which GRUB takes in its stride.

A name may start with `/`, and Apple's absolute form
`/private/tftpboot/NetBoot/NetBootSP0/Alpha.nbi/i386/booter` is understood.
`..`, NUL, backslashes and symlinks that leave the directory (in the extra
directory: links to directories that leave it) are refused as access
violations; a name that is simply not there is "file not found".
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from netboot.grub.config import config_file
from netboot.macaddr import MacAddress
from netboot.nbi.catalog import Catalog
from netboot.nbi.model import PLIST_NAME
from netboot.paths import PathRefused, is_safe_relative, resolve_within
from netboot.pc.choice import ChoiceSettings
from netboot.tftp.wire import ErrorCode

_APPLE_PREFIX = re.compile(r"^(?:private/)?tftpboot/(?:NetBoot/)?")
_SHAREPOINT = re.compile(r"^NetBootSP\d+/")
_DISK_IMAGE_SUFFIXES = (".dmg", ".sparseimage", ".iso", ".img")


@dataclass(frozen=True, slots=True)
class Refusal:
    code: ErrorCode
    reason: str


@dataclass(frozen=True, slots=True)
class Resolved:
    path: Path
    """The real file to send."""
    name: str
    """The normalised request name, for logs."""


@dataclass(frozen=True, slots=True)
class Rendered:
    """Content made for this request (a GRUB configuration), sent from memory."""

    content: bytes
    name: str
    """The normalised request name, for logs."""
    summary: str
    """What it does, for the log and the client's journey."""
    mac: MacAddress | None = None
    """The client it was rendered for; None for content that is the same for everyone."""
    image: str | None = None
    """The image it boots, if it boots one."""


class TftpNamespace:
    """The request-name space of one catalog plus the extra directory and the signed chain."""

    def __init__(
        self,
        catalog: Catalog,
        extra_dir: Path | None = None,
        chain_files: Mapping[str, Path] | None = None,
        grub: ChoiceSettings | None = None,
    ) -> None:
        """`chain_files` maps the shim and GRUB names to their files; `grub`, when given,
        serves GRUB's configuration with that image choice."""
        self.catalog = catalog
        self.image_root = catalog.root
        self.extra_dir = extra_dir
        self.chain_files = dict(chain_files or {})
        self.grub = grub
        # booter directory -> its set; symlinks are followed only within the set.
        self._published = {
            booter.parent: nbi_set.path
            for nbi_set in catalog.servable
            for booter in nbi_set.booters.values()
        }
        # PC kernels and initrds: single files, wherever in the set they are.
        self._pc_files = {
            path: nbi_set.path for nbi_set in catalog.servable for path in nbi_set.pc_files
        }
        # Old ppc sets keep the booter at the top of the set: there only the top
        # level is published, and never the plist or a disk image.
        self._withheld = {
            nbi_set.path: {PLIST_NAME, *([nbi_set.root_image.name] if nbi_set.root_image else [])}
            for nbi_set in catalog.servable
        }

    def resolve(self, request_name: str) -> Resolved | Rendered | Refusal:
        if "\x00" in request_name or "\\" in request_name:
            return Refusal(ErrorCode.ACCESS_VIOLATION, "NUL or backslash in file name")
        name = _APPLE_PREFIX.sub("", request_name.lstrip("/"))
        name = str(PurePosixPath(name)) if name else name  # folds "//" and "/./"
        if not name:
            return Refusal(ErrorCode.FILE_NOT_FOUND, "empty file name")
        if not is_safe_relative(name):
            return Refusal(ErrorCode.ACCESS_VIOLATION, "'..' in file name")
        chained = self.chain_files.get(name)
        if chained is not None:
            return self._open(chained.parent, chained.name, name, file_links_may_leave=True)
        if self.grub is not None:
            rendered = self._grub_config(name, self.grub)
            if rendered is not None:
                return rendered

        for candidate in (name, _SHAREPOINT.sub("", name)):
            path = PurePosixPath(candidate)
            set_path = self._pc_files.get(path) or self._set_publishing(path)
            if set_path is not None:
                inside = PurePosixPath(candidate).relative_to(set_path)
                return self._open(self.image_root / set_path, str(inside), candidate)
        if self.extra_dir is not None:
            return self._open(self.extra_dir, name, name, file_links_may_leave=True)
        return Refusal(ErrorCode.FILE_NOT_FOUND, "not in any served directory")

    def _grub_config(self, name: str, settings: ChoiceSettings) -> Rendered | None:
        found = config_file(self.catalog, name, settings)
        if found is None:
            return None
        return Rendered(found.content, name, found.summary, found.mac, found.image)

    def _set_publishing(self, name: PurePosixPath) -> PurePosixPath | None:
        """The set whose booter directory holds `name`."""
        for directory in name.parents:
            set_path = self._published.get(directory)
            if set_path is None:
                continue
            if directory != set_path:
                return set_path  # an architecture directory: all of it, at any depth
            withheld = name.parent != set_path or name.name in self._withheld[set_path]
            return None if withheld or name.suffix in _DISK_IMAGE_SUFFIXES else set_path
        return None

    @staticmethod
    def _open(
        base: Path, relative: str, name: str, *, file_links_may_leave: bool = False
    ) -> Resolved | Refusal:
        try:
            real = resolve_within(base, relative, file_links_may_leave=file_links_may_leave)
            if not real.is_file():
                return Refusal(ErrorCode.FILE_NOT_FOUND, "no such file")
        except PathRefused as refused:
            return Refusal(ErrorCode.ACCESS_VIOLATION, str(refused))
        except OSError as error:  # e.g. a name longer than the file system allows
            return Refusal(ErrorCode.FILE_NOT_FOUND, error.strerror or "unusable name")
        return Resolved(real, name)
