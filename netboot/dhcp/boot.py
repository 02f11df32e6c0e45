"""What boot file a PXE, iPXE or UEFI HTTP client is handed, in either mode.

The same decision feeds the proxy OFFER, the port-4011 ACK and the full-mode
OFFER/ACK; only the packet around it differs (`proxy.py`, `server.py`). The
rows are those of the decision table of docs/protocols/pxe.md §8, as
docs/protocols/pxe.md §8.1 says they are implemented:

* a PXE ROM gets the first-stage loader for its family over TFTP (by
  default iPXE: `undionly.kpxe` for BIOS, `ipxe.efi` for x64 UEFI), except a
  UEFI PXE ROM whose loader (`[pxe] uefi_loader`, `loader_assignments`) is the
  signed chain: it gets the shim (`sb/x64/shimx64.efi`), which loads GRUB
  from the same directory, which boots the catalog's kernel by TFTP - the one
  path that boots with Secure Boot on;
* a UEFI HTTP-boot client gets the same file as an `http://` URL with an IP
  literal (EDK2 needs no DNS then) and `HTTPClient` as option 60; a family
  without a boot file (arm64: Debian ships no arm64 iPXE) gets the GRUB with
  the `http` module that `netboot build-http-grub` made, when it is there
  (`[pxe] http_grub_files`), which reads its configuration and the kernel
  from us by HTTP (docs/protocols/pxe.md §8.4);
* iPXE - chained from the above, or the iPXE a NIC or VM ROM carries - gets
  the URL of its boot script (`/boot.ipxe?mac=..&arch=..`) which the HTTP
  service renders from the catalog. Giving iPXE the script rather than the
  binary is what breaks the chainload loop.

Every PXE-class answer carries siaddr and the file in both `file` and
option 67 (iPXE takes a packet as "PXE" only with siaddr and a name, old ROMs
read only `file`), and option 60 `PXEClient`, without which EDK2 and iPXE
ignore a proxy offer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from urllib.parse import quote

from netboot.dhcp.pxe import BootClient, ClientKind, Transport, ipxe_settings, pxe_boot_now
from netboot.firmware import http_grub_name, shim_name
from netboot.http.urls import http_base
from netboot.macaddr import MacAddress

BOOT_SCRIPT_PATH = "/boot.ipxe"
PXE_FILES_PATH = "/boot/"
"""Where the HTTP service publishes the TFTP extra directory (iPXE builds) for HTTP boot."""


class Loader(StrEnum):
    """What a UEFI PXE ROM is handed (`[pxe] uefi_loader`)."""

    AUTO = "auto"
    """The signed chain where it can finish, else the boot file. It finishes when we are
    the DHCP server (full mode: GRUB reads its configuration only from the ACK's siaddr,
    never from a proxy offer; docs/protocols/pxe.md §8.2) and the family's shim and GRUB
    are present."""
    SHIM = "shim"
    """The signed shim -> GRUB chain, GRUB's configuration rendered from the catalog."""
    BOOT_FILE = "boot_file"
    """The family's `boot_files` entry: iPXE by default, or an admin's own loader."""


@dataclass(frozen=True, slots=True)
class BootSettings:
    boot_files: Mapping[str, str] = field(default_factory=dict)
    """Family (`bios`, `efi-x64`, ...) to the first-stage file, by its TFTP name."""
    ipxe_script: bool = True
    """Hand iPXE the HTTP script URL; off, iPXE is treated as the PXE ROM it replaces."""
    http_port: int | None = 80
    """None: no HTTP service, so no HTTP boot and no iPXE script."""
    public_host: str = ""
    uefi_proxy_via_4011: bool = True
    """Proxy offers to UEFI PXE ROMs carry no 43 and the ROM asks port 4011 (variant B)."""
    ipxe_no_proxydhcp: bool = True
    """In full mode, tell iPXE not to wait for proxy offers (175.176)."""
    uefi_loaders: Mapping[str, Loader] = field(default_factory=dict)
    """UEFI family to its loader; a family not listed gets its boot file."""
    signed_chains: frozenset[str] = frozenset()
    """The families whose shim and GRUB are configured (`shim_files` and `grub_files`)."""
    loader_assignments: Mapping[MacAddress, Loader] = field(default_factory=dict)
    """Per-client loader, over the family's."""
    http_grubs: frozenset[str] = frozenset()
    """The families whose HTTP-capable GRUB (`[pxe] http_grub_files`) is there: what their
    UEFI HTTP-boot clients get when they have no `boot_files` entry."""

    def loader_for(self, mac: MacAddress, family: str, *, full_mode: bool) -> Loader:
        """The loader a UEFI PXE ROM of `family` with this MAC gets (`auto` decided)."""
        wanted = self.loader_assignments.get(mac) or self.uefi_loaders.get(family, Loader.BOOT_FILE)
        if wanted is not Loader.AUTO:
            return wanted
        return Loader.SHIM if full_mode and family in self.signed_chains else Loader.BOOT_FILE


@dataclass(frozen=True, slots=True)
class BootOffer:
    """The boot fields of a reply."""

    siaddr: str
    file: bytes
    vendor_class: bytes
    option43: bytes | None
    option175: bytes | None
    description: str
    """For the log: which file, and why."""
    via_boot_server: bool = False
    """A bare proxy offer: the ROM will fetch the file from port 4011 (variant B)."""
    file_is_url: bool = False
    """`file` is a whole URL (iPXE script, HTTP boot), not a TFTP name on siaddr;
    DHCPv6 has no siaddr and must write a TFTP name as a `tftp://` URL itself."""


@dataclass(frozen=True, slots=True)
class NoBoot:
    reason: str


def boot_offer(
    client: BootClient,
    mac: MacAddress,
    server: str,
    settings: BootSettings,
    *,
    full_mode: bool,
) -> BootOffer | NoBoot:
    """The boot file for this client from the server address it asked on.

    `server` is our address on the receiving interface: it is siaddr (the
    TFTP server), and the host of HTTP URLs unless `public_host` is set.
    """
    if not client.wants_boot:
        return NoBoot(f"{client.kind} client: no boot service")
    arch = client.arch
    if arch is None or arch.family is None:
        return NoBoot(client.arch_problem or "unknown architecture")
    host = settings.public_host or server
    # An iPXE that lists its features (175) without HTTP cannot fetch the
    # script; it is handed the loader like a PXE ROM (our iPXE build has HTTP).
    chained = client.kind is ClientKind.IPXE and (client.ipxe_http or not client.has_ipxe_options)
    if chained and settings.ipxe_script:
        if settings.http_port is None:
            return NoBoot("iPXE client, but the HTTP service is off: no script to chain to")
        url = f"{http_base(host, settings.http_port)}{BOOT_SCRIPT_PATH}?mac={mac}&arch={arch.code}"
        option175 = None
        if full_mode and settings.ipxe_no_proxydhcp:
            option175 = ipxe_settings(1, no_proxydhcp=True)
        return BootOffer(
            server,
            url.encode(),
            b"PXEClient",
            None,
            option175,
            f"iPXE script {url}",
            file_is_url=True,
        )
    efi = arch.family != "bios"
    http_boot = arch.transport is Transport.HTTP or client.kind is ClientKind.HTTP_BOOT
    loader = settings.loader_for(mac, arch.family, full_mode=full_mode) if efi else None
    if not http_boot and loader is Loader.SHIM:
        return _signed_chain(arch.family, server, settings, full_mode=full_mode)
    name = settings.boot_files.get(arch.family)
    if http_boot and (name or arch.family in settings.http_grubs):
        if settings.http_port is None:
            return NoBoot("UEFI HTTP boot client, but the HTTP service is off")
        base = http_base(host, settings.http_port)
        if name:
            url = f"{base}{PXE_FILES_PATH}{quote(name)}"
        else:  # GRUB reads its configuration, the kernel and the initrds from us by HTTP
            url = f"{base}/{http_grub_name(arch.family)}"
        return BootOffer(
            server, url.encode(), b"HTTPClient", None, None, f"HTTP boot {url}", file_is_url=True
        )
    if not name:
        return NoBoot(f"no boot file configured for {arch.family} (arch {arch.code} {arch.name})")
    return _pxe_offer(server, name, f"{arch.family} loader {name}", settings, efi, full_mode)


def _signed_chain(
    family: str, server: str, settings: BootSettings, *, full_mode: bool
) -> BootOffer | NoBoot:
    """The shim for `family`; shim then asks GRUB from the same directory, from siaddr."""
    if family not in settings.signed_chains:
        return NoBoot(f"{family} is set to the signed chain, but no shim_files/grub_files for it")
    name = shim_name(family)
    return _pxe_offer(server, name, f"{family} signed chain {name}", settings, True, full_mode)


def _pxe_offer(
    server: str, name: str, description: str, settings: BootSettings, efi: bool, full_mode: bool
) -> BootOffer:
    via_4011 = efi and settings.uefi_proxy_via_4011 and not full_mode
    return BootOffer(
        server,
        name.encode(),
        b"PXEClient",
        None if via_4011 else pxe_boot_now(),
        None,
        description,
        via_boot_server=via_4011,
    )
