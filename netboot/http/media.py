"""Which Content-Type a served file is sent with, from its name.

A few types are fixed because a client depends on them rather than on a
guess: UEFI HTTP boot runs what is sent as `application/efi` (docs/protocols/pxe.md §7.1),
and the Mac's disk images are `application/x-apple-diskimage`. Anything else
is what `mimetypes` guesses, or `application/octet-stream`.
"""

from __future__ import annotations

import mimetypes
from functools import lru_cache
from pathlib import PurePosixPath

MIME_TYPES = {
    ".dmg": "application/x-apple-diskimage",
    ".ipxe": "text/plain",
    ".efi": "application/efi",  # UEFI HTTP boot runs it: docs/protocols/pxe.md §7.1
}


def content_type(name: str | PurePosixPath) -> str:
    return _content_type(str(name))


@lru_cache(maxsize=1024)
def _content_type(text: str) -> str:
    """Remembered per name: every range of a root image asks again."""
    suffix = PurePosixPath(text).suffix.lower()
    guessed = MIME_TYPES.get(suffix) or mimetypes.guess_type(text)[0]
    return guessed or "application/octet-stream"
