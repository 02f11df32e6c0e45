"""Which requests `IdleChannel` answers itself (QuickRange.parse), without a socket.

Only the plainest range request of a Mac reading its root image qualifies;
everything else must reach twisted.web's own parsing, which owns the error
answers (400 for a malformed field, pipelining, bodies, Connection: close).
"""

from __future__ import annotations

import pytest

from netboot_services.http import IdleChannel, QuickRange

PLAIN = b"GET /Mac.nbi/NetBoot.dmg HTTP/1.1\r\nHost: x\r\nRange: bytes=0-1048575\r\n\r\n"


def parse(data: bytes) -> QuickRange | None:
    return QuickRange.parse(IdleChannel(), data)


def test_a_plain_range_request_is_parsed() -> None:
    request = parse(PLAIN.replace(b"Host: x", b"Host: x\r\nUser-Agent:  CFNetwork/1 "))
    assert request is not None
    assert (request.method, request.path, request.uri, request.code) == (
        b"GET", b"/Mac.nbi/NetBoot.dmg", b"/Mac.nbi/NetBoot.dmg", 206
    )  # fmt: skip
    assert request.getHeader(b"Range") == b"bytes=0-1048575"
    assert request.getHeader(b"user-agent") == b"CFNetwork/1"
    assert request.getHeader(b"if-range") is None


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(PLAIN.replace(b"GET ", b"HEAD "), id="head"),
        pytest.param(PLAIN.replace(b"HTTP/1.1", b"HTTP/1.0"), id="http-1.0"),
        pytest.param(PLAIN.replace(b".dmg ", b".dmg?x=1 "), id="query"),
        pytest.param(PLAIN.replace(b"/Mac", b"http://x/Mac"), id="absolute-form"),
        pytest.param(PLAIN.replace(b"0-1048575", b"0-9,20-29"), id="several-ranges"),
        pytest.param(PLAIN.replace(b"Range: bytes=0-1048575\r\n", b""), id="no-range"),
        pytest.param(PLAIN.replace(b"Host: x", b"Host: x\r\nConnection: close"), id="close"),
        pytest.param(PLAIN.replace(b"Host: x", b"Host: x\r\nContent-Length: 0"), id="body"),
        pytest.param(PLAIN.replace(b"Host: x", b"Host: x\r\nTransfer-Encoding: chunked"), id="te"),
        pytest.param(PLAIN.replace(b"Host: x", b"Host: x\r\nExpect: 100-continue"), id="expect"),
        pytest.param(PLAIN.replace(b"Host: x", b"Host: x\r\nRange: bytes=5-6"), id="twice"),
        pytest.param(PLAIN.replace(b"Host: x", b"Host : x"), id="space-before-colon"),
        pytest.param(PLAIN.replace(b"Host: x", b": x"), id="no-name"),
        pytest.param(PLAIN.replace(b"Host: x", b"Host x"), id="no-colon"),
        pytest.param(PLAIN.replace(b"Host: x", b"Ho\tst: x"), id="tab-in-name"),
        pytest.param(PLAIN.replace(b"Host: x", b"Host: x\r\n folded"), id="obs-fold"),
        pytest.param(PLAIN.replace(b"Host: x", b"Host: x\ny"), id="bare-lf"),
        pytest.param(PLAIN.replace(b"Host: x", b"Host: x\ry"), id="bare-cr"),
        pytest.param(PLAIN + PLAIN, id="pipelined"),
        pytest.param(PLAIN[:-2], id="incomplete"),
        pytest.param(PLAIN.replace(b"Host: x", b"X: " + b"y" * 17000), id="too-long"),
    ],
)
def test_anything_less_plain_is_left_to_twisted(data: bytes) -> None:
    assert parse(data) is None
