"""MAC addresses: ether_aton(3)-style text in, one canonical lower-case form out.

NBImageInfo.plist MAC lists are parsed by Apple's bootpd with ether_aton, so
leading zeros are optional (docs/protocols/nbi.md §3, EnabledMACAddresses).
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netboot.macaddr import mac_from_bytes, parse_mac


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("00:1b:63:0a:0b:0c", "00:1b:63:0a:0b:0c"),  # already canonical
        ("0:1b:63:a:b:c", "00:1b:63:0a:0b:0c"),  # ether_aton: leading zeros dropped
        ("00:1B:63:0A:0B:0C", "00:1b:63:0a:0b:0c"),  # upper case
        ("0:1B:63:A:b:C", "00:1b:63:0a:0b:0c"),  # both, mixed case
        ("0:0:0:0:0:0", "00:00:00:00:00:00"),
        ("ff:ff:ff:ff:ff:ff", "ff:ff:ff:ff:ff:ff"),
        ("F:F:F:F:F:F", "0f:0f:0f:0f:0f:0f"),
    ],
)
def test_ether_aton_forms_parse_to_canonical(text: str, canonical: str) -> None:
    assert parse_mac(text) == canonical


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("00:1b:63:0a:0b", id="five-octets"),
        pytest.param("00:1b:63:0a:0b:0c:0d", id="seven-octets"),
        pytest.param("00-1b-63-0a-0b-0c", id="dash-separators"),
        pytest.param("001b.630a.0b0c", id="cisco-dots"),
        pytest.param("001b630a0b0c", id="no-separators"),
        pytest.param("000:1b:63:0a:0b:0c", id="three-digit-group"),
        pytest.param("00:1b:63:0a:0b:00c", id="three-digit-last-group"),
        pytest.param("", id="empty"),
        pytest.param("00:1b:63:0a:0b:0c:", id="trailing-colon"),
        pytest.param(":00:1b:63:0a:0b:0c", id="leading-colon"),
        pytest.param("00:1b::0a:0b:0c", id="empty-group"),
        pytest.param("00:1g:63:0a:0b:0c", id="non-hex-digit"),
        pytest.param("00:1b:63:0a:0b:0x", id="non-hex-last"),
        pytest.param("0x0:1b:63:0a:0b:0c", id="hex-prefix"),
        pytest.param(" 00:1b:63:0a:0b:0c", id="leading-space"),
        pytest.param("00:1b:63:0a:0b:0c ", id="trailing-space"),
        pytest.param("00:1b:63:0a:0b:0c\n", id="trailing-newline"),
        pytest.param("00: 1b:63:0a:0b:0c", id="space-in-group"),
        pytest.param("+0:1b:63:0a:0b:0c", id="sign"),
        pytest.param("\uff10\uff10:1b:63:0a:0b:0c", id="fullwidth-digits"),
    ],
)
def test_malformed_mac_text_is_rejected(text: str) -> None:
    with pytest.raises(ValueError, match="not a MAC address"):
        parse_mac(text)


def test_mac_from_bytes_is_lower_case_zero_padded() -> None:
    raw = bytes(
        [
            0x00,  # OUI, first octet
            0x1B,  # OUI
            0x63,  # OUI (Apple)
            0x0A,  # NIC-specific
            0x0B,
            0xCC,
        ]
    )
    assert mac_from_bytes(raw) == "00:1b:63:0a:0b:cc"


@pytest.mark.parametrize("length", [0, 1, 5, 7, 16])
def test_mac_from_bytes_of_wrong_length_is_rejected(length: int) -> None:
    with pytest.raises(ValueError, match="6 bytes"):
        mac_from_bytes(bytes(length))


def test_parsed_text_equals_bytes_form_of_same_address() -> None:
    assert parse_mac("0:1B:63:a:b:CC") == mac_from_bytes(b"\x00\x1b\x63\x0a\x0b\xcc")


@settings(max_examples=200)
@given(st.binary(min_size=6, max_size=6))
def test_parse_of_canonical_form_is_identity(raw: bytes) -> None:
    canonical = mac_from_bytes(raw)
    assert parse_mac(canonical) == canonical


@settings(max_examples=200)
@given(st.binary(min_size=6, max_size=6), st.data())
def test_any_ether_aton_spelling_parses_to_canonical(raw: bytes, data: st.DataObject) -> None:
    groups = []
    for octet in raw:
        digits = f"{octet:02x}"
        if octet < 0x10 and data.draw(st.booleans(), label="drop leading zero"):
            digits = digits[1]
        if data.draw(st.booleans(), label="upper case"):
            digits = digits.upper()
        groups.append(digits)
    assert parse_mac(":".join(groups)) == mac_from_bytes(raw)


@settings(max_examples=200)
@given(st.text(max_size=40))
def test_parse_of_any_text_returns_canonical_or_raises_value_error(text: str) -> None:
    try:
        mac = parse_mac(text)
    except ValueError:
        return
    assert mac == mac_from_bytes(bytes.fromhex(mac.replace(":", "")))
