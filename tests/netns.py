"""pytest glue for the namespaces of `netboot_lab.netns`: skip where they cannot exist.

The namespaces themselves are made by `netboot_lab` (shared with the lab and the
benchmarks); here is only what turns a missing privilege or tool into a skip.
With NETBOOT_REQUIRE_ALL=1 those skips turn into failures (see conftest.py).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from netboot_lab.loss import impairment_possible
from netboot_lab.netns import Segment, VethPair, bridge_segment, veth_pair


def require_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to create network namespaces")
    if subprocess.run(["ip", "-V"], capture_output=True, check=False).returncode != 0:
        pytest.skip("needs iproute2 (ip)")


@contextmanager
def veth_lab(subnet: str = "10.231.0", prefix: int = 24) -> Iterator[VethPair]:
    """`netboot_lab.netns.veth_pair`, or a skip without root."""
    require_root()
    with veth_pair(subnet, prefix) as pair:
        yield pair


@contextmanager
def bridge_lab(count: int, subnet: str = "10.232.0") -> Iterator[Segment]:
    """`netboot_lab.netns.bridge_segment`, or a skip without root."""
    require_root()
    with bridge_segment(count, subnet) as segment:
        yield segment


def require_impairment(pair: VethPair) -> None:
    """Skip (a failure in CI) unless netem or nftables can impair the pair's link."""
    if not impairment_possible(pair):
        pytest.skip("needs sch_netem in the kernel or nftables (Debian: nftables)")
