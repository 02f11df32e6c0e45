"""One audit line per change made through the admin API or console: who, what, before, after.

A JSON object per line, so a log collector or `jq` reads it without a parser
of ours; `who` is the credential's label (`token`, `session 1a2b3c4d`), never
the credential, and `address` where the request came from. The daemon's log
gets the same line (namespace `netboot.audit`), and `admin.audit_log` a file
of them alone, appended and flushed per change.
"""

from __future__ import annotations

import json
import time
from typing import Any


def audit_line(
    *,
    who: str,
    address: str,
    action: str,
    target: str,
    before: Any,
    after: Any,
    now: float,
) -> str:
    """`action` is what was done (`assign`, `unassign`, `edit image`), `target` to what."""
    record = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
        "who": who,
        "address": address,
        "action": action,
        "target": target,
        "before": before,
        "after": after,
    }
    return json.dumps(record, separators=(",", ":"), sort_keys=False)
