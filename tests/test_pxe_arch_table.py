"""Issue #22's decision tables: every option 93 code to its boot file or a clear refusal,
and to the kernel of its own CPU (GRUB configuration, iPXE script) or to no image.

The expected rows are written out here, not derived from `ARCHITECTURES`, so a
wrong family in the table fails; the catalog has a set with an x86-64 and an
arm64 kernel, an x86-only set and an arm64-only set.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from netboot.bsdp.policy import eligible
from netboot.bsdp.vendor_class import ClientClass
from netboot.dhcp.boot import BootOffer, BootSettings, NoBoot, boot_offer
from netboot.dhcp.pxe import ARCHITECTURES, BootClient, ClientKind, Transport
from netboot.grub.config import GRUB_TARGETS, ClientRequest, client_config
from netboot.ipxe.request import script_for
from netboot.macaddr import MacAddress
from netboot.nbi.catalog import Catalog, scan_catalog
from netboot.pc.choice import BootImage, ChoiceSettings, ImageMenu, NoImage, choose_pc_image
from netboot_lab.factories import SIGNED_PC_KERNEL, make_set
from tests.pe_kernels import ARM64_KERNEL

SERVER = "192.0.2.10"
MAC = MacAddress("52:54:00:12:34:56")
BASE = f"http://{SERVER}:8080"
LOADERS = {
    "bios": "undionly.kpxe",
    "efi-ia32": "ipxe-i386.efi",
    "efi-x64": "ipxe.efi",
    "efi-arm32": "ipxe-arm32.efi",
    "efi-arm64": "ipxe-arm64.efi",
    "efi-riscv32": "ipxe-riscv32.efi",
    "efi-riscv64": "ipxe-riscv64.efi",
    "efi-loong64": "ipxe-loong64.efi",
}
SETTINGS = BootSettings(boot_files=LOADERS, http_port=8080)

FAMILY_OF_CODE = {
    0: "bios", 20: "bios",
    6: "efi-ia32", 15: "efi-ia32",
    7: "efi-x64", 9: "efi-x64", 16: "efi-x64", 17: "efi-x64",
    10: "efi-arm32", 18: "efi-arm32",
    11: "efi-arm64", 19: "efi-arm64",
    25: "efi-riscv32", 26: "efi-riscv32",
    27: "efi-riscv64", 28: "efi-riscv64",
    39: "efi-loong64", 40: "efi-loong64",
}  # fmt: skip
"""The codes a UEFI or BIOS loader exists for (RFC 4578, IANA); every other code is refused
(U-Boot, Open Firmware, s390, ...: nothing we serve runs there)."""
HTTP_CODES = {15, 16, 17, 18, 19, 20, 26, 28, 40}

X64_KERNEL = "pc/vmlinuz"
ARM_KERNEL = "pc/arm64/vmlinuz"


def test_the_table_covers_every_code() -> None:
    assert set(FAMILY_OF_CODE) < set(ARCHITECTURES)


@pytest.mark.parametrize("code", list(ARCHITECTURES))
@pytest.mark.parametrize("kind", [ClientKind.PXE, ClientKind.HTTP_BOOT])
def test_every_code_gets_its_familys_loader_or_a_refusal(code: int, kind: ClientKind) -> None:
    arch = ARCHITECTURES[code]
    result = boot_offer(BootClient(kind, arch), MAC, SERVER, SETTINGS, full_mode=True)
    family = FAMILY_OF_CODE.get(code)
    if family is None:
        assert isinstance(result, NoBoot)
        assert result.reason == "unknown architecture"
        return
    assert isinstance(result, BootOffer), result
    http = code in HTTP_CODES or kind is ClientKind.HTTP_BOOT
    assert (arch.transport is Transport.HTTP) is (code in HTTP_CODES)
    expected = f"{BASE}/boot/{LOADERS[family]}" if http else LOADERS[family]
    assert result.file == expected.encode()
    if family == "bios":
        assert b"arm" not in result.file and b"aa64" not in result.file


def test_a_family_without_a_loader_is_refused_by_name() -> None:
    settings = BootSettings(boot_files={"efi-x64": "ipxe.efi"}, http_port=8080)
    result = boot_offer(BootClient(ClientKind.PXE, ARCHITECTURES[11]), MAC, SERVER, settings,
                        full_mode=True)  # fmt: skip
    assert result == NoBoot("no boot file configured for efi-arm64 (arch 11 ARM 64-bit UEFI)")


@pytest.mark.parametrize("code", list(ARCHITECTURES))
def test_http_boot_of_a_family_without_a_loader_gets_its_http_grub(code: int) -> None:
    """With only x64's iPXE configured (the default) and an HTTP GRUB for arm64 (`netboot
    build-http-grub`), an arm64 HTTP-boot client gets that GRUB by HTTP; its PXE ROM does
    not (PXE gets the signed chain or a boot file), and no other family ever gets it."""
    settings = BootSettings(
        boot_files={"efi-x64": "ipxe.efi"}, http_port=8080, http_grubs=frozenset({"efi-arm64"})
    )
    for kind in (ClientKind.PXE, ClientKind.HTTP_BOOT):
        arch = ARCHITECTURES[code]
        result = boot_offer(BootClient(kind, arch), MAC, SERVER, settings, full_mode=True)
        http = code in HTTP_CODES or kind is ClientKind.HTTP_BOOT
        if FAMILY_OF_CODE.get(code) == "efi-arm64" and http:
            assert isinstance(result, BootOffer), result
            assert result.file == f"{BASE}/grub/http/grubaa64.efi".encode()
            assert result.vendor_class == b"HTTPClient" and result.file_is_url
        else:
            assert not isinstance(result, BootOffer) or b"grub/http" not in result.file


def test_a_boot_file_wins_over_the_http_grub() -> None:
    """An admin's own arm64 loader (`boot_files`, an arm64 iPXE) is what HTTP boot gets."""
    settings = BootSettings(
        boot_files={"efi-arm64": "ipxe-arm64.efi"},
        http_port=8080,
        http_grubs=frozenset({"efi-arm64"}),
    )
    result = boot_offer(BootClient(ClientKind.PXE, ARCHITECTURES[19]), MAC, SERVER, settings,
                        full_mode=True)  # fmt: skip
    assert isinstance(result, BootOffer)
    assert result.file == f"{BASE}/boot/ipxe-arm64.efi".encode()


def test_without_http_the_http_grub_is_not_offered() -> None:
    settings = BootSettings(http_port=None, http_grubs=frozenset({"efi-arm64"}))
    result = boot_offer(BootClient(ClientKind.PXE, ARCHITECTURES[19]), MAC, SERVER, settings,
                        full_mode=True)  # fmt: skip
    assert result == NoBoot("UEFI HTTP boot client, but the HTTP service is off")


# -- the kernel each code boots ----------------------------------------------------------------


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    root: Path = tmp_path_factory.mktemp("images")
    x64 = {X64_KERNEL: SIGNED_PC_KERNEL, "pc/initrd.img": b"x86 initrd"}
    arm = {ARM_KERNEL: ARM64_KERNEL, "pc/arm64/initrd.gz": b"arm initrd"}
    arm_pair = {"Kernel": ARM_KERNEL, "Initrd": "pc/arm64/initrd.gz",
                "CommandLine": "console=ttyAMA0"}  # fmt: skip
    make_set(root, "Both", Index=1, IsDefault=True, files={**x64, **arm}, PCKernel=X64_KERNEL,
             PCInitrd="pc/initrd.img", PCCommandLine="console=ttyS0",
             PCKernels={"efi-arm64": arm_pair})  # fmt: skip
    make_set(root, "X86", Index=2, files=x64, PCKernel=X64_KERNEL, PCInitrd="pc/initrd.img")
    make_set(root, "ArmOnly", Index=3, files=arm, PCKernels={"efi-arm64": arm_pair})
    scanned = scan_catalog(root)
    assert len(scanned.servable) == 3, scanned.problems
    return scanned


IMAGES_OF_FAMILY = {
    "bios": ["Both", "X86"],
    "efi-x64": ["Both", "X86"],
    "efi-arm64": ["Both", "ArmOnly"],
}
"""Which sets each family is offered; every family not listed is offered none."""


def expected_kernel(family: str) -> tuple[str, str]:
    """The default image's kernel URL path and console for a family that has one."""
    if family == "efi-arm64":
        return f"/Both.nbi/{ARM_KERNEL}", "console=ttyAMA0"
    return f"/Both.nbi/{X64_KERNEL}", "console=ttyS0"


@pytest.mark.parametrize("code", list(ARCHITECTURES))
def test_every_code_boots_the_kernel_of_its_cpu_or_nothing(catalog: Catalog, code: int) -> None:
    """A code no family boots never gets here from our DHCP side (its boot offer is refused,
    above); a script URL that carries one anyway is answered as for a client that did not
    say (tests/test_ipxe_http.py), with `PCKernel`, never an arm64 pair."""
    family = FAMILY_OF_CODE.get(code)
    query = {b"mac": [str(MAC).encode()], b"arch": [str(code).encode()]}
    script = script_for(catalog, query, BASE, "/boot.ipxe", ChoiceSettings())
    menu = choose_pc_image(catalog, MAC, ARCHITECTURES[code].family, None,
                           ChoiceSettings(menu=True))  # fmt: skip
    if family is not None and family not in IMAGES_OF_FAMILY:
        assert script.image is None
        assert script.summary == f"no PC-bootable image in the catalog for {MAC} ({family})"
        assert isinstance(menu, NoImage)
        return
    kernel, console = expected_kernel(family or "bios")
    assert script.image is not None and script.image.name == "Both"
    assert f"kernel {BASE}{kernel} initrd=" in script.script
    assert script.script.count(console) == 1
    assert isinstance(menu, ImageMenu)
    assert [image.name for image in menu.images] == IMAGES_OF_FAMILY.get(family or "bios")
    if family != "efi-arm64":
        assert "arm64" not in script.script and "ttyAMA0" not in script.script


@pytest.mark.parametrize("target", list(GRUB_TARGETS))
def test_every_grub_target_boots_the_kernel_of_its_cpu_or_nothing(
    catalog: Catalog, target: str
) -> None:
    family = GRUB_TARGETS[target]
    config = client_config(catalog, ClientRequest(MAC, family), ChoiceSettings())
    if family not in IMAGES_OF_FAMILY:
        assert config.image is None and config.summary.startswith("no PC-bootable image")
        return
    kernel, console = expected_kernel(family)
    assert f"linux '{kernel}' '{console}'\n" in config.text
    menu = client_config(catalog, ClientRequest(MAC, family), ChoiceSettings(menu=True))
    titles = [line for line in menu.text.splitlines() if line.startswith("menuentry '")]
    assert titles[:-1] == [
        f"menuentry '{name}' --id 'img{position}' {{"
        for position, name in enumerate(IMAGES_OF_FAMILY[family])
    ]


def test_an_image_without_an_arm64_kernel_is_not_offered_to_arm64(catalog: Catalog) -> None:
    assigned = ChoiceSettings(assignments={MAC: "X86"})
    assert choose_pc_image(catalog, MAC, "efi-arm64", None, assigned) == NoImage(
        f"no PC-bootable image 'X86' for {MAC}"
    )
    by_api = ChoiceSettings(assigned={MAC: 0x01000002})  # X86's image ID: passed over
    chosen = choose_pc_image(catalog, MAC, "efi-arm64", None, by_api)
    assert isinstance(chosen, BootImage) and chosen.image.name == "Both"
    arm_only = choose_pc_image(catalog, MAC, "efi-x64", "ArmOnly", ChoiceSettings())
    assert isinstance(arm_only, NoImage)


def test_a_client_of_unknown_family_never_gets_an_arm64_pair(catalog: Catalog) -> None:
    menu = choose_pc_image(catalog, MAC, None, None, ChoiceSettings(menu=True))
    assert isinstance(menu, ImageMenu)
    assert [(i.name, i.kernel) for i in menu.images] == [("Both", X64_KERNEL), ("X86", X64_KERNEL)]


@pytest.mark.parametrize("mac_arch", ["arm", "i386", "ppc"])
def test_bsdp_judges_macs_by_their_own_keys_never_the_pc_families(
    catalog: Catalog, mac_arch: str
) -> None:
    """BSDP never offers a set to a Mac for its arm64 PC kernel: the Mac side is
    `Architectures` (i386 here) and its booters, whatever PCKernels holds."""
    client = ClientClass(mac_arch, "MacBookPro14,1")
    for name in ("Both", "X86", "ArmOnly"):
        nbi_set = catalog.by_path(name)
        assert nbi_set is not None and nbi_set.info is not None
        assert eligible(nbi_set.info, client, MAC) is (mac_arch == "i386")
        assert set(nbi_set.booters) == {"i386"}
