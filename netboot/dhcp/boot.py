"""What boot file a PXE, iPXE or UEFI HTTP client is handed, in either mode.

The same decision feeds the proxy OFFER, the port-4011 ACK and the full-mode
OFFER/ACK; only the packet around it differs (`proxy.py`, `server.py`). The
rows are those of the decision table of docs/protocols/pxe.md §8, as
docs/protocols/pxe.md §8.1 says they are implemented:

* a PXE ROM gets the first-stage loader for its family over TFTP (by
  default iPXE: `undionly.kpxe` for BIOS, `ipxe.efi` for x64 UEFI);
* a UEFI HTTP-boot client gets the same file as an `http://` URL with an IP
  literal (EDK2 needs no DNS then) and `HTTPClient` as option 60;
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
from urllib.parse import quote

from netboot.dhcp.pxe import BootClient, ClientKind, Transport, ipxe_settings, pxe_boot_now
from netboot.http.urls import http_base
from netboot.macaddr import MacAddress

BOOT_SCRIPT_PATH = "/boot.ipxe"
PXE_FILES_PATH = "/boot/"
"""Where the HTTP service publishes the TFTP extra directory (iPXE builds) for HTTP boot."""


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
        return BootOffer(server, url.encode(), b"PXEClient", None, option175, f"iPXE script {url}")
    name = settings.boot_files.get(arch.family)
    if not name:
        return NoBoot(f"no boot file configured for {arch.family} (arch {arch.code} {arch.name})")
    if arch.transport is Transport.HTTP or client.kind is ClientKind.HTTP_BOOT:
        if settings.http_port is None:
            return NoBoot("UEFI HTTP boot client, but the HTTP service is off")
        url = f"{http_base(host, settings.http_port)}{PXE_FILES_PATH}{quote(name)}"
        return BootOffer(server, url.encode(), b"HTTPClient", None, None, f"HTTP boot {url}")
    efi = arch.family != "bios"
    via_4011 = efi and settings.uefi_proxy_via_4011 and not full_mode
    return BootOffer(
        server,
        name.encode(),
        b"PXEClient",
        None if via_4011 else pxe_boot_now(),
        None,
        f"{arch.family} loader {name}",
        via_boot_server=via_4011,
    )
