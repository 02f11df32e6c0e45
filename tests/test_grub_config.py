"""GRUB configurations for the signed chain: names, quoting, and the exact text per choice."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path, PurePosixPath

import pytest

from netboot.grub.config import (
    GENERIC_CONFIG,
    ClientRequest,
    boot_config,
    client_config,
    client_request,
    menu_config,
    no_image_config,
    quote,
)
from netboot.macaddr import MacAddress
from netboot.nbi.catalog import scan_catalog
from netboot.pc.choice import ChoiceSettings, PcImage
from netboot_lab.factories import RESCUE_PC_IMAGE as RESCUE
from netboot_lab.factories import pc_set
from tests.pe_kernels import give_arm64_kernel

MAC = MacAddress("52:54:00:77:00:10")
OTHER_MAC = MacAddress("52:54:00:77:00:11")
HEAD = "# netboot: rendered from the catalog for this client\n"
LEAVE = (
    "echo 'Leaving GRUB in 10 seconds, the firmware then tries its next boot device'\n"
    "sleep 10\n"
    "exit\n"
)
PC_FILES = {"pc/vmlinuz": b"MZ kernel", "pc/initrd.img": b"\x1f\x8b initrd"}


def test_the_generic_file_sources_the_clients_own_by_grub_variables() -> None:
    # Variable names as GRUB set them in the research run (grub_cpu=x86_64, grub_platform=efi).
    assert GENERIC_CONFIG.splitlines()[-1] == (
        'source "${prefix}/netboot/${grub_cpu}-${grub_platform}/${net_default_mac}.cfg"'
    )


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("grub/netboot/x86_64-efi/52:54:00:77:00:10.cfg", ClientRequest(MAC, "efi-x64")),
        (
            "grub/netboot/x86_64-efi/52:54:00:77:00:1A.cfg",
            ClientRequest(MacAddress("52:54:00:77:00:1a"), "efi-x64"),
        ),
        ("grub/netboot/arm64-efi/52:54:00:77:00:10.cfg", ClientRequest(MAC, "efi-arm64")),
        ("grub/netboot/i386-efi/52:54:00:77:00:10.cfg", ClientRequest(MAC, "efi-ia32")),
        ("grub/netboot/sparc64-ieee1275/52:54:00:77:00:10.cfg", None),
        ("grub/netboot/x86_64-efi/52:54:00:77:00.cfg", None),
        ("grub/netboot/x86_64-efi/52:54:00:77:00:10", None),
        ("grub/grub.cfg", None),
        ("grub/x86_64-efi/command.lst", None),
    ],
)
def test_client_request_names(name: str, expected: ClientRequest | None) -> None:
    assert client_request(name) == expected


@pytest.mark.parametrize(
    ("value", "quoted"),
    [
        ("plain", "'plain'"),
        ("with space", "'with space'"),
        ("it's", "'it'\\''s'"),
        ("$prefix; reboot # x", "'$prefix; reboot # x'"),
        ('"double"', "'\"double\"'"),
        ("", "''"),
    ],
)
def test_quote(value: str, quoted: str) -> None:
    assert quote(value) == quoted


BOOT_RESCUE = (
    HEAD + "echo 'Booting Rescue'\n"
    "linux '/Rescue.nbi/pc/vmlinuz' 'console=ttyS0' 'ip=dhcp'\n"
    "initrd '/Rescue.nbi/pc/initrd.img'\n"
    "boot\n"
    "echo 'netboot: could not boot Rescue'\n" + LEAVE
)


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        pytest.param(RESCUE, BOOT_RESCUE, id="plain"),
        pytest.param(
            replace(
                RESCUE,
                name="It's\nmine",
                set_path=PurePosixPath("NetBootSP0/My Set.nbi"),
                kernel="pc/vm linuz",
                initrds=("pc/a.img", "pc/b'c.img"),
                command_line="root=/dev/x  quiet\t$x;reboot\nfoo='b'",
            ),
            HEAD + "echo 'Booting It'\\''s mine'\n"
            "linux '/NetBootSP0/My Set.nbi/pc/vm linuz' 'root=/dev/x' 'quiet' '$x;reboot' "
            "'foo='\\''b'\\'''\n"
            "initrd '/NetBootSP0/My Set.nbi/pc/a.img' '/NetBootSP0/My Set.nbi/pc/b'\\''c.img'\n"
            "boot\n"
            "echo 'netboot: could not boot It'\\''s mine'\n" + LEAVE,
            id="spaces-quotes-and-shell-characters",
        ),
        pytest.param(
            replace(RESCUE, initrds=(), command_line=""),
            HEAD + "echo 'Booting Rescue'\n"
            "linux '/Rescue.nbi/pc/vmlinuz'\n"
            "boot\n"
            "echo 'netboot: could not boot Rescue'\n" + LEAVE,
            id="no-initrd-no-command-line",
        ),
    ],
)
def test_boot_config(image: PcImage, expected: str) -> None:
    assert boot_config(image) == expected


def test_menu_config_has_an_entry_per_image_a_default_and_a_timeout() -> None:
    other = replace(RESCUE, name="Installer", set_path=PurePosixPath("Inst.nbi"), description=None)
    text = menu_config([RESCUE, other], 5, other)
    entry = (
        "    linux '/{set}/pc/vmlinuz' 'console=ttyS0' 'ip=dhcp'\n"
        "    initrd '/{set}/pc/initrd.img'\n"
        "    boot\n"
        "    echo 'netboot: could not boot {name}'\n"
        "    echo 'Leaving GRUB in 10 seconds, the firmware then tries its next boot device'\n"
        "    sleep 10\n"
        "    exit\n"
        "}}\n"
    )
    assert text == (
        HEAD + "set timeout=5\n"
        "set default='img1'\n"
        "menuentry 'Rescue - Debian rescue system' --id 'img0' {\n"
        + entry.format(set="Rescue.nbi", name="Rescue")
        + "menuentry 'Installer' --id 'img1' {\n"
        + entry.format(set="Inst.nbi", name="Installer")
        + "menuentry 'Exit GRUB (boot from the next device)' --id exit {\n    exit\n}\n"
    )


def test_menu_timeout_0_waits_for_a_key_like_the_ipxe_menu() -> None:
    assert "set timeout=-1\nset default='img0'\n" in menu_config([RESCUE], 0, None)


def test_menu_refuses_a_default_that_is_not_in_it() -> None:
    with pytest.raises(ValueError, match="not in the menu"):
        menu_config([RESCUE], 5, replace(RESCUE, name="Other"))


def test_no_image_config_says_why_and_leaves() -> None:
    assert no_image_config("nothing for 'x'\nhere") == (
        HEAD + "echo 'netboot: nothing for '\\''x'\\'' here'\n" + LEAVE
    )


def test_client_config_makes_the_same_choice_as_the_ipxe_script(tmp_path: Path) -> None:
    pc_set(tmp_path, "Rescue", 3, PCCommandLine="quiet")
    pc_set(tmp_path, "Installer", 2, IsDefault=True)
    give_arm64_kernel(pc_set(tmp_path, "Arm", 1, PCArchitectures=["efi-arm64"]))
    catalog = scan_catalog(tmp_path)
    x64 = ClientRequest(MAC, "efi-x64")

    default = client_config(catalog, x64, ChoiceSettings())
    assert (default.summary, default.mac) == ("boot 'Installer'", MAC)
    assert "linux '/Installer.nbi/pc/vmlinuz'\n" in default.text

    assigned = client_config(catalog, x64, ChoiceSettings(assignments={MAC: "Rescue"}))
    assert assigned.summary == "boot 'Rescue'"
    assert assigned.image is not None and assigned.image.name == "Rescue"
    assert "linux '/Rescue.nbi/pc/vmlinuz' 'quiet'\n" in assigned.text

    others = client_config(
        catalog, ClientRequest(OTHER_MAC, "efi-x64"), ChoiceSettings(assignments={MAC: "Rescue"})
    )
    assert others.summary == "boot 'Installer'"

    by_api = ChoiceSettings(assignments={MAC: "Installer"}, assigned={MAC: 0x01000003})
    api = client_config(catalog, x64, by_api)  # the admin API's assignment comes first
    assert api.summary == "boot 'Rescue'"
    assert "linux '/Rescue.nbi/pc/vmlinuz' 'quiet'\n" in api.text
    api_menu = client_config(catalog, x64, ChoiceSettings(assigned={MAC: None}))
    assert api_menu.summary == "menu of 2 image(s)"

    missing = client_config(catalog, x64, ChoiceSettings(assignments={MAC: "Gone"}))
    assert missing.summary == f"no PC-bootable image 'Gone' for {MAC}"
    assert missing.text == no_image_config(missing.summary)

    menu = client_config(catalog, x64, ChoiceSettings(menu=True, menu_timeout=7))
    assert menu.summary == "menu of 2 image(s)"
    assert "set timeout=7\nset default='img0'\n" in menu.text
    assert "menuentry 'Arm'" not in menu.text

    arm = client_config(catalog, ClientRequest(MAC, "efi-arm64"), ChoiceSettings())
    assert arm.summary == "boot 'Arm'"

    riscv = client_config(catalog, ClientRequest(MAC, "efi-riscv64"), ChoiceSettings())
    assert riscv.summary == f"no PC-bootable image in the catalog for {MAC} (efi-riscv64)"
    assert riscv.image is None


def test_files_are_named_from_grubs_root_device_whatever_the_family() -> None:
    """docs/protocols/dhcpv6.md §16: GRUB's root is `(tftp,ADDR)` from the DHCP or DHCPv6
    answer; the configuration names paths from it and never a server, so one text serves
    GRUBs that came over IPv4 and over IPv6."""
    other = replace(RESCUE, name="Installer", set_path=PurePosixPath("Inst.nbi"))
    for text in (boot_config(RESCUE), menu_config([RESCUE, other], 5, None)):
        lines = [line.split() for line in text.splitlines()]
        files = [words[1] for words in lines if words[:1] in (["linux"], ["initrd"])]
        assert len(files) >= 2 and all(name.startswith("'/") for name in files)
        assert "(tftp" not in text and "(http" not in text and "$root" not in text
