"""Which file an HTTP request path means, or why it is refused.

The catalog is published at `/<set>/<path inside the set>`: `/Alpha.nbi/
NetBoot.dmg`, `/NetBootSP0/Beta.nbi/i386/booter`; only servable sets. Each
path segment is percent-decoded on its own and then judged, so an encoded
`%2e%2e`, `%2f` or `%00` is caught like a literal one: `.` and `..`
segments, NUL, backslashes, slashes inside a segment and undecodable bytes are
400; a name that is not there, or a symlink that leaves its set, is 404.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import unquote_to_bytes

from netboot.nbi.catalog import Catalog
from netboot.paths import PathRefused, resolve_within


@dataclass(frozen=True, slots=True)
class Refusal:
    status: int
    reason: str


@dataclass(frozen=True, slots=True)
class Resolved:
    path: Path
    """The real file or directory."""
    name: PurePosixPath
    """The request path relative to the image root, decoded, for logs."""
    named: Path
    """The file as the request names it, before symlinks are followed: what must
    still lead to the same file for a remembered resolution to hold."""


def decode_segments(raw_path: bytes) -> list[str] | Refusal:
    """Split and percent-decode a request path (query string already removed)."""
    if not raw_path.startswith(b"/"):
        return Refusal(400, "path does not start with '/'")
    segments: list[str] = []
    for raw in raw_path.split(b"/")[1:]:
        decoded = unquote_to_bytes(raw)
        try:
            text = decoded.decode("utf-8")
        except UnicodeDecodeError:
            return Refusal(400, "path is not UTF-8")
        if "\x00" in text or "\\" in text or "/" in text:
            return Refusal(400, "NUL, backslash or encoded slash in path")
        if text in (".", ".."):
            return Refusal(400, "'.' or '..' in path")
        segments.append(text)
    return [s for s in segments if s]


class HttpNamespace:
    def __init__(self, catalog: Catalog) -> None:
        self.image_root = catalog.root
        self._sets = {nbi_set.path.parts: nbi_set.path for nbi_set in catalog.servable}

    def resolve(self, raw_path: bytes) -> Resolved | Refusal:
        segments = decode_segments(raw_path)
        if isinstance(segments, Refusal):
            return segments
        for depth in (1, 2):
            set_path = self._sets.get(tuple(segments[:depth]))
            if set_path is not None:
                inside = segments[depth:]
                break
        else:
            return Refusal(404, "not a served NBI set")
        base = self.image_root / set_path
        try:
            real = resolve_within(base, "/".join(inside)) if inside else base.resolve()
            if not real.exists():
                return Refusal(404, "no such file")
        except PathRefused as refused:
            return Refusal(404, str(refused))
        except OSError as error:  # e.g. a name longer than the file system allows
            return Refusal(404, error.strerror or "unusable name")
        return Resolved(real, PurePosixPath(*segments), base.joinpath(*inside))


def resolve_boot_file(directory: Path, raw_path: bytes) -> Resolved | Refusal:
    """A file of the PXE programs directory (`/boot/<raw_path>`): for UEFI HTTP boot.

    The directory is the admin's, so its files may be links to files elsewhere
    (Debian's `ipxe.efi`), as over TFTP; see `netboot.paths`.
    """
    segments = decode_segments(raw_path)
    if isinstance(segments, Refusal):
        return segments
    if not segments:
        return Refusal(404, "no file named")
    try:
        real = resolve_within(directory, "/".join(segments), file_links_may_leave=True)
        if not real.is_file():
            return Refusal(404, "no such file")
    except PathRefused as refused:
        return Refusal(404, str(refused))
    except OSError as error:
        return Refusal(404, error.strerror or "unusable name")
    return Resolved(real, PurePosixPath("boot", *segments), directory.joinpath(*segments))
