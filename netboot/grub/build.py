"""A network GRUB that reads by HTTP, built from Debian's own GRUB modules.

Debian's signed network GRUB (`grubnetaa64.efi.signed`) has `tftp` but no
`http` module, and under Secure Boot it may load none: after UEFI HTTP boot it
has no way to read its configuration or a kernel. Debian ships no arm64 iPXE
either, so an arm64 HTTP-boot client would have nothing to run. This GRUB is
made with `grub-mkimage` (the host's `grub-common`) from the modules of
Debian's unsigned `grub-efi-<arch>-bin` for the family's architecture,
fetched without installing it (`netboot.debian`). It is unsigned, so it
boots with Secure Boot off.

It embeds no configuration, only the prefix `/grub`: GRUB takes the device
from where the firmware loaded it. After HTTP boot that is `(http,<server>)`
(Debian's GRUB builds the network settings from the firmware's device path:
the address, the server and `HTTPClient`), after PXE `(tftp,<server>)`.
Either way it then reads `/grub/grub.cfg` and the client's own file, rendered
from the catalog exactly as for the signed chain (`netboot.grub.config`), and
the kernel and initrds by the same paths, from the same device
(docs/protocols/pxe.md §8.4).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from netboot.config import HTTP_GRUB_PACKAGES, SIGNED_CHAIN_ARCHITECTURES, PxeConfig
from netboot.debian import apt_for, run, unpack_packages
from netboot.errors import ImageError
from netboot.grub.config import GRUB_TARGETS

MKIMAGE = "grub-mkimage"
PREFIX = "/grub"
"""GRUB's embedded prefix, without a device: where it asks for `grub.cfg`."""
MODULES = (
    "normal",
    "configfile",
    "echo",
    "test",
    "true",
    "sleep",
    "minicmd",
    "regexp",
    "linux",
    "gzio",
    "chain",
    "reboot",
    "halt",
    "efinet",
    "net",
    "http",
    "tftp",
    "part_gpt",
    "fat",
    "serial",
    "terminal",
    "all_video",
)
"""What the configurations we render use (menus, `source`, `linux`, `initrd`, `echo`,
`sleep`, `exit`), the network (`efinet`, `http`, `tftp`), and enough besides to be of use
at its prompt. `grub-mkimage` adds what these depend on."""
FORMATS = {
    family: target for target, family in GRUB_TARGETS.items() if family in HTTP_GRUB_PACKAGES
}
"""`grub-mkimage -O` per family (`arm64-efi`), which is also the module directory's name."""


def default_output(family: str) -> Path:
    """Where the daemon looks for `family`'s HTTP GRUB unless told otherwise (the default
    `[pxe] http_grub_files`): what `build-http-grub` writes and the lab checks for."""
    return Path(dict(PxeConfig().http_grub_files)[family])


def mkimage_command(family: str, module_dir: Path, output: Path) -> list[str]:
    """The `grub-mkimage` command line that builds `family`'s HTTP GRUB into `output`."""
    return [
        MKIMAGE,
        "--format",
        FORMATS[family],
        "--directory",
        str(module_dir),
        "--prefix",
        PREFIX,
        "--output",
        str(output),
        *MODULES,
    ]


def build_http_grub(family: str, output: Path) -> Path:
    """Build `family`'s HTTP GRUB at `output`, from Debian's modules fetched now.

    The image is written beside `output` and renamed over it, so a reader never
    sees half of one and a failed build leaves the old one. ImageError says
    which tool failed and what it said.
    """
    if shutil.which(MKIMAGE) is None:
        raise ImageError(MKIMAGE, "-", "not found: install Debian's grub-common")
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=output.parent, prefix=".build-") as scratch:
        work = Path(scratch)
        apt = apt_for(SIGNED_CHAIN_ARCHITECTURES[family])
        unpack_packages([HTTP_GRUB_PACKAGES[family]], work / "tree", apt)
        module_dir = work / "tree" / "usr" / "lib" / "grub" / FORMATS[family]
        if not (module_dir / "http.mod").is_file():
            package = HTTP_GRUB_PACKAGES[family]
            raise ImageError(str(module_dir), "-", f"{package} holds no http.mod")
        partial = work / output.name
        run(mkimage_command(family, module_dir, partial), work)
        partial.replace(output)
    return output
