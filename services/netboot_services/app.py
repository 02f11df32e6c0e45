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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from functools import partial
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Interface
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol

from twisted.application.service import MultiService
from twisted.logger import Logger

from netboot import __version__
from netboot.admin.assignment_store import SqliteAssignments
from netboot.admin.assignments import Assignment, applied
from netboot.admin.auth import SessionTable
from netboot.admin.machines import MachineRegistry
from netboot.admin.token import ensure_token
from netboot.bsdp.binding_store import BindingStore
from netboot.bsdp.bindings import BindingTable
from netboot.bsdp.policy import BsdpPolicy
from netboot.config import Config, is_postgresql_url, plan_reload
from netboot.dhcp.lease_store import lease_database_name, open_lease_store
from netboot.dhcp.leases import AddressPool
from netboot.dhcp.server import LeaseServer, NetworkSettings
from netboot.dhcp6.leases import Lease6Store
from netboot.dhcp6.outcome import Arrival6, Outcome6
from netboot.dhcp6.server import Dhcp6Settings, answer, server_duid_ll
from netboot.dhcpwire.options import CLIENT_PORT, SERVER_PORT
from netboot.errors import ConfigError
from netboot.macaddr import MacAddress
from netboot.pc.choice import ChoiceSettings
from netboot.port67.pxe import leased_here
from netboot.settings import BoundPorts, Runtime, build_runtime
from netboot_services.admin import AdminService, leases_by_mac
from netboot_services.admin_api import AdminState, is_loopback
from netboot_services.bsdp import BsdpHandler
from netboot_services.catalog import CatalogService
from netboot_services.clients import ClientTracker
from netboot_services.dhcp import DhcpDispatcher, DhcpService, Handler
from netboot_services.dhcp6 import Decide6, Dhcp6Service, Message6
from netboot_services.http import HttpService
from netboot_services.interfaces import (
    first_hardware_address,
    interface_networks,
    ipv6_networks,
    listen_addresses,
)
from netboot_services.lease_upkeep import AnswerRate, LeaseUpkeep
from netboot_services.listeners import is_ipv6
from netboot_services.logging import set_log_level, start_logging
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
    pool = config.dhcp.pool
    if pool is None:
        raise ConfigError(
            config.source,
            "dhcp.pool",
            "full DHCP mode needs an explicit pool (FIRST-LAST, --dhcp-pool); without one "
            "it would lease addresses on a network nobody chose",
        )
    for _, address in networks:
        network = address.network
        if pool.first in network and pool.last in network:
            return address  # our own address, if inside the pool, is excluded from it
    served = ", ".join(f"{name} {address}" for name, address in networks) or "none"
    raise ConfigError(
        config.source,
        "dhcp.pool",
        f"{pool} is on no served interface's subnet (served: {served})",
    )


def pool6_network(config: Config, networks: list[tuple[str, IPv6Interface]]) -> IPv6Interface:
    """The served interface address in the /64 of the DHCPv6 pool.

    As for IPv4: full mode leases only an explicit pool, on a link we serve
    and hold an address on; anything else is refused before a packet is answered.
    """
    pool = config.dhcp6.pool
    if pool is None:
        raise ConfigError(
            config.source,
            "dhcp6.pool",
            "full DHCPv6 mode needs an explicit pool (FIRST-LAST in one /64, --dhcp6-pool); "
            "without one it would lease addresses on a network nobody chose",
        )
    for _, address in networks:
        if address.ip in pool.prefix:
            return address
    served = ", ".join(f"{name} {address}" for name, address in networks) or "none"
    raise ConfigError(
        config.source,
        "dhcp6.pool",
        f"{pool} is in no served interface's /64 (served: {served})",
    )


def check_dhcp6(config: Config, networks: list[tuple[str, IPv6Interface]] | None) -> None:
    """`[dhcp6]`'s cross-checks: a full mode's pool on a served link; RAs only named."""
    dhcp6 = config.dhcp6
    if dhcp6.router_advertisements:
        if not config.server.interfaces:
            raise ConfigError(
                config.source,
                "dhcp6.router_advertisements",
                "name the lab's interfaces in server.interfaces: router advertisements are "
                "never sent on every interface",
            )
        if dhcp6.mode != "full":
            raise ConfigError(
                config.source,
                "dhcp6.router_advertisements",
                'announces the pool\'s /64 and sends clients to our DHCPv6: needs mode = "full"',
            )
    if dhcp6.mode == "full" and is_postgresql_url(config.dhcp.lease_database):
        raise ConfigError(
            config.source,
            "dhcp.lease_database",
            "full DHCPv6 keeps its leases in the SQLite file only: name a file, "
            'or set dhcp6.mode to "proxy" or "off"',
        )
    if dhcp6.mode == "full":
        if networks is None and dhcp6.pool is not None:
            networks = ipv6_networks(config.server.interfaces)
        pool6_network(config, networks or [])


def check_config(
    config: Config,
    interfaces: list[str] | None = None,
    networks: list[tuple[str, IPv4Interface]] | None = None,
    networks6: list[tuple[str, IPv6Interface]] | None = None,
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
    check_dhcp6(config, networks6)


class NetbootService(MultiService):
    """The daemon's service tree; it also holds what several services report into, and the
    runtime settings in force."""

    def __init__(
        self, clients: ClientTracker, started: Config, runtime: Runtime, facts: HostFacts
    ) -> None:
        super().__init__()
        self.clients = clients
        self.started = started
        """The configuration the daemon started with: restart-only options keep its values."""
        self.in_force = started
        """The configuration in force (the started one plus every reload applied since)."""
        self.runtime = runtime
        self.facts = facts
        self.restart_pending: tuple[str, ...] = ()
        """`section.key` of the changed options that wait for a restart."""
        self.admin_state: AdminState | None = None
        """The admin API's state; None when the admin listener is off."""
        self.assigned: Mapping[MacAddress, int | None] = MappingProxyType({})
        """The admin API's assignments as the protocols read them (MAC to image ID)."""


@dataclass(frozen=True, slots=True)
class HostFacts:
    """What the machine says, read once at start: the runtime is built from these too."""

    host_name: str
    pool_subnet: IPv4Network | None
    """In full mode, the served subnet that holds the pool."""
    own_addresses: frozenset[str]
    server_duid6: bytes | None = None
    """With DHCPv6 on: our DUID-LL, from the first served interface's MAC (stable across
    restarts without a state file)."""


def host_facts(config: Config) -> HostFacts:
    pool_subnet = None
    if config.dhcp.mode == "full":
        pool_subnet = pool_network(config, interface_networks(config.server.interfaces)).network
    own = frozenset(str(address.ip) for _, address in interface_networks(()))
    duid = None
    if config.dhcp6.mode != "off":
        duid = server_duid_ll(first_hardware_address(config.server.interfaces))
    return HostFacts(socket.gethostname(), pool_subnet, own, duid)


def served_addresses(interfaces: tuple[str, ...]) -> list[str]:
    """What TFTP and HTTP listen on (`listen_addresses`), saying which served interface
    has no IPv6 address: it is served over IPv4 alone."""
    addresses, without_ipv6 = listen_addresses(interfaces)
    for name in without_ipv6:
        log.info(
            "{interface} has no IPv6 address: TFTP and HTTP serve it over IPv4 only",
            interface=name,
        )
    return addresses


def make_service(config: Config, reactor: Any, facts: HostFacts | None = None) -> NetbootService:
    """The service tree, each child named after what it serves.

    Every service takes its settings from one `Runtime` (`apply_runtime`); the one
    built here names the configured ports, and `bound()` replaces it with the ports
    the listeners really hold once they have started.
    """
    if facts is None:
        facts = host_facts(config)
    runtime = build_runtime(
        config,
        host_name=facts.host_name,
        pool_subnet=facts.pool_subnet,
        server_duid6=facts.server_duid6,
    )
    registry = MachineRegistry()
    clients = ClientTracker(registry=registry, server_name=facts.host_name)
    top = NetbootService(clients, config, runtime, facts)
    catalog = CatalogService(config.server.root, reactor, runtime.rescan_interval)
    catalog.setName("catalog")
    catalog.setServiceParent(top)
    served = served_addresses(config.server.interfaces)
    # NFS serves Macs, which boot over IPv4 only: the first IPv4 address, or every one.
    ipv4 = [address for address in served if not is_ipv6(address)]
    nfs = NfsService(config.nfs, config.server.root, ipv4[0] if ipv4 else "", reactor)
    nfs.setName("nfs")
    nfs.setServiceParent(top)
    handlers: list[Handler] = []
    if config.bsdp.enabled:
        bindings = binding_table(config, runtime, reactor.seconds())
        bsdp = BsdpHandler(
            BsdpPolicy(runtime.bsdp, bindings), lambda: catalog.catalog, reactor.seconds
        )
        bsdp.nfs_available = lambda: nfs.available
        bsdp.clients = clients
        handlers.append(bsdp)
    pxe = None
    if config.dhcp.mode != "off":
        pxe = pxe_handler(config, runtime, facts, reactor.seconds)
        pxe.clients = clients
        handlers.append(pxe)
        if config.bsdp.enabled and pxe.lease_server is not None:
            # Full mode: a bound Mac's lease OFFER carries its fast-path boot fields.
            bsdp.leased_here = partial(leased_here, pxe.lease_server)
            pxe.mac_boot = bsdp.fast_path_offer
    if config.http.enabled:
        http = HttpService(config.http, lambda: catalog.catalog, reactor, served)
        http.site.clients = clients
        http.resource.clients = clients
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
        if pxe is not None and pxe.lease_server is not None:
            lease_upkeep(config, facts, pxe, reactor).setServiceParent(top)
    if runtime.dhcp6 is not None:
        dhcp6 = Dhcp6Service(
            dhcp6_decision(config, runtime.dhcp6),
            runtime.dhcp6,
            reactor,
            config.dhcp6.port,
            config.server.interfaces,
            clients,
            # Proxy mode only: EDK2 asks port 4011 after a proxy offer, never after a full
            # mode's answer, which carries no vendor class (docs/protocols/dhcpv6.md §12).
            boot_server_port=config.dhcp6.boot_server_port
            if config.dhcp6.mode == "proxy"
            else None,
        )
        dhcp6.setName("dhcp6")
        dhcp6.setServiceParent(top)
    pool6 = config.dhcp6.pool
    if config.dhcp6.router_advertisements and pool6 is not None:
        # The DHCPv6 lab's RA also ends iPXE's wait, so it replaces the lifetime-0 one.
        advertiser = RouterAdvertisementService(
            reactor,
            config.server.interfaces,
            pool6.prefix,
            router_lifetime=config.dhcp6.router_lifetime,
        )
        advertiser.setName("ra")
        advertiser.setServiceParent(top)
    elif config.dhcp.answer_router_solicitations:
        advertiser = RouterAdvertisementService(reactor, config.server.interfaces)
        advertiser.setName("ra")
        advertiser.setServiceParent(top)
    if config.tftp.enabled:
        tftp = TftpService(
            config.tftp,
            lambda: catalog.catalog,
            reactor,
            served,
        )
        tftp.clients = clients
        tftp.setName("tftp")
        tftp.setServiceParent(top)
    listen = config.admin.listen
    if listen is not None:
        state = admin_state(config, top, catalog, registry, reactor.seconds)
        top.admin_state = state
        top.assigned = applied(state.assignments)
        admin = AdminService(top, reactor, listen.host, listen.port, state)
        admin.setName("admin")
        admin.setServiceParent(top)
    apply_runtime(top, runtime)
    return top


def admin_state(
    config: Config,
    top: NetbootService,
    catalog: CatalogService,
    registry: MachineRegistry,
    clock: Callable[[], float],
) -> AdminState:
    """The admin API's state: the token (made on first start), the stored assignments."""
    token = ensure_token(config.admin.token_file)
    database = config.server.state_database
    database.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
    store = SqliteAssignments(database)
    stored = store.load()
    log.info(
        "admin API state in {database}: {count} assignment(s); token in {token_file}",
        database=str(database),
        count=len(stored),
        token_file=str(config.admin.token_file),
    )
    audit_file = config.admin.audit_log
    if audit_file is not None:
        audit_file.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
    listen = config.admin.listen
    assert listen is not None
    state = AdminState(
        token=token,
        store=store,
        registry=registry,
        catalog=lambda: catalog.catalog,
        clock=clock,
        reads_need_login=not is_loopback(listen.host),
        configured=config.pxe.assignments,
        sessions=SessionTable(config.admin.session_lifetime),
        assignments=MappingProxyType(stored),
        audit_file=audit_file,
        server_name=top.facts.host_name,
        rescan=catalog.rescan,
    )
    state.on_assigned = partial(put_in_force, top)
    state.leases = partial(leases_by_mac, top)
    catalog.listeners.append(state.catalog_changed)
    registry.listeners.append(lambda change: state.machine_changed(change.mac))
    return state


def put_in_force(top: NetbootService, mac: MacAddress, assignment: Assignment | None) -> None:
    """An assignment changed: every protocol decides with it from the next request on.

    The Mac's BSDP binding is dropped when it names another image, so its next
    DISCOVER gets no fast-path OFFER of the old one and it asks LIST and SELECT,
    whose default is now the assigned image.
    """
    state = top.admin_state
    assert state is not None
    top.assigned = applied(state.assignments)
    apply_runtime(top, top.runtime)
    dhcp = _optional(top, "dhcp")
    if dhcp is None:
        return
    for handler in dhcp.dispatcher.handlers:
        if isinstance(handler, BsdpHandler):
            binding = handler.policy.bindings.get(mac)
            wanted = assignment.image_id if assignment is not None else None
            if binding is not None and wanted is not None and binding.image_id != wanted:
                handler.policy.bindings.drop(mac)


def binding_table(config: Config, runtime: Runtime, now: float) -> BindingTable:
    """The BSDP bindings, from and written through to `bsdp.bindings_database` if set."""
    database = config.bsdp.bindings_database
    if database is None:
        return BindingTable(
            runtime.machine_name_format, runtime.binding_ttl, runtime.binding_lifetime
        )
    database.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
    store = BindingStore(database)
    saved = store.load(now, runtime.binding_lifetime)
    log.info(
        "BSDP bindings in {database}: {count} Mac(s) bound",
        database=str(database),
        count=len(saved),
    )
    return BindingTable(
        runtime.machine_name_format,
        runtime.binding_ttl,
        runtime.binding_lifetime,
        store=store,
        saved=saved,
    )


def pxe_handler(
    config: Config, runtime: Runtime, facts: HostFacts, clock: Callable[[], float]
) -> PxeHandler:
    """The PXE handler; in full mode with its lease store open on the pool's subnet."""
    lease_server = None
    plan = runtime.addresses
    if plan is not None:
        excluded = {IPv4Address(a) for a in facts.own_addresses}
        if runtime.lease_terms.router is not None:
            excluded.add(runtime.lease_terms.router)
        pool = AddressPool(
            plan.pool.first,
            plan.pool.last,
            reservations=dict(plan.reservations),
            excluded=frozenset(excluded),
        )
        database = config.dhcp.lease_database
        if isinstance(database, Path):
            database.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
        store = open_lease_store(
            database,
            pool,
            clock,
            quarantine=runtime.lease_terms.quarantine,
            server_id=runtime.server_id,
        )
        lease_server = LeaseServer(store, network_settings(runtime, plan.subnet), clock)
        log.info(
            "full DHCP on {network}: leasing {pool} ({count} addresses), leases in {database}"
            " as server {server_id}",
            network=str(plan.subnet),
            pool=str(plan.pool),
            count=pool.size,
            database=lease_database_name(database),
            server_id=runtime.server_id,
        )
        if not store.up:
            log.warn(
                "lease database {database} is down ({reason}): new full-mode leases wait"
                " until it answers",
                database=lease_database_name(database),
                reason=store.down_reason,
            )
    own = set(facts.own_addresses)
    return PxeHandler(runtime.boot, clock, lease_server, lambda: own)


def dhcp6_decision(config: Config, settings: Dhcp6Settings) -> Decide6[Dhcp6Settings]:
    """The DHCPv6 core's `answer`, with the lease store bound in (full mode: the IPv4
    lease file, whose `lease6` table is keyed by DUID and IAID)."""
    store = None
    if settings.pool is not None:
        database = config.dhcp.lease_database
        assert isinstance(database, Path), "check_dhcp6 refuses a URL in full DHCPv6 mode"
        database.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
        store = Lease6Store(database, settings.pool, quarantine=config.dhcp.quarantine)
        log.info(
            "full DHCPv6 on {network}: leasing {pool} ({count} addresses), leases in {database}",
            network=str(settings.pool.network),
            pool=str(config.dhcp6.pool),
            count=settings.pool.size,
            database=str(database),
        )

    def decide(
        message: Message6, arrival: Arrival6, settings: Dhcp6Settings, now: float
    ) -> Outcome6:
        return answer(message, arrival, settings, store, now)

    return decide


def lease_upkeep(config: Config, facts: HostFacts, pxe: PxeHandler, reactor: Any) -> LeaseUpkeep:
    """Heartbeats into the lease store, the live peers for the lease server, and the
    store's outages, said once and reconnected from a thread. Peers' offers are not
    a rival's."""
    lease_server = pxe.lease_server
    assert lease_server is not None
    subnet = lease_server.network.subnet
    on_pool = sorted(a for a in facts.own_addresses if IPv4Address(a) in subnet)
    upkeep = LeaseUpkeep(
        lease_server,
        on_pool[0] if on_pool else "",
        config.dhcp.heartbeat_interval,
        AnswerRate(pxe.counters, reactor.seconds),
        reactor,
        config.dhcp.lease_database,
    )
    pxe.peer_addresses = lambda: upkeep.peer_addresses
    return upkeep


def network_settings(runtime: Runtime, subnet: IPv4Network) -> NetworkSettings:
    terms = runtime.lease_terms
    return NetworkSettings(
        subnet=subnet,
        lease_time=terms.lease_time,
        router=str(terms.router) if terms.router is not None else None,
        dns_servers=tuple(str(a) for a in terms.dns_servers),
        domain_name=terms.domain_name,
        boot=runtime.boot,
        takeover_after=terms.takeover_after,
    )


def apply_runtime(top: NetbootService, runtime: Runtime) -> None:
    """Put `runtime` in force in every service, in one step of the reactor.

    Nothing here can fail half way (every value was built and checked before), and
    no packet is handled in between (this runs on the reactor thread), so the next
    decision of every service sees the new runtime, or none does.
    """
    top.runtime = runtime
    catalog: CatalogService = top.getServiceNamed("catalog")
    catalog.set_interval(runtime.rescan_interval)
    set_log_level(runtime.log_level)
    tftp = _optional(top, "tftp")
    if tftp is not None:
        tftp.config = runtime.tftp
        tftp.limits = runtime.tftp_limits
        tftp.chain_files = runtime.chain_files
        tftp.grub = with_assigned(runtime.grub, top.assigned)
    http = _optional(top, "http")
    if http is not None:
        http.resource.config = runtime.http
        http.resource.scripts = with_assigned(runtime.scripts, top.assigned)
        http.resource.boot_files = runtime.boot_programs
        http.resource.grub = with_assigned(runtime.grub, top.assigned)
        http.resource.grub_files = runtime.http_grub_files
        http.resource.public_host = runtime.public_host
        http.site.timeOut = runtime.http.idle_timeout
    dhcp6 = _optional(top, "dhcp6")
    if dhcp6 is not None and runtime.dhcp6 is not None:
        dhcp6.settings = runtime.dhcp6
    dhcp = _optional(top, "dhcp")
    if dhcp is None:
        return
    for handler in dhcp.dispatcher.handlers:
        if isinstance(handler, BsdpHandler):
            handler.policy.settings = runtime.bsdp
            handler.policy.assigned = top.assigned
            handler.policy.bindings.machine_name_format = runtime.machine_name_format
            handler.policy.bindings.ttl = runtime.binding_ttl
            handler.policy.bindings.lifetime = runtime.binding_lifetime
        if isinstance(handler, PxeHandler):
            handler.boot = runtime.boot
            server = handler.lease_server
            if server is not None and runtime.addresses is not None:
                server.network = network_settings(runtime, runtime.addresses.subnet)
                server.store.quarantine = runtime.lease_terms.quarantine


def with_assigned(
    choice: ChoiceSettings | None, assigned: Mapping[MacAddress, int | None]
) -> ChoiceSettings | None:
    """The PC choice settings of the runtime with the admin API's assignments in them."""
    if choice is None or choice.assigned is assigned:
        return choice
    return replace(choice, assigned=assigned)


def bound_ports(top: NetbootService) -> BoundPorts:
    """The ports the started listeners hold: what URLs and root paths must name."""
    http, tftp, dhcp = _optional(top, "http"), _optional(top, "tftp"), _optional(top, "dhcp")
    return BoundPorts(
        http=http.bound_port if http is not None else None,
        tftp=tftp.ports[0] if tftp is not None and tftp.ports else None,
        dhcp=dhcp.bound_port if dhcp is not None else None,
        boot_server=dhcp.bound_boot_server_port if dhcp is not None else None,
    )


def bound(top: NetbootService) -> None:
    """Once the listeners have started: the runtime names the ports they really hold."""
    runtime = build_runtime(
        top.in_force,
        host_name=top.facts.host_name,
        ports=bound_ports(top),
        pool_subnet=top.facts.pool_subnet,
        server_duid6=top.facts.server_duid6,
    )
    apply_runtime(top, runtime)


def reload(top: NetbootService, reread: Callable[[], Config]) -> None:
    """SIGHUP: re-read the configuration and rescan the catalog, keeping every socket.

    Build, diff, swap: the re-read configuration is checked, split into what applies
    now and what waits for a restart (`plan_reload`), and a whole new runtime is built
    from it; only then is it swapped in. A configuration that does not load or check
    is refused with one log line and everything running stays. Restart-only options
    keep their old value everywhere and are reported (log, status page, /metrics,
    `netboot status --json`'s `restart_pending`). Transfers in flight are untouched;
    the catalog is swapped whole after the new scan.
    """
    try:
        wanted = reread()
        check_config(wanted)
        plan = plan_reload(top.started, top.in_force, wanted)
        runtime = build_runtime(
            plan.config,
            host_name=top.facts.host_name,
            ports=top.runtime.ports,
            pool_subnet=top.facts.pool_subnet,
            server_duid6=top.facts.server_duid6,
        )
    except ConfigError as error:
        log.warn("reload rejected: {error}; the running configuration stays", error=str(error))
        top.getServiceNamed("catalog").rescan()
        return
    apply_runtime(top, runtime)
    top.in_force = plan.config
    top.restart_pending = plan.restart_pending
    if plan.restart_pending:
        log.warn(
            "changes to {keys} take effect after a restart; until then their old values "
            "stay in force everywhere, the rest is applied now",
            keys=", ".join(plan.restart_pending),
            restart_pending=list(plan.restart_pending),
        )
    top.getServiceNamed("catalog").rescan()
    log.info(
        "reloaded (config: {source}); applied: {changed}",
        source=plan.config.source,
        changed=", ".join(plan.changed) or "no change",
    )


def hand_over_database(database: Path, identity: Identity) -> None:
    """Give an SQLite database (leases, BSDP bindings) and its WAL files, opened as root,
    to the user we become.

    Only the files: the directory stays the admin's (under systemd it is the
    unit's StateDirectory, already ours). The connection stays open for the
    daemon's life, so SQLite needs no new file in it until the next start.
    """
    for path in (database, *database.parent.glob(database.name + "-*")):
        os.chown(path, identity.uid, identity.gid)


def hand_over_file(path: Path, identity: Identity) -> None:
    """An append-only file we keep writing after dropping root (the audit log): made now,
    mode 0640, and given to the user we become; its directory stays the admin's."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
    os.close(descriptor)
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
    start_logging(config.logging.format, config.logging.level, sys.stderr, reactor)
    top = make_service(config, reactor)
    exit_status = 0

    def started() -> None:
        nonlocal exit_status
        try:
            top.startService()
            bound(top)
            if identity is not None and (os.geteuid() == 0 or os.getuid() == 0):
                leases = config.dhcp.lease_database
                if "full" in (config.dhcp.mode, config.dhcp6.mode) and isinstance(leases, Path):
                    # One file holds the IPv4 and the DHCPv6 leases (each its own table).
                    hand_over_database(leases, identity)
                if config.bsdp.enabled and config.bsdp.bindings_database is not None:
                    hand_over_database(config.bsdp.bindings_database, identity)
                if config.admin.listen is not None:
                    hand_over_database(config.server.state_database, identity)
                    if config.admin.audit_log is not None:
                        hand_over_file(config.admin.audit_log, identity)
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

    def on_hangup() -> None:
        log.info("SIGHUP: reloading")
        reload(top, reread or (lambda: top.in_force))

    def hangup(signal_number: int, frame: object) -> None:
        reactor.callFromThread(on_hangup)

    signal.signal(signal.SIGHUP, hangup)
    # A shell starts background jobs with SIGINT ignored, and Python then leaves it
    # ignored, so Twisted would install no handler: `netboot serve &` in a script
    # would outlive `kill -INT`. The daemon stops on SIGINT however it was started.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    reactor.callWhenRunning(started)
    reactor.addSystemEventTrigger("before", "shutdown", _stopper(top))
    reactor.run()
    return exit_status


def _stopper(top: MultiService) -> object:
    def stop() -> object:
        log.info("netboot stopping")
        return top.stopService()

    return stop
