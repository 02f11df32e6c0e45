"""The one shape every service's counters take: a dataclass of ints with as_dict().

The admin service turns any of them into Prometheus counters and status JSON
(`netboot_<service>_<field>_total`), so a new counter is one new field.
"""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass
class Counters:
    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}
