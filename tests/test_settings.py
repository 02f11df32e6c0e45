"""Runtime settings and reloads: every option applies completely on SIGHUP, or not at all.

The matrix changes one option at a time and rebuilds the runtime the way a
reload does (`plan_reload`, then `build_runtime`): a reloadable option must
change what the services decide with, a restart-only one must leave it
exactly as it was and be reported as pending. Then the decisions themselves
(a Mac's root path, a PXE offer, an iPXE script's URLs, the TFTP mode) are
checked for the options that feed several of them, and the daemon's service
tree is reloaded the way SIGHUP does it, without sockets or root.
"""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv4Network
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from twisted.internet.task import Clock

from netboot.bsdp.rootpath import root_path
from netboot.config import (
    SIGNED_CHAIN_CACHE,
    Applies,
    Config,
    applies,
    config_from_mapping,
    option_keys,
    plan_reload,
)
from netboot.dhcp.boot import BootOffer, boot_offer
from netboot.dhcp.pxe import ARCHITECTURES, BootClient, ClientKind
from netboot.dhcp6.server import server_duid_ll
from netboot.macaddr import MacAddress
from netboot.nbi.catalog import scan_catalog
from netboot.settings import BoundPorts, Runtime, build_runtime, chain_file
from netboot_lab.factories import make_set
from netboot_services.app import HostFacts, make_service, reload
from netboot_services.bsdp import BsdpHandler
from netboot_services.pxe import PxeHandler

POOL_SUBNET = IPv4Network("10.9.0.0/24")
BOUND = BoundPorts(http=8080, tftp=69, dhcp=67, boot_server=4011)
SERVER_DUID6 = server_duid_ll(MacAddress("02:00:00:00:00:01"))
"""The DHCPv6 server DUID `host_facts` reads from the first served interface's MAC."""
FACTS = HostFacts("lab-server", None, frozenset(), SERVER_DUID6)


def base_table(root: Path) -> dict[str, dict[str, Any]]:
    """A full-mode configuration, so every option has something to feed."""
    return {
        "server": {"root": str(root), "allow_root": True},
        "dhcp": {"mode": "full", "pool": "10.9.0.100-10.9.0.199"},
        "dhcp6": {"mode": "full", "pool": "fd4e:4254:0:1::1000-fd4e:4254:0:1::1fff"},
        "http": {"port": 8080},
        "nfs": {"mode": "off", "shadow_root": str(root.parent / "shadows")},
        "admin": {"listen": ""},
        "bsdp": {"bindings_database": str(root.parent / "bsdp-bindings.sqlite3")},
    }


CHANGED: dict[str, object] = {
    "server.root": "elsewhere",
    "server.interfaces": ["lo"],
    "server.public_host": "192.0.2.7",
    "server.user": "nobody",
    "server.group": "nogroup",
    "server.allow_root": False,
    "server.rescan_interval": 17.0,
    "server.state_database": "other-state.sqlite3",
    "server.id": "other-daemon",
    "dhcp.port": 1067,
    "dhcp.mode": "proxy",
    "dhcp.pool": "10.9.0.50-10.9.0.60",
    "dhcp.lease_time": 7200,
    "dhcp.router": "10.9.0.1",
    "dhcp.dns_servers": ["10.9.0.2"],
    "dhcp.domain_name": "lab.example",
    "dhcp.reservations": ["52:54:00:00:00:01=10.9.0.20"],
    "dhcp.lease_database": "other.sqlite3",
    "dhcp.quarantine": 60.0,
    "dhcp.boot_server_port": 14011,
    "dhcp.answer_router_solicitations": True,
    "dhcp.watch_rivals": False,
    "dhcp.heartbeat_interval": 5.0,
    "dhcp.takeover_after": 9,
    "dhcp6.mode": "proxy",
    "dhcp6.port": 1547,
    "dhcp6.boot_server_port": 14011,
    "dhcp6.pool": "fd4e:4254:0:1::2000-fd4e:4254:0:1::2fff",
    "dhcp6.lease_time": 7200,
    "dhcp6.dns_servers": ["fd4e:4254:0:1::53"],
    "dhcp6.domain_search": ["lab.example"],
    "dhcp6.rapid_commit": False,
    "dhcp6.preference": 7,
    "dhcp6.router_advertisements": True,
    "dhcp6.router_lifetime": 0,
    "bsdp.enabled": False,
    "bsdp.priority": 7,
    "bsdp.server_name": "other-name",
    "bsdp.machine_name_format": "Lab%02d",
    "bsdp.binding_ttl": 60.0,
    "bsdp.binding_lifetime": 86400.0,
    "bsdp.bindings_database": "other-bindings.sqlite3",
    "pxe.boot_files": {"bios": "other.kpxe"},
    "pxe.ipxe_script": False,
    "pxe.default_image": "Other",
    "pxe.assignments": ["52:54:00:00:00:01=Other"],
    "pxe.menu": True,
    "pxe.menu_timeout": 3,
    "pxe.uefi_proxy_via_4011": False,
    "pxe.ipxe_no_proxydhcp": False,
    "pxe.uefi_loader": {"efi-x64": "boot_file"},
    "pxe.shim_files": {"efi-x64": "/srv/shimx64.efi.signed"},
    "pxe.grub_files": {"efi-x64": "/srv/grubnetx64.efi.signed"},
    "pxe.http_grub_files": {"efi-arm64": "/srv/grubaa64.efi"},
    "pxe.loader_assignments": ["52:54:00:00:00:01=boot_file"],
    "tftp.enabled": False,
    "tftp.port": 1069,
    "tftp.extra_dir": "programs",
    "tftp.mtu": 9000,
    "tftp.max_windowsize": 8,
    "tftp.retry_schedule": [0.5, 1],
    "tftp.adaptive_timeout": False,
    "tftp.min_retry_timeout": 0.2,
    "tftp.single_port": True,
    "tftp.busy_poll_us": 0,
    "tftp.max_transfers": 5,
    "http.enabled": False,
    "http.port": 8081,
    "http.base_url": "http://cdn.example/images",
    "http.idle_timeout": 5.0,
    "http.directory_listing": True,
    "nfs.mode": "external",
    "nfs.export": "/exports/netboot",
    "nfs.port": 12049,
    "nfs.ganesha_binary": "/opt/ganesha.nfsd",
    "nfs.state_dir": "state",
    "nfs.shadow_root": "other-shadows",
    "admin.listen": "127.0.0.1:9999",
    "admin.token_file": "other-token",
    "admin.audit_log": "other-audit.log",
    "admin.session_lifetime": 60.0,
    "logging.format": "json",
    "logging.level": "debug",
}


def changed_table(root: Path, dotted: str) -> dict[str, dict[str, Any]]:
    table = base_table(root)
    section, key = dotted.split(".")
    table.setdefault(section, {})[key] = CHANGED[dotted]
    return table


def runtime_of(config: Config, present: bool = True) -> Runtime:
    """The runtime on a machine where the configured loader files are there (or not)."""
    return build_runtime(
        config,
        host_name="lab-server",
        ports=BOUND,
        pool_subnet=POOL_SUBNET,
        server_duid6=SERVER_DUID6,
        present=lambda path: present,
    )


def test_the_matrix_covers_every_option() -> None:
    assert {f"{s}.{k}" for s, k in option_keys()} == set(CHANGED)


@pytest.mark.parametrize("dotted", sorted(CHANGED))
def test_a_changed_option_applies_everywhere_or_waits_for_a_restart(
    tmp_path: Path, dotted: str
) -> None:
    root = tmp_path / "images"
    started = config_from_mapping(base_table(root), "netboot.toml", tmp_path)
    wanted = config_from_mapping(changed_table(root, dotted), "netboot.toml", tmp_path)
    assert wanted != started, "the matrix must really change the option"
    plan = plan_reload(started, started, wanted)
    before, after = runtime_of(started), runtime_of(plan.config)
    if applies(*dotted.split(".")) is Applies.RESTART:
        assert plan.restart_pending == (dotted,)
        assert plan.changed == ()
        assert after == before, f"{dotted} waits for a restart, yet the runtime changed"
    else:
        assert plan.restart_pending == ()
        assert plan.changed == (dotted,)
        assert after != before, f"{dotted} is reloadable, yet no decision sees it"


def test_pending_is_measured_against_the_started_configuration(tmp_path: Path) -> None:
    """8080 -> 8081 waits; back to 8080 waits for nothing, whatever came in between."""
    table = base_table(tmp_path / "images")
    started = config_from_mapping(table, "c", tmp_path)
    table["http"]["port"] = 8081
    table["bsdp"]["priority"] = 9
    first = plan_reload(started, started, config_from_mapping(table, "c", tmp_path))
    assert first.restart_pending == ("http.port",)
    assert first.changed == ("bsdp.priority",)
    assert first.config.http.port == 8080
    assert first.config.bsdp.priority == 9
    table["http"]["port"] = 8080
    second = plan_reload(started, first.config, config_from_mapping(table, "c", tmp_path))
    assert second.restart_pending == ()
    assert second.changed == ()


# -- the decisions that one option feeds in several places --------------------------------


@pytest.fixture
def catalog_root(tmp_path: Path) -> Path:
    root = tmp_path / "images"
    make_set(root, "Alpha", Index=1)
    return root


def decisions(runtime: Runtime, root: Path) -> dict[str, Any]:
    """A Mac's root path, a UEFI HTTP-boot URL, an iPXE script URL, the TFTP mode."""
    catalog = scan_catalog(root)
    (alpha,) = catalog.servable
    mac = MacAddress("52:54:00:00:00:01")
    http_client = BootClient(ClientKind.HTTP_BOOT, ARCHITECTURES[16])
    ipxe_client = BootClient(ClientKind.IPXE, ARCHITECTURES[7], ipxe_http=True)
    offers = [
        boot_offer(client, mac, "10.9.0.1", runtime.boot, full_mode=True)
        for client in (http_client, ipxe_client)
    ]
    assert all(isinstance(offer, BootOffer) for offer in offers)
    return {
        "root_path": root_path(alpha, runtime.bsdp.root_paths, "10.9.0.1", root),
        "http_boot": offers[0].file.decode(),  # type: ignore[union-attr]
        "ipxe_script": offers[1].file.decode(),  # type: ignore[union-attr]
        "tftp_single_port": runtime.tftp.single_port,
    }


def test_http_port_is_the_bound_one_in_every_url_until_a_restart(
    tmp_path: Path, catalog_root: Path
) -> None:
    started = config_from_mapping(base_table(catalog_root), "c", tmp_path)
    wanted = config_from_mapping(changed_table(catalog_root, "http.port"), "c", tmp_path)
    after = decisions(runtime_of(plan_reload(started, started, wanted).config), catalog_root)
    assert after["root_path"] == "http://10.9.0.1:8080/Alpha.nbi/NetBoot.dmg"
    assert after["http_boot"].startswith("http://10.9.0.1:8080/boot/")
    assert after["ipxe_script"].startswith("http://10.9.0.1:8080/boot.ipxe?")


def test_a_port_picked_by_the_kernel_is_named_not_zero(tmp_path: Path, catalog_root: Path) -> None:
    table = base_table(catalog_root)
    table["http"]["port"] = 0
    config = config_from_mapping(table, "c", tmp_path)
    runtime = build_runtime(
        config,
        host_name="h",
        ports=replace(BOUND, http=43210),
        pool_subnet=POOL_SUBNET,
        server_duid6=SERVER_DUID6,
    )
    seen = decisions(runtime, catalog_root)
    assert seen["root_path"] == "http://10.9.0.1:43210/Alpha.nbi/NetBoot.dmg"
    assert ":43210/boot.ipxe" in seen["ipxe_script"]


def test_public_host_changes_every_url_at_once(tmp_path: Path, catalog_root: Path) -> None:
    started = config_from_mapping(base_table(catalog_root), "c", tmp_path)
    wanted = config_from_mapping(changed_table(catalog_root, "server.public_host"), "c", tmp_path)
    runtime = runtime_of(plan_reload(started, started, wanted).config)
    seen = decisions(runtime, catalog_root)
    assert all("192.0.2.7:8080" in seen[k] for k in ("root_path", "http_boot", "ipxe_script"))
    assert runtime.public_host == "192.0.2.7"  # the HTTP service's script base


def test_single_port_mode_waits_for_a_restart(tmp_path: Path, catalog_root: Path) -> None:
    started = config_from_mapping(base_table(catalog_root), "c", tmp_path)
    wanted = config_from_mapping(changed_table(catalog_root, "tftp.single_port"), "c", tmp_path)
    plan = plan_reload(started, started, wanted)
    assert decisions(runtime_of(plan.config), catalog_root)["tftp_single_port"] is False
    assert plan.restart_pending == ("tftp.single_port",)


# -- the service tree, reloaded as SIGHUP does -------------------------------------------


def observed(top: Any) -> dict[str, Any]:
    """What each service decides with after a reload."""
    dhcp = top.getServiceNamed("dhcp")
    bsdp = next(h for h in dhcp.dispatcher.handlers if isinstance(h, BsdpHandler))
    pxe = next(h for h in dhcp.dispatcher.handlers if isinstance(h, PxeHandler))
    http = top.getServiceNamed("http")
    tftp = top.getServiceNamed("tftp")
    return {
        "bsdp": bsdp.policy.settings,
        "names": (
            bsdp.policy.bindings.machine_name_format,
            bsdp.policy.bindings.ttl,
            bsdp.policy.bindings.lifetime,
        ),
        "pxe": pxe.boot,
        "http": (
            http.resource.config,
            http.resource.scripts,
            http.resource.boot_files,
            http.resource.public_host,
            http.site.timeOut,
        ),
        "tftp": (tftp.config, tftp.limits),
        "rescan": top.getServiceNamed("catalog").rescan_interval,
        "dhcp6": top.getServiceNamed("dhcp6").settings,
    }


def proxy_table(root: Path) -> dict[str, dict[str, Any]]:
    table = base_table(root)
    table["dhcp"] = {"mode": "proxy"}
    table["dhcp6"] = {"mode": "proxy"}
    return table


@pytest.mark.parametrize(
    ("dotted", "value", "seen"),
    [
        ("http.port", 8081, ()),
        ("tftp.single_port", True, ()),
        ("bsdp.priority", 7, ("bsdp",)),
        # DHCPv6 decides boots with the same BootSettings as PXE: its URLs follow too.
        ("server.public_host", "192.0.2.7", ("bsdp", "pxe", "http", "dhcp6")),
        ("pxe.assignments", ["52:54:00:00:00:01=Other"], ("http",)),
        ("tftp.mtu", 9000, ("tftp",)),
        ("tftp.extra_dir", "programs", ("http", "tftp")),
        ("server.rescan_interval", 17.0, ("rescan",)),
        ("dhcp6.lease_time", 7200, ("dhcp6",)),
        ("dhcp6.domain_search", ["lab.example"], ("dhcp6",)),
        ("dhcp6.port", 1547, ()),
    ],
)
def test_sighup_applies_a_change_to_every_service_or_to_none(
    tmp_path: Path, catalog_root: Path, dotted: str, value: object, seen: tuple[str, ...]
) -> None:
    config = config_from_mapping(proxy_table(catalog_root), "c", tmp_path)
    top = make_service(config, Clock(), FACTS)
    before = observed(top)
    section, key = dotted.split(".")
    table = proxy_table(catalog_root)
    table.setdefault(section, {})[key] = value
    reload(top, lambda: config_from_mapping(table, "c", tmp_path))
    after = observed(top)
    assert {k for k in after if after[k] != before[k]} == set(seen)
    if not seen:
        assert top.restart_pending == (dotted,)
        assert top.in_force == config
    else:
        assert top.restart_pending == ()


def test_a_rejected_reload_changes_nothing(tmp_path: Path, catalog_root: Path) -> None:
    config = config_from_mapping(proxy_table(catalog_root), "c", tmp_path)
    top = make_service(config, Clock(), FACTS)
    before = observed(top)

    def broken() -> Config:
        table = proxy_table(catalog_root)
        table["server"]["root"] = str(tmp_path / "missing")
        return config_from_mapping(table, "c", tmp_path)

    reload(top, broken)
    assert observed(top) == before
    assert top.in_force == config
    assert top.restart_pending == ()


def test_the_assignments_are_typed_once(tmp_path: Path) -> None:
    table = base_table(tmp_path)
    table["pxe"] = {"assignments": ["52:54:0:0:0:1=Alpha"]}
    table["dhcp"]["reservations"] = ["52:54:00:00:00:02=10.9.0.20"]
    runtime = runtime_of(config_from_mapping(table, "c", tmp_path))
    assert runtime.scripts is not None
    assert dict(runtime.scripts.assignments) == {"52:54:00:00:00:01": "Alpha"}
    assert runtime.addresses is not None
    assert str(runtime.addresses.pool) == "10.9.0.100-10.9.0.199"
    assert {k: str(v) for k, v in runtime.addresses.reservations.items()} == {
        "52:54:00:00:00:02": "10.9.0.20"
    }
    assert PurePosixPath(str(runtime.image_root)).name == tmp_path.name


@pytest.mark.parametrize(
    ("pxe", "dhcp_mode", "serves_grub", "dhcp6_mode"),
    [
        pytest.param({}, "full", True, "off", id="default-x64-shim"),
        pytest.param(
            {"uefi_loader": {"efi-x64": "boot_file"}}, "full", False, "off", id="all-boot-file"
        ),
        pytest.param(
            {
                "uefi_loader": {"efi-x64": "boot_file"},
                "loader_assignments": ["52:54:00:00:00:01=shim"],
            },
            "full",
            True,
            "off",
            id="one-client-on-shim",
        ),
        pytest.param({"shim_files": {}}, "full", False, "off", id="no-shim-file"),
        pytest.param({}, "off", False, "off", id="pxe-off"),
        pytest.param({}, "proxy", False, "off", id="auto-in-proxy-mode"),
        pytest.param(
            {"uefi_loader": {"efi-x64": "shim"}}, "proxy", True, "off", id="shim-in-proxy-mode"
        ),
        pytest.param({}, "off", True, "full", id="dhcpv6-full-only"),
    ],
)
def test_grub_configurations_are_served_only_when_a_client_can_get_the_shim(
    tmp_path: Path, pxe: dict[str, Any], dhcp_mode: str, serves_grub: bool, dhcp6_mode: str
) -> None:
    """DHCPv4 and DHCPv6 hand out the same boot files: a full-mode DHCPv6 alone (an
    IPv6-only lab) gives UEFI PXEv6 ROMs the shim as a full-mode DHCPv4 does. (No HTTP
    GRUB here: the next test has those.)"""
    table = base_table(tmp_path / "images")
    table["pxe"] = {"http_grub_files": {}, **pxe}
    table["dhcp"] = {"mode": dhcp_mode} if dhcp_mode != "full" else table["dhcp"]
    table["dhcp6"] = {"mode": dhcp6_mode} if dhcp6_mode != "full" else table["dhcp6"]
    runtime = runtime_of(config_from_mapping(table, "netboot.toml", tmp_path))
    absent = runtime_of(config_from_mapping(table, "netboot.toml", tmp_path), present=False)
    assert absent.grub is None  # no shim or GRUB on this machine: nothing chains to GRUB
    assert (runtime.grub is not None) is serves_grub
    if "shim_files" not in pxe:
        assert runtime.chain_files == {
            "sb/x64/shimx64.efi": Path("/usr/lib/shim/shimx64.efi.signed"),
            "sb/x64/grubx64.efi": Path("/usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed"),
            "sb/aa64/shimaa64.efi": Path("/usr/lib/shim/shimaa64.efi.signed"),
            "sb/aa64/grubaa64.efi": Path("/usr/lib/grub/arm64-efi-signed/grubnetaa64.efi.signed"),
        }


@pytest.mark.parametrize(
    ("pxe", "http", "serves_grub"),
    [
        pytest.param({}, True, True, id="arm64-has-no-boot-file"),
        pytest.param(
            {"boot_files": {"efi-arm64": "ipxe-arm64.efi", "efi-x64": "ipxe.efi"}},
            True,
            False,
            id="every-family-has-a-boot-file",
        ),
        pytest.param({}, False, False, id="http-off"),
    ],
)
def test_an_http_grub_is_offered_to_families_without_a_boot_file(
    tmp_path: Path, pxe: dict[str, Any], http: bool, serves_grub: bool
) -> None:
    """An HTTP GRUB that is there is offered to the HTTP-boot clients of a family with no
    `boot_files` entry (arm64 by default), and GRUB's configurations are then rendered
    (for HTTP) even where no PXE client gets the shim."""
    table = base_table(tmp_path / "images")
    table["pxe"] = {"uefi_loader": {"efi-x64": "boot_file", "efi-arm64": "boot_file"}, **pxe}
    table["http"] = {**table.get("http", {}), "enabled": http}
    runtime = runtime_of(config_from_mapping(table, "netboot.toml", tmp_path))
    absent = runtime_of(config_from_mapping(table, "netboot.toml", tmp_path), present=False)
    assert absent.grub is None and absent.http_grub_files == {}
    assert absent.boot.http_grubs == frozenset()
    assert (runtime.grub is not None) is serves_grub
    if http:
        assert runtime.boot.http_grubs == {"efi-x64", "efi-arm64"}
        assert runtime.http_grub_files == {
            "grub/http/grubx64.efi": Path("/var/cache/netboot/http-grub/grubx64.efi"),
            "grub/http/grubaa64.efi": Path("/var/cache/netboot/http-grub/grubaa64.efi"),
        }
    else:
        assert runtime.boot.http_grubs == frozenset()


def test_a_chain_file_not_installed_is_taken_from_the_unpacked_packages() -> None:
    """`netboot fetch-signed-chain` unpacks Debian's packages under the cache, as if it
    were /: a default path that is not there is found at the same path under it."""
    shim = Path("/usr/lib/shim/shimx64.efi.signed")
    cached = SIGNED_CHAIN_CACHE / "usr/lib/shim/shimx64.efi.signed"
    assert chain_file(shim, lambda path: True) == shim  # installed: that one
    assert chain_file(shim, lambda path: path == cached) == cached
    assert chain_file(shim, lambda path: False) == shim  # nowhere: named as configured
    assert chain_file(Path("relative.efi"), lambda path: False) == Path("relative.efi")


def test_the_runtime_chains_through_the_unpacked_packages(tmp_path: Path) -> None:
    table = base_table(tmp_path / "images")
    config = config_from_mapping(table, "netboot.toml", tmp_path)
    in_cache = str(SIGNED_CHAIN_CACHE)
    runtime = build_runtime(
        config,
        host_name="lab-server",
        ports=BOUND,
        pool_subnet=POOL_SUBNET,
        server_duid6=SERVER_DUID6,
        present=lambda path: str(path).startswith(in_cache),
    )
    assert runtime.grub is not None  # auto: the chain is offered
    assert runtime.chain_files["sb/x64/shimx64.efi"] == (
        SIGNED_CHAIN_CACHE / "usr/lib/shim/shimx64.efi.signed"
    )
