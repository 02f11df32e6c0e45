"""The status page and /metrics show the PC architecture (issue #22): which firmware
families each image's PC kernels boot on, and which family each recent client's
DHCP said it runs. A real catalog of two sets (x86 only, and x86 + arm64 pairs)
and a real client tracker behind the services the daemon builds (not started).
"""

from __future__ import annotations

from pathlib import Path

from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry
from twisted.application.service import MultiService

from netboot_lab.factories import make_set, pe_image
from netboot_services.admin import NetbootCollector, render_page, snapshot
from netboot_services.catalog import CatalogService
from netboot_services.clients import ClientTracker
from tests.pe_kernels import ARM64_KERNEL


def daemon(root: Path) -> MultiService:
    make_set(root, "Pc", Index=1, PCKernel="pc/vmlinuz", files={"pc/vmlinuz": pe_image()})
    make_set(
        root,
        "Both",
        Index=2,
        PCKernel="pc/vmlinuz",
        PCKernels={"efi-arm64": {"Kernel": "pc/arm64/vmlinuz"}},
        files={"pc/vmlinuz": pe_image(), "pc/arm64/vmlinuz": ARM64_KERNEL},
    )
    top = MultiService()
    catalog = CatalogService(root)
    catalog.setName("catalog")
    catalog.setServiceParent(top)
    catalog.load()
    tracker = ClientTracker(lookup=lambda _address: None)
    tracker.note(
        "10.0.0.5",
        "offered",
        1.0,
        mac="52:54:00:00:00:05",
        kind="pc",
        architecture="efi-arm64",
        firmware="efi-arm64",
    )
    # iPXE asks later: its firmware is "ipxe", the family stays the machine's.
    tracker.note(
        "10.0.0.6",
        "offered",
        2.0,
        mac="52:54:00:00:00:06",
        kind="pc",
        architecture="efi-x64",
        firmware="efi-x64",
    )
    tracker.note(
        "10.0.0.6",
        "script",
        3.0,
        mac="52:54:00:00:00:06",
        kind="pc",
        architecture="efi-x64",
        firmware="ipxe",
    )
    tracker.note(
        "10.0.0.7", "offered", 4.0, mac="52:54:00:00:00:07", kind="mac", architecture="i386"
    )
    top.clients = tracker  # type: ignore[attr-defined]
    return top


def metrics(top: MultiService) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry()
    registry.register(NetbootCollector(top))
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(generate_latest(registry).decode())
        for sample in family.samples
    }


def test_each_recent_client_shows_its_firmware_family(tmp_path: Path) -> None:
    state = snapshot(daemon(tmp_path))
    by_address = {c["address"]: c["firmware"] for c in state["clients"]}
    assert by_address == {"10.0.0.5": "efi-arm64", "10.0.0.6": "efi-x64", "10.0.0.7": None}
    page = render_page(state).decode()
    assert "<th>Firmware</th>" in page and "<td>efi-arm64</td>" in page


def test_each_image_shows_the_families_its_pc_kernels_boot(tmp_path: Path) -> None:
    state = snapshot(daemon(tmp_path))
    families = {image["name"]: image["pc_families"] for image in state["images"]}
    assert families == {"Pc": ["bios", "efi-x64"], "Both": ["bios", "efi-x64", "efi-arm64"]}
    page = render_page(state).decode()
    assert "<td>bios, efi-x64, efi-arm64</td>" in page


def test_metrics_count_images_and_clients_per_family(tmp_path: Path) -> None:
    samples = metrics(daemon(tmp_path))
    assert samples[("netboot_catalog_pc_sets", (("firmware", "efi-arm64"),))] == 1
    assert samples[("netboot_catalog_pc_sets", (("firmware", "efi-x64"),))] == 2
    assert samples[("netboot_recent_clients", (("firmware", "efi-arm64"),))] == 1
    assert samples[("netboot_recent_clients", (("firmware", "efi-x64"),))] == 1
    assert samples[("netboot_recent_clients", (("firmware", "unknown"),))] == 1
