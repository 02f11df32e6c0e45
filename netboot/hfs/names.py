"""Names as HFS+ stores them, as POSIX shows them, and as a host file system may take them.

A catalog key holds UTF-16BE in Apple's decomposed form, with a POSIX ':'
stored as '/' and a NUL as U+0000 (TN1150 "HFS Plus Names"; libfshfs's
format description). Listing shows the POSIX form; matching a path typed by a
user compares NFC forms (and case folds on a case-insensitive volume) so that
"Résumé" typed precomposed finds the decomposed name on disk.
"""

from __future__ import annotations

import unicodedata

NUL_SHOWN = "\u2400"
"""POSIX shows a NUL in an HFS+ name as SYMBOL FOR NULL (xnu's hfs_unicode conversion)."""


def from_key(stored: str) -> str:
    """The POSIX name of a catalog name: '/' becomes ':', NUL becomes U+2400."""
    return stored.replace("/", ":").replace("\0", NUL_SHOWN)


def match_key(name: str, case_sensitive: bool) -> str:
    """The form two names are compared in: NFC, and case folded unless the volume is HFSX binary."""
    normal = unicodedata.normalize("NFC", name)
    return normal if case_sensitive else normal.casefold()


def host_name(name: str) -> str | None:
    """`name` as one safe host path component, or None when it cannot be one.

    The volume is untrusted input: a name must not climb out of the directory
    it is extracted into. '/' cannot appear in a POSIX name read from the
    volume (from_key turned it into ':'), but a hand-made catalog can hold
    anything, so it is checked again here, with NUL, '.' and '..'.
    """
    if name in ("", ".", "..") or "/" in name or "\0" in name:
        return None
    if len(name.encode("utf-8", "surrogatepass")) > 255:
        return None
    return name
