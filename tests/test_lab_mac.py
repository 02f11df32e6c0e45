"""The simulated Mac (`netboot lab mac`): a whole NetBoot through the lab's daemon.

The lab tests need root (namespaces), tshark and xorriso, and the NFS one
nfs-ganesha; they skip without them (failures under NETBOOT_REQUIRE_ALL=1).
Each uses a lab of its own name and always takes it down. The root-image
checks themselves are also tested on files, without a lab.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from netboot.nbi.create import XORRISO_HFSPLUS, SetSpec, create_set
from netboot.nbi.demo import DEBIAN_IPXE_EFI
from netboot.udif.partitions import Partition, read_partitions
from netboot.udif.reader import UdifImage
from netboot.udif.sector import SECTOR
from netboot.udif.volumes import fletcher64
from netboot.udif.writer import write_image
from netboot_lab.factories import PE_BOOTER
from netboot_lab.lab import STATE_ROOT, running_lab
from netboot_lab.mac import nfs_url, simulate_mac
from netboot_lab.root_image import check_root_image
from tests.netns import require_root
from tests.test_nfs import require_nfs

TIMEOUT = 60.0


def require_tools(*tools: str) -> None:
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (Debian: {', '.join(missing)})")


def require_lab() -> None:
    require_root()
    require_tools("tshark", "xorriso")


def lab_name() -> str:
    return f"mac-{uuid.uuid4().hex[:6]}"


def namespaces() -> list[str]:
    done = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False)
    return [line.split()[0] for line in done.stdout.splitlines() if line.strip()]


def lab_mac_cli(name: str, *args: str) -> tuple[int, dict[str, Any]]:
    """`netboot lab mac --name NAME --json ...` as a separate process: exit status and JSON.

    Pass `--artifacts` under the test's tmp_path: the default keeps files in /var/tmp.
    """
    done = subprocess.run(
        [sys.executable, "-m", "netboot", "lab", "mac", "--name", name, "--json", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.stdout.strip(), done.stderr
    summary: dict[str, Any] = json.loads(done.stdout)
    return done.returncode, summary


# -- root images built here --------------------------------------------------------


def hfs_disk(tmp_path: Path) -> tuple[Path, Partition]:
    """A raw APM disk with an HFS+ volume (xorriso, as `nbi create` makes them)."""
    content = tmp_path / "content"
    content.mkdir()
    (content / "README.txt").write_text("a NetBoot root\n" * 400)
    raw = tmp_path / "root.img"
    subprocess.run(
        [*XORRISO_HFSPLUS, "-V", "Root", "-o", str(raw), str(content)],
        capture_output=True,
        check=True,
    )
    data = raw.read_bytes()
    _, partitions = read_partitions(lambda at, size: data[at : at + size], len(data))
    (volume,) = [p for p in partitions if p.type == "Apple_HFS"]
    return raw, volume


def with_bad_signature(raw: Path, volume: Partition) -> None:
    data = bytearray(raw.read_bytes())
    header = volume.first_sector * SECTOR + 1024
    data[header : header + 2] = b"XX"
    raw.write_bytes(data)


def corrupt_volume_chunk(dmg: Path, volume: Partition) -> None:
    """Flip bytes inside the compressed chunk that holds the volume header."""
    target = volume.first_sector * SECTOR + 1024
    with UdifImage.open(dmg) as image:
        for offset, length, chunk, entry in image.iter_chunks():
            if offset <= target < offset + length and chunk.has_data:
                at = image.koly.data_fork_offset + entry.table.data_start + chunk.data_offset
                at += chunk.data_length // 2
                break
        else:
            raise AssertionError("no chunk holds the volume header")
    data = bytearray(dmg.read_bytes())
    data[at : at + 16] = bytes(byte ^ 0xFF for byte in data[at : at + 16])
    dmg.write_bytes(data)


def apfs_container(path: Path, *, good_checksum: bool = True) -> None:
    """A bare APFS container of 16 blocks: just a valid (or mis-summed) superblock."""
    superblock = bytearray(4096)
    superblock[32:36] = b"NXSB"
    superblock[36:40] = (4096).to_bytes(4, "little")
    superblock[40:48] = (16).to_bytes(8, "little")
    checksum = fletcher64(bytes(superblock[8:])) ^ (0 if good_checksum else 1)
    superblock[0:8] = checksum.to_bytes(8, "little")
    path.write_bytes(bytes(superblock) + bytes(15 * 4096))


# -- the root-image checks, on files -------------------------------------------------


def test_nfs_root_paths_become_libnfs_urls() -> None:
    assert (
        nfs_url("nfs:10.250.0.1:/srv/nbi:Alpha.nbi/NetBoot.dmg")
        == "nfs://10.250.0.1/srv/nbi/Alpha.nbi/NetBoot.dmg"
    )
    assert nfs_url(r"nfs:192.0.2.10:/Volumes/A\:B:X.nbi/NetBoot.dmg") == (
        "nfs://192.0.2.10/Volumes/A:B/X.nbi/NetBoot.dmg"
    )
    with pytest.raises(ValueError, match="not nfs:HOST:EXPORT:PATH"):
        nfs_url("nfs:10.250.0.1:/srv/nbi")


def test_read_root_checks_hfs_plus_and_names_what_is_broken(tmp_path: Path) -> None:
    require_tools("xorriso")
    raw, volume = hfs_disk(tmp_path)
    good = tmp_path / "good.dmg"
    write_image(raw, good)
    report = check_root_image(str(good))
    assert report["error"] is None
    assert report["signature"] == "H+" and report["file_system"] == "HFS+"
    assert report["partition"]["type"] == "Apple_HFS"
    assert report["details"]["catalog_records"] > 0
    assert report["details"]["alternate_header"] == "present"
    assert 0 < report["bytes"] <= good.stat().st_size

    corrupt = tmp_path / "corrupt.dmg"
    shutil.copyfile(good, corrupt)
    corrupt_volume_chunk(corrupt, volume)
    error = check_root_image(str(corrupt))["error"]
    assert f"partition {volume.index} " in error and "unreadable" in error
    assert "zlib chunk" in error

    with_bad_signature(raw, volume)
    bad = tmp_path / "bad.dmg"
    write_image(raw, bad)
    error = check_root_image(str(bad))["error"]
    assert "volume header signature is b'XX'" in error


def test_read_root_checks_an_apfs_superblock(tmp_path: Path) -> None:
    for good in (True, False):
        volume = tmp_path / f"apfs-{good}.img"
        apfs_container(volume, good_checksum=good)
        dmg = volume.with_suffix(".dmg")
        write_image(volume, dmg)
        report = check_root_image(str(dmg))
        assert report["partition"]["type"] == "Apple_APFS"
        if good:
            assert report["error"] is None
            assert report["signature"] == "NXSB" and report["block_size"] == 4096
        else:
            assert "superblock checksum" in report["error"]


def test_read_root_refuses_a_disk_without_a_mac_volume(tmp_path: Path) -> None:
    disk = tmp_path / "fat.img"
    mbr = bytearray(64 * 1024)
    mbr[446 + 4] = 0x0C  # one FAT32 partition
    mbr[446 + 8 : 446 + 16] = (1).to_bytes(4, "little") + (64).to_bytes(4, "little")
    mbr[510:512] = b"\x55\xaa"
    disk.write_bytes(mbr)
    dmg = tmp_path / "fat.dmg"
    write_image(disk, dmg, layout="keep")
    done = subprocess.run(
        [sys.executable, "-m", "netboot_lab.root_image", "read-root", str(dmg), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "no Apple_HFS or Apple_APFS partition" in json.loads(done.stdout)["error"]


# -- whole boots in the lab ----------------------------------------------------------


def test_a_simulated_mac_boots_the_demo_image_over_http() -> None:
    require_lab()
    if not DEBIAN_IPXE_EFI.is_file():
        pytest.skip("needs Debian's ipxe package (the demo set's booter)")
    with running_lab(lab_name()) as lab:
        summary = simulate_mac(lab, None, TIMEOUT).as_json()
        assert summary["result"] == "ok", summary["error"]
        assert summary["firmware"] == "mac" and summary["accel"] == "none"
        stages = summary["stages"]
        assert list(stages) == ["bsdp_list", "bsdp_select", "booter", "root_image"]
        assert 0 < stages["bsdp_list"] < stages["bsdp_select"] < stages["booter"]
        assert stages["booter"] < stages["root_image"]
        booter = Path(lab.state.root) / "Demo.nbi" / "i386" / "booter"
        assert summary["bytes"]["tftp"] == booter.stat().st_size
        assert summary["bytes"]["http"] > 0
        log = Path(summary["serial_log"]).read_text()
        assert "volume header signature H+ (HFS+)" in log
        assert "ACK[SELECT]" in log and "result: ok" in log
        wire = log.split("--- the BSDP exchange on the wire (scapy's BSDP layer) ---\n")[1]
        assert "DHCP Inform BSDP LIST\n" in wire and "DHCP Ack BSDP LIST " in wire
        assert "DHCP Inform BSDP SELECT image 0x" in wire
        pcap = Path(summary["pcap"])
        assert pcap.stat().st_size > 0
        seen = subprocess.run(
            ["tshark", "-r", str(pcap), "-Y", "dhcp || tftp || http"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        ).stdout
        assert "DHCP" in seen and "TFTP" in seen and "HTTP" in seen
        assert not [ns for ns in namespaces() if ns.startswith(f"{lab.state.namespace}-mac")]


def test_a_simulated_mac_boots_an_nfs_image_with_a_kernelcache(tmp_path: Path) -> None:
    require_lab()
    require_nfs()
    booter, kernelcache = tmp_path / "booter.efi", tmp_path / "kernelcache"
    booter.write_bytes(PE_BOOTER + os.urandom(64 * 1024))
    kernelcache.write_bytes(os.urandom(150 * 1024))
    content = tmp_path / "content"
    content.mkdir()
    (content / "README.txt").write_text("an NFS root\n")
    root = tmp_path / "images"
    create_set(
        SetSpec(
            name="NFS root",
            index=7,
            booter=booter,
            kernelcache=kernelcache,
            root_dir=content,
            image_type="NFS",
            default=True,
        ),
        root / "Nfs.nbi",
    )
    with running_lab(lab_name(), root, nfs=True) as lab:
        summary = simulate_mac(lab, "NFS root", TIMEOUT).as_json()
        assert summary["result"] == "ok", summary["error"]
        stages = summary["stages"]
        assert list(stages) == ["bsdp_list", "bsdp_select", "booter", "kernel", "root_image"]
        assert stages["booter"] < stages["kernel"] < stages["root_image"]
        sizes = booter.stat().st_size + kernelcache.stat().st_size
        assert summary["bytes"]["tftp"] == sizes
        assert summary["bytes"]["nfs"] == (root / "Nfs.nbi" / "NetBoot.dmg").stat().st_size
        log = Path(summary["serial_log"]).read_text()
        assert "nfs-cat nfs://" in log and "i386/x86_64/kernelcache" in log
        assert "volume header signature H+ (HFS+)" in log


def test_a_broken_root_image_fails_the_boot_and_says_why(tmp_path: Path) -> None:
    require_lab()
    raw, volume = hfs_disk(tmp_path)
    booter = tmp_path / "booter.efi"
    booter.write_bytes(PE_BOOTER + bytes(4096))
    root = tmp_path / "images"
    corrupt = create_set(
        SetSpec(name="Corrupt data", index=2, booter=booter, root_image=raw), root / "Corrupt.nbi"
    )[0]
    corrupt_volume_chunk(corrupt / "NetBoot.dmg", volume)
    with_bad_signature(raw, volume)
    create_set(
        SetSpec(name="Bad signature", index=3, booter=booter, root_image=raw),
        root / "BadSig.nbi",
    )
    name = lab_name()
    with running_lab(name, root):
        # By set directory, and by the name the LIST shows.
        status, summary = lab_mac_cli(name, "--image", "BadSig", "--artifacts", str(tmp_path / "a"))
        assert status == 1 and summary["result"] == "fail"
        error = str(summary["error"])
        assert error.startswith("root_image: http://")
        assert "volume header signature is b'XX'" in error
        assert "root_image" not in summary["stages"]
        assert "booter" in summary["stages"]

        status, summary = lab_mac_cli(
            name, "--image", "Corrupt data", "--artifacts", str(tmp_path / "b")
        )
        assert status == 1 and summary["result"] == "fail"
        error = str(summary["error"])
        assert f"partition {volume.index} " in error and "zlib chunk" in error


def test_lab_mac_sets_up_a_lab_when_none_is_up_and_takes_it_down(tmp_path: Path) -> None:
    require_lab()
    if not DEBIAN_IPXE_EFI.is_file():
        pytest.skip("needs Debian's ipxe package (the demo set's booter)")
    name = lab_name()
    kept = tmp_path / "artifacts"
    status, summary = lab_mac_cli(name, "--timeout", str(TIMEOUT), "--artifacts", str(kept))
    assert status == 0, summary
    assert summary["result"] == "ok" and summary["error"] is None
    assert summary["bytes"]["http"] > 0
    assert not [ns for ns in namespaces() if ns.startswith(f"nblab-{name}")]
    assert not (STATE_ROOT / f"{name}.json").exists()
    # The lab is gone; the files the JSON names are kept where --artifacts said.
    assert Path(summary["serial_log"]) == kept / "serial.log"
    assert "result: ok" in Path(summary["serial_log"]).read_text()
    assert Path(summary["pcap"]) == kept / "boot.pcap"
    assert Path(summary["pcap"]).stat().st_size > 0
    assert "bsdp" in (kept / "daemon.log").read_text().lower()
