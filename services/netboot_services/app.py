"""Assemble the daemon: one MultiService holding every service that exists.

`make_service(config)` builds the tree; `run(config, reactor)` starts logging,
starts the tree, runs the reactor and stops the tree on SIGTERM/SIGINT (the
reactor's own handlers stop it; the "before shutdown" trigger stops services,
so transfers are closed and child processes ended before the process exits).
"""

from __future__ import annotations

import os
import signal
import socket
import sys
from collections.abc import Callable
from dataclasses import replace
from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path
from typing import Any, Protocol

from twisted.application.service import MultiService
from twisted.logger import Logger

from netboot import __version__
from netboot.bsdp.bindings import BindingTable
from netboot.bsdp.policy import BsdpPolicy, BsdpSettings
from netboot.bsdp.rootpath import RootPathSettings
from netboot.config import Config
from netboot.dhcp.boot import BootSettings
from netboot.dhcp.leases import AddressPool, LeaseStore
from netboot.dhcp.options import CLIENT_PORT, SERVER_PORT
from netboot.dhcp.server import LeaseServer, NetworkSettings
from netboot.errors import ConfigError
from netboot.ipxe.request import ScriptSettings
from netboot.macaddr import parse_mac
from netboot.nbi.catalog import Catalog
from netboot.tftp.options import TransferLimits, blksize_for_mtu
from netboot_services.admin import AdminService
from netboot_services.bsdp import BsdpHandler
from netboot_services.catalog import CatalogService
from netboot_services.clients import ClientTracker
from netboot_services.dhcp import DhcpDispatcher, DhcpService, Handler
from netboot_services.http import HttpService
from netboot_services.interfaces import bind_addresses, interface_networks
from netboot_services.logging import start_logging
from netboot_services.nfs import NfsService
from netboot_services.privileges import Identity, drop_to, resolve_identity
from netboot_services.pxe import PxeHandler
from netboot_services.router_advertisement import RouterAdvertisementService
from netboot_services.tftp import TftpService

log = Logger(namespace="netboot.daemon")


class RunnableReactor(Protocol):
    def run(self) -> None: ...
    def addSystemEventTrigger(self, phase: str, event_type: str, callable: object) -> object: ...  # noqa: N802
    def callWhenRunning(self, callable: object) -> object: ...  # noqa: N802
    def stop(self) -> None: ...
    def callFromThread(self, callable: object) -> object: ...  # noqa: N802


def pool_network(config: Config, networks: list[tuple[str, IPv4Interface]]) -> IPv4Interface:
    """The served interface address whose subnet holds the full-mode pool.

    Full mode leases only where an admin said so: an explicit pool, on the
    subnet of an interface we serve. Anything else is refused before a
    single packet is answered.
    """
    if not config.dhcp.pool:
        raise ConfigError(
            config.source,
            "dhcp.pool",
            "full DHCP mode needs an explicit pool (FIRST-LAST, --dhcp-pool); without one "
            "it would lease addresses on a network nobody chose",
        )
    first, _, last = config.dhcp.pool.partition("-")
    for _, address in networks:
        network = address.network
        if IPv4Address(first) in network and IPv4Address(last) in network:
            return address  # our own address, if inside the pool, is excluded from it
    served = ", ".join(f"{name} {address}" for name, address in networks) or "none"
    raise ConfigError(
        config.source,
        "dhcp.pool",
        f"{config.dhcp.pool} is on no served interface's subnet (served: {served})",
    )


def check_config(
    config: Config,
    interfaces: list[str] | None = None,
    networks: list[tuple[str, IPv4Interface]] | None = None,
) -> None:
    """Refuse a configuration the machine cannot honour, before anything starts."""
    root = config.server.root
    if not root.is_dir():
        raise ConfigError(config.source, "server.root", f"{root} is not a directory")
    shadows = config.nfs.shadow_root
    if shadows is not None:
        real_root, real_shadows = root.resolve(), shadows.resolve()
        if real_shadows == real_root or real_root in real_shadows.parents:
            raise ConfigError(
                config.source, "nfs.shadow_root", f"{shadows} is inside the image root"
            )
    server = config.server
    if os.geteuid() == 0 and not server.user and not server.allow_root:
        raise ConfigError(
            config.source,
            "server.user",
            "refusing to run as root: name a user to drop to (--user, server.user), "
            "or set server.allow_root = true (--allow-root)",
        )
    if server.user and config.nfs.mode == "ganesha":
        raise ConfigError(
            config.source,
            "nfs.mode",
            "nfs-ganesha needs root to run and restart; with server.user, run it as its own "
            'service and set nfs.mode = "external" (see docs/operations.md)',
        )
    known = interfaces if interfaces is not None else [name for _, name in socket.if_nameindex()]
    for name in config.server.interfaces:
        if name not in known:
            raise ConfigError(
                config.source,
                "server.interfaces",
                f"no network interface named {name!r} (have: {', '.join(known)})",
            )
    if config.dhcp.answer_router_solicitations and not config.server.interfaces:
        raise ConfigError(
            config.source,
            "dhcp.answer_router_solicitations",
            "name the lab's interfaces in server.interfaces: router advertisements are "
            "never sent on every interface",
        )
    if config.dhcp.mode == "full":
        if networks is None:
            networks = interface_networks(config.server.interfaces)
        pool_network(config, networks)


class NetbootService(MultiService):
    """The daemon's service tree; it also holds what several services report into."""

    def __init__(self, clients: ClientTracker) -> None:
        super().__init__()
        self.clients = clients


def make_service(config: Config, reactor: Any) -> MultiService:
    """The service tree, each child named after what it serves."""
    clients = ClientTracker()
    top = NetbootService(clients)
    catalog = CatalogService(config.server.root, reactor, config.server.rescan_interval)
    catalog.setName("catalog")
    catalog.setServiceParent(top)
    nfs = NfsService(
        config.nfs, config.server.root, bind_addresses(config.server.interfaces)[0], reactor
    )
    nfs.setName("nfs")
    nfs.setServiceParent(top)
    handlers: list[Handler] = []
    if config.bsdp.enabled:
        handler = bsdp_handler(config, lambda: catalog.catalog, reactor.seconds)
        handler.nfs_available = lambda: nfs.available
        handler.clients = clients
        handlers.append(handler)
    pxe = None
    if config.dhcp.mode != "off":
        pxe = pxe_handler(config, reactor.seconds)
        pxe.clients = clients
        handlers.append(pxe)
    if config.http.enabled:
        http = HttpService(
            config.http, lambda: catalog.catalog, reactor, bind_addresses(config.server.interfaces)
        )
        http.site.clients = clients
        http.resource.clients = clients
        http.resource.public_host = config.server.public_host
        if config.dhcp.mode != "off" and config.pxe.ipxe_script:
            http.resource.scripts = script_settings(config)
        http.resource.boot_files = config.tftp.extra_dir
        http.setName("http")
        http.setServiceParent(top)
    if handlers:
        full = pxe is not None and pxe.full_mode
        dhcp = DhcpService(
            DhcpDispatcher(handlers, reactor.seconds),
            reactor,
            config.dhcp.port,
            config.server.interfaces,
            boot_server_port=config.dhcp.boot_server_port if pxe is not None else None,
            watch_port=CLIENT_PORT
            if full and config.dhcp.watch_rivals and config.dhcp.port == SERVER_PORT
            else None,
        )
        dhcp.setName("dhcp")
        dhcp.setServiceParent(top)
    if config.dhcp.answer_router_solicitations:
        advertiser = RouterAdvertisementService(reactor, config.server.interfaces)
        advertiser.setName("ra")
        advertiser.setServiceParent(top)
    if config.tftp.enabled:
        tftp = TftpService(
            config.tftp,
            lambda: catalog.catalog,
            reactor,
            bind_addresses(config.server.interfaces),
        )
        tftp.clients = clients
        tftp.setName("tftp")
        tftp.setServiceParent(top)
    if config.admin.listen:
        host, _, port = config.admin.listen.rpartition(":")
        admin = AdminService(top, reactor, host.strip("[]"), int(port))
        admin.setName("admin")
        admin.setServiceParent(top)
    return top


def bsdp_handler(
    config: Config, catalog: Callable[[], Catalog], clock: Callable[[], float]
) -> BsdpHandler:
    bsdp = config.bsdp
    settings = BsdpSettings(
        priority=bsdp.priority,
        server_name=bsdp.server_name or socket.gethostname(),
        root_paths=RootPathSettings(
            public_host=config.server.public_host,
            http_port=config.http.port,
            http_base_url=config.http.base_url,
            nfs_export=config.nfs.export,
        ),
        shadow_root=str(config.nfs.shadow_root.resolve()) if config.nfs.shadow_root else None,
    )
    bindings = BindingTable(bsdp.machine_name_format, bsdp.binding_ttl)
    return BsdpHandler(BsdpPolicy(settings, bindings), catalog, clock)


def script_settings(config: Config) -> ScriptSettings:
    return ScriptSettings(
        default_image=config.pxe.default_image,
        menu=config.pxe.menu,
        menu_timeout=config.pxe.menu_timeout,
        assignments=dict(entry.split("=", 1) for entry in config.pxe.assignments),
    )


def boot_settings(config: Config) -> BootSettings:
    return BootSettings(
        boot_files=dict(config.pxe.boot_files),
        ipxe_script=config.pxe.ipxe_script,
        http_port=config.http.port if config.http.enabled else None,
        public_host=config.server.public_host,
        uefi_proxy_via_4011=config.pxe.uefi_proxy_via_4011,
        ipxe_no_proxydhcp=config.pxe.ipxe_no_proxydhcp,
    )


def pxe_handler(config: Config, clock: Callable[[], float]) -> PxeHandler:
    """The PXE handler; in full mode with its lease store open on the pool's subnet."""
    boot = boot_settings(config)
    networks = interface_networks(config.server.interfaces)
    own = {str(address.ip) for _, address in interface_networks(())}
    lease_server = None
    if config.dhcp.mode == "full":
        served = pool_network(config, networks)
        first, _, last = config.dhcp.pool.partition("-")
        reservations = {}
        for entry in config.dhcp.reservations:
            mac, _, address = entry.partition("=")
            reservations[parse_mac(mac)] = IPv4Address(address)
        excluded = {IPv4Address(a) for a in own}
        if config.dhcp.router:
            excluded.add(IPv4Address(config.dhcp.router))
        pool = AddressPool(
            IPv4Address(first),
            IPv4Address(last),
            reservations=reservations,
            excluded=frozenset(excluded),
        )
        database = config.dhcp.lease_database
        database.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
        store = LeaseStore(database, pool, clock, quarantine=config.dhcp.quarantine)
        network = NetworkSettings(
            subnet=served.network,
            lease_time=config.dhcp.lease_time,
            router=config.dhcp.router or None,
            dns_servers=config.dhcp.dns_servers,
            domain_name=config.dhcp.domain_name,
            boot=boot,
        )
        lease_server = LeaseServer(store, network)
        log.info(
            "full DHCP on {network}: leasing {pool} ({count} addresses), leases in {database}",
            network=str(served.network),
            pool=config.dhcp.pool,
            count=pool.size,
            database=str(database),
        )
    return PxeHandler(boot, clock, lease_server, lambda: own)


RESTART_KEYS = (
    ("server", "interfaces"),
    ("server", "user"),
    ("server", "group"),
    ("dhcp", "port"),
    ("tftp", "port"),
    ("tftp", "single_port"),
    ("tftp", "enabled"),
    ("http", "port"),
    ("http", "enabled"),
    ("bsdp", "enabled"),
    ("dhcp", "mode"),
    ("dhcp", "pool"),
    ("dhcp", "lease_database"),
    ("dhcp", "reservations"),
    ("dhcp", "boot_server_port"),
    ("dhcp", "watch_rivals"),
    ("dhcp", "answer_router_solicitations"),
    ("nfs", "mode"),
    ("nfs", "port"),
    ("nfs", "shadow_root"),
    ("admin", "listen"),
    ("logging", "format"),
)
"""Settings a running daemon cannot change: they own sockets, children or identity."""


def reload(top: MultiService, running: Config, reread: Callable[[], Config]) -> Config:
    """SIGHUP: re-read the configuration and rescan the catalog, keeping every socket.

    A configuration that does not load or check is refused with one log line
    and the running one stays. Transfers in flight are untouched: nothing here
    closes a socket; the catalog is swapped whole after the new scan.
    """
    try:
        new = reread()
        check_config(new)
    except ConfigError as error:
        log.warn("reload rejected: {error}; the running configuration stays", error=str(error))
        new = running
    restart = [
        f"{section}.{key}"
        for section, key in RESTART_KEYS
        if getattr(getattr(new, section), key) != getattr(getattr(running, section), key)
    ]
    if restart:
        log.warn(
            "changes to {keys} take effect after a restart; the rest is applied now",
            keys=", ".join(restart),
        )
    catalog: CatalogService = top.getServiceNamed("catalog")
    catalog.root = new.server.root
    catalog.rescan()
    tftp = _optional(top, "tftp")
    if tftp is not None and "tftp.port" not in restart:
        tftp.config = new.tftp
        tftp.limits = TransferLimits(
            max_blksize=blksize_for_mtu(new.tftp.mtu), max_windowsize=new.tftp.max_windowsize
        )
    http = _optional(top, "http")
    if http is not None:
        http.resource.config = new.http
        if http.resource.scripts is not None:
            http.resource.scripts = script_settings(new)
        http.resource.boot_files = new.tftp.extra_dir
        http.site.timeOut = new.http.idle_timeout
    dhcp = _optional(top, "dhcp")
    if dhcp is not None:
        fresh = bsdp_handler(new, lambda: catalog.catalog, dhcp.reactor.seconds)
        for handler in dhcp.dispatcher.handlers:
            if isinstance(handler, BsdpHandler):
                handler.policy.settings = fresh.policy.settings
                handler.policy.bindings.machine_name_format = new.bsdp.machine_name_format
                handler.policy.bindings.ttl = new.bsdp.binding_ttl
            if isinstance(handler, PxeHandler):
                handler.boot = boot_settings(new)
                if handler.lease_server is not None:
                    handler.lease_server.network = replace(
                        handler.lease_server.network,
                        lease_time=new.dhcp.lease_time,
                        router=new.dhcp.router or None,
                        dns_servers=new.dhcp.dns_servers,
                        domain_name=new.dhcp.domain_name,
                        boot=handler.boot,
                    )
    log.info("reloaded (config: {source})", source=new.source)
    return new


def hand_over_leases(database: Path, identity: Identity) -> None:
    """Give the lease database and its WAL files, opened as root, to the user we become.

    Only the files: the directory stays the admin's (under systemd it is the
    unit's StateDirectory, already ours). The connection stays open for the
    daemon's life, so SQLite needs no new file in it until the next start.
    """
    for path in (database, *database.parent.glob(database.name + "-*")):
        os.chown(path, identity.uid, identity.gid)


def _optional(top: MultiService, name: str) -> Any:
    try:
        return top.getServiceNamed(name)
    except KeyError:
        return None


def run(
    config: Config, reactor: RunnableReactor, reread: Callable[[], Config] | None = None
) -> int:
    """Run the daemon until a signal stops it; returns the process exit status.

    `reread` gives the configuration anew (the file plus the command line); it
    is called on SIGHUP.
    """
    check_config(config)
    identity = None
    if config.server.user:
        identity = resolve_identity(config.source, config.server.user, config.server.group)
    start_logging(config.logging.format, config.logging.level, sys.stderr)
    top = make_service(config, reactor)
    exit_status = 0

    def started() -> None:
        nonlocal exit_status
        try:
            top.startService()
            if identity is not None and (os.geteuid() == 0 or os.getuid() == 0):
                if config.dhcp.mode == "full":
                    hand_over_leases(config.dhcp.lease_database, identity)
                drop_to(identity)
                log.info(
                    "running as {user}:{group} (uid {uid}, gid {gid}) with no capabilities",
                    user=identity.user,
                    group=identity.group,
                    uid=identity.uid,
                    gid=identity.gid,
                )
        except Exception:  # noqa: BLE001
            # The one broad catch of start-up: whatever failed, say so and exit 1
            # rather than run on with half the services.
            log.failure("netboot failed to start")
            exit_status = 1
            reactor.stop()
            return
        interfaces = ", ".join(config.server.interfaces) or "all interfaces"
        log.info(
            "netboot {version} ready: serving {root} on {interfaces} (config: {source})",
            version=__version__,
            root=str(config.server.root),
            interfaces=interfaces,
            source=config.source,
        )

    running = config

    def on_hangup() -> None:
        nonlocal running
        log.info("SIGHUP: reloading")
        running = reload(top, running, reread or (lambda: running))

    def hangup(signal_number: int, frame: object) -> None:
        reactor.callFromThread(on_hangup)

    signal.signal(signal.SIGHUP, hangup)
    reactor.callWhenRunning(started)
    reactor.addSystemEventTrigger("before", "shutdown", _stopper(top))
    reactor.run()
    return exit_status


def _stopper(top: MultiService) -> object:
    def stop() -> object:
        log.info("netboot stopping")
        return top.stopService()

    return stop
