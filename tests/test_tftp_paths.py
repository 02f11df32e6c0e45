"""TFTP request names: which file each means, or why it is refused (netboot.tftp.paths)."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pytest

from netboot.grub.config import GENERIC_CONFIG
from netboot.macaddr import MacAddress
from netboot.nbi.catalog import scan_catalog
from netboot.pc.choice import ChoiceSettings
from netboot.tftp.paths import Refusal, Rendered, Resolved, TftpNamespace
from netboot.tftp.wire import ErrorCode
from netboot_lab.factories import FAT_EFI_BOOTER, make_set

KERNEL = b"kernelcache " * 10
NOT_FOUND = ErrorCode.FILE_NOT_FOUND
VIOLATION = ErrorCode.ACCESS_VIOLATION


@pytest.fixture
def image_root(tmp_path: Path) -> Path:
    """Alpha at the top, Beta in a sharepoint, a disabled and a broken set; a secret beside."""
    root = tmp_path / "images"
    alpha = make_set(root, "Alpha", Index=1, booter=FAT_EFI_BOOTER)
    (alpha / "i386" / "x86_64").mkdir()
    (alpha / "i386" / "x86_64" / "kernelcache").write_bytes(KERNEL)
    (alpha / "i386" / "com.apple.Boot.plist").write_bytes(b"<plist/>")
    beta = make_set(root / "NetBootSP0", "Beta", Index=2)
    (beta / "i386" / "x86_64").mkdir()
    (beta / "i386" / "x86_64" / "kernelcache").write_bytes(b"beta kernel")
    make_set(root, "Off", Index=3, IsEnabled=False)
    make_set(root, "Broken", Index=4, root_image=None)  # RootPath names a missing file
    make_set(root, "Garbled", plist=b"not a plist")
    (tmp_path / "secret").write_bytes(b"outside every root")
    return root


@pytest.fixture
def extra_dir(tmp_path: Path) -> Path:
    """PXE programs, as Debian's ipxe package lays them out."""
    extra = tmp_path / "pxe"
    (extra / "ipxe").mkdir(parents=True)
    (extra / "undionly.kpxe").write_bytes(b"undionly")
    (extra / "ipxe" / "ipxe.efi").write_bytes(b"ipxe efi")
    return extra


@pytest.fixture
def namespace(image_root: Path) -> TftpNamespace:
    return TftpNamespace(scan_catalog(image_root))


@pytest.fixture
def with_extra(image_root: Path, extra_dir: Path) -> TftpNamespace:
    return TftpNamespace(scan_catalog(image_root), extra_dir)


def served(namespace: TftpNamespace, name: str) -> Resolved:
    result = namespace.resolve(name)
    assert isinstance(result, Resolved), result
    return result


def refused(namespace: TftpNamespace, name: str) -> ErrorCode:
    result = namespace.resolve(name)
    assert isinstance(result, Refusal), result
    assert result.reason
    return result.code


def test_the_catalog_is_what_the_tests_expect(image_root: Path) -> None:
    catalog = scan_catalog(image_root)
    servable = sorted(str(s.path) for s in catalog.servable)
    assert servable == ["Alpha.nbi", "NetBootSP0/Beta.nbi"]
    assert len(catalog) == 5


# --- names of a set's booter directory ---------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "Alpha.nbi/i386/booter",
        "/Alpha.nbi/i386/booter",
        "//Alpha.nbi/i386/booter",
        "Alpha.nbi//i386/booter",
        "Alpha.nbi/./i386/booter",
        "/private/tftpboot/NetBoot/NetBootSP0/Alpha.nbi/i386/booter",
        "private/tftpboot/NetBoot/NetBootSP0/Alpha.nbi/i386/booter",
        "/private/tftpboot/NetBoot/NetBootSP3/Alpha.nbi/i386/booter",
        "/private/tftpboot/Alpha.nbi/i386/booter",
        "/tftpboot/NetBoot/Alpha.nbi/i386/booter",
        "/tftpboot/Alpha.nbi/i386/booter",
        "NetBootSP0/Alpha.nbi/i386/booter",
    ],
)
def test_the_booter_is_served_under_every_accepted_name(
    namespace: TftpNamespace, image_root: Path, name: str
) -> None:
    result = served(namespace, name)
    assert result.path == (image_root / "Alpha.nbi" / "i386" / "booter").resolve()
    assert result.path.read_bytes() == FAT_EFI_BOOTER
    # The name for logs drops the leading slash and Apple's prefix (not "//" or "/./").
    assert PurePosixPath(result.name) == PurePosixPath("Alpha.nbi/i386/booter")
    assert not result.name.startswith("/")


@pytest.mark.parametrize(
    "name",
    [
        "NetBootSP0/Beta.nbi/i386/booter",
        "/NetBootSP0/Beta.nbi/i386/booter",
        "/private/tftpboot/NetBoot/NetBootSP0/Beta.nbi/i386/booter",
    ],
)
def test_a_set_in_a_sharepoint_is_served_by_its_path_under_the_root(
    namespace: TftpNamespace, image_root: Path, name: str
) -> None:
    result = served(namespace, name)
    assert result.path == (image_root / "NetBootSP0" / "Beta.nbi" / "i386" / "booter").resolve()
    assert result.name == "NetBootSP0/Beta.nbi/i386/booter"


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("Alpha.nbi/i386/x86_64/kernelcache", KERNEL),
        ("/private/tftpboot/NetBoot/NetBootSP0/Alpha.nbi/i386/x86_64/kernelcache", KERNEL),
        ("Alpha.nbi/i386/com.apple.Boot.plist", b"<plist/>"),
        ("NetBootSP0/Beta.nbi/i386/x86_64/kernelcache", b"beta kernel"),
    ],
)
def test_files_beside_and_below_the_booter_are_served(
    namespace: TftpNamespace, name: str, content: bytes
) -> None:
    assert served(namespace, name).path.read_bytes() == content


def test_a_symlink_that_stays_in_the_set_is_followed(image_root: Path) -> None:
    i386 = image_root / "Alpha.nbi" / "i386"
    (i386 / "kernelcache").symlink_to("x86_64/kernelcache")
    namespace = TftpNamespace(scan_catalog(image_root))
    result = served(namespace, "Alpha.nbi/i386/kernelcache")
    assert result.path == (i386 / "x86_64" / "kernelcache").resolve()


# --- what a set does not publish --------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "Alpha.nbi/NBImageInfo.plist",
        "/Alpha.nbi/NBImageInfo.plist",
        "Alpha.nbi/NetBoot.dmg",
        "/private/tftpboot/NetBoot/NetBootSP0/Alpha.nbi/NetBoot.dmg",
        "NetBootSP0/Beta.nbi/NetBoot.dmg",
        "Alpha.nbi",
        "Alpha.nbi/",
        "Alpha.nbi/i386",  # a directory, not a file
        "Alpha.nbi/i386/",
        "Alpha.nbi/i386/x86_64",
        "Alpha.nbi/i386/missing",
        "Alpha.nbi/x86_64/kernelcache",  # no such directory
        "NetBootSP0",
        "Beta.nbi/i386/booter",  # Beta lives in NetBootSP0/
        "Gamma.nbi/i386/booter",
        "booter",
        "etc/passwd",
        "/etc/passwd",
        "",
        "/",
        "/private/tftpboot/",
        "/private/tftpboot/NetBoot/",
    ],
)
def test_anything_else_is_not_found(namespace: TftpNamespace, name: str) -> None:
    assert refused(namespace, name) is NOT_FOUND


@pytest.mark.parametrize(
    "name",
    [
        "Off.nbi/i386/booter",  # disabled
        "Broken.nbi/i386/booter",  # RootPath names a missing image
        "Garbled.nbi/i386/booter",  # the plist does not parse
        "/private/tftpboot/NetBoot/NetBootSP0/Off.nbi/i386/booter",
    ],
)
def test_sets_that_are_disabled_or_broken_are_not_served(
    with_extra: TftpNamespace, image_root: Path, name: str
) -> None:
    assert (image_root / name.split("NetBootSP0/")[-1]).is_file()
    assert refused(with_extra, name) is NOT_FOUND


@pytest.mark.parametrize("name", ["Old.nbi/NetBoot.dmg", "Old.nbi/NBImageInfo.plist"])
def test_a_ppc_set_with_its_booter_at_the_top_does_not_publish_its_image(
    tmp_path: Path, name: str
) -> None:
    old = make_set(tmp_path, "Old", booter=None, Architectures=["ppc"])
    (old / "booter").write_bytes(b"ppc booter")
    catalog = scan_catalog(tmp_path)
    assert [str(s.path) for s in catalog.servable] == ["Old.nbi"]
    namespace = TftpNamespace(catalog)
    assert isinstance(namespace.resolve("Old.nbi/booter"), Resolved)
    assert refused(namespace, name) is NOT_FOUND


# --- refused as access violations ----------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "..",
        "../secret",
        "/../secret",
        "../../etc/passwd",
        "Alpha.nbi/i386/../NetBoot.dmg",
        "Alpha.nbi/i386/../../../secret",
        "Alpha.nbi/i386/x86_64/../booter",  # even when it would stay inside
        "Alpha.nbi/i386/..",
        "/private/tftpboot/NetBoot/NetBootSP0/../../secret",
        "NetBootSP0/../Alpha.nbi/i386/booter",
    ],
)
def test_dotdot_is_an_access_violation(with_extra: TftpNamespace, name: str) -> None:
    assert refused(with_extra, name) is VIOLATION


@pytest.mark.parametrize(
    "name",
    [
        "Alpha.nbi/i386/booter\x00",
        "Alpha.nbi/i386/booter\x00.txt",
        "\x00",
        "Alpha.nbi\\i386\\booter",
        "Alpha.nbi/i386\\booter",
        "\\Alpha.nbi/i386/booter",
        "..\\secret",
        "undionly.kpxe\x00",
    ],
)
def test_nul_and_backslash_are_access_violations(with_extra: TftpNamespace, name: str) -> None:
    assert refused(with_extra, name) is VIOLATION


def test_a_symlink_leaving_the_set_makes_the_set_broken(image_root: Path) -> None:
    """The catalog refuses such a set whole, so it is not served at all."""
    (image_root / "Alpha.nbi" / "i386" / "escape").symlink_to("../../../secret")
    namespace = TftpNamespace(scan_catalog(image_root))
    assert refused(namespace, "Alpha.nbi/i386/booter") is NOT_FOUND
    assert refused(namespace, "Alpha.nbi/i386/escape") is NOT_FOUND


@pytest.mark.parametrize(
    "target",
    [
        "../../../secret",  # outside the image root
        "../NetBoot.dmg",  # the set's own image, beside the booter directory: still the set
        "../../NetBootSP0/Beta.nbi/i386/booter",  # another set's booter
        "/etc/passwd",
    ],
)
def test_a_symlink_leaving_the_set_after_the_scan_is_an_access_violation(
    image_root: Path, target: str
) -> None:
    """The catalog is a snapshot: a symlink made later is caught when the name is resolved."""
    namespace = TftpNamespace(scan_catalog(image_root))
    (image_root / "Alpha.nbi" / "i386" / "escape").symlink_to(target)
    expected = None if target == "../NetBoot.dmg" else VIOLATION
    result = namespace.resolve("Alpha.nbi/i386/escape")
    if expected is None:
        # Symlinks are followed within the set: a link the administrator made on purpose.
        assert isinstance(result, Resolved)
    else:
        assert isinstance(result, Refusal) and result.code is expected


def test_a_symlinked_directory_leaving_the_set_is_an_access_violation(
    image_root: Path, tmp_path: Path
) -> None:
    namespace = TftpNamespace(scan_catalog(image_root))
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "kernel").write_bytes(b"not published")
    (image_root / "Alpha.nbi" / "i386" / "linked").symlink_to(tmp_path / "elsewhere")
    assert refused(namespace, "Alpha.nbi/i386/linked/kernel") is VIOLATION


def test_a_symlink_loop_is_refused_not_raised(image_root: Path) -> None:
    namespace = TftpNamespace(scan_catalog(image_root))
    loop = image_root / "Alpha.nbi" / "i386" / "loop"
    loop.symlink_to("loop")
    assert refused(namespace, "Alpha.nbi/i386/loop") is VIOLATION


# --- the extra directory ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "normalised"),
    [
        ("undionly.kpxe", b"undionly", "undionly.kpxe"),
        ("/undionly.kpxe", b"undionly", "undionly.kpxe"),
        ("ipxe/ipxe.efi", b"ipxe efi", "ipxe/ipxe.efi"),
        ("/ipxe/ipxe.efi", b"ipxe efi", "ipxe/ipxe.efi"),
        ("/tftpboot/undionly.kpxe", b"undionly", "undionly.kpxe"),
    ],
)
def test_the_extra_directory_serves_bare_names_and_subpaths(
    with_extra: TftpNamespace, name: str, content: bytes, normalised: str
) -> None:
    result = served(with_extra, name)
    assert result.path.read_bytes() == content
    assert result.name == normalised


def test_sets_are_still_served_next_to_the_extra_directory(with_extra: TftpNamespace) -> None:
    assert served(with_extra, "Alpha.nbi/i386/booter").path.read_bytes() == FAT_EFI_BOOTER


@pytest.mark.parametrize(
    "name",
    ["missing.efi", "ipxe", "ipxe/", "Alpha.nbi/NetBoot.dmg", "Alpha.nbi/NBImageInfo.plist"],
)
def test_the_extra_directory_does_not_serve_what_it_does_not_hold(
    with_extra: TftpNamespace, name: str
) -> None:
    assert refused(with_extra, name) is NOT_FOUND


def test_escapes_from_the_extra_directory_are_access_violations(
    with_extra: TftpNamespace, extra_dir: Path, tmp_path: Path
) -> None:
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "file").write_bytes(b"in a directory outside")
    (extra_dir / "out").symlink_to(tmp_path / "outside")
    (extra_dir / "ipxe" / "up").symlink_to("..")
    assert refused(with_extra, "../secret") is VIOLATION
    assert refused(with_extra, "ipxe/../../secret") is VIOLATION
    # A link to a directory outside publishes nothing under it.
    assert refused(with_extra, "out/file") is VIOLATION
    assert refused(with_extra, "out") is NOT_FOUND  # a directory is not a file to send
    # A link that stays inside the extra directory is fine.
    assert (
        served(with_extra, "ipxe/up/undionly.kpxe").path == (extra_dir / "undionly.kpxe").resolve()
    )


def test_a_program_linked_from_elsewhere_is_served(
    with_extra: TftpNamespace, extra_dir: Path, tmp_path: Path
) -> None:
    """Debian's /usr/lib/ipxe/ipxe.efi is a link to /boot/ipxe.efi: the default UEFI boot
    file. The extra directory is the admin's, so its file links are followed anywhere."""
    (tmp_path / "boot").mkdir()
    (tmp_path / "boot" / "ipxe.efi").write_bytes(b"MZ debian ipxe")
    (extra_dir / "ipxe.efi").symlink_to(tmp_path / "boot" / "ipxe.efi")
    (extra_dir / "ipxe" / "relative.efi").symlink_to("../../boot/ipxe.efi")
    assert served(with_extra, "ipxe.efi").path.read_bytes() == b"MZ debian ipxe"
    assert served(with_extra, "/ipxe.efi").name == "ipxe.efi"
    assert served(with_extra, "ipxe/relative.efi").path == tmp_path / "boot" / "ipxe.efi"


def test_a_dangling_or_looping_program_link_is_refused(
    with_extra: TftpNamespace, extra_dir: Path
) -> None:
    (extra_dir / "gone.efi").symlink_to("/nonexistent/ipxe.efi")
    (extra_dir / "loop.efi").symlink_to("loop.efi")
    assert refused(with_extra, "gone.efi") is NOT_FOUND
    assert refused(with_extra, "loop.efi") is VIOLATION


def test_the_image_root_still_refuses_file_links_that_leave_it(
    with_extra: TftpNamespace, image_root: Path, tmp_path: Path
) -> None:
    """Only the admin's programs directory trusts its links, never the images."""
    (image_root / "Alpha.nbi" / "i386" / "escape").symlink_to(tmp_path / "secret")
    assert refused(with_extra, "Alpha.nbi/i386/escape") is VIOLATION


# --- PC kernels and initrds ----------------------------------------------------------------------

PC_KERNEL = b"MZ linux kernel"
PC_INITRD = b"\x1f\x8b initramfs"
PC_FILES = {"pc/vmlinuz": PC_KERNEL, "pc/initrd.img": PC_INITRD, "pc/notes.txt": b"unlisted"}


@pytest.fixture
def pc_root(tmp_path: Path) -> Path:
    """PC-bootable sets at the top and in a sharepoint, a disabled and a broken one."""
    root = tmp_path / "images"
    pc = {"files": PC_FILES, "PCKernel": "pc/vmlinuz", "PCInitrd": "pc/initrd.img"}
    make_set(root, "Linux", Index=1, **pc)
    make_set(root / "NetBootSP0", "Rescue", Index=2, **pc)
    make_set(root, "Top", Index=3, files={"vmlinuz": PC_KERNEL}, PCKernel="vmlinuz")
    make_set(root, "Off", Index=4, IsEnabled=False, **pc)
    make_set(root, "Broken", Index=5, **{**pc, "PCInitrd": ["pc/initrd.img", "pc/gone"]})
    (tmp_path / "secret").write_bytes(b"outside every root")
    return root


@pytest.fixture
def pc_namespace(pc_root: Path) -> TftpNamespace:
    return TftpNamespace(scan_catalog(pc_root))


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("Linux.nbi/pc/vmlinuz", PC_KERNEL),
        ("/Linux.nbi/pc/initrd.img", PC_INITRD),
        ("Linux.nbi//pc/./vmlinuz", PC_KERNEL),
        ("/private/tftpboot/NetBoot/NetBootSP0/Linux.nbi/pc/vmlinuz", PC_KERNEL),
        ("NetBootSP0/Rescue.nbi/pc/vmlinuz", PC_KERNEL),
        ("/private/tftpboot/NetBoot/NetBootSP0/Rescue.nbi/pc/initrd.img", PC_INITRD),
        ("Top.nbi/vmlinuz", PC_KERNEL),
        ("Linux.nbi/i386/booter", b"MZ" + bytes(62)),  # the booter directory as before
    ],
)
def test_pc_kernels_and_initrds_are_served_by_their_path(
    pc_namespace: TftpNamespace, name: str, content: bytes
) -> None:
    assert served(pc_namespace, name).path.read_bytes() == content


def test_the_name_of_a_pc_file_for_logs_is_its_path(pc_namespace: TftpNamespace) -> None:
    assert served(pc_namespace, "/Linux.nbi/pc/vmlinuz").name == "Linux.nbi/pc/vmlinuz"
    rescue = served(pc_namespace, "/private/tftpboot/NetBoot/NetBootSP0/Rescue.nbi/pc/vmlinuz")
    assert rescue.name == "NetBootSP0/Rescue.nbi/pc/vmlinuz"


@pytest.mark.parametrize(
    "name",
    [
        "Linux.nbi/pc/notes.txt",  # beside the kernel, but not named by the plist
        "Linux.nbi/pc",
        "Linux.nbi/pc/",
        "Linux.nbi/NBImageInfo.plist",
        "Linux.nbi/NetBoot.dmg",
        "Top.nbi/NBImageInfo.plist",
        "Rescue.nbi/pc/vmlinuz",  # Rescue lives in NetBootSP0/
        "Off.nbi/pc/vmlinuz",  # disabled
        "Broken.nbi/pc/vmlinuz",  # an initrd is missing: the set is not served
        "Broken.nbi/pc/initrd.img",
    ],
)
def test_nothing_else_of_a_pc_set_is_served(pc_namespace: TftpNamespace, name: str) -> None:
    assert refused(pc_namespace, name) is NOT_FOUND


@pytest.mark.parametrize(
    "name",
    ["Linux.nbi/pc/../pc/vmlinuz", "Linux.nbi/pc/vmlinuz/..", "../Linux.nbi/pc/vmlinuz"],
)
def test_dotdot_around_a_pc_file_is_an_access_violation(
    pc_namespace: TftpNamespace, name: str
) -> None:
    assert refused(pc_namespace, name) is VIOLATION


def test_a_pc_kernel_replaced_by_an_escaping_symlink_after_the_scan_is_refused(
    pc_root: Path, tmp_path: Path
) -> None:
    namespace = TftpNamespace(scan_catalog(pc_root))
    kernel = pc_root / "Linux.nbi" / "pc" / "vmlinuz"
    kernel.unlink()
    kernel.symlink_to(tmp_path / "secret")
    assert refused(namespace, "Linux.nbi/pc/vmlinuz") is VIOLATION


def test_the_extra_directory_does_not_shadow_pc_files(pc_root: Path, extra_dir: Path) -> None:
    (extra_dir / "Linux.nbi" / "pc").mkdir(parents=True)
    (extra_dir / "Linux.nbi" / "pc" / "vmlinuz").write_bytes(b"impostor")
    namespace = TftpNamespace(scan_catalog(pc_root), extra_dir)
    assert served(namespace, "Linux.nbi/pc/vmlinuz").path.read_bytes() == PC_KERNEL


# -- the signed chain and GRUB's configuration ------------------------------------------------

GRUB_MAC = "52:54:00:77:00:10"


@pytest.fixture
def signed_chain(tmp_path: Path) -> dict[str, Path]:
    """Debian's layout: the shim under /usr/lib/shim, GRUB reached through a link."""
    shim = tmp_path / "usr" / "lib" / "shim" / "shimx64.efi.signed"
    grub = tmp_path / "usr" / "lib" / "grub" / "grubnetx64.efi.signed"
    link = tmp_path / "etc" / "grubnetx64.efi"
    for path in (shim, grub, link):
        path.parent.mkdir(parents=True, exist_ok=True)
    shim.write_bytes(b"MZ shim")
    grub.write_bytes(b"MZ grub")
    link.symlink_to(grub)
    return {"sb/x64/shimx64.efi": shim, "sb/x64/grubx64.efi": link}


@pytest.fixture
def demo_root(tmp_path: Path) -> Path:
    root = tmp_path / "pcimages"
    make_set(
        root,
        "Demo",
        Index=1,
        files={"pc/vmlinuz": b"MZ kernel", "pc/initrd.gz": b"\x1f\x8b initrd"},
        PCKernel="pc/vmlinuz",
        PCInitrd="pc/initrd.gz",
        PCCommandLine="console=ttyS0",
    )
    return root


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("sb/x64/shimx64.efi", b"MZ shim"),
        ("/sb/x64/shimx64.efi", b"MZ shim"),
        ("sb/x64//grubx64.efi", b"MZ grub"),  # shim joins its directory and \grubx64.efi
        ("sb/x64/grubx64.efi", b"MZ grub"),  # a link to the real file is followed
    ],
)
def test_the_signed_chain_is_served_by_its_virtual_names(
    image_root: Path, signed_chain: dict[str, Path], name: str, expected: bytes
) -> None:
    resolved = TftpNamespace(scan_catalog(image_root), None, signed_chain).resolve(name)
    assert isinstance(resolved, Resolved)
    assert resolved.path.read_bytes() == expected


@pytest.mark.parametrize(
    "name",
    ["sb/x64/revocations_sku.efi", "sb/x64/revocations_sbat.efi", "sb/x64/shim_certificate_0.efi"],
)
def test_what_shim_may_ask_besides_is_not_found(
    image_root: Path, signed_chain: dict[str, Path], name: str
) -> None:
    resolved = TftpNamespace(scan_catalog(image_root), None, signed_chain).resolve(name)
    assert isinstance(resolved, Refusal) and resolved.code is NOT_FOUND


def test_a_missing_chain_file_is_not_found(image_root: Path, tmp_path: Path) -> None:
    chain = {"sb/x64/shimx64.efi": tmp_path / "not-installed.efi"}
    resolved = TftpNamespace(scan_catalog(image_root), None, chain).resolve("sb/x64/shimx64.efi")
    assert resolved == Refusal(NOT_FOUND, "no such file")


def test_grub_configuration_is_rendered_for_the_client_in_its_name(demo_root: Path) -> None:
    namespace = TftpNamespace(scan_catalog(demo_root), None, {}, ChoiceSettings())
    generic = namespace.resolve("/grub/grub.cfg")
    assert isinstance(generic, Rendered)
    assert (generic.content, generic.mac) == (GENERIC_CONFIG.encode(), None)
    own = namespace.resolve(f"/grub/netboot/x86_64-efi/{GRUB_MAC}.cfg")
    assert isinstance(own, Rendered)
    assert (own.name, own.mac, own.image) == (
        f"grub/netboot/x86_64-efi/{GRUB_MAC}.cfg",
        MacAddress(GRUB_MAC),
        "Demo",
    )
    assert own.summary == "boot 'Demo'"
    assert b"linux '/Demo.nbi/pc/vmlinuz' 'console=ttyS0'\ninitrd '/Demo.nbi/pc/initrd.gz'\n" in (
        own.content
    )
    # What the rendered configuration asks next is served from the image root.
    kernel = namespace.resolve("/Demo.nbi/pc/vmlinuz")
    assert isinstance(kernel, Resolved) and kernel.path.read_bytes() == b"MZ kernel"


@pytest.mark.parametrize(
    "name",
    [
        "/grub/grub.cfg-8be4df61-93ca-11d2-aa0d-00e098032b8c",  # the client's UUID
        "/grub/grub.cfg-01-52-54-00-77-00-10",  # 01- and its MAC
        "/grub/grub.cfg-0A4D0073",  # its address in hex, then ever shorter
        "/grub/grub.cfg-0A4D007",
        "/grub/grub.cfg-0",
    ],
)
def test_the_names_of_upstream_grubs_own_search_get_the_generic_configuration(
    demo_root: Path, name: str
) -> None:
    """A GRUB that searches (its `normal` without an argument) stops at the first name it
    finds; the generic configuration there sources the client's own file."""
    namespace = TftpNamespace(scan_catalog(demo_root), None, {}, ChoiceSettings())
    resolved = namespace.resolve(name)
    assert isinstance(resolved, Rendered), resolved
    assert (resolved.content, resolved.mac) == (GENERIC_CONFIG.encode(), None)


@pytest.mark.parametrize(
    "name",
    [
        "/grub/grub.cfg-",
        "/grub/grub.cfg-0A4D00731",  # nine hex digits: no IPv4 address
        "/grub/grub.cfg-01-52-54-00-77-00",
        "/grub/grub.cfg-whatever",
        "/grub/x86_64-efi/command.lst",
        "/grub/x86_64-efi/fs.lst",
        "/grub/x86_64-efi/crypto.lst",
        "/grub/x86_64-efi/terminal.lst",
        "/grub/netboot/sparc64-ieee1275/52:54:00:77:00:10.cfg",
        "/grub/netboot/x86_64-efi/nobody.cfg",
    ],
)
def test_grubs_other_requests_are_not_found(demo_root: Path, name: str) -> None:
    namespace = TftpNamespace(scan_catalog(demo_root), None, {}, ChoiceSettings())
    resolved = namespace.resolve(name)
    assert isinstance(resolved, Refusal) and resolved.code is NOT_FOUND


def test_without_the_chain_grub_cfg_comes_from_the_programs_directory(
    demo_root: Path, extra_dir: Path
) -> None:
    (extra_dir / "grub").mkdir()
    (extra_dir / "grub" / "grub.cfg").write_bytes(b"the admin's own")
    resolved = TftpNamespace(scan_catalog(demo_root), extra_dir).resolve("/grub/grub.cfg")
    assert isinstance(resolved, Resolved) and resolved.path.read_bytes() == b"the admin's own"
