"""A peer's address as text for both families: `host:port`, `[v6]:port`, zones kept."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netboot.hostport import host_of, join_host_port, split_host_port


@pytest.mark.parametrize(
    ("host", "port", "text"),
    [
        ("10.0.0.5", 2000, "10.0.0.5:2000"),
        ("fd4e:4254:0:1::1000", 546, "[fd4e:4254:0:1::1000]:546"),
        ("fe80::5054:ff:fe12:3456%nblab0", 69, "[fe80::5054:ff:fe12:3456%nblab0]:69"),
        ("::1", 0, "[::1]:0"),
        ("boot.example", 80, "boot.example:80"),
    ],
)
def test_join_and_split_are_inverse(host: str, port: int, text: str) -> None:
    assert join_host_port(host, port) == text
    assert split_host_port(text) == (host, port)
    assert host_of(text) == host


@pytest.mark.parametrize(
    ("text", "host"),
    [
        ("10.0.0.5", "10.0.0.5"),
        ("fd4e:4254:0:1::1000", "fd4e:4254:0:1::1000"),  # a bare IPv6 address: no port
        ("fe80::1%nb0", "fe80::1%nb0"),
        ("[fe80::1%nb0]", "fe80::1%nb0"),
        ("::", "::"),
    ],
)
def test_bare_hosts_have_no_port(text: str, host: str) -> None:
    assert split_host_port(text) == (host, None)


@pytest.mark.parametrize("text", ["[fe80::1", "[::1]x", "[::1]:http", "10.0.0.5:", "a:99999"])
def test_malformed_texts_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"not|bracket"):
        split_host_port(text)


@given(st.ip_addresses(), st.integers(0, 65535))
def test_every_address_round_trips(address: object, port: int) -> None:
    host = str(address)
    assert split_host_port(join_host_port(host, port)) == (host, port)
