"""The router advertisements we send, read back by scapy's ICMPv6 neighbour-discovery layers.

scapy is the oracle: each message is dissected as the ICMPv6 part of an IPv6
packet, and its fields must say what RFC 4861 4.2 and 4.6.2 mean by ours
(docs/protocols/dhcpv6.md §13).
"""

from __future__ import annotations

from ipaddress import IPv6Network

import pytest
from scapy.layers.inet6 import (
    ICMPv6ND_RA,
    ICMPv6NDOptPrefixInfo,
    ICMPv6NDOptSrcLLAddr,
)

from netboot.dhcp.router_advertisement import (
    INITIAL_ADVERTISEMENTS,
    MAX_INITIAL_INTERVAL,
    MAX_INTERVAL,
    MIN_DELAY_BETWEEN_RAS,
    MIN_INTERVAL,
    PREFIX_PREFERRED_LIFETIME,
    PREFIX_VALID_LIFETIME,
    is_router_solicitation,
    lifetime_zero_advertisement,
    managed_advertisement,
    solicited_send_time,
    unsolicited_delay,
)

MAC = bytes.fromhex("525400123456")
LAB_PREFIX = IPv6Network("fd4e:4254:0:1::/64")


def dissect(message: bytes) -> ICMPv6ND_RA:
    advertisement = ICMPv6ND_RA(message)
    assert advertisement.type == 134
    assert advertisement.code == 0
    return advertisement


def test_the_managed_advertisement_sends_clients_to_dhcpv6_for_the_pools_prefix() -> None:
    advertisement = dissect(managed_advertisement(MAC, LAB_PREFIX))
    assert (advertisement.M, advertisement.O) == (1, 1)
    assert advertisement.routerlifetime == 0
    assert advertisement.chlim == 0
    assert (advertisement.reachabletime, advertisement.retranstimer) == (0, 0)
    source = advertisement[ICMPv6NDOptSrcLLAddr]
    assert (source.len, source.lladdr) == (1, "52:54:00:12:34:56")
    prefix = advertisement[ICMPv6NDOptPrefixInfo]
    assert prefix.len == 4
    assert (prefix.prefix, prefix.prefixlen) == ("fd4e:4254:0:1::", 64)
    assert (prefix.L, prefix.A, prefix.R) == (1, 0, 0)
    assert (prefix.validlifetime, prefix.preferredlifetime) == (
        PREFIX_VALID_LIFETIME,
        PREFIX_PREFERRED_LIFETIME,
    )
    assert not prefix.payload, "nothing may follow the prefix information"


def test_a_lab_ra_may_name_this_server_a_default_router() -> None:
    """`[dhcp6] router_lifetime`: EDK2's PXEv6 waits 10 s for a route to the boot
    server unless the RA names a default router (docs/protocols/dhcpv6.md §13)."""
    advertisement = dissect(managed_advertisement(MAC, LAB_PREFIX, 1800))
    assert advertisement.routerlifetime == 1800
    assert (advertisement.M, advertisement.O) == (1, 1)
    with pytest.raises(ValueError, match="router lifetime"):
        managed_advertisement(MAC, LAB_PREFIX, 9001)


def test_the_managed_advertisement_is_whole_8_byte_units() -> None:
    message = managed_advertisement(MAC, LAB_PREFIX)
    assert len(message) == 16 + 8 + 32


def test_the_lifetime_zero_advertisement_stays_as_it_was() -> None:
    advertisement = dissect(lifetime_zero_advertisement(MAC))
    assert (advertisement.M, advertisement.O, advertisement.routerlifetime) == (0, 0, 0)
    assert advertisement[ICMPv6NDOptSrcLLAddr].lladdr == "52:54:00:12:34:56"
    assert ICMPv6NDOptPrefixInfo not in advertisement


@pytest.mark.parametrize("mac", [b"", bytes(5), bytes(8)])
def test_a_link_layer_address_is_six_bytes(mac: bytes) -> None:
    with pytest.raises(ValueError, match="6 bytes"):
        managed_advertisement(mac, LAB_PREFIX)


def test_unsolicited_advertisements_come_every_10_to_30_seconds_after_a_faster_start() -> None:
    for sent in range(INITIAL_ADVERTISEMENTS):
        assert unsolicited_delay(sent, 0.0) == MIN_INTERVAL
        assert unsolicited_delay(sent, 0.999) == MAX_INITIAL_INTERVAL
    later = [unsolicited_delay(INITIAL_ADVERTISEMENTS, draw / 10) for draw in range(10)]
    assert later[0] == MIN_INTERVAL
    assert all(MIN_INTERVAL <= delay < MAX_INTERVAL for delay in later)
    assert later == sorted(later) and len(set(later)) == 10


def test_an_answer_to_a_solicitation_keeps_multicast_ras_3_seconds_apart() -> None:
    assert solicited_send_time(100.0, None) == 100.0
    assert solicited_send_time(100.0, 90.0) == 100.0
    assert solicited_send_time(100.0, 99.0) == 99.0 + MIN_DELAY_BETWEEN_RAS


def test_only_router_solicitations_are_answered() -> None:
    assert is_router_solicitation(bytes((133, 0)) + bytes(6))
    assert not is_router_solicitation(bytes((133, 1)) + bytes(6))
    assert not is_router_solicitation(bytes((134, 0)) + bytes(14))
    assert not is_router_solicitation(bytes((133, 0, 0)))
