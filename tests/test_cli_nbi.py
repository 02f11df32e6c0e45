"""`netboot nbi create|enable|disable|set-default|edit`: sets that validate, edits that are safe."""

from __future__ import annotations

import plistlib
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from netboot.cli import cli
from netboot.nbi.catalog import scan_catalog
from netboot.udif.partitions import read_partitions
from netboot.udif.reader import UdifImage
from netboot_lab.factories import make_set
from tests.pe_kernels import ARM64_KERNEL, X64_KERNEL

IPXE = Path("/usr/lib/ipxe")


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


@pytest.fixture
def inputs(tmp_path: Path) -> dict[str, Path]:
    if shutil.which("xorriso") is None or not (IPXE / "ipxe.efi").is_file():
        pytest.skip("needs Debian's xorriso and ipxe packages")
    files = {
        "booter": IPXE / "ipxe.efi",
        "kernel": tmp_path / "mach_kernel",
        "kernelcache": tmp_path / "kernelcache",
        "mkext": tmp_path / "Extensions.mkext",
        "pc_kernel": tmp_path / "vmlinuz",
        "pc_initrd": tmp_path / "initrd.img",
    }
    for key, path in files.items():
        if key != "booter":
            path.write_bytes(key.encode() * 1000)
    content = tmp_path / "content"
    (content / "System").mkdir(parents=True)
    (content / "System" / "hello.txt").write_text("hello from the root image\n")
    files["root_dir"] = content
    return files


def create(inputs: dict[str, Path], out: Path, *extra: str) -> Result:
    return run(
        "nbi", "create", "--name", "Lab Mojave", "--index", "12",
        "--booter", str(inputs["booter"]), "--kernel", str(inputs["kernel"]),
        "--kernelcache", str(inputs["kernelcache"]), "--mkext", str(inputs["mkext"]),
        *extra, str(out),
    )  # fmt: skip


def plist_of(set_dir: Path) -> dict[str, object]:
    with (set_dir / "NBImageInfo.plist").open("rb") as handle:
        loaded = plistlib.load(handle)
    assert isinstance(loaded, dict)
    return loaded


def test_create_builds_a_set_that_validates_with_the_apple_layout(
    inputs: dict[str, Path], tmp_path: Path
) -> None:
    root = tmp_path / "nbimages"
    out = root / "LabMojave.nbi"
    result = create(
        inputs, out, "--root-dir", str(inputs["root_dir"]),
        "--models", "iMac18,3", "--models", "MacBookPro14,1", "--macs", "00:16:cb:12:34:56",
        "--pc-kernel", str(inputs["pc_kernel"]), "--pc-initrd", str(inputs["pc_initrd"]),
        "--pc-cmdline", "console=ttyS0 quiet",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    for relative in ("i386/booter", "i386/mach.macosx", "i386/mach.macosx.mkext"):
        assert (out / relative).is_file(), relative
    assert (out / "i386/x86_64/kernelcache").read_bytes() == inputs["kernelcache"].read_bytes()
    plist = plist_of(out)
    assert plist["Name"] == "Lab Mojave"
    assert plist["Index"] == 12
    assert plist["Type"] == "HTTP"
    assert plist["RootPath"] == "NetBoot.dmg"
    assert plist["Architectures"] == ["i386"]
    assert plist["EnabledSystemIdentifiers"] == ["iMac18,3", "MacBookPro14,1"]
    assert plist["EnabledMACAddresses"] == ["00:16:cb:12:34:56"]
    assert plist["PCKernel"] == "pc/vmlinuz"
    assert plist["PCInitrd"] == ["pc/initrd.img"]
    assert plist["PCCommandLine"] == "console=ttyS0 quiet"
    (built,) = scan_catalog(root).sets
    assert built.is_servable, built.problems
    assert [p.name for p in root.iterdir()] == ["LabMojave.nbi"]  # no staging left


def test_a_root_from_a_directory_is_a_udzo_apm_disk_with_an_hfs_plus_volume(
    inputs: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "Dir.nbi"
    assert create(inputs, out, "--root-dir", str(inputs["root_dir"])).exit_code == 0
    with UdifImage.open(out / "NetBoot.dmg") as image:
        assert image.verify().ok
        assert "zlib" in image.chunk_counts()
        scheme, partitions = read_partitions(image.read, image.size)
        assert scheme == "apm"
        (hfs,) = [p for p in partitions if p.type == "Apple_HFS"]
        header = image.read(hfs.first_sector * 512 + 1024, 2)
        assert header == b"H+"  # the HFS+ volume header's signature


def test_a_root_image_is_converted_and_keep_copies_it(
    inputs: dict[str, Path], tmp_path: Path
) -> None:
    first = tmp_path / "First.nbi"
    assert create(inputs, first, "--root-dir", str(inputs["root_dir"])).exit_code == 0
    source = first / "NetBoot.dmg"
    raw_form = tmp_path / "Raw.nbi"
    converted_set = create(inputs, raw_form, "--root-image", str(source), "--root-format", "UDRO")
    assert converted_set.exit_code == 0
    with UdifImage.open(raw_form / "NetBoot.dmg") as converted, UdifImage.open(source) as original:
        assert "zlib" not in converted.chunk_counts()
        assert converted.read(0, converted.size) == original.read(0, original.size)
    kept = tmp_path / "Kept.nbi"
    assert create(inputs, kept, "--root-image", str(source), "--root-format", "keep").exit_code == 0
    assert (kept / "NetBoot.dmg").read_bytes() == source.read_bytes()


def test_install_images_get_netinstall_dmg_and_the_install_bit(
    inputs: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "Install.nbi"
    result = create(
        inputs, out, "--root-dir", str(inputs["root_dir"]), "--install", "--index", "4097",
        "--type", "NFS",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    plist = plist_of(out)
    assert plist["IsInstall"] is True
    assert plist["Type"] == "NFS"
    assert plist["RootPath"] == "NetInstall.dmg"


def test_without_a_root_the_set_is_boot_file_only(inputs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "Booter.nbi"
    assert create(inputs, out).exit_code == 0
    assert plist_of(out)["Type"] == "BootFileOnly"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--macs", "not-a-mac"), "not a MAC address"),
        (("--root-image", "/etc/hostname"), "not a disk image"),
    ],
)
def test_bad_input_exits_1_and_leaves_nothing(
    inputs: dict[str, Path], tmp_path: Path, extra: tuple[str, ...], message: str
) -> None:
    root = tmp_path / "nbimages"
    root.mkdir()
    result = create(inputs, root / "Bad.nbi", *extra)
    assert result.exit_code == 1
    assert message in result.output
    assert list(root.iterdir()) == []


def test_a_corrupt_root_image_exits_1_and_leaves_nothing(
    inputs: dict[str, Path], tmp_path: Path
) -> None:
    first = tmp_path / "First.nbi"
    assert create(inputs, first, "--root-dir", str(inputs["root_dir"])).exit_code == 0
    corrupt = tmp_path / "corrupt.dmg"
    data = bytearray((first / "NetBoot.dmg").read_bytes())
    data[10:200] = bytes(190)  # inside the first zlib chunk
    corrupt.write_bytes(bytes(data))
    root = tmp_path / "nbimages"
    root.mkdir()
    result = create(inputs, root / "Corrupt.nbi", "--root-image", str(corrupt))
    assert result.exit_code == 1, result.output
    assert "corrupt.dmg" in result.output
    assert list(root.iterdir()) == []


def test_create_refuses_an_existing_set_without_force(
    inputs: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "Twice.nbi"
    assert create(inputs, out).exit_code == 0
    again = create(inputs, out)
    assert again.exit_code == 1
    assert "already exists" in again.output
    assert create(inputs, out, "--force").exit_code == 0


def test_the_out_directory_must_be_named_nbi(inputs: dict[str, Path], tmp_path: Path) -> None:
    result = create(inputs, tmp_path / "NotASet")
    assert result.exit_code == 1
    assert "NAME.nbi" in result.output


# -- edits -----------------------------------------------------------------------------------


def test_disable_and_enable_flip_is_enabled(tmp_path: Path) -> None:
    set_dir = make_set(tmp_path, "Alpha")
    assert run("nbi", "disable", str(set_dir)).exit_code == 0
    assert plist_of(set_dir)["IsEnabled"] is False
    assert run("nbi", "enable", str(set_dir)).exit_code == 0
    assert plist_of(set_dir)["IsEnabled"] is True


def test_edit_types_values_by_key_and_removes_with_an_empty_value(tmp_path: Path) -> None:
    set_dir = make_set(tmp_path, "Alpha", Description="old")
    result = run(
        "nbi", "edit", str(set_dir), "Name=Lab image", "Index=42", "IsInstall=no",
        "EnabledSystemIdentifiers=iMac18,3 MacBookPro14,1", "Description=", "Custom=kept",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    plist = plist_of(set_dir)
    assert plist["Name"] == "Lab image"
    assert plist["Index"] == 42
    assert plist["IsInstall"] is False
    assert plist["EnabledSystemIdentifiers"] == ["iMac18,3", "MacBookPro14,1"]
    assert "Description" not in plist
    assert plist["Custom"] == "kept"


@pytest.mark.parametrize(
    ("assignment", "key"),
    [
        ("Index=0", "Index"),
        ("Type=FTP", "Type"),
        ("BootFile=missing", "BootFile"),
        ("PCKernel=../../etc/passwd", "PCKernel"),
    ],
)
def test_an_edit_that_would_not_validate_is_refused_and_writes_nothing(
    tmp_path: Path, assignment: str, key: str
) -> None:
    set_dir = make_set(tmp_path, "Alpha")
    before = (set_dir / "NBImageInfo.plist").read_bytes()
    result = run("nbi", "edit", str(set_dir), assignment)
    assert result.exit_code == 1
    assert f"NBImageInfo.plist: {key}:" in result.output
    assert (set_dir / "NBImageInfo.plist").read_bytes() == before
    assert sorted(p.name for p in set_dir.iterdir() if p.name.startswith(".")) == []


@pytest.mark.parametrize("word", ["IsDefault=maybe", "Index=twelve", "noequals"])
def test_a_value_of_the_wrong_type_is_a_usage_error(tmp_path: Path, word: str) -> None:
    set_dir = make_set(tmp_path, "Alpha")
    assert run("nbi", "edit", str(set_dir), word).exit_code == 2


def test_a_binary_plist_stays_binary(tmp_path: Path) -> None:
    set_dir = make_set(tmp_path, "Alpha")
    plist_file = set_dir / "NBImageInfo.plist"
    plist_file.write_bytes(plistlib.dumps(plist_of(set_dir), fmt=plistlib.FMT_BINARY))
    assert run("nbi", "edit", str(set_dir), "Name=Binary").exit_code == 0
    assert plist_file.read_bytes().startswith(b"bplist")
    assert plist_of(set_dir)["Name"] == "Binary"


def test_set_default_clears_every_other_default(tmp_path: Path) -> None:
    alpha = make_set(tmp_path, "Alpha", Index=1, IsDefault=True)
    beta = make_set(tmp_path, "Beta", Index=2)
    result = run("nbi", "set-default", str(beta))
    assert result.exit_code == 0, result.output
    assert plist_of(beta)["IsDefault"] is True
    assert plist_of(alpha)["IsDefault"] is False
    assert "no longer default" in result.output
    catalog = scan_catalog(tmp_path)
    assert all(nbi_set.is_servable for nbi_set in catalog.sets)


def test_a_familys_own_kernel_pair_is_written_as_pckernels(
    inputs: dict[str, Path], tmp_path: Path
) -> None:
    arm = tmp_path / "arm64"
    arm.mkdir()
    (arm / "vmlinuz").write_bytes(ARM64_KERNEL)
    (arm / "initrd.gz").write_bytes(b"\x1f\x8b arm64 initramfs")
    out = tmp_path / "Both.nbi"
    result = create(
        inputs, out,
        "--pc-kernel", str(inputs["pc_kernel"]), "--pc-initrd", str(inputs["pc_initrd"]),
        "--pc-kernel-for", f"efi-arm64={arm / 'vmlinuz'}",
        "--pc-initrd-for", f"efi-arm64={arm / 'initrd.gz'}",
        "--pc-cmdline-for", "efi-arm64=console=ttyAMA0",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    plist = plist_of(out)
    assert plist["PCKernels"] == {
        "efi-arm64": {
            "Kernel": "pc/efi-arm64/vmlinuz",
            "Initrd": ["pc/efi-arm64/initrd.gz"],
            "CommandLine": "console=ttyAMA0",
        }
    }
    assert (out / "pc" / "efi-arm64" / "vmlinuz").read_bytes() == ARM64_KERNEL


@pytest.mark.parametrize(
    ("extra", "said"),
    [
        (("--pc-kernel-for", "arm64=vmlinuz"), "want FAMILY=VALUE"),
        (("--pc-kernel-for", "efi-arm64"), "want FAMILY=VALUE"),
        (("--pc-initrd-for", "efi-arm64=initrd.gz"), "needs --pc-kernel-for"),
        (
            ("--pc-kernel-for", "efi-arm64=a", "--pc-kernel-for", "efi-arm64=b"),
            "efi-arm64 is given twice",
        ),
    ],
)
def test_a_bad_pair_option_is_a_usage_error_naming_it(
    tmp_path: Path, extra: tuple[str, ...], said: str
) -> None:
    booter = tmp_path / "booter"
    booter.write_bytes(b"MZ")
    result = run("nbi", "create", "--name", "X", "--index", "3", "--booter", str(booter),
                 *extra, str(tmp_path / "X.nbi"))  # fmt: skip
    assert result.exit_code == 2, result.output
    assert said in result.output
    assert not (tmp_path / "X.nbi").exists()


# -- a family's own pair, a field at a time (`PCKernels.FAMILY.FIELD=`) ----------------------


def arm64_files(set_dir: Path) -> None:
    (set_dir / "pc" / "efi-arm64").mkdir(parents=True)
    (set_dir / "pc" / "efi-arm64" / "vmlinuz").write_bytes(ARM64_KERNEL)
    (set_dir / "pc" / "efi-arm64" / "initrd.gz").write_bytes(b"\x1f\x8b arm64 initramfs")


def test_edit_sets_and_removes_a_familys_pair_field_by_field(tmp_path: Path) -> None:
    set_dir = make_set(tmp_path, "Alpha")
    arm64_files(set_dir)
    result = run(
        "nbi", "edit", str(set_dir), "PCKernels.efi-arm64.Kernel=pc/efi-arm64/vmlinuz",
        "PCKernels.efi-arm64.Initrd=pc/efi-arm64/initrd.gz",
        "PCKernels.efi-arm64.CommandLine=console=ttyAMA0 quiet",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert plist_of(set_dir)["PCKernels"] == {
        "efi-arm64": {
            "Kernel": "pc/efi-arm64/vmlinuz",
            "Initrd": ["pc/efi-arm64/initrd.gz"],
            "CommandLine": "console=ttyAMA0 quiet",
        }
    }
    catalog = scan_catalog(tmp_path)
    (alpha,) = catalog.servable
    assert alpha.info.pc_boot("efi-arm64") is not None
    assert run("nbi", "edit", str(set_dir), "PCKernels.efi-arm64.CommandLine=").exit_code == 0
    assert plist_of(set_dir)["PCKernels"] == {
        "efi-arm64": {"Kernel": "pc/efi-arm64/vmlinuz", "Initrd": ["pc/efi-arm64/initrd.gz"]}
    }
    assert run("nbi", "edit", str(set_dir), "PCKernels.efi-arm64=").exit_code == 0
    assert "PCKernels" not in plist_of(set_dir)  # the last pair gone: the key too


@pytest.mark.parametrize(
    ("assignment", "said"),
    [
        ("PCKernels.efi-arm64.Initrd=pc/efi-arm64/initrd.gz", "Kernel"),  # a pair needs one
        ("PCKernels.efi-arm64.Kernel=pc/missing", "pc/missing"),
        ("PCKernels.efi-arm64.Kernel=pc/vmlinuz", "0x8664"),  # an x86-64 kernel for arm64
        ("PCKernels.arm64.Kernel=pc/efi-arm64/vmlinuz", "arm64"),  # no such family
    ],
)
def test_a_pair_edit_that_would_not_validate_is_refused_and_writes_nothing(
    tmp_path: Path, assignment: str, said: str
) -> None:
    set_dir = make_set(tmp_path, "Alpha", files={"pc/vmlinuz": X64_KERNEL},
                       PCKernel="pc/vmlinuz")  # fmt: skip
    arm64_files(set_dir)
    before = (set_dir / "NBImageInfo.plist").read_bytes()
    result = run("nbi", "edit", str(set_dir), assignment)
    assert result.exit_code == 1, result.output
    assert "NBImageInfo.plist: PCKernels" in result.output and said in result.output
    assert (set_dir / "NBImageInfo.plist").read_bytes() == before


@pytest.mark.parametrize(
    "word",
    [
        "Name.x=1",  # not a dictionary key
        "PCKernels.efi-arm64.Bogus=1",  # not a field of a pair
        "PCKernels..Kernel=pc/x",  # no entry
        "PCKernels.efi-arm64=pc/x",  # an entry is removed, or set field by field
    ],
)
def test_a_dotted_key_that_means_nothing_is_a_usage_error(tmp_path: Path, word: str) -> None:
    set_dir = make_set(tmp_path, "Alpha")
    result = run("nbi", "edit", str(set_dir), word)
    assert result.exit_code == 2, result.output
