"""Option 60 of BSDP packets: `AAPLBSDPC/<arch>/<model>` from clients, `AAPLBSDPC` from servers.

The rules are Apple's parser as summarised in docs/protocols/bsdp.md §3:
prefix `AAPLBSDPC`; nothing after it means a server's packet; otherwise `/`, the
architecture up to the next `/`, then the model to the end; a NUL or newline
anywhere means "not BSDP". Architectures are `ppc`, `i386` and `arm`.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netboot.bsdp.vendor_class import (
    PREFIX,
    ClientClass,
    client_class_bytes,
    is_bsdp,
    parse_client_class,
)

CLIENTS = {
    b"AAPLBSDPC/i386/MacBookPro11,1": ClientClass("i386", "MacBookPro11,1"),
    b"AAPLBSDPC/ppc/PowerMac3,1": ClientClass("ppc", "PowerMac3,1"),
    b"AAPLBSDPC/arm/Mac14,2": ClientClass("arm", "Mac14,2"),
    b"AAPLBSDPC/i386/iMac18,3": ClientClass("i386", "iMac18,3"),
    # The model runs to the end, slashes included.
    b"AAPLBSDPC/i386/Some/Model": ClientClass("i386", "Some/Model"),
    b"AAPLBSDPC/ppc//NetBoot1": ClientClass("ppc", "/NetBoot1"),
}

NOT_CLIENTS = {
    "server form": b"AAPLBSDPC",
    "empty": b"",
    "other vendor": b"PXEClient:Arch:00000:UNDI:002001",
    "prefix cut short": b"AAPLBSDP",
    "lower case prefix": b"aaplbsdpc/i386/MacBookPro11,1",
    "no slash after the prefix": b"AAPLBSDPCi386/MacBookPro11,1",
    "slash only": b"AAPLBSDPC/",
    "missing arch": b"AAPLBSDPC//MacBookPro11,1",
    "arch without model slash": b"AAPLBSDPC/i386",
    "NUL at the end": b"AAPLBSDPC/i386/MacBookPro11,1\x00",
    "NUL in the model": b"AAPLBSDPC/i386/MacBook\x00Pro11,1",
    "NUL in the arch": b"AAPLBSDPC/i3\x0086/MacBookPro11,1",
    "newline at the end": b"AAPLBSDPC/i386/MacBookPro11,1\n",
    "newline in the model": b"AAPLBSDPC/i386/Mac\nBookPro11,1",
    "newline in the arch": b"AAPLBSDPC/i\n386/MacBookPro11,1",
    "non-ASCII model": "AAPLBSDPC/i386/MacBookPró11,1".encode(),
    "non-ASCII arch": b"AAPLBSDPC/\xff386/MacBookPro11,1",
}


@pytest.mark.parametrize("raw", CLIENTS.keys(), ids=[k.decode() for k in CLIENTS])
def test_client_class_is_parsed(raw: bytes) -> None:
    assert parse_client_class(raw) == CLIENTS[raw]


@pytest.mark.parametrize("raw", NOT_CLIENTS.values(), ids=NOT_CLIENTS.keys())
def test_not_a_client_class(raw: bytes) -> None:
    assert parse_client_class(raw) is None


@pytest.mark.parametrize("raw", CLIENTS.keys(), ids=[k.decode() for k in CLIENTS])
def test_client_class_bytes_round_trips(raw: bytes) -> None:
    parsed = CLIENTS[raw]
    assert client_class_bytes(parsed.arch, parsed.model) == raw


def test_client_class_bytes_of_the_vector_client() -> None:
    assert client_class_bytes("i386", "MacBookPro11,1") == b"AAPLBSDPC/i386/MacBookPro11,1"
    assert len(client_class_bytes("i386", "MacBookPro11,1")) == 29  # 8.1: option 60 len 0x1d


@pytest.mark.parametrize(
    "raw",
    [b"AAPLBSDPC", b"AAPLBSDPC/i386/MacBookPro11,1", b"AAPLBSDPC/ppc/PowerMac3,1"],
)
def test_is_bsdp_for_clients_and_servers(raw: bytes) -> None:
    assert is_bsdp(raw)


@pytest.mark.parametrize(
    "raw",
    [None, b"", b"AAPLBSDP", b"PXEClient:Arch:00007:UNDI:003016", b"aaplbsdpc", b"MSFT 5.0"],
    ids=["absent", "empty", "cut short", "PXE", "lower case", "Windows"],
)
def test_is_bsdp_is_false_for_others(raw: bytes | None) -> None:
    assert not is_bsdp(raw)


def test_prefix_is_nine_bytes() -> None:
    assert PREFIX == b"AAPLBSDPC"
    assert len(PREFIX) == 9


printable = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E, blacklist_characters="/"),
    min_size=1,
    max_size=12,
)
model_text = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=0, max_size=30
)


@settings(max_examples=200)
@given(printable, model_text)
def test_any_printable_arch_and_model_round_trip(arch: str, model: str) -> None:
    assert parse_client_class(client_class_bytes(arch, model)) == ClientClass(arch, model)


@settings(max_examples=200)
@given(st.binary(max_size=60))
def test_parse_of_any_bytes_is_a_class_or_none(raw: bytes) -> None:
    parsed = parse_client_class(raw)
    if parsed is None:
        return
    assert is_bsdp(raw)
    assert b"\x00" not in raw
    assert b"\n" not in raw
    assert parsed.arch
    assert "/" not in parsed.arch


@settings(max_examples=200)
@given(st.binary(max_size=30), st.binary(max_size=30))
def test_nul_or_newline_anywhere_is_not_bsdp(before: bytes, after: bytes) -> None:
    for bad in (b"\x00", b"\n"):
        assert parse_client_class(b"AAPLBSDPC/i386/" + before + bad + after) is None
