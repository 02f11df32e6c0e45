"""Keeping every served path inside the directory it is served from.

Every service that maps a name from the network (a TFTP file name, an HTTP path)
or from a plist (BootFile, RootPath) to a file goes through `resolve_within`, so
there is one rule for what "inside" means: after following every symlink, the
file is still below the real path of the base directory.

One directory is the admin's rather than the images': the PXE programs
(`tftp.extra_dir`, `/usr/lib/ipxe` by default). Distributions populate it with
links to files elsewhere (Debian's `ipxe.efi` is a link to `/boot/ipxe.efi`),
and an admin adds links to the loaders they chose. There a name's *last*
component may be a link to a file anywhere (`file_links_may_leave`): such a
link publishes exactly the one file someone with write access to the
directory pointed at. The directories along the name must still stay inside,
so a link to a directory never publishes a tree.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath


class PathRefused(ValueError):  # noqa: N818 - reads as a condition, like FileNotFoundError
    """The name cannot be served from the base directory; the message says why."""


class PathOutsideRoot(PathRefused):
    """The name leaves the base directory (`..`, an absolute path or a symlink)."""


class SymlinkLoop(PathRefused):
    """Following the name's symlinks never ends."""


def is_safe_relative(name: str) -> bool:
    """True for a relative POSIX name without `..`, NUL or backslash."""
    if not name or "\x00" in name or "\\" in name:
        return False
    path = PurePosixPath(name)
    return not path.is_absolute() and ".." not in path.parts


def resolve_within(
    base: Path, relative: str | PurePosixPath, *, file_links_may_leave: bool = False
) -> Path:
    """Return the real path of `base/relative`, or raise PathRefused saying why.

    The file need not exist (a missing file is the caller's error to report);
    symlinks along the way are followed, and the result must stay below
    `base`'s own real path. With `file_links_may_leave` only the directories
    along the name must: the last component may be a link that leads out
    (the caller still checks that what it names is a regular file).
    """
    name = str(relative)
    if not is_safe_relative(name):
        raise PathOutsideRoot(f"{name!r} is not a relative path inside {base}")
    real_base = _resolve(base, name)
    if file_links_may_leave and PurePosixPath(name).parts:
        parent = PurePosixPath(name).parent
        directory = resolve_within(base, parent) if parent.parts else real_base
        return _resolve(directory / PurePosixPath(name).name, name)
    candidate = _resolve(real_base / name, name)
    if candidate != real_base and real_base not in candidate.parents:
        raise PathOutsideRoot(f"{name!r} resolves to {candidate}, outside {real_base}")
    return candidate


def _resolve(path: Path, name: str) -> Path:
    try:
        return path.resolve()
    except RuntimeError:  # Python 3.11 reports a loop this way; 3.13 as OSError(ELOOP)
        raise SymlinkLoop(f"{name!r} is a symlink loop") from None
    except OSError as error:
        raise SymlinkLoop(f"{name!r} cannot be resolved: {error.strerror}") from None
