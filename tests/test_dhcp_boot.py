"""Which boot file each client gets (netboot.dhcp.boot.boot_offer), in proxy and full mode.

The table is that of docs/protocols/pxe.md §8: a PXE ROM gets its
family's loader over TFTP (with 43 "boot now" except the UEFI proxy variant B),
a UEFI HTTP-boot client the same file as an `http://` URL with `HTTPClient`,
and iPXE the URL of its script. `S` is SERVER, `P` the HTTP port.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from netboot.dhcp.boot import BootOffer, BootSettings, Loader, NoBoot, boot_offer
from netboot.dhcp.pxe import ARCHITECTURES, BootClient, ClientKind
from netboot.macaddr import MacAddress

SERVER = "192.0.2.10"
MAC = MacAddress("52:54:00:12:34:56")
BOOT_NOW = bytes.fromhex("06 01 08 0A 04 00 50 58 45 FF")
IPXE_175 = bytes.fromhex("01 01 01 B0 01 01")
FILES = {
    "bios": "undionly.kpxe",
    "efi-ia32": "ipxe-i386.efi",
    "efi-x64": "ipxe.efi",
    "efi-arm64": "ipxe-arm64.efi",
}
SETTINGS = BootSettings(boot_files=FILES, http_port=8080)
SCRIPT = f"http://{SERVER}:8080/boot.ipxe?mac={MAC}"
OTHER_MAC = MacAddress("52:54:00:65:43:21")
SIGNED = replace(
    SETTINGS,
    uefi_loaders={"efi-x64": Loader.SHIM, "efi-arm64": Loader.SHIM},
    signed_chains=frozenset({"efi-x64", "efi-arm64"}),
)
"""The default policy: x64 (and here arm64) UEFI PXE ROMs get the signed chain."""


def pxe(code: int) -> BootClient:
    return BootClient(ClientKind.PXE, ARCHITECTURES[code])


def http_boot(code: int) -> BootClient:
    return BootClient(ClientKind.HTTP_BOOT, ARCHITECTURES[code])


def ipxe(code: int, *, features: bool = False, http: bool = False) -> BootClient:
    """iPXE: 77 only (a ROM iPXE), or with a 175 feature list, with or without 175.19."""
    return BootClient(
        ClientKind.IPXE,
        ARCHITECTURES[code],
        ipxe_http=http,
        has_ipxe_options=features or http,
        user_class=b"iPXE",
    )


Fields = tuple[str, bytes, bytes, bytes | None, bytes | None]
"""siaddr, file, option 60, option 43, option 175."""


def offer(
    file: str,
    vendor_class: bytes = b"PXEClient",
    option43: bytes | None = None,
    option175: bytes | None = None,
) -> Fields:
    return (SERVER, file.encode(), vendor_class, option43, option175)


def fields(result: BootOffer | NoBoot) -> Fields:
    assert isinstance(result, BootOffer), result
    return (result.siaddr, result.file, result.vendor_class, result.option43, result.option175)


POLICY = [
    # --- PXE ROMs: the loader over TFTP ---
    pytest.param(
        pxe(0), False, SETTINGS, offer("undionly.kpxe", option43=BOOT_NOW), id="bios-proxy"
    ),
    pytest.param(pxe(0), True, SETTINGS, offer("undionly.kpxe", option43=BOOT_NOW), id="bios-full"),
    pytest.param(pxe(7), False, SETTINGS, offer("ipxe.efi"), id="uefi-x64-proxy-variant-b"),
    pytest.param(
        pxe(7),
        False,
        replace(SETTINGS, uefi_proxy_via_4011=False),
        offer("ipxe.efi", option43=BOOT_NOW),
        id="uefi-x64-proxy-variant-a",
    ),
    pytest.param(pxe(7), True, SETTINGS, offer("ipxe.efi", option43=BOOT_NOW), id="uefi-x64-full"),
    pytest.param(
        pxe(7),
        True,
        replace(SETTINGS, uefi_proxy_via_4011=False),
        offer("ipxe.efi", option43=BOOT_NOW),
        id="uefi-x64-full-variant-a",
    ),
    pytest.param(pxe(9), False, SETTINGS, offer("ipxe.efi"), id="ebc-9-as-x64-proxy"),
    pytest.param(pxe(9), True, SETTINGS, offer("ipxe.efi", option43=BOOT_NOW), id="ebc-9-full"),
    pytest.param(pxe(6), False, SETTINGS, offer("ipxe-i386.efi"), id="uefi-ia32-proxy"),
    pytest.param(pxe(11), False, SETTINGS, offer("ipxe-arm64.efi"), id="arm64-proxy"),
    pytest.param(
        pxe(11), True, SETTINGS, offer("ipxe-arm64.efi", option43=BOOT_NOW), id="arm64-full"
    ),
    # --- UEFI HTTP boot: the same file as a URL, HTTPClient, no 43 ---
    pytest.param(
        http_boot(16),
        False,
        SETTINGS,
        offer(f"http://{SERVER}:8080/boot/ipxe.efi", b"HTTPClient"),
        id="http-x64-proxy",
    ),
    pytest.param(
        http_boot(16),
        True,
        SETTINGS,
        offer(f"http://{SERVER}:8080/boot/ipxe.efi", b"HTTPClient"),
        id="http-x64-full",
    ),
    pytest.param(
        http_boot(19),
        False,
        SETTINGS,
        offer(f"http://{SERVER}:8080/boot/ipxe-arm64.efi", b"HTTPClient"),
        id="http-arm64",
    ),
    pytest.param(
        http_boot(15),
        True,
        replace(SETTINGS, http_port=80),
        offer(f"http://{SERVER}/boot/ipxe-i386.efi", b"HTTPClient"),
        id="http-ia32-port-80-omitted",
    ),
    pytest.param(
        http_boot(16),
        False,
        replace(SETTINGS, boot_files={"efi-x64": "x64/my ipxe.efi"}),
        offer(f"http://{SERVER}:8080/boot/x64/my%20ipxe.efi", b"HTTPClient"),
        id="http-file-name-quoted",
    ),
    # --- iPXE: the script URL ---
    pytest.param(ipxe(0), False, SETTINGS, offer(f"{SCRIPT}&arch=0"), id="rom-ipxe-proxy"),
    pytest.param(
        ipxe(0), True, SETTINGS, offer(f"{SCRIPT}&arch=0", option175=IPXE_175), id="rom-ipxe-full"
    ),
    pytest.param(
        ipxe(7, http=True), False, SETTINGS, offer(f"{SCRIPT}&arch=7"), id="ipxe-http-proxy"
    ),
    pytest.param(
        ipxe(7, http=True),
        True,
        SETTINGS,
        offer(f"{SCRIPT}&arch=7", option175=IPXE_175),
        id="ipxe-http-full",
    ),
    pytest.param(
        ipxe(7, http=True),
        True,
        replace(SETTINGS, ipxe_no_proxydhcp=False),
        offer(f"{SCRIPT}&arch=7"),
        id="ipxe-full-without-175",
    ),
    pytest.param(
        ipxe(11, http=True),
        False,
        replace(SETTINGS, http_port=80),
        offer(f"http://{SERVER}/boot.ipxe?mac={MAC}&arch=11"),
        id="ipxe-port-80-omitted",
    ),
    # --- iPXE with a feature list but no HTTP: handed the loader like a PXE ROM ---
    pytest.param(
        ipxe(0, features=True),
        False,
        SETTINGS,
        offer("undionly.kpxe", option43=BOOT_NOW),
        id="ipxe-no-http-bios",
    ),
    pytest.param(
        ipxe(7, features=True), False, SETTINGS, offer("ipxe.efi"), id="ipxe-no-http-x64-proxy"
    ),
    pytest.param(
        ipxe(7, features=True),
        True,
        SETTINGS,
        offer("ipxe.efi", option43=BOOT_NOW),
        id="ipxe-no-http-x64-full",
    ),
    pytest.param(
        ipxe(0, features=True),
        True,
        replace(SETTINGS, http_port=None),
        offer("undionly.kpxe", option43=BOOT_NOW),
        id="ipxe-no-http-needs-no-http-service",
    ),
    # --- scripts off: iPXE is the PXE ROM it replaces ---
    pytest.param(
        ipxe(0, http=True),
        False,
        replace(SETTINGS, ipxe_script=False),
        offer("undionly.kpxe", option43=BOOT_NOW),
        id="scripts-off-bios",
    ),
    pytest.param(
        ipxe(7),
        True,
        replace(SETTINGS, ipxe_script=False),
        offer("ipxe.efi", option43=BOOT_NOW),
        id="scripts-off-x64-full",
    ),
]


SIGNED_CHAIN = [
    # --- UEFI PXE ROMs whose loader is the shim: the shim's TFTP name ---
    pytest.param(
        pxe(7), True, SIGNED, offer("sb/x64/shimx64.efi", option43=BOOT_NOW), id="x64-full"
    ),
    pytest.param(pxe(7), False, SIGNED, offer("sb/x64/shimx64.efi"), id="x64-proxy-variant-b"),
    pytest.param(pxe(9), True, SIGNED, offer("sb/x64/shimx64.efi", option43=BOOT_NOW), id="ebc-9"),
    pytest.param(
        pxe(11), True, SIGNED, offer("sb/aa64/shimaa64.efi", option43=BOOT_NOW), id="arm64-full"
    ),
    # --- a family not set to shim keeps its boot file ---
    pytest.param(
        pxe(6), True, SIGNED, offer("ipxe-i386.efi", option43=BOOT_NOW), id="ia32-boot-file"
    ),
    pytest.param(pxe(0), True, SIGNED, offer("undionly.kpxe", option43=BOOT_NOW), id="bios-ipxe"),
    pytest.param(
        pxe(7),
        True,
        replace(SIGNED, uefi_loaders={"efi-x64": Loader.BOOT_FILE}),
        offer("ipxe.efi", option43=BOOT_NOW),
        id="x64-set-to-boot-file",
    ),
    # --- iPXE keeps its script, HTTP boot its boot file (signed GRUB has no http) ---
    pytest.param(
        ipxe(7, http=True), True, SIGNED, offer(f"{SCRIPT}&arch=7", option175=IPXE_175), id="ipxe"
    ),
    pytest.param(
        http_boot(16),
        True,
        SIGNED,
        offer(f"http://{SERVER}:8080/boot/ipxe.efi", b"HTTPClient"),
        id="http-boot",
    ),
    # --- iPXE with scripts off is the PXE ROM it replaces: it gets the chain ---
    pytest.param(
        ipxe(7),
        True,
        replace(SIGNED, ipxe_script=False),
        offer("sb/x64/shimx64.efi", option43=BOOT_NOW),
        id="scripts-off-ipxe",
    ),
    # --- per-client assignments override the family ---
    pytest.param(
        pxe(7),
        True,
        replace(SIGNED, loader_assignments={MAC: Loader.BOOT_FILE}),
        offer("ipxe.efi", option43=BOOT_NOW),
        id="assigned-boot-file",
    ),
    pytest.param(
        pxe(7),
        True,
        replace(SIGNED, loader_assignments={OTHER_MAC: Loader.BOOT_FILE}),
        offer("sb/x64/shimx64.efi", option43=BOOT_NOW),
        id="another-client-assigned",
    ),
    pytest.param(
        pxe(6),
        True,
        replace(
            SIGNED,
            loader_assignments={MAC: Loader.SHIM},
            signed_chains=frozenset({"efi-x64", "efi-ia32"}),
        ),
        offer("sb/ia32/shimia32.efi", option43=BOOT_NOW),
        id="assigned-shim",
    ),
    # --- a BIOS client assigned the shim stays on iPXE ---
    pytest.param(
        pxe(0),
        True,
        replace(SIGNED, loader_assignments={MAC: Loader.SHIM}),
        offer("undionly.kpxe", option43=BOOT_NOW),
        id="bios-assigned-shim",
    ),
]


@pytest.mark.parametrize(("client", "full_mode", "settings", "expected"), SIGNED_CHAIN)
def test_signed_chain_policy(
    client: BootClient, full_mode: bool, settings: BootSettings, expected: Fields
) -> None:
    assert fields(boot_offer(client, MAC, SERVER, settings, full_mode=full_mode)) == expected


def test_signed_chain_without_files_for_the_family_is_refused_with_the_reason() -> None:
    settings = replace(SIGNED, signed_chains=frozenset({"efi-x64"}))
    result = boot_offer(pxe(11), MAC, SERVER, settings, full_mode=True)
    assert result == NoBoot(
        "efi-arm64 is set to the signed chain, but no shim_files/grub_files for it"
    )


def test_signed_chain_is_described_for_the_log() -> None:
    result = boot_offer(pxe(7), MAC, SERVER, SIGNED, full_mode=True)
    assert isinstance(result, BootOffer)
    assert result.description == "efi-x64 signed chain sb/x64/shimx64.efi"


@pytest.mark.parametrize(("client", "full_mode", "settings", "expected"), POLICY)
def test_boot_offer_policy_by_kind_mode_and_family(
    client: BootClient,
    full_mode: bool,
    settings: BootSettings,
    expected: Fields,
) -> None:
    assert fields(boot_offer(client, MAC, SERVER, settings, full_mode=full_mode)) == expected


@pytest.mark.parametrize("full_mode", [False, True])
@pytest.mark.parametrize(
    ("client", "url"),
    [
        pytest.param(http_boot(16), "http://boot.example:8080/boot/ipxe.efi", id="http-boot"),
        pytest.param(
            ipxe(7, http=True),
            f"http://boot.example:8080/boot.ipxe?mac={MAC}&arch=7",
            id="ipxe-script",
        ),
    ],
)
def test_public_host_replaces_the_url_host_but_not_siaddr(
    client: BootClient, url: str, full_mode: bool
) -> None:
    settings = replace(SETTINGS, public_host="boot.example")
    result = boot_offer(client, MAC, SERVER, settings, full_mode=full_mode)
    assert isinstance(result, BootOffer)
    assert result.file == url.encode()
    assert result.siaddr == SERVER


def test_public_host_leaves_a_tftp_loader_name_alone() -> None:
    settings = replace(SETTINGS, public_host="boot.example")
    result = boot_offer(pxe(0), MAC, SERVER, settings, full_mode=False)
    assert fields(result) == offer("undionly.kpxe", option43=BOOT_NOW)


@pytest.mark.parametrize("full_mode", [False, True])
@pytest.mark.parametrize(
    ("client", "settings", "reason"),
    [
        pytest.param(
            BootClient(ClientKind.PLAIN, None),
            SETTINGS,
            "plain client: no boot service",
            id="plain",
        ),
        pytest.param(
            BootClient(ClientKind.BSDP, None), SETTINGS, "bsdp client: no boot service", id="bsdp"
        ),
        pytest.param(
            BootClient(ClientKind.PXE, None, "no option 93 and no Arch: field in option 60"),
            SETTINGS,
            "no option 93 and no Arch: field in option 60",
            id="pxe-without-arch",
        ),
        pytest.param(
            pxe(27),
            SETTINGS,
            "no boot file configured for efi-riscv64 (arch 27 RISC-V 64-bit UEFI)",
            id="no-file-for-riscv64",
        ),
        pytest.param(
            pxe(0),
            replace(SETTINGS, boot_files={"efi-x64": "ipxe.efi"}),
            "no boot file configured for bios (arch 0 x86 BIOS)",
            id="no-file-for-bios",
        ),
        pytest.param(
            http_boot(19),
            replace(SETTINGS, boot_files={"efi-x64": "ipxe.efi"}),
            "no boot file configured for efi-arm64 (arch 19 ARM 64-bit UEFI HTTP)",
            id="no-file-for-http-arm64",
        ),
        pytest.param(
            pxe(7),
            replace(SETTINGS, boot_files={"efi-x64": ""}),
            "no boot file configured for efi-x64 (arch 7 x64 UEFI)",
            id="empty-file-name",
        ),
        pytest.param(
            http_boot(16),
            replace(SETTINGS, http_port=None),
            "UEFI HTTP boot client, but the HTTP service is off",
            id="http-boot-without-http",
        ),
        pytest.param(
            ipxe(0),
            replace(SETTINGS, http_port=None),
            "iPXE client, but the HTTP service is off: no script to chain to",
            id="rom-ipxe-without-http",
        ),
        pytest.param(
            ipxe(7, http=True),
            replace(SETTINGS, http_port=None),
            "iPXE client, but the HTTP service is off: no script to chain to",
            id="ipxe-http-without-http",
        ),
    ],
)
def test_no_boot_when_nothing_can_be_offered(
    client: BootClient, settings: BootSettings, reason: str, full_mode: bool
) -> None:
    assert boot_offer(client, MAC, SERVER, settings, full_mode=full_mode) == NoBoot(reason)


def test_ipxe_script_url_needs_no_boot_file_for_the_family() -> None:
    settings = replace(SETTINGS, boot_files={})
    result = boot_offer(ipxe(27, http=True), MAC, SERVER, settings, full_mode=False)
    assert fields(result) == offer(f"{SCRIPT}&arch=27")


@pytest.mark.parametrize(
    ("client", "description"),
    [
        pytest.param(pxe(0), "bios loader undionly.kpxe", id="loader"),
        pytest.param(http_boot(16), f"HTTP boot http://{SERVER}:8080/boot/ipxe.efi", id="http"),
        pytest.param(ipxe(0), f"iPXE script {SCRIPT}&arch=0", id="script"),
    ],
)
def test_boot_offer_describes_what_it_hands_out(client: BootClient, description: str) -> None:
    result = boot_offer(client, MAC, SERVER, SETTINGS, full_mode=False)
    assert isinstance(result, BootOffer)
    assert result.description == description


AUTO = replace(SIGNED, uefi_loaders={"efi-x64": Loader.AUTO})


@pytest.mark.parametrize(
    ("settings", "full_mode", "expected"),
    [
        pytest.param(AUTO, True, offer("sb/x64/shimx64.efi", option43=BOOT_NOW), id="full"),
        # GRUB would ask the site's DHCP server (the ACK's siaddr) for its configuration
        pytest.param(AUTO, False, offer("ipxe.efi"), id="proxy-keeps-ipxe"),
        pytest.param(
            replace(AUTO, signed_chains=frozenset()),
            True,
            offer("ipxe.efi", option43=BOOT_NOW),
            id="no-shim-installed",
        ),
        pytest.param(
            replace(AUTO, loader_assignments={MAC: Loader.SHIM}),
            False,
            offer("sb/x64/shimx64.efi"),
            id="assigned-shim-in-proxy",
        ),
    ],
)
def test_auto_takes_the_chain_only_where_it_can_finish(
    settings: BootSettings, full_mode: bool, expected: Fields
) -> None:
    assert fields(boot_offer(pxe(7), MAC, SERVER, settings, full_mode=full_mode)) == expected
