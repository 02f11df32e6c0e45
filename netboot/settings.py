"""The daemon's runtime settings: one frozen value, built from the configuration in force
and the ports the daemon really bound, and swapped whole on reload.

Every decision a service makes reads its settings from one `Runtime`: the
BSDP policy's root paths, the PXE boot offers, the iPXE script base, the TFTP
limits, the HTTP options, the lease terms. They are derived here, once, from
the same values, so they cannot disagree: the HTTP port in a Mac's root path
is the port the HTTP listener holds, and a reload that changes `http.port`
(a restart-only option) changes neither until the restart.

`build_runtime` is pure: facts about the machine (its host name, the subnet
that holds the DHCP pool, the ports bound) come in as arguments. A reload is
`plan_reload` (which options apply now, which wait) then `build_runtime`; the
caller swaps the result in only when both succeeded, so a change applies
completely or not at all.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from types import MappingProxyType

from netboot.bsdp.policy import BsdpSettings
from netboot.bsdp.rootpath import RootPathSettings
from netboot.config import (
    SIGNED_CHAIN_CACHE,
    AddressRange,
    Config,
    HttpConfig,
    TftpConfig,
)
from netboot.dhcp.boot import BootSettings, Loader
from netboot.dhcp6.leases import Address6Pool
from netboot.dhcp6.server import Dhcp6Mode, Dhcp6Settings
from netboot.firmware import grub_name, http_grub_name, shim_name
from netboot.macaddr import MacAddress
from netboot.pc.choice import ChoiceSettings
from netboot.tftp.options import TransferLimits, blksize_for_mtu


@dataclass(frozen=True, slots=True)
class BoundPorts:
    """The ports the listeners really hold (a configured 0 becomes the one the kernel
    picked); None where the service does not run."""

    http: int | None = None
    tftp: int | None = None
    dhcp: int | None = None
    boot_server: int | None = None


@dataclass(frozen=True, slots=True)
class LeaseTerms:
    """What full DHCP tells a leased client, and how long a DECLINEd address sits out."""

    lease_time: int
    router: IPv4Address | None
    dns_servers: tuple[IPv4Address, ...]
    domain_name: str
    quarantine: float
    takeover_after: int
    """With peers on the lease database: the `secs` from which any daemon answers."""


@dataclass(frozen=True, slots=True)
class AddressPlan:
    """Full mode's addresses: the pool and the reservations, parsed once (restart-only)."""

    pool: AddressRange
    subnet: IPv4Network
    """The served interface's subnet that holds the pool."""
    reservations: Mapping[MacAddress, IPv4Address] = field(
        default_factory=lambda: MappingProxyType({})
    )


@dataclass(frozen=True, slots=True)
class Runtime:
    """Everything the running services decide with; equal runtimes decide alike."""

    bsdp: BsdpSettings
    machine_name_format: str
    binding_ttl: float
    binding_lifetime: float
    """Seconds a binding still answers the Mac's DISCOVER (the BSDP fast path)."""
    boot: BootSettings
    """What PXE, UEFI and iPXE clients are handed (proxy and full mode alike)."""
    scripts: ChoiceSettings | None
    """iPXE scripts from the catalog; None when no client is sent to them."""
    grub: ChoiceSettings | None
    """GRUB configurations from the catalog (by TFTP and HTTP); None when no client gets
    the shim or an HTTP GRUB."""
    public_host: str
    """The host in URLs we hand out instead of the address a request arrived on."""
    http: HttpConfig
    boot_programs: Path | None
    """The PXE programs directory (`tftp.extra_dir`), over TFTP and at /boot/ over HTTP."""
    chain_files: Mapping[str, Path]
    """The signed chains' TFTP names (`sb/x64/shimx64.efi`, `sb/x64/grubx64.efi`) to their files."""
    http_grub_files: Mapping[str, Path]
    """The HTTP GRUBs there are, by HTTP path without `/` (`grub/http/grubaa64.efi`)."""
    tftp: TftpConfig
    tftp_limits: TransferLimits
    lease_terms: LeaseTerms
    addresses: AddressPlan | None
    """Full mode's pool and reservations; None in proxy mode or with DHCP off."""
    dhcp6: Dhcp6Settings | None
    """What the DHCPv6 service decides with; None with `[dhcp6] mode` off."""
    image_root: Path
    rescan_interval: float
    log_level: str
    ports: BoundPorts
    server_id: str
    """This daemon's name on a shared lease database, in its leases, logs and status."""


def chain_file(
    configured: Path, present: Callable[[Path], bool], cache: Path = SIGNED_CHAIN_CACHE
) -> Path:
    """Where a shim or GRUB of the configuration is: at its path, or else, when only that
    is there, at the same path under `cache` (Debian's packages unpacked, not installed)."""
    if present(configured) or not configured.is_absolute():
        return configured
    cached = cache / configured.relative_to("/")
    return cached if present(cached) else configured


def build_runtime(
    config: Config,
    *,
    host_name: str,
    ports: BoundPorts | None = None,
    pool_subnet: IPv4Network | None = None,
    server_duid6: bytes | None = None,
    present: Callable[[Path], bool] = Path.is_file,
) -> Runtime:
    """The runtime settings of `config` (the configuration in force).

    `present` says whether a configured loader file is there (the file system's
    answer by default): `uefi_loader = "auto"` offers the signed chain only
    for families whose shim and GRUB both are.

    `ports` are the ports bound (default: the configured ones, before binding);
    `pool_subnet` is the served subnet holding the full-mode pool (`pool_network`
    finds it at start); `server_duid6` the DHCPv6 server identifier, from a served
    interface's MAC (needed when `[dhcp6] mode` is not off).
    """
    if ports is None:
        ports = configured_ports(config)
    http_port = ports.http if config.http.enabled else None
    shims = {family: chain_file(Path(path), present) for family, path in config.pxe.shim_files}
    grubs = {family: chain_file(Path(path), present) for family, path in config.pxe.grub_files}
    configured = frozenset(shims) & frozenset(grubs)
    chain_files = {shim_name(family): shims[family] for family in sorted(configured)}
    chain_files |= {grub_name(family): grubs[family] for family in sorted(configured)}
    chained = frozenset(
        family for family in configured if present(shims[family]) and present(grubs[family])
    )
    http_grubs = {
        family: Path(path) for family, path in config.pxe.http_grub_files if present(Path(path))
    }
    boot = BootSettings(
        boot_files=MappingProxyType(dict(config.pxe.boot_files)),
        ipxe_script=config.pxe.ipxe_script,
        http_port=http_port,
        public_host=config.server.public_host,
        uefi_proxy_via_4011=config.pxe.uefi_proxy_via_4011,
        ipxe_no_proxydhcp=config.pxe.ipxe_no_proxydhcp,
        uefi_loaders=MappingProxyType({f: Loader(v) for f, v in config.pxe.uefi_loader}),
        signed_chains=chained,
        loader_assignments=MappingProxyType(
            {mac: Loader(v) for mac, v in config.pxe.loader_assignments}
        ),
        http_grubs=frozenset(http_grubs) if http_port is not None else frozenset(),
    )
    shadow_root = config.nfs.shadow_root
    bsdp = BsdpSettings(
        priority=config.bsdp.priority,
        server_name=config.bsdp.server_name or host_name,
        root_paths=RootPathSettings(
            public_host=config.server.public_host,
            http_port=http_port if http_port is not None else config.http.port,
            http_base_url=config.http.base_url,
            nfs_export=config.nfs.export,
        ),
        shadow_root=str(shadow_root.resolve()) if shadow_root is not None else None,
    )
    choice = ChoiceSettings(
        default_image=config.pxe.default_image,
        menu=config.pxe.menu,
        menu_timeout=config.pxe.menu_timeout,
        assignments=MappingProxyType(dict(config.pxe.assignments)),
    )
    # PCs are handed boot files by DHCPv4 (PXE), DHCPv6, or both: one choice for either.
    modes = (config.dhcp.mode, config.dhcp6.mode)
    pxe_on = any(mode != "off" for mode in modes)
    scripts = choice if pxe_on and config.pxe.ipxe_script else None
    loaders = {*boot.uefi_loaders.values(), *boot.loader_assignments.values()}
    chain_offered = Loader.SHIM in loaders or (Loader.AUTO in loaders and "full" in modes)
    http_grub_offered = any(family not in boot.boot_files for family in boot.http_grubs)
    grub = choice if pxe_on and ((chained and chain_offered) or http_grub_offered) else None
    addresses = None
    if config.dhcp.mode == "full" and config.dhcp.pool is not None and pool_subnet is not None:
        addresses = AddressPlan(
            config.dhcp.pool, pool_subnet, MappingProxyType(dict(config.dhcp.reservations))
        )
    return Runtime(
        bsdp=bsdp,
        machine_name_format=config.bsdp.machine_name_format,
        binding_ttl=config.bsdp.binding_ttl,
        binding_lifetime=config.bsdp.binding_lifetime,
        boot=boot,
        scripts=scripts,
        grub=grub,
        public_host=config.server.public_host,
        http=config.http,
        boot_programs=config.tftp.extra_dir,
        chain_files=MappingProxyType(chain_files),
        http_grub_files=MappingProxyType(
            {http_grub_name(family): path for family, path in sorted(http_grubs.items())}
        ),
        tftp=config.tftp,
        tftp_limits=TransferLimits(
            max_blksize=blksize_for_mtu(config.tftp.mtu),
            max_windowsize=config.tftp.max_windowsize,
        ),
        lease_terms=LeaseTerms(
            lease_time=config.dhcp.lease_time,
            router=IPv4Address(config.dhcp.router) if config.dhcp.router else None,
            dns_servers=tuple(IPv4Address(a) for a in config.dhcp.dns_servers),
            domain_name=config.dhcp.domain_name,
            quarantine=config.dhcp.quarantine,
            takeover_after=config.dhcp.takeover_after,
        ),
        addresses=addresses,
        dhcp6=dhcp6_settings(config, boot, server_duid6),
        image_root=config.server.root,
        rescan_interval=config.server.rescan_interval,
        log_level=config.logging.level,
        ports=ports,
        server_id=config.server.id or host_name,
    )


def dhcp6_settings(
    config: Config, boot: BootSettings, server_duid: bytes | None
) -> Dhcp6Settings | None:
    """`[dhcp6]` as the DHCPv6 decision takes it: the pool typed, the boot settings shared
    with IPv4 (one boot decision for both families)."""
    dhcp6 = config.dhcp6
    if dhcp6.mode == "off":
        return None
    if server_duid is None:
        raise ValueError("DHCPv6 needs the server's DUID (a served interface's MAC)")
    pool = dhcp6.pool
    return Dhcp6Settings(
        mode=Dhcp6Mode(dhcp6.mode),
        server_duid=server_duid,
        pool=Address6Pool(pool.first, pool.last) if dhcp6.mode == "full" and pool else None,
        lease_time=dhcp6.lease_time,
        dns_servers=dhcp6.dns_servers,
        domain_search=dhcp6.domain_search,
        rapid_commit=dhcp6.rapid_commit,
        preference=dhcp6.preference,
        boot=boot,
    )


def configured_ports(config: Config) -> BoundPorts:
    """The ports the configuration asks for, before the listeners bind them."""
    dhcp_on = config.bsdp.enabled or config.dhcp.mode != "off"
    return BoundPorts(
        http=config.http.port if config.http.enabled else None,
        tftp=config.tftp.port if config.tftp.enabled else None,
        dhcp=config.dhcp.port if dhcp_on else None,
        boot_server=config.dhcp.boot_server_port if config.dhcp.mode != "off" else None,
    )
