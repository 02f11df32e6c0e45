"""Keeping every served path inside the directory it is served from.

Every service that maps a name from the network (a TFTP file name, an HTTP path)
or from a plist (BootFile, RootPath) to a file goes through `resolve_within`, so
there is one rule for what "inside" means: after following every symlink, the
file is still below the real path of the base directory.
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


def resolve_within(base: Path, relative: str | PurePosixPath) -> Path:
    """Return the real path of `base/relative`, or raise PathRefused saying why.

    The file need not exist (a missing file is the caller's error to report);
    symlinks along the way are followed, and the result must stay below
    `base`'s own real path.
    """
    name = str(relative)
    if not is_safe_relative(name):
        raise PathOutsideRoot(f"{name!r} is not a relative path inside {base}")
    try:
        real_base = base.resolve()
        candidate = (real_base / name).resolve()
    except RuntimeError:  # Python 3.11 reports a loop this way; 3.13 as OSError(ELOOP)
        raise SymlinkLoop(f"{name!r} is a symlink loop") from None
    except OSError as error:
        raise SymlinkLoop(f"{name!r} cannot be resolved: {error.strerror}") from None
    if candidate != real_base and real_base not in candidate.parents:
        raise PathOutsideRoot(f"{name!r} resolves to {candidate}, outside {real_base}")
    return candidate
