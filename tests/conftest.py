"""Suite-wide rules.

With NETBOOT_REQUIRE_ALL=1 (set by .ci/run) a skipped test is reported as a
failure: a test that needs root, QEMU or nfs-ganesha may skip on a laptop, but
in CI a skip would hide a missing component. Also the fixtures several
modules share.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Generator, Iterator
from typing import Any

import pytest
from twisted.logger import globalLogPublisher

from netboot_lab.postgres import PrivateCluster
from tests.postgres import session_cluster

REQUIRE_ALL = os.environ.get("NETBOOT_REQUIRE_ALL") == "1"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    # An expected failure (xfail) is reported as "skipped" too; it is not a missing component.
    if REQUIRE_ALL and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped with NETBOOT_REQUIRE_ALL=1, which forbids skips: {reason}"
    return report


@pytest.fixture
def udp_client() -> Iterator[socket.socket]:
    """A UDP socket on loopback, 2 s timeout: a client for services on real sockets."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(2)
    yield sock
    sock.close()


@pytest.fixture
def events() -> Iterator[list[dict[str, Any]]]:
    """Every Twisted log event published while the test runs, as dicts."""
    captured: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(captured.append)
    try:
        yield captured
    finally:
        globalLogPublisher.removeObserver(captured.append)


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PrivateCluster]:
    """A private PostgreSQL cluster for the session (tests/postgres.py); skips without one."""
    yield from session_cluster()
