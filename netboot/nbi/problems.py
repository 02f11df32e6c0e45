"""Findings about an NBI set, each naming the file, the key and what is wrong.

An error keeps the set from being served; a warning is printed and the set is
served anyway. `key` is the NBImageInfo.plist key the finding is about, or `-`
when no key is involved (an unreadable plist, a stray symlink).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import PurePosixPath

NO_KEY = "-"


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Problem:
    file: PurePosixPath
    """The file at fault, relative to the image root."""
    key: str
    message: str
    severity: Severity = Severity.ERROR

    def render(self, root: str | None = None) -> str:
        """`<file>: <key>: <message>`, the line `netboot images validate` prints."""
        file = f"{root.rstrip('/')}/{self.file}" if root else str(self.file)
        prefix = "warning: " if self.severity is Severity.WARNING else ""
        return f"{file}: {self.key}: {prefix}{self.message}"
