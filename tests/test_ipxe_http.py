"""iPXE scripts at /boot.ipxe and PXE programs at /boot/<file>, through ImageResource.

The resource is driven with Twisted's `DummyRequest` (path, query, and the local
address the request arrived on); the catalog is real NBI sets on disk with the PC
keys (`PCKernel`, `PCInitrd`, `PCCommandLine`, `PCArchitectures`). The URL the
DHCP side hands iPXE is `/boot.ipxe?mac=..&arch=..` (docs/protocols/pxe.md §8,
rows 5-6); UEFI HTTP boot fetches `/boot/ipxe.efi` and needs `application/efi`
(docs/protocols/pxe.md §7.1).
"""

from __future__ import annotations

import socket
from dataclasses import replace
from ipaddress import IPv6Interface
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.task import Clock
from twisted.web.test.requesthelper import DummyRequest

from netboot.config import HttpConfig
from netboot.grub.config import GENERIC_CONFIG
from netboot.nbi.catalog import Catalog, scan_catalog
from netboot.pc.choice import ChoiceSettings
from netboot_lab.factories import make_set
from netboot_services.clients import ClientTracker
from netboot_services.http import ImageResource

SERVER = "192.0.2.10"
CLIENT_IP = "192.0.2.77"
MAC = "52:54:00:12:34:56"
KERNEL = b"MZ linux kernel"
INITRD = b"\x1f\x8b initramfs"
IPXE_EFI = b"MZ ipxe.efi " * 100
PC_FILES = {"pc/vmlinuz": KERNEL, "pc/initrd.img": INITRD}


class Request(DummyRequest):
    """A GET as ImageResource sees it: path, query, and the address it arrived on."""

    def __init__(
        self, target: str, host: str = SERVER, port: int = 8080, scope_id: int = 0
    ) -> None:
        split = urlsplit(target)
        super().__init__([segment.encode() for segment in split.path.lstrip("/").split("/")])
        self.path = split.path.encode()
        self.uri = target.encode()
        self.args = {
            key.encode(): [value.encode() for value in values]
            for key, values in parse_qs(split.query, keep_blank_values=True).items()
        }
        self.client = IPv4Address("TCP", CLIENT_IP, 40000)
        self.transport = None
        self.sentLength = 0
        self._local: IPv4Address | IPv6Address = (
            IPv6Address("TCP", host, port, 0, scope_id)
            if ":" in host
            else IPv4Address("TCP", host, port)
        )

    def getHost(self) -> IPv4Address | IPv6Address:  # noqa: N802 - Twisted's name
        return self._local

    @property
    def status(self) -> int:
        return self.responseCode or 200

    @property
    def body(self) -> bytes:
        return b"".join(self.written)

    def header(self, name: bytes) -> bytes | None:
        values = self.responseHeaders.getRawHeaders(name)
        return values[-1] if values else None


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    root = tmp_path / "images"
    make_set(
        root,
        "Rescue",
        files=PC_FILES,
        Index=1,
        PCKernel="pc/vmlinuz",
        PCInitrd="pc/initrd.img",
        PCCommandLine="console=ttyS0 ip=dhcp",
    )
    make_set(
        root,
        "Installer",
        Name="Debian Installer",
        files=PC_FILES,
        Index=2,
        PCKernel="pc/vmlinuz",
        PCArchitectures=["efi-x64"],
    )
    make_set(root, "MacOnly", Index=3)
    catalog = scan_catalog(root)
    assert len(catalog.servable) == 3
    return catalog


@pytest.fixture
def boot_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "tftp"
    directory.mkdir()
    (directory / "ipxe.efi").write_bytes(IPXE_EFI)
    (directory / "undionly.kpxe").write_bytes(b"undionly")
    (tmp_path / "secret").write_bytes(b"not for clients")
    return directory


def make_resource(
    catalog: Catalog,
    *,
    scripts: ChoiceSettings | None = None,
    boot_files: Path | None = None,
    public_host: str = "",
    config: HttpConfig | None = None,
) -> ImageResource:
    resource = ImageResource(lambda: catalog, config or HttpConfig(), Clock())
    resource.scripts = scripts
    resource.boot_files = boot_files
    resource.public_host = public_host
    return resource


def get(resource: ImageResource, target: str, host: str = SERVER, port: int = 8080) -> Request:
    request = Request(target, host, port)
    request.render(resource)
    assert request.finished == 1
    return request


def script(resource: ImageResource, target: str, port: int = 8080) -> list[str]:
    request = get(resource, target, port=port)
    assert request.status == 200
    assert request.header(b"content-type") == b"text/plain; charset=utf-8"
    assert request.header(b"cache-control") == b"no-store"
    text = request.body.decode()
    assert text.startswith("#!ipxe\n")
    return text.splitlines()


def kernel_line(lines: list[str]) -> str:
    (line,) = [line for line in lines if line.startswith("kernel ")]
    return line


# --- /boot.ipxe ----------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ["0", "7", "9"])
def test_script_for_mac_and_arch_boots_the_default_pc_image(catalog: Catalog, arch: str) -> None:
    resource = make_resource(catalog, scripts=ChoiceSettings())
    lines = script(resource, f"/boot.ipxe?mac={MAC}&arch={arch}")
    base = f"http://{SERVER}:8080/Rescue.nbi/pc"
    assert kernel_line(lines) == (
        f"kernel {base}/vmlinuz initrd=initrd.img console=ttyS0 ip=dhcp || goto failed"
    )
    assert f"initrd -n initrd.img {base}/initrd.img || goto failed" in lines
    assert "boot || goto failed" in lines


@pytest.mark.parametrize(
    ("host", "port", "public_host", "config", "base"),
    [
        pytest.param(SERVER, 8080, "", None, f"http://{SERVER}:8080", id="local-host-and-port"),
        pytest.param("10.1.2.3", 8080, "", None, "http://10.1.2.3:8080", id="other-interface"),
        pytest.param(SERVER, 80, "", None, f"http://{SERVER}", id="port-80-omitted"),
        pytest.param(SERVER, 8080, "boot.example", None, "http://boot.example:8080", id="public"),
        pytest.param(SERVER, 80, "boot.example", None, "http://boot.example", id="public-80"),
        pytest.param(
            SERVER,
            8080,
            "boot.example",
            replace(HttpConfig(), base_url="http://cdn.example/netboot/"),
            "http://cdn.example/netboot",
            id="base-url-wins",
        ),
    ],
)
def test_script_urls_use_the_requests_local_address_or_the_public_host(
    catalog: Catalog,
    host: str,
    port: int,
    public_host: str,
    config: HttpConfig | None,
    base: str,
) -> None:
    resource = make_resource(
        catalog, scripts=ChoiceSettings(), public_host=public_host, config=config
    )
    request = get(resource, f"/boot.ipxe?mac={MAC}&arch=7", host, port)
    lines = request.body.decode().splitlines()
    assert kernel_line(lines).startswith(f"kernel {base}/Rescue.nbi/pc/vmlinuz ")


@pytest.mark.parametrize(
    ("host", "addresses", "base"),
    [
        pytest.param("fd4e:4254:0:1::1", [], "http://[fd4e:4254:0:1::1]:8080", id="ula"),
        pytest.param(
            "fe80::1",
            ["fe80::1/64", "fd4e:4254:0:1::1/64"],
            "http://[fd4e:4254:0:1::1]:8080",
            id="link-local-names-the-interfaces-ula",
        ),
        pytest.param("fe80::1", ["fe80::1/64"], "http://[fe80::1]:8080", id="link-local-only"),
    ],
)
def test_script_urls_over_ipv6_are_bracketed_and_never_carry_our_zone(
    catalog: Catalog, host: str, addresses: list[str], base: str
) -> None:
    """docs/protocols/dhcpv6.md §16: a link-local arrival (scope: the loopback's index
    here) names the interface's routable address, or itself without the zone."""
    resource = make_resource(catalog, scripts=ChoiceSettings())
    asked: list[str] = []

    def interface_addresses(name: str) -> list[IPv6Interface]:
        asked.append(name)
        return [IPv6Interface(a) for a in addresses]

    resource.interface_addresses = interface_addresses
    # The kernel gives a link-local local address its interface's index, others none.
    scope = socket.if_nametoindex("lo") if host.startswith("fe80") else 0
    for _ in range(2):
        request = Request(f"/boot.ipxe?mac={MAC}&arch=7", host, 8080, scope)
        request.render(resource)
        lines = request.body.decode().splitlines()
        assert kernel_line(lines).startswith(f"kernel {base}/Rescue.nbi/pc/vmlinuz ")
    assert asked == (["lo"] if host.startswith("fe80") else [])  # asked once, remembered


@pytest.mark.parametrize(
    ("query", "kernel"),
    [
        pytest.param(f"mac={MAC}&arch=7&image=Installer", "Installer.nbi", id="by-set-name"),
        pytest.param(
            f"mac={MAC}&arch=7&image=Debian%20Installer", "Installer.nbi", id="by-image-name"
        ),
        pytest.param(f"mac={MAC}&arch=7&image=Rescue", "Rescue.nbi", id="the-default-by-name"),
    ],
)
def test_image_query_selects_among_the_clients_images(
    catalog: Catalog, query: str, kernel: str
) -> None:
    resource = make_resource(catalog, scripts=ChoiceSettings())
    lines = script(resource, f"/boot.ipxe?{query}")
    assert kernel_line(lines).startswith(f"kernel http://{SERVER}:8080/{kernel}/pc/vmlinuz")


@pytest.mark.parametrize(
    "query",
    [
        pytest.param(f"mac={MAC}&arch=7&image=Gone", id="unknown"),
        pytest.param(f"mac={MAC}&arch=0&image=Installer", id="not-for-bios"),
    ],
)
def test_an_image_named_but_not_bootable_here_is_said_not_swapped(
    catalog: Catalog, query: str
) -> None:
    resource = make_resource(catalog, scripts=ChoiceSettings())
    lines = script(resource, f"/boot.ipxe?{query}")
    assert not any(line.startswith("kernel ") for line in lines)
    assert any("no PC-bootable image" in line for line in lines)


def test_an_assignment_picks_the_image_of_that_mac(catalog: Catalog) -> None:
    resource = make_resource(catalog, scripts=ChoiceSettings(assignments={MAC: "Installer"}))
    lines = script(resource, f"/boot.ipxe?mac={MAC}&arch=7")
    assert kernel_line(lines).startswith(f"kernel http://{SERVER}:8080/Installer.nbi/pc/")


def test_installer_without_initrd_has_no_initrd_words(catalog: Catalog) -> None:
    resource = make_resource(catalog, scripts=ChoiceSettings())
    lines = script(resource, f"/boot.ipxe?mac={MAC}&arch=7&image=Installer")
    assert kernel_line(lines) == (
        f"kernel http://{SERVER}:8080/Installer.nbi/pc/vmlinuz || goto failed"
    )
    assert not any(line.startswith("initrd ") for line in lines)


def test_menu_mode_lists_the_images_with_links_back_to_the_script(catalog: Catalog) -> None:
    resource = make_resource(catalog, scripts=ChoiceSettings(menu=True, menu_timeout=5))
    lines = script(resource, f"/boot.ipxe?mac={MAC}&arch=7")
    assert "menu netboot: choose what to boot" in lines
    assert "item img0 Rescue" in lines
    assert "item img1 Debian Installer" in lines
    assert "choose --timeout 5000 --default img0 target && goto ${target} || goto exit" in lines
    script_url = f"http://{SERVER}:8080/boot.ipxe"
    chains = [line for line in lines if line.startswith("chain ")]
    assert chains == [
        f"chain {script_url}?image=Rescue&mac=52%3A54%3A00%3A12%3A34%3A56&arch=7 || goto failed",
        f"chain {script_url}?image=Installer&mac=52%3A54%3A00%3A12%3A34%3A56&arch=7 || goto failed",
    ]
    assert not any(line.startswith("kernel ") for line in lines)


def test_menu_item_link_boots_the_chosen_image(catalog: Catalog) -> None:
    resource = make_resource(catalog, scripts=ChoiceSettings(menu=True))
    lines = script(resource, "/boot.ipxe?image=Installer&mac=52%3A54%3A00%3A12%3A34%3A56&arch=7")
    assert kernel_line(lines).startswith(f"kernel http://{SERVER}:8080/Installer.nbi/")


def test_menu_for_bios_lists_only_bios_images(catalog: Catalog) -> None:
    resource = make_resource(catalog, scripts=ChoiceSettings(menu=True))
    lines = script(resource, f"/boot.ipxe?mac={MAC}&arch=0")
    assert [line for line in lines if line.startswith("item img")] == ["item img0 Rescue"]


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        pytest.param(
            f"mac={MAC}&arch=11",
            f"no PC-bootable image in the catalog for {MAC} (efi-arm64)",
            id="no-image-for-arm64",
        ),
        pytest.param(
            f"mac={MAC}&arch=27",
            f"no PC-bootable image in the catalog for {MAC} (efi-riscv64)",
            id="no-image-for-riscv",
        ),
    ],
)
def test_no_pc_image_for_the_family_gets_a_script_saying_so(
    catalog: Catalog, query: str, reason: str
) -> None:
    resource = make_resource(catalog, scripts=ChoiceSettings(menu=True))
    lines = script(resource, f"/boot.ipxe?{query}")
    assert f"echo netboot: {reason}" in lines
    assert lines[-1] == "exit 1"
    assert not any(line.startswith(("kernel ", "chain ")) for line in lines)


def test_catalog_without_pc_images_gets_a_script_saying_so(tmp_path: Path) -> None:
    make_set(tmp_path / "images", "MacOnly")
    resource = make_resource(scan_catalog(tmp_path / "images"), scripts=ChoiceSettings())
    lines = script(resource, f"/boot.ipxe?mac={MAC}&arch=0")
    assert f"echo netboot: no PC-bootable image in the catalog for {MAC} (bios)" in lines
    assert lines[-1] == "exit 1"


@pytest.mark.parametrize(
    "query",
    [
        pytest.param(f"mac={MAC}&arch=99", id="unregistered-code"),
        pytest.param(f"mac={MAC}&arch=2", id="unbootable-code"),
        pytest.param(f"mac={MAC}&arch=x86", id="not-a-number"),
        pytest.param(f"mac={MAC}&arch=-1", id="negative"),
        pytest.param(f"mac={MAC}&arch=123456", id="too-long"),
        pytest.param(f"mac={MAC}", id="no-arch"),
        pytest.param("arch=7", id="no-mac"),
        pytest.param("mac=not-a-mac&arch=7", id="bad-mac"),
        pytest.param("", id="no-query"),
    ],
)
def test_unknown_arch_or_mac_still_gets_a_boot_script_for_any_firmware(
    catalog: Catalog, query: str
) -> None:
    resource = make_resource(catalog, scripts=ChoiceSettings())
    lines = script(resource, f"/boot.ipxe?{query}")
    assert kernel_line(lines).startswith(f"kernel http://{SERVER}:8080/Rescue.nbi/pc/vmlinuz ")


def test_script_request_is_noted_in_the_client_tracker(catalog: Catalog) -> None:
    resource = make_resource(catalog, scripts=ChoiceSettings())
    resource.clients = ClientTracker()
    get(resource, f"/boot.ipxe?mac={MAC}&arch=7")
    (record,) = resource.clients.recent()
    assert (record["address"], record["mac"], record["image"], record["progress"]) == (
        CLIENT_IP,
        MAC,
        "Rescue",
        "ipxe script",
    )


def test_boot_ipxe_is_404_when_scripts_are_off(catalog: Catalog) -> None:
    resource = make_resource(catalog, scripts=None)
    request = get(resource, f"/boot.ipxe?mac={MAC}&arch=7")
    assert request.status == 404
    assert b"#!ipxe" not in request.body
    assert resource.counters.refused == 1


# --- /boot/<file> --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "body", "media"),
    [
        pytest.param("/boot/ipxe.efi", IPXE_EFI, b"application/efi", id="efi"),
        pytest.param("/boot/undionly.kpxe", b"undionly", b"application/octet-stream", id="kpxe"),
    ],
)
def test_boot_file_is_served_from_the_boot_files_directory(
    catalog: Catalog, boot_dir: Path, target: str, body: bytes, media: bytes
) -> None:
    resource = make_resource(catalog, boot_files=boot_dir)
    request = get(resource, target)
    assert request.status == 200
    assert request.header(b"content-type") == media
    assert request.header(b"content-length") == str(len(body)).encode()
    assert request.body == body


@pytest.mark.parametrize(
    ("target", "status"),
    [
        pytest.param("/boot/../secret", 400, id="dotdot"),
        pytest.param("/boot/%2e%2e/secret", 400, id="encoded-dotdot"),
        pytest.param("/boot/..%2fsecret", 400, id="encoded-slash"),
        pytest.param("/boot/../x", 400, id="dotdot-missing"),
        pytest.param("/boot/", 404, id="no-name"),
        pytest.param("/boot/missing.efi", 404, id="missing"),
    ],
)
def test_boot_paths_outside_or_missing_are_refused(
    catalog: Catalog, boot_dir: Path, target: str, status: int
) -> None:
    resource = make_resource(catalog, boot_files=boot_dir)
    request = get(resource, target)
    assert request.status == status
    assert b"not for clients" not in request.body
    assert resource.counters.refused == 1


def test_boot_symlink_to_a_directory_outside_is_refused(catalog: Catalog, boot_dir: Path) -> None:
    (boot_dir.parent / "outside").mkdir()
    (boot_dir.parent / "outside" / "x.efi").write_bytes(b"outside")
    (boot_dir / "out").symlink_to(boot_dir.parent / "outside")
    request = get(make_resource(catalog, boot_files=boot_dir), "/boot/out/x.efi")
    assert request.status == 404
    assert b"not for clients" not in request.body


def test_boot_file_linked_from_elsewhere_is_served(catalog: Catalog, boot_dir: Path) -> None:
    """Debian's ipxe.efi is a link to /boot/ipxe.efi; UEFI HTTP boot must get it."""
    (boot_dir.parent / "boot").mkdir()
    (boot_dir.parent / "boot" / "ipxe.efi").write_bytes(b"MZ debian ipxe")
    (boot_dir / "linked.efi").symlink_to(boot_dir.parent / "boot" / "ipxe.efi")
    request = get(make_resource(catalog, boot_files=boot_dir), "/boot/linked.efi")
    assert request.status == 200
    assert request.body == b"MZ debian ipxe"
    assert request.header(b"content-type") == b"application/efi"


def test_boot_files_are_404_without_a_boot_directory(catalog: Catalog) -> None:
    request = get(make_resource(catalog, boot_files=None), "/boot/ipxe.efi")
    assert request.status == 404


# --- /grub/ (the HTTP GRUB of `netboot build-http-grub`, under UEFI HTTP boot) -------------


def grub_resource(catalog: Catalog, tmp_path: Path, grub: ChoiceSettings | None) -> ImageResource:
    resource = make_resource(catalog)
    resource.grub = grub
    grub_file = tmp_path / "grubaa64.efi"
    grub_file.write_bytes(b"MZ grub " * 64)
    resource.grub_files = {"grub/http/grubaa64.efi": grub_file}
    return resource


def test_the_http_grub_and_its_configurations_are_served_under_grub(
    catalog: Catalog, tmp_path: Path
) -> None:
    """GRUB's prefix after HTTP boot is `(http,<server>)/grub`: it reads `grub.cfg` (the same
    for everyone), then its own file, rendered from the catalog as TFTP renders it."""
    resource = grub_resource(catalog, tmp_path, ChoiceSettings())
    resource.clients = ClientTracker()
    loader = get(resource, "/grub/http/grubaa64.efi")
    assert (loader.status, loader.body) == (200, b"MZ grub " * 64)
    assert loader.header(b"content-type") == b"application/efi"
    generic = get(resource, "/grub/grub.cfg")
    assert generic.status == 200 and generic.header(b"cache-control") == b"no-store"
    assert generic.body == GENERIC_CONFIG.encode()
    own = get(resource, f"/grub/netboot/x86_64-efi/{MAC}.cfg")
    assert own.status == 200
    assert "linux '/Rescue.nbi/pc/vmlinuz' 'console=ttyS0' 'ip=dhcp'" in own.body.decode()
    assert "initrd '/Rescue.nbi/pc/initrd.img'" in own.body.decode()
    (record,) = resource.clients.recent()
    assert (record["mac"], record["image"], record["progress"]) == (MAC, "Rescue", "grub config")


@pytest.mark.parametrize(
    ("target", "status"),
    [
        pytest.param("/grub/arm64-efi/command.lst", 404, id="module-list"),
        pytest.param("/grub/netboot/x86_64-efi/not-a-mac.cfg", 404, id="bad-mac"),
        pytest.param("/grub/%2e%2e/secret", 400, id="encoded-dotdot"),
        pytest.param("/grub/http/grubx64.efi", 404, id="not-built"),
    ],
)
def test_other_grub_paths_are_refused(
    catalog: Catalog, tmp_path: Path, target: str, status: int
) -> None:
    resource = grub_resource(catalog, tmp_path, ChoiceSettings())
    assert get(resource, target).status == status


def test_grub_configurations_are_404_when_no_client_gets_a_grub(
    catalog: Catalog, tmp_path: Path
) -> None:
    resource = grub_resource(catalog, tmp_path, None)
    assert get(resource, "/grub/grub.cfg").status == 404
    assert get(resource, f"/grub/netboot/x86_64-efi/{MAC}.cfg").status == 404
