"""Build a small, real NBI set from files Debian ships, for a fresh server.

The set boots iPXE's EFI build as its booter (an Intel Mac runs any EFI binary
BSDP hands it; iPXE then chains on over the network), and its root image is an
Apple Partition Map disk with an HFS+ volume made by xorriso, the same layout as
System Image Utility's NetBoot.dmg, stored as UDZO. Nothing third-party is
committed: the files come from the `ipxe` and `xorriso` packages at set-up
time, and the set is built by the same code as `netboot nbi create`. With
`pc_files` (Debian's kernel and a busybox initrd, fetched by `netboot_lab.assets`) the
same set boots PCs too: the QEMU lab boots it to a marker on the console.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from netboot.errors import ImageError

DEBIAN_IPXE_EFI = Path("/usr/lib/ipxe/ipxe.efi")
DEMO_SET_NAME = "Demo"
PC_COMMAND_LINE = "console=ttyS0 quiet panic=-1"
"""ttyS0 is where the lab reads the marker; panic=-1 turns a failed boot into a reboot,
which QEMU's -no-reboot turns into an exit instead of a hang."""
ARM64_COMMAND_LINE = "console=ttyAMA0 quiet panic=-1"
"""The same for arm64 guests, whose serial console is the PL011 (ttyAMA0), not a 16550."""
ARM64_FAMILIES = ("efi-arm64",)


@dataclass(frozen=True, slots=True)
class PcBootFiles:
    """The kernel and initrd that let the demo set boot PCs too, and their command line."""

    kernel: Path
    initrd: Path
    command_line: str = PC_COMMAND_LINE
    architectures: tuple[str, ...] | None = None
    """`PCArchitectures` of the set; None: the default families (bios, efi-x64)."""


def build_demo_set(
    root: Path,
    name: str = DEMO_SET_NAME,
    booter: Path = DEBIAN_IPXE_EFI,
    replace_existing: bool = False,
    pc_files: PcBootFiles | None = None,
    title: str = "netboot demo (iPXE)",
    index: int = 1,
    default: bool = True,
    pc_pairs: Sequence[PcBootFiles] = (),
) -> Path:
    """Create `root/<name>.nbi` with `netboot nbi create`'s builder; returns its path.

    `pc_pairs`: more PC boot files, each for the families it names (`architectures`),
    written as `PCKernels` pairs: the lab's one demo set carries x86's kernel and
    arm64's, and each PC gets the pair of its firmware family.

    Raises ImageError saying what is missing; a failed build leaves nothing.
    """
    # Imported here: `netboot images --help` shows this module's defaults, and the
    # builder brings the UDIF writer with it.
    from netboot.nbi.create import PcPairSpec, SetSpec, create_set

    target = root / f"{name}.nbi"
    if target.exists() and not replace_existing:
        raise ImageError(str(target), "-", "already exists (use --force to rebuild it)")
    if not booter.is_file():
        raise ImageError(str(booter), "-", "booter not found (install Debian's ipxe package)")
    with tempfile.TemporaryDirectory() as content:
        (Path(content) / "README.txt").write_text(
            "This volume was built by `netboot images demo`.\n"
            "A NetBoot client mounts it read-only as its root image.\n"
        )
        spec = SetSpec(
            name=title,
            index=index,
            booter=booter,
            root_dir=Path(content),
            default=default,
            description="Built by `netboot images demo` from Debian's packages.",
            pc_kernel=pc_files.kernel if pc_files else None,
            pc_initrds=(pc_files.initrd,) if pc_files else (),
            pc_command_line=pc_files.command_line if pc_files else None,
            pc_pairs=tuple(
                PcPairSpec(family, files.kernel, (files.initrd,), files.command_line)
                for files in pc_pairs
                for family in files.architectures or ()
            ),
            plist_extra=_architectures(pc_files),
        )
        built, _ = create_set(spec, target, overwrite=replace_existing)
    return built


def _architectures(pc_files: PcBootFiles | None) -> dict[str, object]:
    if pc_files is None or pc_files.architectures is None:
        return {}
    return {"PCArchitectures": list(pc_files.architectures)}
