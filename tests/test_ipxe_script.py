"""iPXE scripts: images a PC may boot, the choice among them, and the exact script text."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path, PurePosixPath

import pytest

from netboot.ipxe.script import (
    boot_script,
    file_url,
    initrd_names,
    menu_script,
    no_image_script,
    script_text,
)
from netboot.macaddr import MacAddress
from netboot.nbi.catalog import scan_catalog
from netboot.pc.choice import PcImage, choose_image, pc_images
from netboot_lab.factories import RESCUE_PC_IMAGE as RESCUE
from netboot_lab.factories import make_set, pc_set
from tests.pe_kernels import give_arm64_kernel

KERNEL = b"MZ linux kernel"
INITRD = b"\x1f\x8b initramfs"
MAC = MacAddress("00:1b:63:aa:bb:cc")
OTHER_MAC = MacAddress("00:1b:63:00:00:01")

BASE = "http://10.0.0.1"

TAIL = (
    "boot || goto failed\n:failed\ninc netboot-tries\niseq ${netboot-tries} 3 && goto give_up ||\n"
)
LEAVE = (
    "echo Leaving iPXE in 10 seconds, the firmware then tries its next boot device\n"
    "sleep 10\n"
    "exit 1\n"
)


def retry_and_give_up(name: str) -> str:
    return (
        f"echo Booting {name} failed (attempt ${{netboot-tries}} of 3), "
        "trying again in 5 seconds\n"
        "sleep 5\n"
        "imgfree\n"
        "goto retry\n"
        ":give_up\n"
        f"echo Could not boot {name} after 3 attempts\n" + LEAVE
    )


# -- boot scripts ----------------------------------------------------------------------------


def test_boot_script_of_a_simple_image() -> None:
    assert boot_script(RESCUE, BASE + "/") == (
        "#!ipxe\n"
        "set netboot-tries:int32 0\n"
        ":retry\n"
        "echo Booting Rescue\n"
        "kernel http://10.0.0.1/Rescue.nbi/pc/vmlinuz initrd=initrd.img console=ttyS0 ip=dhcp"
        " || goto failed\n"
        "initrd -n initrd.img http://10.0.0.1/Rescue.nbi/pc/initrd.img || goto failed\n"
        + TAIL
        + retry_and_give_up("Rescue")
    )


def test_boot_script_without_initrd_or_command_line() -> None:
    bare = replace(RESCUE, initrds=(), command_line="")
    script = boot_script(bare, BASE)
    assert "kernel http://10.0.0.1/Rescue.nbi/pc/vmlinuz || goto failed\n" in script
    assert "initrd" not in script


def test_boot_script_with_two_initrds_names_both_for_the_efi_stub() -> None:
    image = replace(RESCUE, initrds=("pc/intel-ucode.img", "pc/initrd.img"))
    script = boot_script(image, BASE)
    assert script.splitlines()[4:7] == [
        "kernel http://10.0.0.1/Rescue.nbi/pc/vmlinuz initrd=intel-ucode.img initrd=initrd.img"
        " console=ttyS0 ip=dhcp || goto failed",
        "initrd -n intel-ucode.img http://10.0.0.1/Rescue.nbi/pc/intel-ucode.img || goto failed",
        "initrd -n initrd.img http://10.0.0.1/Rescue.nbi/pc/initrd.img || goto failed",
    ]


def test_names_and_paths_with_spaces() -> None:
    image = replace(
        RESCUE,
        name="Lab  image\tone",
        set_path=PurePosixPath("NetBootSP0/Lab Image.nbi"),
        kernel="pc/vm linuz",
        initrds=("pc/my initrd.img",),
        command_line="  quiet   splash ",
    )
    assert boot_script(image, BASE) == (
        "#!ipxe\n"
        "set netboot-tries:int32 0\n"
        ":retry\n"
        "echo Booting Lab image one\n"
        "kernel http://10.0.0.1/NetBootSP0/Lab%20Image.nbi/pc/vm%20linuz"
        " initrd=my_initrd.img quiet splash || goto failed\n"
        "initrd -n my_initrd.img http://10.0.0.1/NetBootSP0/Lab%20Image.nbi/pc/my%20initrd.img"
        " || goto failed\n" + TAIL + retry_and_give_up("Lab image one")
    )


def test_injection_attempts_stay_plain_words() -> None:
    image = replace(
        RESCUE,
        name="Evil\nshell\r\n:retry ${net0/mac} || chain http://x ; && #x",
        kernel="pc/$ {x}#k",
        initrds=("pc/${x}", "-n"),
        command_line="quiet\nshell ${root} || goto x #comment",
    )
    script = boot_script(image, BASE)
    name = "Evil shell :retry $ {net0/mac} '||' chain http://x ';' '&&' '#x'"
    assert script == (
        "#!ipxe\n"
        "set netboot-tries:int32 0\n"
        ":retry\n"
        f"echo Booting {name}\n"
        "kernel http://10.0.0.1/Rescue.nbi/pc/%24%20%7Bx%7D%23k initrd=__x_ initrd=n"
        " quiet shell $ {root} '||' goto x '#comment' || goto failed\n"
        "initrd -n __x_ http://10.0.0.1/Rescue.nbi/pc/%24%7Bx%7D || goto failed\n"
        "initrd -n n http://10.0.0.1/Rescue.nbi/-n || goto failed\n"
        + TAIL
        + retry_and_give_up(name)
    )
    # The only ${ left are the script's own counter.
    assert script.count("${") == script.count("${netboot-tries}")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain", "plain"),
        ("a\nb\rc\x00d\x1be\u2028f\u2029g\x85h", "a b c d e f g h"),
        ("${x}", "$ {x}"),
        ("$${{x}}", "$$ {{x}}"),
        ("a || b && c ; d", "a '||' b '&&' c ';' d"),
        ("a||b a;b", "a||b a;b"),  # only whole words end a command
        ("#1 and a#2", "'#1' and a#2"),
        ("  spaced\t\tout  ", "spaced out"),
        ("Ünïcödé \u2013 fine", "Ünïcödé \u2013 fine"),
        ("", ""),
    ],
)
def test_script_text(text: str, expected: str) -> None:
    assert script_text(text) == expected


def test_initrd_names_are_unique_and_never_the_kernels() -> None:
    image = replace(
        RESCUE,
        kernel="pc/vmlinuz",
        initrds=("a/initrd.img", "b/initrd.img", "c/initrd.img", "vmlinuz", "-", "x/2-initrd.img"),
    )
    assert initrd_names(image) == [
        "initrd.img",
        "2-initrd.img",
        "3-initrd.img",
        "2-vmlinuz",
        "initrd",
        "2-2-initrd.img",
    ]


def test_file_url_quotes_every_segment() -> None:
    url = file_url("http://h:8080/base/", PurePosixPath("SP/A b.nbi"), "pc/ü+?#%.img")
    assert url == "http://h:8080/base/SP/A%20b.nbi/pc/%C3%BC%2B%3F%23%25.img"


@pytest.mark.parametrize("url", ["", "http://a b", "http://a\n", "-http://a"])
def test_a_base_url_that_is_not_one_word_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="not usable as an iPXE URL"):
        boot_script(RESCUE, url)


def test_a_base_url_may_use_ipxe_settings() -> None:
    script = boot_script(RESCUE, "http://${next-server}")
    assert "kernel http://${next-server}/Rescue.nbi/pc/vmlinuz " in script


# -- menu and "nothing here" -----------------------------------------------------------------


def script_url(image: PcImage) -> str:
    return f"{BASE}/boot.ipxe?image={image.set_name}"


def test_menu_script() -> None:
    other = replace(
        RESCUE,
        name="Installer ; shell",
        set_path=PurePosixPath("NetBootSP0/Installer.nbi"),
        index=2,
        is_default=False,
        description=None,
    )
    assert menu_script([RESCUE, other], BASE, script_url, 5, RESCUE) == (
        "#!ipxe\n"
        ":menu\n"
        "menu netboot: choose what to boot\n"
        "item img0 Rescue - Debian rescue system\n"
        "item img1 Installer ';' shell\n"
        "item --gap\n"
        "item shell iPXE shell\n"
        "item exit Exit iPXE (boot from the next device)\n"
        "choose --timeout 5000 --default img0 target && goto ${target} || goto exit\n"
        ":img0\n"
        "chain http://10.0.0.1/boot.ipxe?image=Rescue || goto failed\n"
        ":img1\n"
        "chain http://10.0.0.1/boot.ipxe?image=Installer || goto failed\n"
        ":shell\n"
        "shell\n"
        "goto menu\n"
        ":failed\n"
        "echo The chosen image did not boot\n" + LEAVE + ":exit\n"
        "exit 1\n"
    )


def test_menu_default_and_timeout_are_optional() -> None:
    second = replace(RESCUE, name="Second", index=2, is_default=False)
    script = menu_script([RESCUE, second], BASE, script_url, 0, None)
    assert "choose target && goto ${target} || goto exit\n" in script
    script = menu_script([RESCUE, second], BASE, script_url, 3, second)
    assert "choose --timeout 3000 --default img1 target && goto ${target} || goto exit\n" in script


def test_menu_refuses_a_default_it_does_not_list_and_a_negative_timeout() -> None:
    second = replace(RESCUE, name="Second", index=2)
    with pytest.raises(ValueError, match="not in the menu"):
        menu_script([RESCUE], BASE, script_url, 5, second)
    with pytest.raises(ValueError, match="negative"):
        menu_script([RESCUE], BASE, script_url, -1, None)


def test_menu_refuses_an_item_url_with_whitespace() -> None:
    with pytest.raises(ValueError, match="not usable as an iPXE URL"):
        menu_script([RESCUE], BASE, lambda image: f"{BASE}/{image.name} x", 5, None)


def test_menu_description_is_sanitised() -> None:
    image = replace(RESCUE, description="line one\nchain http://evil ${x}")
    script = menu_script([image], BASE, script_url, 5, None)
    assert "item img0 Rescue - line one chain http://evil $ {x}\n" in script


def test_no_image_script() -> None:
    assert no_image_script("no image for this PC\n:menu ${x}") == (
        "#!ipxe\necho netboot: no image for this PC :menu $ {x}\n" + LEAVE
    )


# -- which images, and which one ---------------------------------------------------------------

PC_FILES = {"pc/vmlinuz": KERNEL, "pc/initrd.img": INITRD}


def names(images: list[PcImage]) -> list[str]:
    return [image.name for image in images]


def test_pc_images_come_from_servable_pc_bootable_sets(tmp_path: Path) -> None:
    pc_set(tmp_path, "Rescue", 3, PCCommandLine="quiet", Description="Rescue me")
    pc_set(tmp_path / "NetBootSP0", "Installer", 2, IsDefault=True)
    pc_set(tmp_path, "Off", 4, IsEnabled=False)
    make_set(tmp_path, "MacOnly", Index=5)
    make_set(tmp_path, "Broken", Index=6, PCKernel="pc/missing")
    images = pc_images(scan_catalog(tmp_path), MAC, None)
    assert names(images) == ["Installer", "Rescue"]  # the default first
    installer, rescue = images
    assert rescue == PcImage(
        name="Rescue",
        image_id=0x01000003,
        set_path=PurePosixPath("Rescue.nbi"),
        index=3,
        is_default=False,
        kernel="pc/vmlinuz",
        initrds=("pc/initrd.img",),
        command_line="quiet",
        architectures=("bios", "efi-x64"),
        description="Rescue me",
    )
    assert installer.set_path == PurePosixPath("NetBootSP0/Installer.nbi")
    assert installer.is_default and installer.command_line == ""


def test_pc_images_are_ordered_by_index_after_the_default(tmp_path: Path) -> None:
    pc_set(tmp_path, "A", 30)
    pc_set(tmp_path, "B", 10)
    pc_set(tmp_path, "C", 20, IsDefault=True)
    assert names(pc_images(scan_catalog(tmp_path), None, None)) == ["C", "B", "A"]


def test_pc_images_follow_the_mac_lists(tmp_path: Path) -> None:
    pc_set(tmp_path, "Open", 1)
    pc_set(tmp_path, "Allowed", 2, EnabledMACAddresses=["0:1B:63:AA:BB:CC"])
    pc_set(tmp_path, "Denied", 3, DisabledMACAddresses=[MAC])
    pc_set(tmp_path, "Both", 4, EnabledMACAddresses=[MAC], DisabledMACAddresses=[MAC])
    catalog = scan_catalog(tmp_path)
    assert names(pc_images(catalog, MAC, None)) == ["Open", "Allowed"]
    assert names(pc_images(catalog, OTHER_MAC, None)) == ["Open", "Denied"]
    # Unknown MAC: allow-lists cannot be satisfied, deny-lists cannot apply.
    assert names(pc_images(catalog, None, None)) == ["Open", "Denied"]


def test_pc_images_follow_the_architectures(tmp_path: Path) -> None:
    pc_set(tmp_path, "Default", 1)
    give_arm64_kernel(pc_set(tmp_path, "Arm", 2, PCArchitectures=["efi-arm64"]))
    pc_set(tmp_path, "Efi", 3, PCArchitectures=["efi-ia32", "efi-x64"])
    catalog = scan_catalog(tmp_path)
    assert names(pc_images(catalog, MAC, "bios")) == ["Default"]
    assert names(pc_images(catalog, MAC, "efi-x64")) == ["Default", "Efi"]
    assert names(pc_images(catalog, MAC, "efi-ia32")) == ["Efi"]
    assert names(pc_images(catalog, MAC, "efi-arm64")) == ["Arm"]
    assert names(pc_images(catalog, MAC, "efi-riscv64")) == []
    assert names(pc_images(catalog, MAC, None)) == ["Default", "Arm", "Efi"]


def test_the_rendered_script_fetches_what_tftp_and_http_publish(tmp_path: Path) -> None:
    pc_set(tmp_path / "NetBootSP0", "Rescue", 1)
    (image,) = pc_images(scan_catalog(tmp_path), MAC, "bios")
    script = boot_script(image, BASE)
    assert f"{BASE}/NetBootSP0/Rescue.nbi/pc/vmlinuz initrd=initrd.img " in script
    assert f"initrd -n initrd.img {BASE}/NetBootSP0/Rescue.nbi/pc/initrd.img " in script


FIRST = replace(RESCUE, name="First", set_path=PurePosixPath("One.nbi"), is_default=False)
DEFAULT = replace(RESCUE, name="Default", set_path=PurePosixPath("Two.nbi"), index=2)
THIRD = replace(RESCUE, name="Third", set_path=PurePosixPath("SP/Three.nbi"), is_default=False)


@pytest.mark.parametrize(
    ("images", "requested", "expected"),
    [
        ([FIRST, DEFAULT, THIRD], "Third", THIRD),  # by name
        ([FIRST, DEFAULT, THIRD], "Three", THIRD),  # by set directory without .nbi
        ([FIRST, DEFAULT, THIRD], "Three.nbi", DEFAULT),  # not a name: the default
        ([FIRST, DEFAULT, THIRD], "third", DEFAULT),  # exact match only
        ([FIRST, DEFAULT, THIRD], None, DEFAULT),
        ([FIRST, THIRD], None, FIRST),  # no default: the first
        ([FIRST, THIRD], "Nope", FIRST),
        ([], "Third", None),
        ([], None, None),
    ],
)
def test_choose_image(
    images: list[PcImage], requested: str | None, expected: PcImage | None
) -> None:
    assert choose_image(images, requested) == expected
