"""The admin listener: `/metrics` for Prometheus, `/status.json` and a status page.

Every service keeps its counters in one dataclass (`TftpCounters`,
`DhcpCounters`, `BsdpCounters`, `HttpCounters`); a collector reads them when
Prometheus scrapes, so there is one source for each number and nothing to
keep in sync. The status page and `netboot status` read the same snapshot.
It listens on loopback by default: it is for the admin, not the lab.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from html import escape
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector, CollectorRegistry
from twisted.application.service import MultiService, Service
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from netboot import __version__
from netboot.admin.auth import Refused
from netboot_services.admin_api import (
    AdminState,
    ApiResource,
    Keepalive,
    access_of,
    refuse,
)
from netboot_services.admin_console import console_pages
from netboot_services.lease_upkeep import NOT_READ, LeaseTable, LeaseUpkeep

log = Logger(namespace="netboot.admin")

COUNTER_SOURCES = ("tftp", "dhcp", "dhcp6", "http", "ra")
"""Services whose counters (dataclasses with as_dict()) become metrics; the
port-67 handlers (bsdp, later pxe) are found through the dhcp service."""


def snapshot(top: MultiService, machines: bool = True) -> dict[str, Any]:
    """What the daemon is doing now: the data of /status.json, the page and /metrics.

    `machines` False leaves the machines' journeys out (an empty list): /metrics
    has no use for them, and a scrape should not serialise up to 500 machines.
    """
    services: dict[str, Any] = {}
    for name in COUNTER_SOURCES:
        service = _named(top, name)
        counters = _counters(name, service)
        if counters is not None:
            services[name] = counters
    dhcp = _named(top, "dhcp")
    bindings = 0
    leases: dict[str, Any] | None = None
    if dhcp is not None:
        for handler in dhcp.dispatcher.handlers:
            counters = getattr(handler, "counters", None)
            if counters is not None:
                services[handler.name] = counters.as_dict()
            policy = getattr(handler, "policy", None)
            if policy is not None:
                bindings = len(policy.bindings)
            if getattr(handler, "lease_server", None) is not None:
                leases = _leases(handler, _named(top, "lease-upkeep"))
    catalog_service = _named(top, "catalog")
    images = []
    if catalog_service is not None:
        catalog = catalog_service.catalog
        images = [nbi_set.summary(str(catalog.root)) for nbi_set in catalog]
    nfs = _named(top, "nfs")
    tracker = getattr(top, "clients", None)
    registry = getattr(tracker, "registry", None)
    return {
        "clients": tracker.recent() if tracker is not None else [],
        "boots": dict(tracker.boots) if tracker is not None else {},
        "version": __version__,
        "images": images,
        "counters": services,
        "nfs": {
            "mode": nfs.config.mode if nfs is not None else "off",
            "available": bool(nfs is not None and nfs.available),
            "restarts": nfs.ganesha.restarts if nfs is not None and nfs.ganesha else 0,
        },
        "bsdp_bindings": bindings,
        "dhcp": leases,
        "restart_pending": list(getattr(top, "restart_pending", ())),
        "machines": registry.machines() if registry is not None and machines else [],
    }


def _leases(handler: Any, upkeep: LeaseUpkeep | None) -> dict[str, Any]:
    """Full mode's lease table, its gauges, the store's state, its peers and the rival
    servers heard. With the store unreachable the table and gauges are empty and
    `store_up` says why.

    Nothing here reads the store: the table is the one the upkeep read on its last
    heartbeat (`LeaseTable`), so a scrape costs the database nothing and never
    stalls the reactor on it."""
    lease_server = handler.lease_server
    store = lease_server.store
    now = handler.clock()
    table = _lease_table(upkeep)
    up = bool(store.up)
    counts = dict(table.counts) if up else {}
    leases = [lease_json(lease, now) for lease in table.shown(now)] if up else []
    peers = upkeep.heard if upkeep is not None else {}
    return {
        "pool": f"{store.pool.first}-{store.pool.last}",
        "server_id": store.server_id,
        "store_up": up,
        "counts": counts,
        "leases": leases,
        "peers": [
            {
                "server_id": peer.server_id,
                "address": peer.address,
                "seen_ago": round(now - peer.seen, 1),
                "load": peer.load,
                "live": peer.server_id in lease_server.peers.live,
                "heard_ago": _ago(now, handler.replies_heard.get(peer.address)),
            }
            for peer in (peers[server_id] for server_id in sorted(peers))
        ],
        "rivals": {server: round(now - seen, 1) for server, seen in handler.rivals.items()},
        "servers_heard": {
            server: round(now - seen, 1) for server, seen in sorted(handler.replies_heard.items())
        },
    }


def _ago(now: float, when: float | None) -> float | None:
    """Seconds since `when`, to a tenth; None for never."""
    return None if when is None else round(now - when, 1)


def lease_json(lease: Any, now: float) -> dict[str, Any]:
    """One full-mode lease as /status.json and the admin API's machines show it."""
    return {
        "address": str(lease.address),
        "mac": lease.mac,
        "state": str(lease.state),
        "expires_in": round(lease.expires - now, 1),
        "hostname": lease.hostname,
        "server_id": lease.server_id,
    }


def leases_by_mac(top: MultiService) -> dict[str, dict[str, Any]]:
    """Full mode's active leases by MAC (empty in proxy mode), from the table the
    upkeep read on its last heartbeat, like the status page's."""
    dhcp = _named(top, "dhcp")
    for handler in dhcp.dispatcher.handlers if dhcp is not None else ():
        server = getattr(handler, "lease_server", None)
        if server is not None:
            if not server.store.up:
                return {}
            now = handler.clock()
            table = _lease_table(_named(top, "lease-upkeep"))
            return {
                lease.mac: lease_json(lease, now) for lease in table.shown(now) if lease.active(now)
            }
    return {}


def _lease_table(upkeep: LeaseUpkeep | None) -> LeaseTable:
    return NOT_READ if upkeep is None else upkeep.table


def _named(top: MultiService, name: str) -> Any:
    try:
        return top.getServiceNamed(name)
    except KeyError:
        return None


def _counters(name: str, service: Any) -> dict[str, int] | None:
    if service is None:
        return None
    if name == "dhcp":
        return dict(service.dispatcher.counters.as_dict())
    holder = getattr(service, "counters", None) or getattr(
        getattr(service, "resource", None), "counters", None
    )
    return holder.as_dict() if holder is not None else None


class NetbootCollector(Collector):
    """Turns a snapshot into Prometheus metric families on every scrape."""

    def __init__(self, top: MultiService) -> None:
        self.top = top

    def collect(self) -> Iterator[Any]:
        state = snapshot(self.top, machines=False)
        for protocol, counters in state["counters"].items():
            for key, value in counters.items():
                family = CounterMetricFamily(
                    f"netboot_{protocol}_{key}", f"{protocol} {key.replace('_', ' ')}"
                )
                family.add_metric([], value)
                yield family
        sets = GaugeMetricFamily(
            "netboot_catalog_sets", "NBI sets in the catalog by state", labels=["state"]
        )
        images = state["images"]
        sets.add_metric(["servable"], sum(1 for i in images if i["valid"] and i["is_enabled"]))
        sets.add_metric(["disabled"], sum(1 for i in images if i["valid"] and not i["is_enabled"]))
        sets.add_metric(["invalid"], sum(1 for i in images if not i["valid"]))
        yield sets
        by_family = GaugeMetricFamily(
            "netboot_catalog_pc_sets",
            "Servable NBI sets with a PC kernel for each firmware family",
            labels=["firmware"],
        )
        servable = [i for i in images if i["valid"] and i["is_enabled"]]
        for firmware in sorted({f for i in servable for f in i.get("pc_families") or ()}):
            by_family.add_metric(
                [firmware], sum(1 for i in servable if firmware in (i.get("pc_families") or ()))
            )
        yield by_family
        clients = GaugeMetricFamily(
            "netboot_recent_clients",
            "Clients on the status page, by the firmware family their DHCP said",
            labels=["firmware"],
        )
        seen = Counter(c.get("firmware") or "unknown" for c in state["clients"])
        for firmware, count in sorted(seen.items()):
            clients.add_metric([firmware], count)
        yield clients
        errors = GaugeMetricFamily("netboot_catalog_errors", "Validation errors in the catalog")
        errors.add_metric([], sum(len(i["errors"]) for i in images))
        yield errors
        bindings = GaugeMetricFamily("netboot_bsdp_bindings", "Clients bound to an image here")
        bindings.add_metric([], state["bsdp_bindings"])
        yield bindings
        nfs = GaugeMetricFamily("netboot_nfs_available", "1 while NFS images can be offered")
        nfs.add_metric([], 1 if state["nfs"]["available"] else 0)
        yield nfs
        boots = CounterMetricFamily(
            "netboot_image_boots", "BSDP selections per image", labels=["image_id"]
        )
        for image_id, count in sorted(state["boots"].items()):
            boots.add_metric([image_id], count)
        yield boots
        if state["dhcp"] is not None:
            leases = GaugeMetricFamily(
                "netboot_dhcp_leases", "Full-mode pool addresses by state", labels=["state"]
            )
            for key, value in state["dhcp"]["counts"].items():
                leases.add_metric([key], value)
            yield leases
            store_up = GaugeMetricFamily(
                "netboot_lease_store_up", "1 while the lease database answers; 0: new leases pause"
            )
            store_up.add_metric([], 1 if state["dhcp"]["store_up"] else 0)
            yield store_up
            peers = GaugeMetricFamily(
                "netboot_dhcp_peers", "Live daemons sharing the lease database, this one included"
            )
            peers.add_metric([], 1 + sum(1 for peer in state["dhcp"]["peers"] if peer["live"]))
            yield peers
            rivals = GaugeMetricFamily(
                "netboot_dhcp_rival_servers", "Other DHCP servers heard handing out addresses"
            )
            rivals.add_metric([], len(state["dhcp"]["rivals"]))
            yield rivals
        pending = GaugeMetricFamily(
            "netboot_restart_pending",
            "Changed options (section.key) that wait for a restart; 0 when none",
        )
        pending.add_metric([], len(state["restart_pending"]))
        yield pending
        restarts = CounterMetricFamily("netboot_nfs_restarts", "Restarts of nfs-ganesha")
        restarts.add_metric([], state["nfs"]["restarts"])
        yield restarts


class _Page(Resource):
    isLeaf = True  # noqa: N815 - Twisted's name

    def __init__(self, render: Callable[[Request], bytes]) -> None:
        super().__init__()
        self._render = render

    def render_GET(self, request: Request) -> bytes:  # noqa: N802
        return self._render(request)


STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin-bottom: 1.5em; }
th, td { border-bottom: 1px solid #ddd; padding: .3em .8em; text-align: left; }
th { background: #f4f4f4; } .bad { color: #b00; } .ok { color: #070; }
"""


def render_page(state: dict[str, Any]) -> bytes:
    rows = []
    for image in state["images"]:
        status = (
            '<span class="ok">ok</span>'
            if image["valid"]
            else f'<span class="bad">{len(image["errors"])} error(s)</span>'
        )
        problems = "<br>".join(escape(e) for e in image["errors"] + image["warnings"])
        image_id = f"{image['id']:#010x}" if image["id"] is not None else "-"
        rows.append(
            f"<tr><td>{escape(image_id)}</td><td>{escape(str(image['name'] or '-'))}</td>"
            f"<td>{escape(str(image['type'] or '-'))}</td><td>{escape(image['path'])}</td>"
            f"<td>{escape(', '.join(image.get('pc_families') or ()) or '-')}</td>"
            f"<td>{'yes' if image['is_enabled'] else 'no'}</td><td>{status}</td>"
            f"<td>{problems}</td></tr>"
        )
    counters = "".join(
        f"<tr><th>{escape(protocol)}</th><td>"
        + ", ".join(f"{escape(k)} {v}" for k, v in values.items())
        + "</td></tr>"
        for protocol, values in state["counters"].items()
    )
    client_rows = (
        "".join(
            f"<tr><td>{escape(c['address'])}</td><td>{escape(c['mac'] or '-')}</td>"
            f"<td>{escape(c.get('firmware') or '-')}</td>"
            f"<td>{escape(c['image'] or '-')}</td><td><b>{escape(c['progress'])}</b></td>"
            f"<td>{escape(c['last'])}</td></tr>"
            for c in state["clients"]
        )
        or '<tr><td colspan="6">none yet</td></tr>'
    )
    nfs = state["nfs"]
    nfs_state = "available" if nfs["available"] else "unavailable"
    dhcp = state["dhcp"]
    lease_section = ""
    if dhcp is not None:
        lease_rows = (
            "".join(
                f"<tr><td>{escape(lease['address'])}</td><td>{escape(lease['mac'])}</td>"
                f"<td>{escape(lease['state'])}</td><td>{lease['expires_in']:.0f} s</td>"
                f"<td>{escape(lease['hostname'] or '-')}</td>"
                f"<td>{escape(lease['server_id'] or '-')}</td></tr>"
                for lease in dhcp["leases"]
            )
            or '<tr><td colspan="6">none</td></tr>'
        )
        rivals = "".join(
            f'<p class="bad">Rival DHCP server {escape(server)} heard {ago:.0f} s ago</p>'
            for server, ago in dhcp["rivals"].items()
        )
        if not dhcp["store_up"]:
            rivals += (
                '<p class="bad">Lease database unreachable: new leases pause; renewals of '
                "leases granted here and everything else go on.</p>"
            )
        peers = ", ".join(
            f"{escape(peer['server_id'])} ({escape(peer['address'])}, "
            f"{'live' if peer['live'] else 'silent'}, {peer['load']}/s)"
            for peer in dhcp["peers"]
        )
        if peers:
            rivals += f"<p>This server: {escape(dhcp['server_id'])}; peers: {peers}</p>"
        heard = ", ".join(
            f"{escape(server)} {ago:.0f} s ago" for server, ago in dhcp["servers_heard"].items()
        )
        if heard:
            rivals += f"<p>Replies heard on the link from: {heard}</p>"
        counts = ", ".join(f"{escape(k)} {v}" for k, v in dhcp["counts"].items())
        lease_section = (
            f"<h2>DHCP leases (pool {escape(dhcp['pool'])}: {counts})</h2>{rivals}"
            "<table><tr><th>Address</th><th>MAC</th><th>State</th><th>Expires in</th>"
            f"<th>Host name</th><th>Granted by</th></tr>{lease_rows}</table>"
        )
    pending = state["restart_pending"]
    restart_note = (
        '<p class="bad">Changed in the configuration, waiting for a restart (the old '
        f"values stay in force): {escape(', '.join(pending))}</p>"
        if pending
        else ""
    )
    html = f"""<!doctype html>
<html><head><meta charset="utf-8"><meta http-equiv="refresh" content="5">
<title>netboot {escape(state["version"])}</title><style>{STYLE}</style></head>
<body><h1>netboot {escape(state["version"])}</h1>
{restart_note}
<h2>Images</h2>
<table><tr><th>ID</th><th>Name</th><th>Type</th><th>Set</th><th>PC firmware</th>
<th>Enabled</th><th>Status</th><th>Problems</th></tr>{"".join(rows)}</table>
<h2>Recent clients</h2>
<table><tr><th>Address</th><th>MAC</th><th>Firmware</th><th>Image</th><th>Progress</th>
<th>Last step</th></tr>
{client_rows}</table>
{lease_section}
<h2>Services</h2>
<table>{counters}
<tr><th>nfs</th><td>mode {escape(nfs["mode"])}, {nfs_state}, {nfs["restarts"]} restart(s)</td></tr>
<tr><th>bsdp bindings</th><td>{state["bsdp_bindings"]}</td></tr></table>
</body></html>
"""
    return html.encode()


class _Guarded(Resource):
    """A read-only page that wants a login when the listener is not on loopback."""

    isLeaf = True  # noqa: N815 - Twisted's name

    def __init__(self, render: Callable[[Request], bytes], state: AdminState) -> None:
        super().__init__()
        self._render = render
        self._state = state

    def render_GET(self, request: Request) -> bytes:  # noqa: N802
        access = access_of(self._state, request, changes_state=False)
        if isinstance(access, Refused):
            return refuse(request, access)
        return self._render(request)


class AdminService(Service):
    def __init__(
        self,
        top: MultiService,
        reactor: Any,
        host: str,
        port: int,
        state: AdminState | None = None,
    ) -> None:
        self.top = top
        self.reactor = reactor
        self.host = host
        self.port = port
        self.state = state
        self.registry = CollectorRegistry()
        self.registry.register(NetbootCollector(top))
        self.listening: Any = None
        self.keepalive: Keepalive | None = None

    def _metrics(self, request: Request) -> bytes:
        request.setHeader(b"Content-Type", b"text/plain; version=0.0.4; charset=utf-8")
        return bytes(generate_latest(self.registry))

    def _status(self, request: Request) -> bytes:
        request.setHeader(b"Content-Type", b"application/json")
        return json.dumps(snapshot(self.top), indent=2).encode()

    def _page(self, request: Request) -> bytes:
        request.setHeader(b"Content-Type", b"text/html; charset=utf-8")
        return render_page(snapshot(self.top, machines=False))

    def _page_resource(self, render: Callable[[Request], bytes]) -> Resource:
        return _Page(render) if self.state is None else _Guarded(render, self.state)

    def startService(self) -> None:  # noqa: N802
        super().startService()
        root = Resource()
        pages: dict[bytes, Any] = {
            b"metrics": self._page_resource(self._metrics),
            b"status.json": self._page_resource(self._status),
            b"status": self._page_resource(self._page),
        }
        if self.state is None:
            pages[b""] = _Page(self._page)
        else:
            pages[b"api"] = ApiResource(self.state)
            pages.update(console_pages(self.state, self.top))
            self.keepalive = Keepalive(self.state, self.reactor)
            self.keepalive.start()
        for path, page in pages.items():
            root.putChild(path, page)
        site = Site(root)
        site.noisy = False
        self.listening = self.reactor.listenTCP(self.port, site, interface=self.host)
        log.info(
            "admin console, API, /status.json and /metrics on http://{host}:{port}/",
            host=f"[{self.host}]" if ":" in self.host else self.host,
            port=self.listening.getHost().port,
        )

    def stopService(self) -> Any:  # noqa: N802
        super().stopService()
        if self.keepalive is not None:
            self.keepalive.stop()
        if self.state is not None:
            for request in list(self.state.subscribers):
                request.finish()
            self.state.subscribers.clear()
        if self.listening is not None:
            return self.listening.stopListening()
        return None
