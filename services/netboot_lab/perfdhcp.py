"""Kea's perfdhcp, run in a client namespace, and its report read into numbers.

perfdhcp is the load generator of the DHCP benchmark (IPv4 and IPv6) and the
storm client of the DHCPv6 tests, so both read its report the same way: the
"Rate" line (completed exchanges a second) and, per exchange ("DISCOVER-OFFER",
"REQUEST-ACK"; for DHCPv6 "SOLICIT-ADVERTISE", "REQUEST-REPLY"), its counters.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

from netboot_lab.netns import LabError
from netboot_lab.process import in_namespace

COUNTER = re.compile(
    r"^(sent packets|received packets|drops|orphans|rejected leases|non unique addresses): (\d+)$"
)
RATE = re.compile(r"^Rate: ([\d.]+) 4-way exchanges/second")
DROPS_EXIT = 3
"""perfdhcp's exit status when some exchanges were dropped: normal under load."""
V4_LAST = "REQUEST-ACK"
V6_FIRST, V6_LAST = "SOLICIT-ADVERTISE", "REQUEST-REPLY"


@dataclass(frozen=True)
class PerfdhcpReport:
    rate: float
    """Completed 4-way exchanges per second."""
    counters: dict[str, dict[str, int]]
    """Counters per exchange, e.g. counters["REQUEST-REPLY"]["received packets"]."""
    output: str
    """The whole report, for a failure message."""

    def count(self, exchange: str, counter: str) -> int:
        return self.counters.get(exchange, {}).get(counter, 0)


def parse_report(output: str, last_exchange: str) -> PerfdhcpReport:
    """perfdhcp's report; RuntimeError when it has no rate or no `last_exchange` section."""
    rate = None
    counters: dict[str, dict[str, int]] = {}
    section: dict[str, int] | None = None
    for raw in output.splitlines():
        line = raw.strip()
        if found := RATE.match(line):
            rate = float(found.group(1))
        elif header := re.match(r"\*\*\*Statistics for: (\S+)\*\*\*", line):
            section = counters.setdefault(header.group(1), {})
        elif (counter := COUNTER.match(line)) and section is not None:
            section[counter.group(1)] = int(counter.group(2))
    if rate is None or last_exchange not in counters:
        raise RuntimeError(f"cannot read perfdhcp's report:\n{output}")
    return PerfdhcpReport(rate, counters, output)


def perfdhcp_command(
    family: int, interface: str, rate: int, clients: int, *extra: str
) -> list[str]:
    """`perfdhcp -4|-6 -l INTERFACE -r RATE -R CLIENTS EXTRA...`.

    With -6 and an interface, perfdhcp sends from the interface's link-local
    address to ff02::1:2, as a directly attached client does.
    """
    return ["perfdhcp", f"-{family}", "-l", interface, "-r", str(rate), "-R", str(clients), *extra]


def run_perfdhcp(
    namespace: str, command: Sequence[str], last_exchange: str, timeout: float
) -> PerfdhcpReport:
    """Run perfdhcp in `namespace`; its report, or LabError when it failed outright."""
    done = subprocess.run(
        in_namespace(namespace, command),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode not in (0, DROPS_EXIT):
        raise LabError(f"perfdhcp exited {done.returncode}: {done.stderr or done.stdout}")
    return parse_report(done.stdout, last_exchange)
