"""What a conversion can be asked for: the output format and the partition layout.

These names live apart from `writer.py` and `layout.py` so that a command line
can offer them as choices without importing the writer, the reader and the
codecs behind them (`netboot dmg --help` should not pay for a conversion).
"""

from __future__ import annotations

from enum import StrEnum


class OutputFormat(StrEnum):
    RAW = "raw"
    UDRO = "UDRO"
    UDZO = "UDZO"
    UDBZ = "UDBZ"
    ULFO = "ULFO"


class LayoutKind(StrEnum):
    AUTO = "auto"
    APM = "apm"
    BARE = "bare"
    KEEP = "keep"
