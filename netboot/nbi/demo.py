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
from dataclasses import dataclass
from pathlib import Path

from netboot.errors import ImageError

DEBIAN_IPXE_EFI = Path("/usr/lib/ipxe/ipxe.efi")
DEMO_SET_NAME = "Demo"
PC_COMMAND_LINE = "console=ttyS0 quiet panic=-1"
"""ttyS0 is where the lab reads the marker; panic=-1 turns a failed boot into a reboot,
which QEMU's -no-reboot turns into an exit instead of a hang."""


@dataclass(frozen=True, slots=True)
class PcBootFiles:
    """The kernel and initrd that let the demo set boot PCs too, and their command line."""

    kernel: Path
    initrd: Path
    command_line: str = PC_COMMAND_LINE


def build_demo_set(
    root: Path,
    name: str = DEMO_SET_NAME,
    booter: Path = DEBIAN_IPXE_EFI,
    replace_existing: bool = False,
    pc_files: PcBootFiles | None = None,
) -> Path:
    """Create `root/<name>.nbi` with `netboot nbi create`'s builder; returns its path.

    Raises ImageError saying what is missing; a failed build leaves nothing.
    """
    # Imported here: `netboot images --help` shows this module's defaults, and the
    # builder brings the UDIF writer with it.
    from netboot.nbi.create import SetSpec, create_set

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
            name="netboot demo (iPXE)",
            index=1,
            booter=booter,
            root_dir=Path(content),
            default=True,
            description="Built by `netboot images demo` from Debian's packages.",
            pc_kernel=pc_files.kernel if pc_files else None,
            pc_initrds=(pc_files.initrd,) if pc_files else (),
            pc_command_line=pc_files.command_line if pc_files else None,
        )
        built, _ = create_set(spec, target, overwrite=replace_existing)
    return built
