"""Copying files out of a volume onto the host, safely (`netboot dmg cp`).

The volume is untrusted: a name may be '..' or hold a '/' (hand-made
catalogs), a symlink may point anywhere. So every host path is DEST joined
with names checked by `names.host_name` (refused names are reported, never
"fixed" into something else), nothing is ever written *through* a symlink
(directories are made with mkdir and checked with lstat; files and links are
created beside their target and renamed over it), and every file appears
whole or not at all (`netboot.udif.writer.atomic_output`).
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from netboot.hfs.names import host_name
from netboot.hfs.volume import Entry, EntryKind, HfsVolume
from netboot.udif.writer import atomic_output

Progress = Callable[[int], None]


@dataclass
class ExtractReport:
    """What a copy did: what it wrote, what it skipped (special files) and what it refused."""

    files: int = 0
    directories: int = 0
    symlinks: int = 0
    bytes: int = 0
    skipped: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)


def target_for(entry: Entry, dest: Path, volume_name: str) -> Path | None:
    """Where `entry` goes: inside DEST when DEST is a directory, else DEST itself.

    None when the entry's own name is not a safe host name.
    """
    if dest.is_dir():
        name = host_name(entry.name or volume_name)
        return None if name is None else dest / name
    return dest


def extract(
    volume: HfsVolume, entry: Entry, target: Path, force: bool, progress: Progress | None = None
) -> ExtractReport:
    """Copy `entry` (recursively for a directory) to host path `target`."""
    report = ExtractReport()
    _extract(volume, entry, target, force, report, progress)
    return report


def _extract(
    volume: HfsVolume,
    entry: Entry,
    target: Path,
    force: bool,
    report: ExtractReport,
    progress: Progress | None,
) -> None:
    if entry.kind is EntryKind.DIRECTORY:
        _make_directory(target)
        report.directories += 1
        for child in volume.listdir(entry):
            name = host_name(child.name)
            if name is None:
                report.refused.append(child.path)
                continue
            _extract(volume, child, target / name, force, report, progress)
        _set_times(target, entry, follow=True)
    elif entry.kind is EntryKind.FILE:
        _refuse_existing(target, force)
        reader = volume.open_file(entry)
        with atomic_output(target, force) as fd:
            for block in reader.iter_blocks():
                _write_all(fd, block)
                report.bytes += len(block)
                if progress is not None:
                    progress(len(block))
            os.fchmod(fd, stat.S_IMODE(entry.mode) & 0o777)
            modified = entry.modified.timestamp()
            os.utime(fd, (modified, modified))
        report.files += 1
    elif entry.kind is EntryKind.SYMLINK:
        _refuse_existing(target, force)
        link_target = volume.read_link(entry)
        temporary = target.with_name(f".{target.name}.{os.getpid()}.link")
        temporary.symlink_to(link_target)
        try:
            temporary.replace(target)
        except BaseException:
            temporary.unlink()
            raise
        report.symlinks += 1
    else:
        report.skipped.append(f"{entry.path} ({entry.kind})")


def _refuse_existing(target: Path, force: bool) -> None:
    if force or not os.path.lexists(target):
        return
    raise FileExistsError(errno.EEXIST, "already exists (use --force to replace it)", str(target))


def _make_directory(target: Path) -> None:
    try:
        target.mkdir(0o755)
        return
    except FileExistsError:
        pass
    # An existing directory is merged into; a symlink there is never followed.
    if not stat.S_ISDIR(os.lstat(target).st_mode):
        raise FileExistsError(errno.EEXIST, "exists and is not a directory", str(target))


def _set_times(target: Path, entry: Entry, follow: bool) -> None:
    modified = entry.modified.timestamp()
    os.utime(target, (modified, modified), follow_symlinks=follow)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
