"""Files from Debian's packages, taken without installing the packages.

`apt-get download` fetches the `.deb` files into a scratch directory and
`dpkg-deb -x` unpacks them there; no maintainer script runs, so nothing on
the host changes. That matters for the files we serve: shim-signed's
postinst reinstalls the boot loader of a UEFI host, and a kernel package
writes to /boot. The unpacked tree is then moved into place file by file
with a rename each, so a reader never sees a file half written and an
interrupted fetch leaves the old files whole.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from netboot.errors import ImageError

TOOLS = ("apt-get", "dpkg-deb")


def unpack_packages(packages: Sequence[str], into: Path) -> list[Path]:
    """Download `packages` and unpack their files under `into` (as if `into` were `/`).

    Returns the files put in place. ImageError names the tool and what it said
    when a tool is missing or a package cannot be had (not in the apt lists:
    `apt-get update` first).
    """
    for tool in TOOLS:
        if shutil.which(tool) is None:
            raise ImageError(tool, "-", "not found: these files come from Debian's archive")
    into.mkdir(parents=True, exist_ok=True)
    placed: list[Path] = []
    with tempfile.TemporaryDirectory(dir=into, prefix=".unpack-") as scratch:
        work = Path(scratch)
        run(["apt-get", "download", "-q", *packages], work)
        tree = work / "tree"
        for deb in sorted(work.glob("*.deb")):
            run(["dpkg-deb", "-x", str(deb), str(tree)], work)
        for source in sorted(path for path in tree.rglob("*") if path.is_file()):
            target = into / source.relative_to(tree)
            target.parent.mkdir(parents=True, exist_ok=True)
            source.replace(target)
            placed.append(target)
    return placed


def run(command: list[str], cwd: Path) -> str:
    """Run a packaging tool; its standard output, or ImageError with what it said."""
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ImageError(command[0], "-", f"{' '.join(command)} failed: {done.stderr.strip()}")
    return done.stdout


def versioned_package(meta_package: str) -> str:
    """The versioned package a meta-package depends on (`linux-image-amd64` ->
    `linux-image-6.1.0-57-amd64`): `apt-get download` fetches no dependencies, so
    the files come from the package the meta-package points at."""
    done = subprocess.run(
        ["apt-cache", "depends", "--important", meta_package],
        capture_output=True,
        text=True,
        check=False,
    )
    found = re.search(r"Depends:\s*(\S+)", done.stdout)
    if found is None:
        raise ImageError(meta_package, "-", "not in the apt lists (run apt-get update, as root)")
    return found.group(1)
