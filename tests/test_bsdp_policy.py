"""The BSDP policy: which images a Mac sees in ACK[LIST], and what its SELECT gets.

Catalogs are real NBI sets on disk (`tests/factories.make_set`, read with
`scan_catalog`); requests come from the client builders (`inform_list`,
`inform_select`) or, for bad input, are written by hand. Every request crosses
the wire once (`build_packet` then `parse_packet`), as it does in the service.

The byte vectors of docs/protocols/bsdp.md §8 are copied here field by field
from that document (not from our encoder), so the LIST, SELECT and FAILED
exchanges are checked against the documented layout.
"""

from __future__ import annotations

import plistlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from netboot.bsdp.bindings import BindingTable
from netboot.bsdp.client import inform_list, inform_select
from netboot.bsdp.options import (
    VERSION_1_0,
    VERSION_1_1,
    BsdpMessage,
    MessageType,
    decode,
    decode_instances,
    encode,
)
from netboot.bsdp.packing import ListCut
from netboot.bsdp.policy import (
    BsdpPolicy,
    BsdpSettings,
    Decision,
    Ignore,
    Reply,
    eligible,
    passes_filter,
)
from netboot.bsdp.rootpath import RootPathSettings
from netboot.bsdp.vendor_class import ClientClass, client_class_bytes
from netboot.dhcpwire.options import BOOTREPLY, BOOTREQUEST, Option
from netboot.dhcpwire.options import MessageType as DhcpType
from netboot.dhcpwire.packet import DhcpPacket, build_packet, parse_packet
from netboot.errors import MalformedPacket
from netboot.macaddr import MacAddress, mac_from_bytes
from netboot.nbi.catalog import Catalog, scan_catalog
from netboot_lab.factories import PE_BOOTER, make_set

SERVER = "192.0.2.10"
OTHER_SERVER = "192.0.2.11"
CLIENT_IP = "192.0.2.50"
MAC = bytes.fromhex("0016cb123456")
MAC_TEXT = MacAddress("00:16:cb:12:34:56")
OTHER_MAC = bytes.fromhex("0016cb000001")
OTHER_MAC_TEXT = MacAddress("00:16:cb:00:00:01")
MODEL = "MacBookPro11,1"
IMAC = "iMac18,3"
SERVER_NAME = "netboot-srv"
XID = 0x12345678


# --- helpers -----------------------------------------------------------------------


def add_set(root: Path, name: str, **overrides: Any) -> Path:
    """make_set with a booter for every listed architecture (the catalog checks them)."""
    arches = overrides.get("Architectures", ["i386"])
    set_dir = make_set(root, name, arch_dir=arches[0], **overrides)
    for arch in arches[1:]:
        (set_dir / arch).mkdir()
        (set_dir / arch / "booter").write_bytes(PE_BOOTER)
    return set_dir


def scan(root: Path, *, several_defaults: bool = False) -> Catalog:
    """The catalog of `root`, which must have no broken set.

    The catalog refuses a second enabled IsDefault set; `several_defaults` lifts
    that refusal so the policy's ranking of defaults can be tested on its own.
    """
    catalog = scan_catalog(root)
    if several_defaults:
        sets = tuple(
            replace(s, problems=tuple(p for p in s.problems if p.key != "IsDefault"))
            for s in catalog
        )
        catalog = Catalog(catalog.root, sets)
    broken = {str(s.path): [p.message for p in s.errors] for s in catalog if s.errors}
    assert not broken, broken
    return catalog


def catalog_of(
    root: Path, sets: dict[str, dict[str, Any]], *, several_defaults: bool = False
) -> Catalog:
    """One set per entry, Index numbered 1, 2, ... unless given."""
    for number, (name, overrides) in enumerate(sets.items(), start=1):
        add_set(root, name, **{"Index": number, **overrides})
    return scan(root, several_defaults=several_defaults)


def make_policy(bindings: BindingTable | None = None, **settings: Any) -> BsdpPolicy:
    settings.setdefault("server_name", SERVER_NAME)
    return BsdpPolicy(
        BsdpSettings(**settings), bindings if bindings is not None else BindingTable()
    )


def wire(packet: DhcpPacket) -> DhcpPacket:
    return parse_packet(build_packet(packet))


def list_request(
    *,
    arch: str = "i386",
    model: str = MODEL,
    mac: bytes = MAC,
    ciaddr: str = CLIENT_IP,
    reply_port: int | None = None,
    attribute_filter: tuple[int, ...] | None = None,
    xid: int = XID,
) -> DhcpPacket:
    return wire(inform_list(xid, mac, ciaddr, arch, model, reply_port, attribute_filter))


def select_request(
    chosen: int | None,
    *,
    server: str | None = SERVER,
    arch: str = "i386",
    model: str = MODEL,
    mac: bytes = MAC,
    reply_port: int | None = None,
    xid: int = XID + 1,
) -> DhcpPacket:
    """INFORM[SELECT]; `chosen` or `server` None leaves sub-option 8 or 3 out."""
    packet = inform_select(xid, mac, CLIENT_IP, arch, model, SERVER, 0, reply_port)
    bsdp = BsdpMessage(
        message_type=MessageType.SELECT,
        version=VERSION_1_1,
        reply_port=reply_port,
        server_identifier=server,
        selected_image_id=chosen,
    )
    return wire(with_option_43(packet, encode(bsdp)))


def with_option_43(packet: DhcpPacket, *bodies: bytes) -> DhcpPacket:
    """The packet with its option 43 replaced by these instances (other options kept)."""
    others = [(code, value) for code, value in packet.options if code != Option.VENDOR_SPECIFIC]
    return replace(packet, options=(*others, *((Option.VENDOR_SPECIFIC, b) for b in bodies)))


def bsdp_request(message: BsdpMessage, *, max_dhcp_size: int | None = None) -> DhcpPacket:
    """An INFORM carrying exactly this BSDP message (and option 57 only if given)."""
    options: list[tuple[int, bytes]] = [
        (Option.MESSAGE_TYPE, bytes((DhcpType.INFORM,))),
        (Option.PARAMETER_REQUEST_LIST, bytes((60, 43))),
    ]
    if max_dhcp_size is not None:
        options.append((Option.MAX_MESSAGE_SIZE, max_dhcp_size.to_bytes(2, "big")))
    options.append((Option.VENDOR_CLASS, client_class_bytes("i386", MODEL)))
    options.append((Option.VENDOR_SPECIFIC, encode(message)))
    packet = DhcpPacket(
        op=BOOTREQUEST, xid=XID, chaddr=MAC, ciaddr=CLIENT_IP, options=tuple(options)
    )
    return wire(packet)


def reply_of(decision: Decision) -> Reply:
    assert isinstance(decision, Reply), decision
    return decision


def bsdp_of(packet: DhcpPacket) -> BsdpMessage:
    return decode(b"".join(packet.all_of(Option.VENDOR_SPECIFIC)))


def listed(decision: Decision) -> list[tuple[int, str]]:
    """Every (id, name) of every ACK[LIST] of the decision, in order."""
    out: list[tuple[int, str]] = []
    for packet in reply_of(decision).packets:
        out.extend((image.image_id, image.name) for image in bsdp_of(packet).images or ())
    return out


def listed_names(decision: Decision) -> list[str]:
    return [name for _, name in listed(decision)]


def image_id(index: int, kind: int = 1, install: bool = False) -> int:
    return (0x8000_0000 if install else 0) | (kind << 24) | index


def root_path_of(packet: DhcpPacket) -> str | None:
    value = packet.option(Option.ROOT_PATH)
    return value.decode() if value is not None else None


# --- which images a client sees -----------------------------------------------------


@dataclass(frozen=True)
class Visibility:
    sets: dict[str, dict[str, Any]]
    expected: list[str]
    """Names listed, in catalog order (set directories sort by name)."""
    arch: str = "i386"
    model: str = MODEL
    mac: bytes = MAC
    attribute_filter: tuple[int, ...] | None = None


ARCH_SETS: dict[str, dict[str, Any]] = {
    "Both": {"Architectures": ["i386", "ppc"]},
    "Intel": {"Architectures": ["i386"]},
    "PowerPC": {"Architectures": ["ppc"]},
}
MODEL_SETS: dict[str, dict[str, Any]] = {
    "AnyModel": {},
    "EmptyAllowList": {"EnabledSystemIdentifiers": []},
    "IMacOnly": {"EnabledSystemIdentifiers": [IMAC]},
    "MacBookOrIMac": {"EnabledSystemIdentifiers": [MODEL, IMAC]},
    "NotMacBook": {"DisabledSystemIdentifiers": [MODEL]},
    "NotIMac": {"DisabledSystemIdentifiers": [IMAC]},
    "MacBookBothLists": {
        "EnabledSystemIdentifiers": [MODEL],
        "DisabledSystemIdentifiers": [MODEL],
    },
}
MAC_SETS: dict[str, dict[str, Any]] = {
    "AnyMac": {},
    "DeniedAndAllowed": {"EnabledMACAddresses": [MAC_TEXT], "DisabledMACAddresses": [MAC_TEXT]},
    "DeniedUs": {"DisabledMACAddresses": ["0:16:CB:12:34:56"]},  # ether_aton form
    "OnlyOther": {"EnabledMACAddresses": [OTHER_MAC_TEXT]},
    "EitherOfUs": {"EnabledMACAddresses": [OTHER_MAC_TEXT, MAC_TEXT]},
    "OnlyUs": {"EnabledMACAddresses": [MAC_TEXT]},
}
KIND_SETS: dict[str, dict[str, Any]] = {
    "Diagnostics": {"Kind": 3},  # FilterOnly by default
    "DiagnosticsShown": {"Kind": 3, "FilterOnly": False},
    "Install": {"IsInstall": True},
    "MacOSX": {},
    "OnlyOnRequest": {"FilterOnly": True},
    "Server": {"Kind": 2},
}

VISIBILITY = {
    "i386 client: i386 images and images for both": Visibility(ARCH_SETS, ["Both", "Intel"]),
    "ppc client: ppc images and images for both": Visibility(
        ARCH_SETS, ["Both", "PowerPC"], arch="ppc", model="PowerMac3,1"
    ),
    "model allow- and deny-lists, MacBookPro": Visibility(
        MODEL_SETS, ["AnyModel", "EmptyAllowList", "MacBookOrIMac", "NotIMac"]
    ),
    "model allow- and deny-lists, iMac": Visibility(
        MODEL_SETS,
        ["AnyModel", "EmptyAllowList", "IMacOnly", "MacBookOrIMac", "NotMacBook"],
        model=IMAC,
    ),
    "model allow- and deny-lists, a model no list names": Visibility(
        MODEL_SETS, ["AnyModel", "EmptyAllowList", "NotIMac", "NotMacBook"], model="Macmini7,1"
    ),
    "MAC lists, our MAC: the deny-list wins over the allow-list": Visibility(
        MAC_SETS, ["AnyMac", "EitherOfUs", "OnlyUs"]
    ),
    "MAC lists, another MAC": Visibility(
        MAC_SETS, ["AnyMac", "DeniedUs", "EitherOfUs", "OnlyOther"], mac=OTHER_MAC
    ),
    "disabled images are hidden": Visibility(
        {"Disabled": {"IsEnabled": False}, "Enabled": {}}, ["Enabled"]
    ),
    "no filter: FilterOnly and kind-3 images hidden": Visibility(
        KIND_SETS, ["DiagnosticsShown", "Install", "MacOSX", "Server"]
    ),
    "filter 0x0300: diagnostics only": Visibility(
        KIND_SETS, ["Diagnostics", "DiagnosticsShown"], attribute_filter=(0x0300,)
    ),
    "filter 0x0100: non-install Mac OS X, FilterOnly too": Visibility(
        KIND_SETS, ["MacOSX", "OnlyOnRequest"], attribute_filter=(0x0100,)
    ),
    "filter 0x0100 0x8100: install and non-install Mac OS X": Visibility(
        KIND_SETS, ["Install", "MacOSX", "OnlyOnRequest"], attribute_filter=(0x0100, 0x8100)
    ),
    "filter 0x8100: install images only": Visibility(
        KIND_SETS, ["Install"], attribute_filter=(0x8100,)
    ),
    "filter 0x0200: Mac OS X Server only": Visibility(
        KIND_SETS, ["Server"], attribute_filter=(0x0200,)
    ),
}


@pytest.mark.parametrize("case", VISIBILITY.values(), ids=VISIBILITY.keys())
def test_list_shows_exactly_the_eligible_images(tmp_path: Path, case: Visibility) -> None:
    catalog = catalog_of(tmp_path, case.sets)
    request = list_request(
        arch=case.arch, model=case.model, mac=case.mac, attribute_filter=case.attribute_filter
    )
    decision = make_policy().decide(request, catalog, SERVER, 0.0)
    assert listed_names(decision) == case.expected
    listed_ids = [image for image, _ in listed(decision)]
    assert len(set(listed_ids)) == len(listed_ids)


@pytest.mark.parametrize(
    ("sets", "client"),
    [
        pytest.param({"Intel": {}}, {"arch": "arm", "model": "Mac14,2"}, id="no image for arm"),
        pytest.param({"PowerPC": {"Architectures": ["ppc"]}}, {}, id="ppc images, i386 client"),
        pytest.param({"Off": {"IsEnabled": False}}, {}, id="only a disabled image"),
        pytest.param({"IMac": {"EnabledSystemIdentifiers": [IMAC]}}, {}, id="other model only"),
        pytest.param({"Diag": {"Kind": 3}}, {}, id="only FilterOnly diagnostics, no filter"),
        pytest.param({"MacOSX": {}}, {"attribute_filter": (0x0300,)}, id="filter matches none"),
        pytest.param({}, {}, id="empty catalog"),
    ],
)
def test_no_eligible_image_is_silence(
    tmp_path: Path, sets: dict[str, dict[str, Any]], client: dict[str, Any]
) -> None:
    catalog = catalog_of(tmp_path, sets)
    decision = make_policy().decide(list_request(**client), catalog, SERVER, 0.0)
    assert isinstance(decision, Ignore)
    assert not decision.malformed


def test_eligible_and_passes_filter_directly(tmp_path: Path) -> None:
    catalog = catalog_of(
        tmp_path,
        {"Diag": {"Kind": 3}, "Intel": {"DisabledMACAddresses": [MAC_TEXT]}},
    )
    diag, intel = (s.info for s in catalog)
    assert diag is not None and intel is not None
    intel_mac = ClientClass("i386", MODEL)
    assert eligible(diag, intel_mac, MAC_TEXT)
    assert not eligible(intel, intel_mac, MAC_TEXT)
    assert eligible(intel, intel_mac, OTHER_MAC_TEXT)
    assert not eligible(intel, ClientClass("ppc", MODEL), OTHER_MAC_TEXT)
    assert not passes_filter(diag, None)
    assert passes_filter(diag, (0x0100, 0x0300))
    assert passes_filter(intel, None)
    assert not passes_filter(intel, (0x8100,))


# --- image IDs ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "expected_id"),
    [
        pytest.param({"Index": 1}, 0x0100_0001, id="local index 1"),
        pytest.param({"Index": 4095}, 0x0100_0FFF, id="last local index 4095"),
        pytest.param({"Index": 4096}, 0x0100_1000, id="first global index 4096"),
        pytest.param({"Index": 65535}, 0x0100_FFFF, id="last global index 65535"),
        pytest.param({"Index": 7, "IsInstall": True}, 0x8100_0007, id="install bit"),
        pytest.param({"Index": 4096, "IsInstall": True}, 0x8100_1000, id="install global"),
        pytest.param({"Index": 9, "Kind": 2, "IsInstall": True}, 0x8200_0009, id="install server"),
        pytest.param({"Index": 5, "Kind": 0}, 0x0000_0005, id="Mac OS 9 kind 0"),
    ],
)
def test_image_ids_go_out_unchanged_and_can_be_selected(
    tmp_path: Path, overrides: dict[str, Any], expected_id: int
) -> None:
    catalog = catalog_of(tmp_path, {"Only": overrides})
    policy = make_policy()
    decision = reply_of(policy.decide(list_request(), catalog, SERVER, 0.0))
    assert listed(decision) == [(expected_id, "Only")]
    assert bsdp_of(decision.packets[0]).default_image_id == expected_id
    ack = reply_of(policy.decide(select_request(expected_id), catalog, SERVER, 0.0)).packets[0]
    assert bsdp_of(ack).message_type == MessageType.SELECT
    assert bsdp_of(ack).selected_image_id == expected_id


# --- the default image ----------------------------------------------------------------


def default_and_order(catalog: Catalog, **client: Any) -> tuple[str, list[str]]:
    decision = make_policy().decide(list_request(**client), catalog, SERVER, 0.0)
    names = dict(listed(decision))
    default_id = bsdp_of(reply_of(decision).packets[0]).default_image_id
    assert default_id is not None
    return names[default_id], listed_names(decision)


def test_without_is_default_the_first_eligible_image_in_catalog_order_is_default(
    tmp_path: Path,
) -> None:
    catalog = catalog_of(
        tmp_path, {"Alpha": {"Architectures": ["ppc"]}, "Beta": {}, "Gamma": {"Index": 1000}}
    )
    assert default_and_order(catalog) == ("Beta", ["Beta", "Gamma"])


def test_the_is_default_image_comes_first_and_is_the_default(tmp_path: Path) -> None:
    catalog = catalog_of(tmp_path, {"Alpha": {}, "Beta": {}, "Gamma": {"IsDefault": True}})
    assert default_and_order(catalog) == ("Gamma", ["Gamma", "Alpha", "Beta"])


def test_unrestricted_defaults_rank_before_model_restricted_ones(tmp_path: Path) -> None:
    catalog = catalog_of(
        tmp_path,
        {
            "Alpha": {},
            "Beta": {"IsDefault": True, "EnabledSystemIdentifiers": [MODEL]},
            "Gamma": {"IsDefault": True},
            "Delta": {"IsDefault": True, "EnabledSystemIdentifiers": [IMAC]},
        },
        several_defaults=True,
    )
    assert len(catalog.servable) == 4
    # Directory order is Alpha, Beta, Delta, Gamma.
    assert default_and_order(catalog) == ("Gamma", ["Gamma", "Beta", "Alpha"])
    assert default_and_order(catalog, model=IMAC) == ("Gamma", ["Gamma", "Delta", "Alpha"])
    assert default_and_order(catalog, model="Macmini7,1") == ("Gamma", ["Gamma", "Alpha"])


def test_model_restricted_defaults_keep_catalog_order_among_themselves(tmp_path: Path) -> None:
    catalog = catalog_of(
        tmp_path,
        {
            "Alpha": {},
            "Beta": {"IsDefault": True, "EnabledSystemIdentifiers": [IMAC, MODEL]},
            "Gamma": {"IsDefault": True, "EnabledSystemIdentifiers": [MODEL]},
        },
        several_defaults=True,
    )
    assert default_and_order(catalog) == ("Beta", ["Beta", "Gamma", "Alpha"])


def test_a_default_the_client_may_not_boot_is_passed_over(tmp_path: Path) -> None:
    catalog = catalog_of(
        tmp_path,
        {
            "Alpha": {},
            "Beta": {"IsDefault": True, "EnabledSystemIdentifiers": [IMAC]},
        },
    )
    assert default_and_order(catalog) == ("Alpha", ["Alpha"])
    assert default_and_order(catalog, model=IMAC) == ("Beta", ["Beta", "Alpha"])


def test_a_disabled_default_is_not_the_default(tmp_path: Path) -> None:
    catalog = catalog_of(
        tmp_path, {"Alpha": {"IsDefault": True, "IsEnabled": False}, "Beta": {}, "Gamma": {}}
    )
    assert default_and_order(catalog) == ("Beta", ["Beta", "Gamma"])


def test_the_attribute_filter_applies_to_the_default(tmp_path: Path) -> None:
    catalog = catalog_of(tmp_path, {"Diag": {"Kind": 3}, "MacOSX": {"IsDefault": True}})
    assert default_and_order(catalog, attribute_filter=(0x0300,)) == ("Diag", ["Diag"])
    assert default_and_order(catalog) == ("MacOSX", ["MacOSX"])


# --- docs/protocols/bsdp.md §8 vectors: INFORM[LIST] -> ACK[LIST] -----------------------


def bootp(
    *,
    op: int,
    xid: int,
    siaddr: str = "00 00 00 00",
    sname: bytes = b"",
    file: bytes = b"",
    options: str,
    total: int,
) -> bytes:
    """A BOOTP message laid out as docs/protocols/bsdp.md §8 writes it (its offsets)."""
    header = bytes.fromhex(
        f"{op:02x} 01 06 00"  # op, htype 1, hlen 6, hops 0
        f"{xid:08x}"  # xid
        "00 00 00 00"  # secs 0, flags 0
        "c0 00 02 32"  # ciaddr 192.0.2.50
        "00 00 00 00"  # yiaddr 0
        f"{siaddr}"  # siaddr
        "00 00 00 00"  # giaddr 0
        "00 16 cb 12 34 56" + "00" * 10  # chaddr, padded to 16
    )
    header += sname.ljust(64, b"\x00") + file.ljust(128, b"\x00")
    message = header + bytes.fromhex("63 82 53 63" + options)  # magic cookie, options
    assert len(message) <= total
    return message.ljust(total, b"\x00")


# 8.1: INFORM[LIST] from an i386 MacBookPro11,1 with reply port 1000 and 12 = 8192.
INFORM_LIST_8_1 = bootp(
    op=1,
    xid=0x12345678,
    options=(
        "35 01 08"  # 53 INFORM
        "37 02 3c 2b"  # 55 {60, 43}
        "39 02 05 dc"  # 57 1500
        "3c 1d 41 41 50 4c 42 53 44 50 43 2f 69 33 38 36"  # 60 AAPLBSDPC/i386
        "2f 4d 61 63 42 6f 6f 6b 50 72 6f 31 31 2c 31"  # /MacBookPro11,1
        "2b 0f"  # 43, 15 bytes
        "01 01 01"  # 1 LIST
        "02 02 01 01"  # 2 version 1.1
        "05 02 03 e8"  # 5 reply port 1000
        "0c 02 20 00"  # 12 max message 8192
        "ff"
    ),
    total=300,
)

# 8.2: ACK[LIST] of "High Sierra" 0x01000001 (default) and "Install macOS" 0x81001000.
ACK_LIST_8_2 = bootp(
    op=2,
    xid=0x12345678,
    siaddr="c0 00 02 0a",
    options=(
        "35 01 05"  # 53 ACK
        "36 04 c0 00 02 0a"  # 54 192.0.2.10
        "3c 09 41 41 50 4c 42 53 44 50 43"  # 60 AAPLBSDPC
        "2b 31"  # 43, 49 bytes
        "01 01 01"  # 1 LIST
        "04 02 80 00"  # 4 priority 32768
        "07 04 01 00 00 01"  # 7 default 0x01000001
        "09 22"  # 9 image list, 34 bytes
        "01 00 00 01 0b 48 69 67 68 20 53 69 65 72 72 61"  # 0x01000001 "High Sierra"
        "81 00 10 00 0d 49 6e 73 74 61 6c 6c 20 6d 61 63 4f 53"  # 0x81001000 "Install macOS"
        "ff"
    ),
    total=312,
)

# 8.3: INFORM[SELECT] of 0x01000001 from server 192.0.2.10, reply port 1000.
INFORM_SELECT_8_3 = bootp(
    op=1,
    xid=0x12345679,
    options=(
        "35 01 08 37 02 3c 2b 39 02 05 dc"  # 53 INFORM, 55 {60, 43}, 57 1500
        "3c 1d 41 41 50 4c 42 53 44 50 43 2f 69 33 38 36"  # 60 AAPLBSDPC/i386
        "2f 4d 61 63 42 6f 6f 6b 50 72 6f 31 31 2c 31"  # /MacBookPro11,1
        "2b 17"  # 43, 23 bytes
        "01 01 02"  # 1 SELECT
        "02 02 01 01"  # 2 version 1.1
        "05 02 03 e8"  # 5 reply port 1000
        "03 04 c0 00 02 0a"  # 3 server 192.0.2.10
        "08 04 01 00 00 01"  # 8 selected 0x01000001
        "ff"
    ),
    total=308,
)

# 8.4: ACK[SELECT] of the HTTP image (options and header; `file` differs by design).
ACK_SELECT_8_4 = bootp(
    op=2,
    xid=0x12345679,
    siaddr="c0 00 02 0a",
    sname=b"netboot-srv",
    file=b"/private/tftpboot/NetBoot/NetBootSP0/HighSierra.nbi/i386/booter",
    options=(
        "35 01 05"  # 53 ACK
        "36 04 c0 00 02 0a"  # 54 server id
        "3c 09 41 41 50 4c 42 53 44 50 43"  # 60 AAPLBSDPC
        "11 3f 68 74 74 70 3a 2f 2f 31 39 32 2e 30"  # 17, 63 bytes: "http://192.0
        "2e 32 2e 31 30 2f 4e 65 74 42 6f 6f 74"  # .2.10/NetBoot
        "2f 4e 65 74 42 6f 6f 74 53 50 30 2f 48"  # /NetBootSP0/H
        "69 67 68 53 69 65 72 72 61 2e 6e 62 69"  # ighSierra.nbi
        "2f 4e 65 74 42 6f 6f 74 2e 64 6d 67"  # /NetBoot.dmg"
        "2b 15"  # 43, 21 bytes
        "01 01 02"  # 1 SELECT
        "08 04 01 00 00 01"  # 8 0x01000001
        "82 0a 4e 65 74 42 6f 6f 74 30 30 31"  # 130 "NetBoot001"
        "ff"
    ),
    total=349,
)

# 8.5: ACK[FAILED] (in answer to the 8.3 SELECT).
FAILED_OPTIONS_8_5 = (
    "35 01 05"  # 53 ACK
    "36 04 c0 00 02 0a"  # 54 server id
    "3c 09 41 41 50 4c 42 53 44 50 43"  # 60 AAPLBSDPC
    "2b 03 01 01 03"  # 43 = {1 FAILED}
    "ff"
)
ACK_FAILED_8_5 = bootp(
    op=2,
    xid=0x12345679,
    siaddr="c0 00 02 0a",
    sname=b"netboot-srv",
    options=FAILED_OPTIONS_8_5,
    total=300,
)
FILE = slice(108, 236)


@pytest.fixture
def vector_catalog(tmp_path: Path) -> Catalog:
    """The two images of docs/protocols/bsdp.md §8.2, in a sharepoint directory as Apple does."""
    sharepoint = tmp_path / "NetBootSP0"
    add_set(sharepoint, "HighSierra", Name="High Sierra", Index=1)
    add_set(sharepoint, "InstallmacOS", Name="Install macOS", Index=4096, IsInstall=True)
    return scan(tmp_path)


def test_vector_inform_list_gets_vector_ack_list(vector_catalog: Catalog) -> None:
    decision = make_policy().decide(parse_packet(INFORM_LIST_8_1), vector_catalog, SERVER, 0.0)
    reply = reply_of(decision)
    assert reply.destination == (CLIENT_IP, 1000)
    assert [build_packet(p) for p in reply.packets] == [ACK_LIST_8_2]


def test_vector_inform_select_gets_vector_ack_select(vector_catalog: Catalog) -> None:
    # Apple's HTTP alias NetBoot/ in front of the sharepoints is our base URL.
    policy = make_policy(root_paths=RootPathSettings(http_base_url="http://192.0.2.10/NetBoot"))
    reply = reply_of(policy.decide(parse_packet(INFORM_SELECT_8_3), vector_catalog, SERVER, 0.0))
    assert reply.destination == (CLIENT_IP, 1000)
    (packet,) = reply.packets
    raw = build_packet(packet)
    assert len(raw) == len(ACK_SELECT_8_4)
    assert raw[: FILE.start] == ACK_SELECT_8_4[: FILE.start]
    assert raw[FILE.stop :] == ACK_SELECT_8_4[FILE.stop :]
    # Our booter path is relative to the TFTP root (docs/protocols/bsdp.md §6.1), not
    # Apple's absolute one.
    assert raw[FILE].rstrip(b"\x00") == b"NetBootSP0/HighSierra.nbi/i386/booter"


def test_select_of_an_unknown_image_gets_vector_ack_failed(vector_catalog: Catalog) -> None:
    select = parse_packet(INFORM_SELECT_8_3)
    unknown = with_option_43(
        select,
        encode(
            BsdpMessage(
                message_type=MessageType.SELECT,
                version=VERSION_1_1,
                reply_port=1000,
                server_identifier=SERVER,
                selected_image_id=0x0100_0063,
            )
        ),
    )
    reply = reply_of(make_policy().decide(wire(unknown), vector_catalog, SERVER, 0.0))
    assert reply.destination == (CLIENT_IP, 1000)
    assert [build_packet(p) for p in reply.packets] == [ACK_FAILED_8_5]


# --- long lists: one ACK[LIST], cut to fit -----------------------------------------------

MANY = 1000
SIZES = [576, 1500, 8192]
CAPACITY = {576: 17, 1500: 78, 8192: 517}
"""Records of 10-character names one reply holds (tests/test_bsdp_packing.py counts them)."""


@pytest.fixture(scope="module")
def many_images(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    """1,000 images with 10-character names: 15-byte list records (docs/protocols/bsdp.md §5.4)."""
    root = tmp_path_factory.mktemp("many")
    for number in range(1, MANY + 1):
        make_set(root, f"Img{number:04d}", Name=f"Image {number:04d}", Index=number)
    catalog = scan(root)
    assert len(catalog.servable) == MANY
    return catalog


def sized_request(size: int, how: str) -> DhcpPacket:
    if how == "sub-option 12":
        message = BsdpMessage(MessageType.LIST, VERSION_1_1, max_message_size=size)
        return bsdp_request(message, max_dhcp_size=1500)
    return bsdp_request(BsdpMessage(MessageType.LIST, VERSION_1_1), max_dhcp_size=size)


def the_one_packet(decision: Decision, size: int) -> DhcpPacket:
    """The single ACK[LIST] of a decision, checked against every size rule as a Mac reads it."""
    (packet,) = reply_of(decision).packets
    raw = build_packet(packet)
    assert len(raw) + 28 <= min(size, 8192)  # IP and UDP headers included
    bodies = parse_packet(raw).all_of(Option.VENDOR_SPECIFIC)
    assert all(len(body) <= 255 for body in bodies)
    assert decode_instances(bodies) == bsdp_of(packet)  # no sub-option across instances
    return packet


@pytest.mark.parametrize("how", ["sub-option 12", "option 57"])
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("count", [1, 40, 400, MANY])
def test_one_ack_list_per_request_holds_what_fits(
    many_images: Catalog, count: int, size: int, how: str
) -> None:
    catalog = Catalog(many_images.root, many_images.sets[:count])
    decision = make_policy().decide(sized_request(size, how), catalog, SERVER, 0.0)
    message = bsdp_of(the_one_packet(decision, size))
    shown = min(count, CAPACITY[size])
    assert listed(decision) == [(image_id(n), f"Image {n:04d}") for n in range(1, shown + 1)]
    assert (message.server_priority, message.default_image_id) == (32768, image_id(1))
    expected_cut = ListCut(shown, count, size) if shown < count else None
    assert reply_of(decision).list_cut == expected_cut
    assert reply_of(decision).destination == (CLIENT_IP, 68)


@pytest.mark.parametrize("size", SIZES)
def test_a_bound_client_finds_its_image_second_in_a_cut_list(
    many_images: Catalog, size: int
) -> None:
    policy = make_policy()
    select_ack(many_images, image_id(MANY), policy)
    message = BsdpMessage(MessageType.LIST, VERSION_1_1, max_message_size=size)
    decision = policy.decide(bsdp_request(message), many_images, SERVER, 1.0)
    head = bsdp_of(the_one_packet(decision, size))
    assert (head.selected_image_id, head.server_priority) == (image_id(MANY), 32767)
    ids = [listed_id for listed_id, _ in listed(decision)]
    assert ids[:2] == [image_id(1), image_id(MANY)]
    assert ids[2:] == [image_id(n) for n in range(2, len(ids))]
    cut = reply_of(decision).list_cut
    assert cut is not None and cut.listed == len(ids) and cut.offered == MANY


def test_the_default_leads_a_cut_list_wherever_it_is_in_the_catalog(tmp_path: Path) -> None:
    for number in range(1, 101):
        make_set(tmp_path, f"Img{number:04d}", Name=f"Image {number:04d}", Index=number)
    make_set(tmp_path, "Zulu", Name="Zulu 00999", Index=999, IsDefault=True)
    decision = make_policy().decide(sized_request(576, "option 57"), scan(tmp_path), SERVER, 0.0)
    ids = [listed_id for listed_id, _ in listed(decision)]
    assert ids == [image_id(999), *(image_id(n) for n in range(1, CAPACITY[576]))]
    assert reply_of(decision).list_cut == ListCut(CAPACITY[576], 101, 576)


def test_model_and_mac_rules_apply_before_the_list_is_cut(tmp_path: Path) -> None:
    for number in range(1, 101):
        rules: dict[str, Any] = {}
        if number % 2:
            rules = {"EnabledSystemIdentifiers": [IMAC]}
        elif number % 3 == 0:
            rules = {"DisabledMACAddresses": [MAC_TEXT]}
        make_set(tmp_path, f"Img{number:04d}", Name=f"Image {number:04d}", Index=number, **rules)
    decision = make_policy().decide(sized_request(576, "option 57"), scan(tmp_path), SERVER, 0.0)
    offered = [n for n in range(1, 101) if n % 2 == 0 and n % 3]
    assert listed(decision) == [(image_id(n), f"Image {n:04d}") for n in offered[: CAPACITY[576]]]
    assert reply_of(decision).list_cut == ListCut(CAPACITY[576], len(offered), 576)


@pytest.mark.parametrize(
    ("option_57", "sub_option_12", "size"),
    [
        pytest.param(None, None, 576, id="nothing asked: 576"),
        pytest.param(300, None, 576, id="below 576 is raised to 576"),
        pytest.param(None, 100, 576, id="a tiny sub-option 12 is raised to 576"),
        pytest.param(1500, 576, 576, id="sub-option 12 wins over option 57"),
        pytest.param(576, 1500, 1500, id="sub-option 12 wins when larger too"),
        pytest.param(1500, 65535, 8192, id="capped at 8192"),
        pytest.param(65535, None, 8192, id="option 57 capped at 8192 too"),
    ],
)
def test_the_reply_size_rules(
    many_images: Catalog, option_57: int | None, sub_option_12: int | None, size: int
) -> None:
    message = BsdpMessage(MessageType.LIST, VERSION_1_1, max_message_size=sub_option_12)
    request = bsdp_request(message, max_dhcp_size=option_57)
    decision = make_policy().decide(request, many_images, SERVER, 0.0)
    the_one_packet(decision, size)
    assert len(listed(decision)) == CAPACITY[size]
    assert reply_of(decision).list_cut == ListCut(CAPACITY[size], MANY, size)


def test_a_name_of_246_bytes_fits_a_576_byte_reply(tmp_path: Path) -> None:
    long_name = "N" * 246
    catalog = catalog_of(tmp_path, {"Alpha": {}, "Long": {"Name": long_name}, "Zulu": {}})
    request = bsdp_request(BsdpMessage(MessageType.LIST, VERSION_1_1))
    decision = make_policy().decide(request, catalog, SERVER, 0.0)
    # The long record takes an option-43 instance of its own; Zulu's no longer fits.
    assert listed_names(decision) == ["Alpha", long_name]
    the_one_packet(decision, 576)
    assert reply_of(decision).list_cut == ListCut(2, 3, 576)


def test_a_longer_name_is_cut_to_246_bytes_at_a_character_boundary(tmp_path: Path) -> None:
    catalog = catalog_of(tmp_path, {"Accents": {"Name": "é" * 200}, "Plain": {"Name": "x" * 300}})
    decision = make_policy().decide(list_request(), catalog, SERVER, 0.0)
    assert listed_names(decision) == ["é" * 123, "x" * 246]


def test_a_version_1_0_client_gets_no_image_list(many_images: Catalog) -> None:
    request = bsdp_request(BsdpMessage(MessageType.LIST, VERSION_1_0, max_message_size=576))
    reply = reply_of(make_policy().decide(request, many_images, SERVER, 0.0))
    (packet,) = reply.packets
    message = bsdp_of(packet)
    assert message.images is None
    assert message.message_type == MessageType.LIST
    assert message.server_priority == 32768
    assert message.default_image_id == image_id(1)
    (body,) = packet.all_of(Option.VENDOR_SPECIFIC)
    assert body == bytes.fromhex("01 01 01  04 02 80 00  07 04 01 00 00 01")


def test_version_0_is_accepted_and_gets_the_list_like_apples_bootpd(tmp_path: Path) -> None:
    """bsdpd.c omits sub-option 9 for exactly 0x0100; 0x0000 (NetBoot 1.0) gets the list."""
    catalog = catalog_of(tmp_path, {"Alpha": {}})
    request = bsdp_request(BsdpMessage(MessageType.LIST, 0x0000))
    assert listed_names(make_policy().decide(request, catalog, SERVER, 0.0)) == ["Alpha"]


# --- addressing and header ---------------------------------------------------------------


@pytest.fixture
def one_image(tmp_path: Path) -> Catalog:
    return catalog_of(tmp_path, {"Alpha": {}})


@pytest.mark.parametrize(
    ("reply_port", "destination_port"),
    [(None, 68), (1000, 1000), (1023, 1023), (68, 68)],
)
@pytest.mark.parametrize("kind", ["LIST", "SELECT"])
def test_replies_go_to_ciaddr_on_the_reply_port_or_68(
    one_image: Catalog, reply_port: int | None, destination_port: int, kind: str
) -> None:
    request = (
        list_request(reply_port=reply_port)
        if kind == "LIST"
        else select_request(image_id(1), reply_port=reply_port)
    )
    reply = reply_of(make_policy().decide(request, one_image, SERVER, 0.0))
    assert reply.destination == (CLIENT_IP, destination_port)


@pytest.mark.parametrize("reply_port", [1024, 8000, 65535])
@pytest.mark.parametrize("kind", ["LIST", "SELECT"])
def test_an_unprivileged_reply_port_is_dropped_as_malformed(
    one_image: Catalog, reply_port: int, kind: str
) -> None:
    request = (
        list_request(reply_port=reply_port)
        if kind == "LIST"
        else select_request(image_id(1), reply_port=reply_port)
    )
    decision = make_policy().decide(request, one_image, SERVER, 0.0)
    assert isinstance(decision, Ignore)
    assert decision.malformed


@pytest.mark.parametrize("kind", ["LIST", "SELECT"])
@pytest.mark.parametrize(
    ("giaddr", "reply_port", "destination"),
    [
        pytest.param("0.0.0.0", None, ("255.255.255.255", 68), id="broadcast to 68"),
        pytest.param("0.0.0.0", 1000, ("255.255.255.255", 1000), id="broadcast to reply port"),
        pytest.param("198.51.100.1", 1000, ("198.51.100.1", 67), id="relayed: to giaddr:67"),
    ],
)
def test_a_request_without_ciaddr_is_answered_like_rfc_2131_clients_without_address(
    one_image: Catalog,
    kind: str,
    giaddr: str,
    reply_port: int | None,
    destination: tuple[str, int],
) -> None:
    """Apple drops these; policy.py answers them (insomniacslk's client sends SELECT so)."""
    request = (
        list_request(reply_port=reply_port)
        if kind == "LIST"
        else select_request(image_id(1), reply_port=reply_port)
    )
    request = wire(replace(request, ciaddr="0.0.0.0", giaddr=giaddr))
    reply = reply_of(make_policy().decide(request, one_image, SERVER, 0.0))
    assert reply.destination == destination
    (packet,) = reply.packets
    assert (packet.ciaddr, packet.yiaddr, packet.giaddr) == ("0.0.0.0", "0.0.0.0", giaddr)


@pytest.mark.parametrize("kind", ["LIST", "SELECT"])
def test_a_relayed_client_is_answered_at_ciaddr_and_giaddr_is_copied(
    one_image: Catalog, kind: str
) -> None:
    request = list_request() if kind == "LIST" else select_request(image_id(1))
    relayed = wire(replace(request, giaddr="198.51.100.1", hops=1))
    reply = reply_of(make_policy().decide(relayed, one_image, SERVER, 0.0))
    assert reply.destination == (CLIENT_IP, 68)
    assert [p.giaddr for p in reply.packets] == ["198.51.100.1"]


@pytest.mark.parametrize("kind", ["LIST", "SELECT", "FAILED"])
def test_the_reply_header_copies_the_request(one_image: Catalog, kind: str) -> None:
    chaddr = bytes.fromhex("0016cb123456") + bytes.fromhex("aabbccddeeff00112233")
    request = {
        "LIST": list_request(xid=0xCAFEF00D),
        "SELECT": select_request(image_id(1), xid=0xCAFEF00D),
        "FAILED": select_request(image_id(99), xid=0xCAFEF00D),
    }[kind]
    request = wire(replace(request, chaddr=chaddr, flags=0x8000, hops=3, secs=9))
    (packet,) = reply_of(make_policy().decide(request, one_image, SERVER, 0.0)).packets
    assert packet.op == BOOTREPLY
    assert (packet.xid, packet.chaddr, packet.flags) == (0xCAFEF00D, chaddr, 0x8000)
    assert (packet.htype, packet.hlen, packet.hops, packet.secs) == (1, 6, 0, 0)
    assert (packet.ciaddr, packet.yiaddr, packet.siaddr) == (CLIENT_IP, "0.0.0.0", SERVER)
    assert packet.message_type == DhcpType.ACK
    assert packet.option(Option.SERVER_IDENTIFIER) == bytes((192, 0, 2, 10))
    assert packet.option(Option.VENDOR_CLASS) == b"AAPLBSDPC"
    assert packet.option(Option.LEASE_TIME) is None  # BSDP never hands out addresses
    assert [code for code, _ in packet.options][:3] == [53, 54, 60]


def test_the_server_identifier_is_the_address_the_request_arrived_on(one_image: Catalog) -> None:
    (packet,) = reply_of(make_policy().decide(list_request(), one_image, "10.1.2.3", 0.0)).packets
    assert packet.option(Option.SERVER_IDENTIFIER) == bytes((10, 1, 2, 3))
    assert packet.siaddr == "10.1.2.3"


# --- bad input ---------------------------------------------------------------------------

LIST_HEAD = bytes.fromhex("01 01 01 02 02 01 01")  # 1 LIST, 2 version 1.1


@pytest.mark.parametrize(
    "bodies",
    [
        pytest.param((bytes.fromhex("01 01 01 02 02 01"),), id="version cut short"),
        pytest.param((bytes.fromhex("01 01 01 02"),), id="sub-option without its length"),
        pytest.param((LIST_HEAD + bytes.fromhex("0c 04 20 00"),), id="length past the end"),
        pytest.param((LIST_HEAD + bytes.fromhex("09 10 01 00 00 01"),), id="list past the end"),
        pytest.param((LIST_HEAD + bytes.fromhex("05 01 03"),), id="reply port of one byte"),
        pytest.param((LIST_HEAD + bytes.fromhex("0b 03 03 00 01"),), id="odd filter length"),
        pytest.param((LIST_HEAD + bytes.fromhex("0b 00"),), id="empty filter"),
        pytest.param((bytes.fromhex("01 01 01"),), id="no version"),
        pytest.param((bytes.fromhex("01 01 01 02 02 02 00"),), id="version 2.0"),
        pytest.param((bytes.fromhex("02 02 01 01"),), id="no message type"),
        pytest.param((), id="no option 43"),
        pytest.param((b"",), id="empty option 43"),
        pytest.param((LIST_HEAD + bytes.fromhex("0c 02 20"), b""), id="split, still short"),
    ],
)
def test_broken_option_43_is_dropped_as_malformed(
    one_image: Catalog, bodies: tuple[bytes, ...]
) -> None:
    request = wire(with_option_43(list_request(), *bodies))
    decision = make_policy().decide(request, one_image, SERVER, 0.0)
    assert isinstance(decision, Ignore)
    assert decision.malformed


def test_option_43_instances_are_joined_before_decoding(one_image: Catalog) -> None:
    body = encode(BsdpMessage(MessageType.LIST, VERSION_1_1, reply_port=1000))
    request = wire(with_option_43(list_request(), body[:5], body[5:]))  # cut inside sub-option 2
    reply = reply_of(make_policy().decide(request, one_image, SERVER, 0.0))
    assert reply.destination == (CLIENT_IP, 1000)
    assert listed_names(reply) == ["Alpha"]


def test_an_option_43_running_past_the_datagram_does_not_parse() -> None:
    raw = build_packet(inform_list(XID, MAC, CLIENT_IP, "i386", MODEL), pad_to=0)
    assert raw.endswith(b"\xff")
    with pytest.raises(MalformedPacket):
        parse_packet(raw[:-3])  # option 43 now claims 15 bytes, 13 remain
    with pytest.raises(MalformedPacket):
        parse_packet(raw[:-1] + bytes.fromhex("2b 09 01 01"))  # a second 43 cut short


@pytest.mark.parametrize("message_type", [0, MessageType.FAILED, 4, 200])
def test_an_unknown_bsdp_message_type_is_silence(one_image: Catalog, message_type: int) -> None:
    body = encode(BsdpMessage(message_type=message_type, version=VERSION_1_1))
    decision = make_policy().decide(
        wire(with_option_43(list_request(), body)), one_image, SERVER, 0.0
    )
    assert isinstance(decision, Ignore)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"htype": 6}, id="token ring"),
        pytest.param({"hlen": 8}, id="hlen 8"),
        pytest.param({"options_60": b"AAPLBSDPC"}, id="a server's class id"),
        pytest.param({"options_60": b"PXEClient:Arch:00007"}, id="a PXE client"),
        pytest.param({"options_60": b"AAPLBSDPC/i386\x00/MacBookPro11,1"}, id="NUL in class"),
        pytest.param({"options_53": DhcpType.DISCOVER}, id="DISCOVER"),
        pytest.param({"options_53": DhcpType.REQUEST}, id="REQUEST"),
    ],
)
def test_requests_that_are_not_bsdp_informs_are_silence(
    one_image: Catalog, change: dict[str, Any]
) -> None:
    request = list_request()
    options = dict(request.options)
    if "options_60" in change:
        options[Option.VENDOR_CLASS] = change.pop("options_60")
    if "options_53" in change:
        options[Option.MESSAGE_TYPE] = bytes((change.pop("options_53"),))
    request = wire(replace(request, options=tuple(options.items()), **change))
    decision = make_policy().decide(request, one_image, SERVER, 0.0)
    assert isinstance(decision, Ignore)
    assert not decision.malformed


# --- SELECT ---------------------------------------------------------------------------------


def test_select_without_a_server_identifier_is_dropped_as_malformed(one_image: Catalog) -> None:
    decision = make_policy().decide(select_request(image_id(1), server=None), one_image, SERVER, 0)
    assert isinstance(decision, Ignore)
    assert decision.malformed


def test_select_of_another_server_is_silence_and_drops_our_binding(one_image: Catalog) -> None:
    bindings = BindingTable()
    policy = make_policy(bindings)
    reply_of(policy.decide(select_request(image_id(1)), one_image, SERVER, 0.0))
    assert bindings.get(MAC_TEXT) is not None
    assert policy.priority(1.0) == 32767
    decision = policy.decide(
        select_request(image_id(1), server=OTHER_SERVER), one_image, SERVER, 1.0
    )
    assert isinstance(decision, Ignore)
    assert not decision.malformed
    assert bindings.get(MAC_TEXT) is None
    assert policy.priority(1.0) == 32768
    listing = bsdp_of(reply_of(policy.decide(list_request(), one_image, SERVER, 2.0)).packets[0])
    assert listing.selected_image_id is None
    assert listing.server_priority == 32768


def test_select_of_another_server_without_a_binding_is_silence(one_image: Catalog) -> None:
    decision = make_policy().decide(
        select_request(image_id(1), server=OTHER_SERVER), one_image, SERVER, 0.0
    )
    assert isinstance(decision, Ignore)


def select_ack(
    catalog: Catalog,
    chosen: int | None,
    policy: BsdpPolicy | None = None,
    **client: Any,
) -> DhcpPacket:
    policy = policy or make_policy()
    reply = reply_of(policy.decide(select_request(chosen, **client), catalog, SERVER, 0.0))
    (packet,) = reply.packets
    assert bsdp_of(packet).message_type == MessageType.SELECT, reply.summary
    return packet


def test_ack_select_names_booter_root_path_image_and_machine(tmp_path: Path) -> None:
    catalog = catalog_of(tmp_path, {"Alpha": {}})
    packet = select_ack(catalog, image_id(1))
    assert packet.file == b"Alpha.nbi/i386/booter"
    assert (packet.siaddr, packet.sname) == (SERVER, SERVER_NAME.encode())
    assert root_path_of(packet) == "http://192.0.2.10/Alpha.nbi/NetBoot.dmg"
    assert [code for code, _ in packet.options] == [53, 54, 60, 17, 43]
    message = bsdp_of(packet)
    assert message == BsdpMessage(
        message_type=MessageType.SELECT, selected_image_id=image_id(1), machine_name="NetBoot001"
    )


@pytest.mark.parametrize(
    ("overrides", "client", "expected"),
    [
        pytest.param({}, {}, "Alpha.nbi/i386/booter", id="i386"),
        pytest.param(
            {"Architectures": ["ppc"]},
            {"arch": "ppc", "model": "PowerMac3,1"},
            "Alpha.nbi/ppc/booter",
            id="ppc",
        ),
        pytest.param(
            {"Architectures": ["i386", "ppc"]},
            {"arch": "ppc", "model": "PowerMac3,1"},
            "Alpha.nbi/ppc/booter",
            id="ppc client of a two-architecture set",
        ),
        pytest.param(
            {"Architectures": ["ppc", "i386"]}, {}, "Alpha.nbi/i386/booter", id="i386 of two"
        ),
    ],
)
def test_the_booter_is_the_one_for_the_clients_architecture(
    tmp_path: Path, overrides: dict[str, Any], client: dict[str, Any], expected: str
) -> None:
    catalog = catalog_of(tmp_path, {"Alpha": overrides})
    assert select_ack(catalog, image_id(1), **client).file == expected.encode()


def test_a_booter_in_an_x86_64_directory_serves_i386_clients(tmp_path: Path) -> None:
    make_set(tmp_path, "Alpha", arch_dir="x86_64")
    catalog = scan(tmp_path)
    assert select_ack(catalog, image_id(1)).file == b"Alpha.nbi/x86_64/booter"


def test_a_set_in_a_sharepoint_is_named_with_its_directory(tmp_path: Path) -> None:
    make_set(tmp_path / "NetBootSP0", "Alpha")
    packet = select_ack(scan(tmp_path), image_id(1))
    assert packet.file == b"NetBootSP0/Alpha.nbi/i386/booter"
    assert root_path_of(packet) == "http://192.0.2.10/NetBootSP0/Alpha.nbi/NetBoot.dmg"


HTTP_ROOT_PATHS = {
    "plain": ({}, "Alpha", "http://192.0.2.10/Alpha.nbi/NetBoot.dmg"),
    "port 8080": ({"http_port": 8080}, "Alpha", "http://192.0.2.10:8080/Alpha.nbi/NetBoot.dmg"),
    "public host": (
        {"public_host": "203.0.113.5"},
        "Alpha",
        "http://203.0.113.5/Alpha.nbi/NetBoot.dmg",
    ),
    "public host and port": (
        {"public_host": "203.0.113.5", "http_port": 8080},
        "Alpha",
        "http://203.0.113.5:8080/Alpha.nbi/NetBoot.dmg",
    ),
    "base URL": (
        {"http_base_url": "https://cdn.example.net/netboot/"},
        "Alpha",
        "https://cdn.example.net/netboot/Alpha.nbi/NetBoot.dmg",
    ),
    "base URL wins over host and port": (
        {"http_base_url": "http://proxy.example/nb", "public_host": "203.0.113.5", "http_port": 81},
        "Alpha",
        "http://proxy.example/nb/Alpha.nbi/NetBoot.dmg",
    ),
    "space escaped": ({}, "High Sierra", "http://192.0.2.10/High%20Sierra.nbi/NetBoot.dmg"),
    "UTF-8 escaped": ({}, "Café", "http://192.0.2.10/Caf%C3%A9.nbi/NetBoot.dmg"),
    "URL characters escaped": ({}, "A#1?x", "http://192.0.2.10/A%231%3Fx.nbi/NetBoot.dmg"),
    "space escaped after a base URL": (
        {"http_base_url": "http://proxy.example/nb"},
        "High Sierra",
        "http://proxy.example/nb/High%20Sierra.nbi/NetBoot.dmg",
    ),
}


@pytest.mark.parametrize(
    ("settings", "set_name", "expected"), HTTP_ROOT_PATHS.values(), ids=HTTP_ROOT_PATHS.keys()
)
def test_http_root_paths(
    tmp_path: Path, settings: dict[str, Any], set_name: str, expected: str
) -> None:
    catalog = catalog_of(tmp_path, {set_name: {}})
    policy = make_policy(root_paths=RootPathSettings(**settings))
    assert root_path_of(select_ack(catalog, image_id(1), policy)) == expected


NFS_ROOT_PATHS = {
    "default export: the image root": ({}, "Alpha", "nfs:192.0.2.10:{root}:Alpha.nbi/NetBoot.dmg"),
    "configured export": (
        {"nfs_export": "/srv/netboot"},
        "Alpha",
        "nfs:192.0.2.10:/srv/netboot:Alpha.nbi/NetBoot.dmg",
    ),
    "colons in the export escaped": (
        {"nfs_export": "/srv/a:b"},
        "Alpha",
        "nfs:192.0.2.10:/srv/a\\:b:Alpha.nbi/NetBoot.dmg",
    ),
    "public host": (
        {"public_host": "203.0.113.5", "nfs_export": "/srv/nb"},
        "Alpha",
        "nfs:203.0.113.5:/srv/nb:Alpha.nbi/NetBoot.dmg",
    ),
    "HTTP settings do not matter": (
        {"http_port": 8080, "http_base_url": "http://x.example/", "nfs_export": "/srv/nb"},
        "Alpha",
        "nfs:192.0.2.10:/srv/nb:Alpha.nbi/NetBoot.dmg",
    ),
    "a space is not escaped": (
        {"nfs_export": "/srv/nb"},
        "High Sierra",
        "nfs:192.0.2.10:/srv/nb:High Sierra.nbi/NetBoot.dmg",
    ),
}


@pytest.mark.parametrize(
    ("settings", "set_name", "expected"), NFS_ROOT_PATHS.values(), ids=NFS_ROOT_PATHS.keys()
)
def test_nfs_root_paths(
    tmp_path: Path, settings: dict[str, Any], set_name: str, expected: str
) -> None:
    catalog = catalog_of(tmp_path, {set_name: {"Type": "NFS"}})
    policy = make_policy(root_paths=RootPathSettings(**settings))
    path = root_path_of(select_ack(catalog, image_id(1), policy))
    assert path == expected.format(root=tmp_path.resolve())


def test_the_default_nfs_export_is_the_real_path_with_colons_escaped(tmp_path: Path) -> None:
    real = tmp_path / "images:2024"
    make_set(real, "Alpha", Type="NFS")
    link = tmp_path / "link"
    link.symlink_to(real)
    packet = select_ack(scan(link), image_id(1))
    escaped = str(real.resolve()).replace(":", "\\:")
    assert root_path_of(packet) == f"nfs:192.0.2.10:{escaped}:Alpha.nbi/NetBoot.dmg"


@pytest.mark.parametrize(
    ("image_type", "root_path", "expected"),
    [
        pytest.param(
            "NFS",
            "192.0.2.30:/exports/images:Remote.nbi/NetBoot.dmg",
            "nfs:192.0.2.30:/exports/images:Remote.nbi/NetBoot.dmg",
            id="nfs host:mount:image",
        ),
        pytest.param(
            "NFS", "192.0.2.30:/exports/images", "nfs:192.0.2.30:/exports/images", id="nfs two-part"
        ),
        pytest.param(
            "NFS",
            "192.0.2.30:/ex\\:ports:R.nbi/NetBoot.dmg",
            "nfs:192.0.2.30:/ex\\:ports:R.nbi/NetBoot.dmg",
            id="nfs escaped colon kept",
        ),
        pytest.param(
            "HTTP",
            "http://192.0.2.30:8000/images/Remote.dmg",
            "http://192.0.2.30:8000/images/Remote.dmg",
            id="http URL",
        ),
        pytest.param(
            "HTTP",
            "http://user:pass@192.0.2.30/images/Remote%20One.dmg",
            "http://user:pass@192.0.2.30/images/Remote%20One.dmg",
            id="http URL with credentials",
        ),
    ],
)
@pytest.mark.parametrize(
    "settings",
    [{}, {"public_host": "203.0.113.5", "http_port": 8080, "nfs_export": "/srv/nb"}],
    ids=["defaults", "configured host, port and export"],
)
def test_remote_root_paths_are_passed_through(
    tmp_path: Path, image_type: str, root_path: str, expected: str, settings: dict[str, Any]
) -> None:
    make_set(tmp_path, "Remote", Type=image_type, RootPath=root_path, root_image=None)
    policy = make_policy(root_paths=RootPathSettings(**settings))
    assert root_path_of(select_ack(scan(tmp_path), image_id(1), policy)) == expected


def test_a_boot_file_only_image_gets_no_root_path(tmp_path: Path) -> None:
    make_set(tmp_path, "Tool", Type="BootFileOnly", RootPath=None, Kind=1, root_image=None)
    packet = select_ack(scan(tmp_path), image_id(1))
    assert packet.option(Option.ROOT_PATH) is None
    assert packet.file == b"Tool.nbi/i386/booter"
    assert [code for code, _ in packet.options] == [53, 54, 60, 43]


@pytest.mark.parametrize(
    ("image_type", "expected"),
    [
        ("HTTP", "http://192.0.2.20/Alpha.nbi/NetBoot.dmg"),
        ("NFS", "nfs:192.0.2.20:/srv/nb:Alpha.nbi/NetBoot.dmg"),
    ],
)
def test_a_load_balance_server_takes_siaddr_and_the_root_path(
    tmp_path: Path, image_type: str, expected: str
) -> None:
    catalog = catalog_of(
        tmp_path, {"Alpha": {"Type": image_type, "LoadBalanceServer": "192.0.2.20"}}
    )
    policy = make_policy(root_paths=RootPathSettings(nfs_export="/srv/nb"))
    packet = select_ack(catalog, image_id(1), policy)
    assert packet.siaddr == "192.0.2.20"
    assert packet.sname == b""
    assert root_path_of(packet) == expected
    assert packet.option(Option.SERVER_IDENTIFIER) == bytes((192, 0, 2, 10))  # still us
    assert packet.file == b"Alpha.nbi/i386/booter"


def test_a_load_balance_server_wins_over_the_public_host(tmp_path: Path) -> None:
    catalog = catalog_of(tmp_path, {"Alpha": {"LoadBalanceServer": "192.0.2.20"}})
    policy = make_policy(root_paths=RootPathSettings(public_host="203.0.113.5"))
    packet = select_ack(catalog, image_id(1), policy)
    assert packet.siaddr == "192.0.2.20"
    assert root_path_of(packet) == "http://192.0.2.20/Alpha.nbi/NetBoot.dmg"


def test_machine_names_count_clients_and_stay_with_each_client(tmp_path: Path) -> None:
    catalog = catalog_of(tmp_path, {"Alpha": {}, "Beta": {}})
    policy = make_policy()

    def machine(mac: bytes, chosen: int) -> str | None:
        return bsdp_of(select_ack(catalog, chosen, policy, mac=mac)).machine_name

    assert machine(MAC, image_id(1)) == "NetBoot001"
    assert machine(OTHER_MAC, image_id(1)) == "NetBoot002"
    assert machine(MAC, image_id(2)) == "NetBoot001"  # same client, another image
    assert machine(OTHER_MAC, image_id(1)) == "NetBoot002"
    assert machine(bytes.fromhex("0016cb000002"), image_id(2)) == "NetBoot003"


def test_machine_names_follow_the_configured_format(one_image: Catalog) -> None:
    policy = make_policy(BindingTable(machine_name_format="lab-%02d"))
    assert bsdp_of(select_ack(one_image, image_id(1), policy)).machine_name == "lab-01"


FAILED_BODY = bytes.fromhex("01 01 03")


@pytest.mark.parametrize(
    ("sets", "chosen", "client"),
    [
        pytest.param({"Alpha": {}}, image_id(99), {}, id="unknown index"),
        pytest.param({"Alpha": {}}, image_id(1, install=True), {}, id="install bit differs"),
        pytest.param({"Alpha": {}}, image_id(1, kind=2), {}, id="kind differs"),
        pytest.param({"Alpha": {"IsEnabled": False}}, image_id(1), {}, id="disabled"),
        pytest.param(
            {"Alpha": {"EnabledSystemIdentifiers": [IMAC]}}, image_id(1), {}, id="other model"
        ),
        pytest.param(
            {"Alpha": {"DisabledSystemIdentifiers": [MODEL]}}, image_id(1), {}, id="model denied"
        ),
        pytest.param(
            {"Alpha": {"EnabledMACAddresses": [OTHER_MAC_TEXT]}}, image_id(1), {}, id="other MAC"
        ),
        pytest.param({"Alpha": {"DisabledMACAddresses": [MAC_TEXT]}}, image_id(1), {}, id="MAC"),
        pytest.param({"Alpha": {"Architectures": ["ppc"]}}, image_id(1), {}, id="ppc only"),
        pytest.param({"Alpha": {}}, image_id(1), {"arch": "arm"}, id="arm client"),
        pytest.param(
            {"Alpha": {"Architectures": ["ppc"]}}, None, {}, id="no sub-option 8, no default"
        ),
    ],
)
def test_select_of_an_image_the_client_may_not_boot_fails(
    tmp_path: Path, sets: dict[str, dict[str, Any]], chosen: int | None, client: dict[str, Any]
) -> None:
    catalog = catalog_of(tmp_path, sets)
    bindings = BindingTable()
    reply = reply_of(
        make_policy(bindings).decide(select_request(chosen, **client), catalog, SERVER, 0.0)
    )
    (packet,) = reply.packets
    raw = build_packet(packet)
    options = bytes.fromhex(FAILED_OPTIONS_8_5)
    assert raw[240 : 240 + len(options)] == options
    assert raw[240 + len(options) :] == bytes(300 - 240 - len(options))
    assert (packet.file, packet.sname, packet.siaddr) == (b"", SERVER_NAME.encode(), SERVER)
    assert packet.all_of(Option.VENDOR_SPECIFIC) == [FAILED_BODY]
    assert reply.destination == (CLIENT_IP, 68)
    assert len(bindings) == 0


def test_a_root_path_over_255_bytes_fails_instead_of_breaking_option_17(tmp_path: Path) -> None:
    image = "R" * 240 + ".dmg"
    make_set(tmp_path, "Alpha", RootPath=image, image_name=image)
    bindings = BindingTable()
    policy = make_policy(bindings)
    reply = reply_of(policy.decide(select_request(image_id(1)), scan(tmp_path), SERVER, 0.0))
    (packet,) = reply.packets
    assert packet.all_of(Option.VENDOR_SPECIFIC) == [FAILED_BODY]
    assert len(bindings) == 0


def test_a_booter_path_over_127_bytes_fails_instead_of_breaking_file(tmp_path: Path) -> None:
    make_set(tmp_path / ("S" * 60), "B" * 60)
    catalog = scan(tmp_path)
    reply = reply_of(make_policy().decide(select_request(image_id(1)), catalog, SERVER, 0.0))
    (packet,) = reply.packets
    assert packet.all_of(Option.VENDOR_SPECIFIC) == [FAILED_BODY]
    assert packet.file == b""


def test_select_does_not_reapply_the_attribute_filter(tmp_path: Path) -> None:
    """Apple: a diagnostics image listed through a filter is bootable by its id."""
    catalog = catalog_of(tmp_path, {"Diag": {"Kind": 3}, "MacOSX": {}})
    packet = select_ack(catalog, image_id(1, kind=3))
    assert bsdp_of(packet).selected_image_id == 0x0300_0001
    assert packet.file == b"Diag.nbi/i386/booter"


@pytest.mark.parametrize(
    ("sets", "model", "expected"),
    [
        pytest.param({"Alpha": {}, "Beta": {"IsDefault": True}}, MODEL, "Beta", id="IsDefault"),
        pytest.param({"Alpha": {}, "Beta": {}}, MODEL, "Alpha", id="first in catalog order"),
        pytest.param(
            {"Alpha": {"Kind": 3}, "Beta": {}}, MODEL, "Beta", id="FilterOnly is not a default"
        ),
        pytest.param(
            {"Alpha": {}, "Beta": {"IsDefault": True, "EnabledSystemIdentifiers": [IMAC]}},
            MODEL,
            "Alpha",
            id="default for another model",
        ),
        pytest.param(
            {"Alpha": {}, "Beta": {"IsDefault": True, "EnabledSystemIdentifiers": [IMAC]}},
            IMAC,
            "Beta",
            id="default for this model",
        ),
    ],
)
def test_select_without_an_image_boots_the_default(
    tmp_path: Path, sets: dict[str, dict[str, Any]], model: str, expected: str
) -> None:
    catalog = catalog_of(tmp_path, sets)
    packet = select_ack(catalog, None, model=model)
    assert packet.file == f"{expected}.nbi/i386/booter".encode()
    chosen = catalog.by_path(expected)
    assert chosen is not None and chosen.image_id is not None
    assert bsdp_of(packet).selected_image_id == int(chosen.image_id)


# --- bindings and priority -----------------------------------------------------------------


def list_message(policy: BsdpPolicy, catalog: Catalog, now: float, **client: Any) -> BsdpMessage:
    reply = reply_of(policy.decide(list_request(**client), catalog, SERVER, now))
    return bsdp_of(reply.packets[0])


def test_after_select_the_list_names_the_selection_and_priority_drops(tmp_path: Path) -> None:
    catalog = catalog_of(tmp_path, {"Alpha": {}, "Beta": {}})
    policy = make_policy(BindingTable(ttl=100.0))
    before = list_message(policy, catalog, 0.0)
    assert (before.server_priority, before.selected_image_id) == (32768, None)

    select_ack(catalog, image_id(2), policy)  # at t=0
    ours = list_message(policy, catalog, 10.0)
    assert (ours.server_priority, ours.selected_image_id) == (32767, image_id(2))
    assert ours.default_image_id == image_id(1)
    theirs = list_message(policy, catalog, 10.0, mac=OTHER_MAC)
    assert (theirs.server_priority, theirs.selected_image_id) == (32767, None)

    assert list_message(policy, catalog, 99.9).server_priority == 32767
    later = list_message(policy, catalog, 100.0)
    assert later.server_priority == 32768  # the binding no longer counts as load
    assert later.selected_image_id == image_id(2)  # but it is still remembered


def test_sub_option_8_comes_before_the_list_in_apples_order(tmp_path: Path) -> None:
    catalog = catalog_of(tmp_path, {"Alpha": {}})
    policy = make_policy()
    select_ack(catalog, image_id(1), policy)
    (packet,) = reply_of(policy.decide(list_request(), catalog, SERVER, 1.0)).packets
    (body,) = packet.all_of(Option.VENDOR_SPECIFIC)
    assert body == bytes.fromhex(
        "01 01 01"  # LIST
        "04 02 7f ff"  # priority 32767
        "07 04 01 00 00 01"  # default
        "08 04 01 00 00 01"  # selected
        "09 0a 01 00 00 01 05 41 6c 70 68 61"  # list: 0x01000001 "Alpha"
    )


def test_reselecting_keeps_one_binding_per_client(tmp_path: Path) -> None:
    catalog = catalog_of(tmp_path, {"Alpha": {}, "Beta": {}})
    policy = make_policy()
    select_ack(catalog, image_id(1), policy)
    select_ack(catalog, image_id(2), policy)
    message = list_message(policy, catalog, 1.0)
    assert (message.server_priority, message.selected_image_id) == (32767, image_id(2))


def test_two_clients_lower_the_priority_by_two(one_image: Catalog) -> None:
    policy = make_policy()
    select_ack(one_image, image_id(1), policy)
    select_ack(one_image, image_id(1), policy, mac=OTHER_MAC)
    assert list_message(policy, one_image, 1.0).server_priority == 32766


@pytest.mark.parametrize(("configured", "expected"), [(0, 0), (1, 0), (2, 0), (3, 1), (100, 98)])
def test_the_priority_floors_at_zero(one_image: Catalog, configured: int, expected: int) -> None:
    policy = make_policy(priority=configured)
    select_ack(one_image, image_id(1), policy)
    select_ack(one_image, image_id(1), policy, mac=OTHER_MAC)
    assert list_message(policy, one_image, 1.0).server_priority == expected


def test_a_binding_to_an_image_no_longer_offered_is_not_reported(tmp_path: Path) -> None:
    catalog = catalog_of(tmp_path, {"Alpha": {}, "Beta": {}, "Diag": {"Kind": 3}})
    policy = make_policy()
    select_ack(catalog, image_id(2), policy)
    # Beta disabled (a rescan builds a new catalog): no sub-option 8.
    plist_file = tmp_path / "Beta.nbi" / "NBImageInfo.plist"
    plist = plistlib.loads(plist_file.read_bytes())
    plist_file.write_bytes(plistlib.dumps({**plist, "IsEnabled": False}))
    rescanned = scan_catalog(tmp_path)
    assert [s.path.name for s in rescanned.servable] == ["Alpha.nbi", "Diag.nbi"]
    assert list_message(policy, rescanned, 1.0).selected_image_id is None
    # Bound to the diagnostics image: reported only to a LIST whose filter shows it.
    select_ack(catalog, image_id(3, kind=3), policy)
    assert list_message(policy, catalog, 2.0).selected_image_id is None
    filtered = list_message(policy, catalog, 2.0, attribute_filter=(0x0300,))
    assert filtered.selected_image_id == image_id(3, kind=3)


def test_a_failed_select_leaves_an_existing_binding_alone(one_image: Catalog) -> None:
    bindings = BindingTable()
    policy = make_policy(bindings)
    select_ack(one_image, image_id(1), policy)
    reply = reply_of(policy.decide(select_request(image_id(42)), one_image, SERVER, 1.0))
    assert bsdp_of(reply.packets[0]).message_type == MessageType.FAILED
    binding = bindings.get(MAC_TEXT)
    assert binding is not None and binding.image_id == image_id(1)


def test_binding_table_on_its_own() -> None:
    table = BindingTable(ttl=10.0)
    mac, other = MAC_TEXT, OTHER_MAC_TEXT
    first = table.bind(mac, image_id(1), CLIENT_IP, 0.0)
    second = table.bind(other, image_id(1), "192.0.2.51", 5.0)
    assert (first.machine_name, second.machine_name) == ("NetBoot001", "NetBoot002")
    again = table.bind(mac, image_id(2), CLIENT_IP, 8.0)
    assert (again.host_number, again.image_id, again.last_seen) == (1, image_id(2), 8.0)
    assert (len(table), table.active(9.0), table.active(15.0), table.active(18.0)) == (2, 2, 1, 0)
    assert table.drop(other)
    assert not table.drop(other)
    third = table.bind(other, image_id(1), "192.0.2.51", 20.0)
    assert third.machine_name == "NetBoot003"  # numbers are not reused


@pytest.mark.parametrize(
    "message",
    [
        BsdpMessage(message_type=MessageType.LIST, version=0x0000),
        BsdpMessage(message_type=MessageType.LIST, version=VERSION_1_1, netboot_1_0_firmware=True),
    ],
    ids=["version-0", "sub-option-10"],
)
def test_netboot_1_0_clients_are_matched_as_the_netboot1_model(
    tmp_path: Path, message: BsdpMessage
) -> None:
    """Apple's bsdpd substitutes the model /NetBoot1 for old-ROM clients."""
    catalog = catalog_of(
        tmp_path,
        {
            "ForOldRoms": {"EnabledSystemIdentifiers": ["/NetBoot1"]},
            "ForThisModel": {"EnabledSystemIdentifiers": [MODEL]},
        },
    )
    decision = make_policy().decide(bsdp_request(message), catalog, SERVER, 0.0)
    reply = reply_of(decision)
    assert reply.summary.startswith("ACK[LIST] of 1 image(s)")
    assert bsdp_of(reply.packets[0]).default_image_id == image_id(1)


def test_the_assigned_image_is_the_macs_default_and_its_plain_select(tmp_path: Path) -> None:
    """The admin API's assignment: LIST's default for that Mac only; SELECT without 8 gets it."""
    catalog = catalog_of(tmp_path, {"First": {"IsDefault": True}, "Second": {}})
    policy = make_policy()
    assert bsdp_of(
        reply_of(policy.decide(list_request(), catalog, SERVER, 0)).packets[0]
    ).default_image_id == image_id(1)
    policy.assigned = {mac_from_bytes(MAC): image_id(2)}
    answer = bsdp_of(reply_of(policy.decide(list_request(), catalog, SERVER, 0)).packets[0])
    assert answer.default_image_id == image_id(2)
    assert [image.image_id for image in answer.images or ()] == [image_id(2), image_id(1)]
    other = policy.decide(list_request(mac=b"\x02" * 6), catalog, SERVER, 0)
    assert bsdp_of(reply_of(other).packets[0]).default_image_id == image_id(1)
    selected = reply_of(policy.decide(select_request(None), catalog, SERVER, 0))
    assert selected.image_id is not None and int(selected.image_id) == image_id(2)


def test_an_assigned_image_the_mac_may_not_boot_is_passed_over(tmp_path: Path) -> None:
    catalog = catalog_of(
        tmp_path,
        {"First": {"IsDefault": True}, "Elsewhere": {"EnabledSystemIdentifiers": ["X1,1"]}},
    )
    policy = make_policy()
    policy.assigned = {mac_from_bytes(MAC): image_id(2)}
    answer = bsdp_of(reply_of(policy.decide(list_request(), catalog, SERVER, 0)).packets[0])
    assert answer.default_image_id == image_id(1)
