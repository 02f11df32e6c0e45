"""Which host our URLs name, for both families (docs/protocols/dhcpv6.md §16)."""

from __future__ import annotations

from ipaddress import IPv6Interface

import pytest

from netboot.http.urls import http_base, url_host

ULA = IPv6Interface("fd4e:4254:0:1::1/64")
GLOBAL = IPv6Interface("2001:db8:1::1/64")
LINK_LOCAL = IPv6Interface("fe80::1/64")


@pytest.mark.parametrize(
    ("host", "port", "base"),
    [
        ("10.0.0.1", 80, "http://10.0.0.1"),
        ("10.0.0.1", 8080, "http://10.0.0.1:8080"),
        ("fd4e:4254:0:1::1", 80, "http://[fd4e:4254:0:1::1]"),
        ("fd4e:4254:0:1::1", 8080, "http://[fd4e:4254:0:1::1]:8080"),
    ],
)
def test_http_base_brackets_ipv6(host: str, port: int, base: str) -> None:
    assert http_base(host, port) == base


@pytest.mark.parametrize(
    ("arrival", "interface", "host"),
    [
        ("10.0.0.1", (), "10.0.0.1"),
        ("fd4e:4254:0:1::1", (LINK_LOCAL, ULA), "fd4e:4254:0:1::1"),  # routable: itself
        ("2001:db8:1::1", (ULA,), "2001:db8:1::1"),
        # link-local: the interface's first routable address, whatever the order
        ("fe80::1%nb0", (LINK_LOCAL, ULA, GLOBAL), "fd4e:4254:0:1::1"),
        ("fe80::1%nb0", (GLOBAL, ULA, LINK_LOCAL), "2001:db8:1::1"),
        # link-local only: the address without our zone, which no client could read
        ("fe80::1%nb0", (LINK_LOCAL,), "fe80::1"),
        ("fe80::1%nb0", (), "fe80::1"),
        ("fe80::1", (), "fe80::1"),
    ],
)
def test_url_host_never_names_a_zone(
    arrival: str, interface: tuple[IPv6Interface, ...], host: str
) -> None:
    assert url_host(arrival, interface) == host
    assert "%" not in http_base(url_host(arrival, interface), 8080)
