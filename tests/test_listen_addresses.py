"""Where TFTP and HTTP listen (both families), and how an IPv6 client's MAC is found."""

from __future__ import annotations

import socket
from ipaddress import IPv6Interface

import pytest

from netboot_services.clients import ClientTracker, neighbour_mac
from netboot_services.interfaces import ipv6_addresses, listen_addresses, scoped
from netboot_services.listeners import ipv6_socket, listen_label, peer_address, scoped_host


def test_without_interfaces_both_wildcards() -> None:
    assert listen_addresses(()) == (["", "::"], [])


def test_the_loopbacks_addresses_of_both_families() -> None:
    ipv6 = ipv6_addresses("lo")
    if IPv6Interface("::1/128") not in ipv6:
        pytest.skip("the loopback has no ::1 here")
    addresses, without_ipv6 = listen_addresses(("lo",))
    assert addresses[0] == "127.0.0.1"
    assert "::1" in addresses and without_ipv6 == []


def test_a_link_local_address_carries_its_zone_where_a_socket_takes_it() -> None:
    assert scoped(IPv6Interface("fe80::1/64"), "nb0") == "fe80::1%nb0"
    assert scoped(IPv6Interface("fd4e:4254:0:1::1/64"), "nb0") == "fd4e:4254:0:1::1"


@pytest.mark.parametrize(
    ("host", "label"),
    [("", "0.0.0.0"), ("10.0.0.1", "10.0.0.1"), ("::", "[::]"), ("fe80::1%nb0", "[fe80::1%nb0]")],
)
def test_listen_labels(host: str, label: str) -> None:
    assert listen_label(host) == label


def test_a_senders_scope_becomes_its_zone() -> None:
    index, name = socket.if_nameindex()[0]
    assert peer_address(("fe80::1", 69, 0, index)) == (f"fe80::1%{name}", 69)
    assert peer_address(("fd4e::2", 69, 0, 0)) == ("fd4e::2", 69)
    assert peer_address(("10.0.0.5", 69)) == ("10.0.0.5", 69)
    assert scoped_host("fe80::1%lo", index) == "fe80::1%lo"  # never two zones


def test_an_ipv6_socket_takes_ipv6_only() -> None:
    """IPV6_V6ONLY: `::` beside 0.0.0.0 on the same port, IPv4 clients never ::ffff:."""
    try:
        six = ipv6_socket(socket.SOCK_DGRAM, "::", 0)
    except OSError as error:
        pytest.skip(f"no IPv6 here: {error}")
    with six, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as four:
        assert six.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 1
        four.bind(("0.0.0.0", six.getsockname()[1]))


@pytest.mark.parametrize(
    ("output", "mac"),
    [
        ('[{"dst":"fd4e::2","dev":"nb0","lladdr":"52:54:00:4E:42:66","state":["STALE"]}]',
         "52:54:00:4e:42:66"),
        ('[{"dst":"fd4e::2","dev":"nb0","state":["FAILED"]}]', None),
        ("[]", None),
        ("", None),
        ("not json", None),
    ],
)  # fmt: skip
def test_the_mac_of_ip_neigh_output(output: str, mac: str | None) -> None:
    assert neighbour_mac(output) == mac


def test_a_client_missing_from_the_neighbour_table_is_looked_up_once_more() -> None:
    """A proxy-mode client (leased by the site's server) sends its first datagram before
    our kernel has its neighbour entry; the next lookup finds it. From the second miss on
    the address is remembered as unknown (a client behind a router never has one)."""
    table: dict[str, str] = {}
    asked: list[str] = []

    def lookup(address: str) -> str | None:
        asked.append(address)
        return table.get(address)

    clients = ClientTracker(lookup=lookup)
    assert clients.mac_of("fd4e:4254:0:1::1005") is None
    table["fd4e:4254:0:1::1005"] = "52:54:00:4e:42:01"  # our answer made the entry
    assert clients.mac_of("fd4e:4254:0:1::1005") == "52:54:00:4e:42:01"
    assert clients.mac_of("fd4e:4254:0:1::1005") == "52:54:00:4e:42:01"
    assert clients.mac_of("fd4e:4254:0:2::9") is None
    assert clients.mac_of("fd4e:4254:0:2::9") is None
    assert clients.mac_of("fd4e:4254:0:2::9") is None
    assert asked == ["fd4e:4254:0:1::1005"] * 2 + ["fd4e:4254:0:2::9"] * 2
