"""Option negotiation for read requests: blksize, timeout, tsize, windowsize.

RFC 2347 (options), 2348 (blksize), 2349 (timeout, tsize) and 7440 (windowsize).
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netboot.tftp.options import (
    DEFAULT_BLKSIZE,
    MIN_BLKSIZE,
    Negotiated,
    TransferLimits,
    blksize_for_mtu,
    negotiate,
)
from netboot.tftp.wire import MAX_BLOCK_PAYLOAD

DEFAULTS = TransferLimits()
"""MTU 1500 (blksize up to 1468), windowsize up to 64."""
UNLIMITED = TransferLimits(max_blksize=MAX_BLOCK_PAYLOAD, max_windowsize=65535)
SIZE = 14_680_064
"""A 14 MiB kernel."""

GARBAGE = [
    pytest.param("x", id="letter"),
    pytest.param("-1", id="negative"),
    pytest.param("", id="empty"),
    pytest.param("\uff11\uff12", id="full-width-12"),
    pytest.param("\u0661\u0662", id="arabic-indic-12"),
    pytest.param("\u00b2", id="superscript-2"),
    pytest.param(" 512", id="leading-space"),
    pytest.param("512 ", id="trailing-space"),
    pytest.param("+512", id="plus-sign"),
    pytest.param("0x200", id="hex"),
    pytest.param("5.12", id="decimal-point"),
    pytest.param("1e3", id="exponent"),
]


# --- blksize_for_mtu and limits -----------------------------------------------------------


@pytest.mark.parametrize(
    ("mtu", "blksize"),
    [
        (1500, 1468),  # Ethernet: 1500 - 20 (IPv4) - 8 (UDP) - 4 (TFTP)
        (9000, 8968),  # jumbo frames
        (576, 544),  # the IPv4 minimum every host must accept
        (40, MIN_BLKSIZE),  # nonsense MTUs still give a usable block
        (0, MIN_BLKSIZE),
        (70_000, MAX_BLOCK_PAYLOAD),  # no block beyond RFC 2348's 65464
    ],
)
def test_blksize_for_mtu(mtu: int, blksize: int) -> None:
    assert blksize_for_mtu(mtu) == blksize


@pytest.mark.parametrize(
    ("mtu", "blksize"),
    [
        (1500, 1448),  # Ethernet: 1500 - 40 (IPv6) - 8 (UDP) - 4 (TFTP)
        (1280, 1228),  # the IPv6 minimum link MTU (RFC 8200)
        (9000, 8948),
        (50, MIN_BLKSIZE),
        (70_000, MAX_BLOCK_PAYLOAD),
    ],
)
def test_blksize_for_mtu_over_ipv6(mtu: int, blksize: int) -> None:
    assert blksize_for_mtu(mtu, ipv6=True) == blksize


@given(st.integers(0, MAX_BLOCK_PAYLOAD))
def test_limits_for_ipv6_are_the_mtus_ipv6_blksize(mtu: int) -> None:
    limits = TransferLimits(max_blksize=blksize_for_mtu(mtu), max_windowsize=8)
    ipv6 = limits.for_ipv6()
    assert ipv6.max_blksize == blksize_for_mtu(mtu, ipv6=True)
    assert ipv6.max_windowsize == 8


def test_an_ipv6_request_gets_the_smaller_block() -> None:
    asked = {"blksize": "1468"}
    assert negotiate(asked, SIZE, DEFAULTS).blksize == 1468
    assert negotiate(asked, SIZE, DEFAULTS.for_ipv6()).blksize == 1448


def test_default_limits_fit_ethernet_and_cap_windowsize() -> None:
    assert TransferLimits() == TransferLimits(max_blksize=1468, max_windowsize=64)


# --- no options -----------------------------------------------------------------------------


def test_no_options_acknowledges_nothing_and_keeps_rfc_1350_defaults() -> None:
    assert negotiate({}, SIZE, DEFAULTS) == Negotiated(
        blksize=DEFAULT_BLKSIZE, windowsize=1, timeout=None, acknowledged={}
    )


def test_unknown_options_are_ignored() -> None:
    requested = {"multicast": "", "rollover": "0", "utimeout": "500", "x-vendor": "1"}
    assert negotiate(requested, SIZE, DEFAULTS) == Negotiated()


def test_unknown_options_do_not_hide_known_ones() -> None:
    requested = {"multicast": "", "blksize": "1024", "rollover": "0"}
    assert negotiate(requested, SIZE, DEFAULTS).acknowledged == {"blksize": "1024"}


# --- blksize ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("asked", "limits", "granted"),
    [
        pytest.param("8", DEFAULTS, 8, id="minimum"),
        pytest.param("512", DEFAULTS, 512, id="default-size"),
        pytest.param("1024", DEFAULTS, 1024, id="below-mtu"),
        pytest.param("1428", DEFAULTS, 1428, id="grub"),
        pytest.param("1468", DEFAULTS, 1468, id="exactly-mtu"),
        pytest.param("1469", DEFAULTS, 1468, id="one-over-mtu"),
        pytest.param("8192", DEFAULTS, 1468, id="over-mtu"),
        pytest.param("65464", DEFAULTS, 1468, id="rfc-maximum-at-mtu-1500"),
        pytest.param("65464", UNLIMITED, 65464, id="rfc-maximum"),
        pytest.param("65465", UNLIMITED, 65464, id="over-rfc-maximum"),
        pytest.param("99999999999", UNLIMITED, 65464, id="huge"),
        pytest.param("0512", DEFAULTS, 512, id="leading-zero"),
        pytest.param("9000", TransferLimits(max_blksize=blksize_for_mtu(9000)), 8968, id="jumbo"),
    ],
)
def test_blksize_is_granted_up_to_the_limit(
    asked: str, limits: TransferLimits, granted: int
) -> None:
    result = negotiate({"blksize": asked}, SIZE, limits)
    assert result.blksize == granted
    assert result.acknowledged == {"blksize": str(granted)}


@pytest.mark.parametrize("asked", ["0", "1", "7"])
def test_blksize_below_8_is_ignored(asked: str) -> None:
    assert negotiate({"blksize": asked}, SIZE, DEFAULTS) == Negotiated()


@pytest.mark.parametrize("asked", GARBAGE)
def test_blksize_that_is_not_a_number_is_ignored(asked: str) -> None:
    assert negotiate({"blksize": asked}, SIZE, DEFAULTS) == Negotiated()


# --- timeout --------------------------------------------------------------------------------


@pytest.mark.parametrize("asked", [1, 2, 5, 255])
def test_timeout_from_1_to_255_is_acknowledged_as_asked(asked: int) -> None:
    result = negotiate({"timeout": str(asked)}, SIZE, DEFAULTS)
    assert result.timeout == float(asked)
    assert result.acknowledged == {"timeout": str(asked)}
    assert (result.blksize, result.windowsize) == (DEFAULT_BLKSIZE, 1)


@pytest.mark.parametrize("asked", ["0", "256", "1000", "1.5", *GARBAGE])
def test_timeout_out_of_range_or_not_a_number_is_ignored(asked: object) -> None:
    assert negotiate({"timeout": str(asked)}, SIZE, DEFAULTS) == Negotiated()


# --- tsize ----------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 512, SIZE, 2**40])
def test_tsize_is_answered_with_the_real_size(size: int) -> None:
    result = negotiate({"tsize": "0"}, size, DEFAULTS)
    assert result.acknowledged == {"tsize": str(size)}
    assert result == Negotiated(acknowledged={"tsize": str(size)})


def test_tsize_is_answered_with_the_real_size_whatever_the_client_guessed() -> None:
    assert negotiate({"tsize": "123"}, SIZE, DEFAULTS).acknowledged == {"tsize": str(SIZE)}


def test_tsize_is_not_acknowledged_when_the_size_is_unknown() -> None:
    """netascii: the converted size is only known once it has all been sent."""
    assert negotiate({"tsize": "0"}, None, DEFAULTS) == Negotiated()


@pytest.mark.parametrize("asked", GARBAGE)
def test_tsize_that_is_not_a_number_is_ignored(asked: str) -> None:
    assert negotiate({"tsize": asked}, SIZE, DEFAULTS) == Negotiated()


# --- windowsize -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("asked", "limits", "granted"),
    [
        pytest.param("1", DEFAULTS, 1, id="lock-step"),
        pytest.param("4", DEFAULTS, 4, id="ovmf"),
        pytest.param("16", DEFAULTS, 16, id="sixteen"),
        pytest.param("64", DEFAULTS, 64, id="exactly-max"),
        pytest.param("65", DEFAULTS, 64, id="one-over-max"),
        pytest.param("65535", DEFAULTS, 64, id="rfc-maximum-clamped"),
        pytest.param("65535", UNLIMITED, 65535, id="rfc-maximum"),
        pytest.param("8", TransferLimits(max_windowsize=1), 1, id="server-wants-lock-step"),
    ],
)
def test_windowsize_is_granted_up_to_the_limit(
    asked: str, limits: TransferLimits, granted: int
) -> None:
    result = negotiate({"windowsize": asked}, SIZE, limits)
    assert result.windowsize == granted
    assert result.acknowledged == {"windowsize": str(granted)}


@pytest.mark.parametrize("asked", ["0", "65536", "100000", *GARBAGE])
def test_windowsize_out_of_range_or_not_a_number_is_ignored(asked: object) -> None:
    assert negotiate({"windowsize": str(asked)}, SIZE, UNLIMITED) == Negotiated()


# --- combinations ---------------------------------------------------------------------------

VALID = {"blksize": "1024", "timeout": "3", "tsize": "0", "windowsize": "8"}
GRANTED = {"blksize": "1024", "timeout": "3", "tsize": str(SIZE), "windowsize": "8"}
COMBINATIONS = [
    combination
    for count in range(len(VALID) + 1)
    for combination in itertools.combinations(sorted(VALID), count)
]


@pytest.mark.parametrize("names", COMBINATIONS, ids=lambda names: "+".join(names) or "none")
def test_every_combination_of_options_is_acknowledged_together(names: tuple[str, ...]) -> None:
    result = negotiate({name: VALID[name] for name in names}, SIZE, DEFAULTS)
    assert result.acknowledged == {name: GRANTED[name] for name in names}
    assert result.blksize == (1024 if "blksize" in names else DEFAULT_BLKSIZE)
    assert result.windowsize == (8 if "windowsize" in names else 1)
    assert result.timeout == (3.0 if "timeout" in names else None)


@pytest.mark.parametrize("names", COMBINATIONS, ids=lambda names: "+".join(names) or "none")
def test_a_bad_option_does_not_spoil_the_good_ones(names: tuple[str, ...]) -> None:
    bad = {"blksize": "7", "timeout": "0", "tsize": "x", "windowsize": "0"}
    requested = {name: (VALID[name] if name in names else bad[name]) for name in VALID}
    assert negotiate(requested, SIZE, DEFAULTS).acknowledged == {
        name: GRANTED[name] for name in names
    }


def test_ovmf_first_read() -> None:
    """QEMU's OVMF asks blksize 1468, windowsize 4 and the size on its first read."""
    requested = {"blksize": "1468", "windowsize": "4", "tsize": "0"}
    assert negotiate(requested, SIZE, DEFAULTS) == Negotiated(
        blksize=1468,
        windowsize=4,
        timeout=None,
        acknowledged={"blksize": "1468", "tsize": str(SIZE), "windowsize": "4"},
    )


def test_ovmf_first_read_over_a_smaller_mtu_gets_a_smaller_block() -> None:
    requested = {"blksize": "1468", "windowsize": "4", "tsize": "0"}
    result = negotiate(requested, SIZE, TransferLimits(max_blksize=blksize_for_mtu(1400)))
    assert result.blksize == 1368
    assert result.acknowledged["blksize"] == "1368"


def test_edk2_tsize_probe() -> None:
    """EDK2 first asks only the size (then aborts with ERROR 8)."""
    requested = {"tsize": "0", "blksize": "1468"}
    assert negotiate(requested, SIZE, DEFAULTS).acknowledged == {
        "blksize": "1468",
        "tsize": str(SIZE),
    }


@pytest.mark.parametrize(
    ("name", "acknowledged"),
    [
        ("blksize", {"blksize": "1468"}),  # like any other huge blksize: clamped
        ("timeout", {}),  # over 255: ignored
        ("tsize", {"tsize": str(SIZE)}),  # any number asks for the size
        ("windowsize", {}),  # over 65535: ignored
    ],
)
def test_option_value_with_thousands_of_digits_does_not_raise(
    name: str, acknowledged: dict[str, str]
) -> None:
    # 5000 digits fit easily in one RRQ datagram, and wire.parse accepts them.
    assert negotiate({name: "1" * 5000}, SIZE, DEFAULTS).acknowledged == acknowledged


# --- hypothesis -------------------------------------------------------------------------------

option_values = st.one_of(
    st.integers(min_value=-10, max_value=100_000).map(str),
    st.text(max_size=8),
    st.sampled_from(["", "0", "8", "255", "256", "65464", "65535", "65536"]),
)
requests = st.dictionaries(
    st.sampled_from(["blksize", "timeout", "tsize", "windowsize", "multicast", "rollover"]),
    option_values,
    max_size=6,
)
limits = st.builds(
    TransferLimits,
    max_blksize=st.integers(min_value=MIN_BLKSIZE, max_value=MAX_BLOCK_PAYLOAD),
    max_windowsize=st.integers(min_value=1, max_value=65535),
)


@settings(max_examples=200)
@given(requests, st.one_of(st.none(), st.integers(min_value=0, max_value=2**40)), limits)
def test_negotiated_values_stay_within_limits_and_match_the_oack(
    requested: dict[str, str], size: int | None, limits: TransferLimits
) -> None:
    result = negotiate(requested, size, limits)
    known = {"blksize", "timeout", "tsize", "windowsize"}
    assert set(result.acknowledged) <= set(requested) & known
    if "blksize" in result.acknowledged:
        assert MIN_BLKSIZE <= result.blksize <= limits.max_blksize
    else:
        assert result.blksize == DEFAULT_BLKSIZE
    if "windowsize" in result.acknowledged:
        assert 1 <= result.windowsize <= limits.max_windowsize
    else:
        assert result.windowsize == 1
    assert result.acknowledged.get("blksize", str(DEFAULT_BLKSIZE)) == str(result.blksize)
    assert result.acknowledged.get("windowsize", "1") == str(result.windowsize)
    if "timeout" in result.acknowledged:
        assert result.timeout == float(result.acknowledged["timeout"])
        assert 1 <= result.timeout <= 255
    else:
        assert result.timeout is None
    if "tsize" in result.acknowledged:
        assert result.acknowledged["tsize"] == str(size)
    for name, value in result.acknowledged.items():
        assert value.isascii() and value.isdigit(), name
