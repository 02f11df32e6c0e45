"""The admin API and its live stream: `/api/*` of the admin listener.

A thin adapter: `netboot.admin.api.route` says what a request is,
`netboot.admin.auth.authorize` whether it may go on, `check_assignable`
whether an assignment makes sense; here are only the effects: the state
database written before 204 is sent, the assignment put in force in every
protocol at once (`AdminState.on_assigned`, set by the daemon), the audit
line, and the event every open console receives.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from netboot import __version__
from netboot.admin import openapi
from netboot.admin.api import (
    ApiError,
    DeleteAssignment,
    ListAssignments,
    ListImages,
    ListMachines,
    OpenApiDocument,
    PatchImage,
    PutAssignment,
    StreamEvents,
    changes_state,
    route,
)
from netboot.admin.assignment_store import AssignmentStore
from netboot.admin.assignments import (
    Assignable,
    Assignment,
    CannotBoot,
    MachineFacts,
    UnknownImage,
    assignment_json,
    assignments_json,
    check_assignable,
    find_set,
)
from netboot.admin.audit import audit_line
from netboot.admin.auth import (
    Access,
    Credentials,
    FailureLimiter,
    Granted,
    Refusal,
    Refused,
    SessionTable,
    authorize,
)
from netboot.admin.events import KEEPALIVE, EventLog, parse_last_event_id
from netboot.admin.image_edits import (
    SAFE_KEYS,
    EditRefused,
    ImageEdit,
    RefusalReason,
    default_conflict,
    image_json,
    plan_image_edit,
)
from netboot.admin.machines import MachineRegistry
from netboot.errors import ImageError, NetbootError
from netboot.macaddr import MacAddress
from netboot.nbi.catalog import Catalog
from netboot.nbi.edit import edit_set, set_default

log = Logger(namespace="netboot.admin")
audit_log = Logger(namespace="netboot.audit")

SESSION_COOKIE = b"netboot_session"
CSRF_HEADER = b"x-csrf-token"
KEEPALIVE_INTERVAL = 15.0


def is_loopback(host: str) -> bool:
    """Whether the admin listener's address only takes connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class AdminState:
    """What the admin API keeps and changes while the daemon runs."""

    token: str
    store: AssignmentStore
    registry: MachineRegistry
    catalog: Callable[[], Catalog]
    clock: Callable[[], float]
    reads_need_login: bool
    configured: tuple[tuple[MacAddress, str], ...] = ()
    """`[pxe] assignments` (MAC, image name), shown beside the API's own."""
    sessions: SessionTable = field(default_factory=lambda: SessionTable(43200.0))
    limiter: FailureLimiter = field(default_factory=FailureLimiter)
    events: EventLog = field(default_factory=EventLog)
    assignments: MappingProxyType[MacAddress, Assignment] = field(
        default_factory=lambda: MappingProxyType({})
    )
    audit_file: Path | None = None
    on_assigned: Callable[[MacAddress, Assignment | None], None] = lambda mac, assignment: None
    """Puts a changed assignment in force (the daemon drops the Mac's BSDP binding too)."""
    leases: Callable[[], dict[str, dict[str, Any]]] = dict
    """MAC to its full-mode lease (`address`, `state`, `expires_in`)."""
    server_name: str = ""
    rescan: Callable[[], Catalog] | None = None
    """Scans the image root now (after an image edit), returning the new catalog."""
    subscribers: set[Request] = field(default_factory=set)

    # -- what the API shows ---------------------------------------------------------

    def facts(self, mac: MacAddress) -> MachineFacts:
        seen = self.registry.machine(mac)
        if seen is None:
            return MachineFacts()
        return MachineFacts(seen["kind"], seen["model"], seen["architecture"], seen["firmware"])

    def configured_name(self, mac: str) -> str | None:
        return next((name for m, name in self.configured if m == mac), None)

    def machine_json(
        self,
        machine: dict[str, Any],
        catalog: Catalog,
        leases: dict[str, dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """The registry's Machine with what the registry does not know: the lease, the
        assignment, and our own name when no other server was noted."""
        mac = MacAddress(machine["mac"])
        return {
            **machine,
            "server": machine.get("server") or self.server_name,
            "lease": (self.leases() if leases is None else leases).get(mac),
            "assignment": assignment_json(
                self.assignments.get(mac), catalog, self.configured_name(mac)
            ),
        }

    def machines_json(self) -> list[dict[str, Any]]:
        catalog, leases = self.catalog(), self.leases()
        return [self.machine_json(m, catalog, leases) for m in self.registry.machines()]

    def images_json(self) -> list[dict[str, Any]]:
        catalog = self.catalog()
        return [image_json(nbi_set, str(catalog.root)) for nbi_set in catalog]

    def assignments_list(self) -> list[dict[str, Any]]:
        return assignments_json(self.assignments, self.configured, self.catalog())

    # -- events -----------------------------------------------------------------------

    def publish(self, name: str, data: Any) -> None:
        event = self.events.append(name, data)
        frame = event.frame()
        for request in list(self.subscribers):
            request.write(frame)

    def machine_changed(self, mac: str) -> None:
        machine = self.registry.machine(MacAddress(mac))
        if machine is not None and self.subscribers:
            self.publish("machine", self.machine_json(machine, self.catalog()))

    def catalog_changed(self, catalog: Catalog) -> None:
        self.publish("images", {"images": self.images_json()})

    def keepalive(self) -> None:
        for request in list(self.subscribers):
            request.write(KEEPALIVE)

    # -- changes ----------------------------------------------------------------------

    def audit(
        self, granted: Granted, address: str, action: str, target: str, **change: Any
    ) -> None:
        line = audit_line(
            who=granted.who,
            address=address,
            action=action,
            target=target,
            before=change.get("before"),
            after=change.get("after"),
            now=self.clock(),
        )
        audit_log.info("{audit}", audit=line)
        if self.audit_file is not None:
            try:
                with self.audit_file.open("a", encoding="utf-8") as handle:
                    handle.write(line + "\n")
            except OSError as error:
                log.error(
                    "cannot append to the audit log {file}: {error}",
                    file=str(self.audit_file),
                    error=error.strerror,
                )

    def assign(self, mac: MacAddress, assignment: Assignment | None) -> None:
        """Store, then put in force, then tell the consoles; the store first, so nothing is
        in force that a crash would take back."""
        if assignment is None:
            self.store.delete(mac)
            changed = {k: v for k, v in self.assignments.items() if k != mac}
        else:
            self.store.save(assignment)
            changed = {**self.assignments, mac: assignment}
        self.assignments = MappingProxyType(changed)
        self.on_assigned(mac, assignment)
        catalog = self.catalog()
        self.publish(
            "assignment",
            {
                "mac": mac,
                "assignment": assignment_json(assignment, catalog, self.configured_name(mac)),
            },
        )
        self.machine_changed(mac)


def _json(request: Request, status: int, body: Any) -> bytes:
    request.setResponseCode(status)
    request.setHeader(b"Content-Type", b"application/json")
    return (json.dumps(body, indent=1) + "\n").encode()


def _error(request: Request, status: int, message: str) -> bytes:
    return _json(request, status, {"error": message})


def no_store(request: Request) -> None:
    request.setHeader(b"Cache-Control", b"no-store")
    request.setHeader(b"X-Content-Type-Options", b"nosniff")


def _header(request: Request, name: bytes) -> str | None:
    value = request.getHeader(name)
    if value is None:
        return None
    return value.decode("latin-1") if isinstance(value, bytes) else str(value)


def credentials(request: Request) -> Credentials:
    header = _header(request, b"authorization")
    bearer = None
    if header is not None:
        scheme, _, value = header.partition(" ")
        bearer = value.strip() if scheme.lower() == "bearer" else ""
    cookie = request.getCookie(SESSION_COOKIE)
    session = cookie.decode("ascii", "replace") if cookie else None
    return Credentials(bearer, session, _header(request, CSRF_HEADER))


def client_host(request: Request) -> str:
    address = request.getClientAddress()
    return str(getattr(address, "host", address))


def access_of(state: AdminState, request: Request, changes_state: bool) -> Access:
    """Whether this request may go on, by its credentials (`netboot.admin.auth.authorize`)."""
    return authorize(
        state.token,
        credentials(request),
        changes_state=changes_state,
        reads_need_login=state.reads_need_login,
        address=client_host(request),
        sessions=state.sessions,
        limiter=state.limiter,
        now=state.clock(),
    )


def refuse(request: Request, refused: Refused) -> bytes:
    """401 and 429 say nothing more; 403 names the missing CSRF token."""
    if refused.status is Refusal.TOO_MANY:
        request.setHeader(b"Retry-After", str(int(refused.retry_after or 60)).encode())
        return _error(request, 429, "too many attempts")
    if refused.status is Refusal.CSRF:
        return _error(request, 403, "CSRF token missing or wrong")
    request.setHeader(b"WWW-Authenticate", b'Bearer realm="netboot"')
    return _error(request, 401, "unauthorized")


class ApiResource(Resource):
    """Everything under /api/."""

    isLeaf = True  # noqa: N815 - Twisted's name

    def __init__(self, state: AdminState) -> None:
        super().__init__()
        self.state = state

    def render(self, request: Request) -> bytes | int:
        state = self.state
        no_store(request)
        method = request.method.decode("ascii", "replace")
        path = request.path.decode("utf-8", "replace")
        body = request.content.read() if request.content is not None else b""
        routed = route(method, path, body)
        if isinstance(routed, OpenApiDocument):
            return _json(request, 200, openapi.document())
        address = client_host(request)
        access = access_of(state, request, changes_state(method))
        if isinstance(access, Refused):
            if access.status is Refusal.UNAUTHORIZED:
                log.info(
                    "admin API: refused {method} {path} from {address}",
                    method=method,
                    path=path,
                    address=address,
                )
            return refuse(request, access)
        if isinstance(routed, ApiError):
            if routed.allow:
                request.setHeader(b"Allow", ", ".join(routed.allow).encode())
            return _error(request, routed.status, routed.message)
        if isinstance(routed, ListImages):
            return _json(request, 200, {"images": state.images_json()})
        if isinstance(routed, ListMachines):
            return _json(request, 200, {"machines": state.machines_json()})
        if isinstance(routed, ListAssignments):
            return _json(request, 200, {"assignments": state.assignments_list()})
        if isinstance(routed, StreamEvents):
            return self._stream(request)
        if isinstance(routed, PutAssignment):
            return self._put(request, routed, access, address)
        if isinstance(routed, DeleteAssignment):
            return self._delete(request, routed, access, address)
        return self._patch(request, routed, access, address)

    def _put(self, request: Request, put: PutAssignment, granted: Granted, address: str) -> bytes:
        state = self.state
        checked = check_assignable(state.catalog(), put.mac, put.image_id, state.facts(put.mac))
        if isinstance(checked, UnknownImage):
            return _error(request, 404, f"no image with ID {checked.image_id:#010x}")
        if isinstance(checked, CannotBoot):
            return _error(request, 422, f"{put.mac} cannot boot it: {checked.reason}")
        assert isinstance(checked, Assignable)
        before = state.assignments.get(put.mac)
        assignment = Assignment(put.mac, put.image_id, granted.who, state.clock())
        try:
            state.assign(put.mac, assignment)
        except NetbootError as error:
            log.error("assignment not stored: {error}", error=str(error))
            return _error(request, 503, f"the assignment could not be stored: {error}")
        state.audit(
            granted,
            address,
            "assign",
            put.mac,
            before=before.image_id if before is not None else None,
            after=put.image_id,
        )
        request.setResponseCode(204)
        return b""

    def _delete(
        self, request: Request, delete: DeleteAssignment, granted: Granted, address: str
    ) -> bytes:
        state = self.state
        before = state.assignments.get(delete.mac)
        if before is None:
            return _error(request, 404, f"{delete.mac} has no assignment made through the API")
        try:
            state.assign(delete.mac, None)
        except NetbootError as error:
            log.error("assignment not removed: {error}", error=str(error))
            return _error(request, 503, f"the assignment could not be removed: {error}")
        state.audit(granted, address, "unassign", delete.mac, before=before.image_id, after=None)
        request.setResponseCode(204)
        return b""

    def _patch(self, request: Request, patch: PatchImage, granted: Granted, address: str) -> bytes:
        state = self.state
        catalog = state.catalog()
        nbi_set = find_set(catalog, patch.image_id)
        if nbi_set is None:
            return _error(request, 404, f"no image with ID {patch.image_id:#010x}")
        planned = plan_image_edit(patch.body)
        # Making a set the default clears the others, as `netboot nbi default` does;
        # anything else that would make a second default is refused.
        makes_default = isinstance(planned, ImageEdit) and planned.value("IsDefault") is True
        if isinstance(planned, ImageEdit) and not makes_default:
            planned = default_conflict(catalog, nbi_set, planned) or planned
        if isinstance(planned, EditRefused):
            status = 422 if planned.reason is RefusalReason.CONFLICT else 400
            return _error(request, status, planned.message)
        keys = [key for key in SAFE_KEYS if planned.changes_key(SAFE_KEYS[key].plist_key)]
        before = image_json(nbi_set, str(catalog.root))
        set_dir = catalog.root / nbi_set.path
        changes = planned.plist_changes()
        try:
            if makes_default:
                del changes["IsDefault"]
            if changes:
                edit_set(set_dir, changes)
            if makes_default:
                set_default(set_dir)
        except ImageError as error:
            return _error(request, 422, str(error))
        except OSError as error:
            log.error("image edit of {set} failed: {error}", set=str(set_dir), error=str(error))
            return _error(
                request,
                503,
                f"{set_dir} cannot be written by the daemon ({error.strerror}); see "
                "docs/operations.md, 'Editing images from the console'",
            )
        if state.rescan is not None:
            catalog = state.rescan()
        edited = next((s for s in catalog if s.path == nbi_set.path), None)
        after = image_json(edited, str(catalog.root)) if edited is not None else {}
        state.audit(
            granted,
            address,
            "edit image",
            f"{nbi_set.path} ({patch.image_id:#010x})",
            before={key: before.get(key) for key in keys},
            after={key: after.get(key) for key in keys},
        )
        if edited is None:
            return _error(request, 404, f"{nbi_set.path} is gone")
        return _json(request, 200, after)

    def _stream(self, request: Request) -> int | bytes:
        state = self.state
        request.setHeader(b"Content-Type", b"text/event-stream")
        request.setHeader(b"Cache-Control", b"no-cache")
        request.setHeader(b"X-Accel-Buffering", b"no")
        if request.method == b"HEAD":
            return b""
        last = parse_last_event_id(_header(request, b"last-event-id"))
        hello = {"version": __version__, "last_id": state.events.last_id}
        request.write(f"event: hello\ndata: {json.dumps(hello)}\n\n".encode())
        if last is not None:
            missed = state.events.since(last)
            if missed is None:
                request.write(f"id: {state.events.last_id}\nevent: resync\ndata: {{}}\n\n".encode())
            else:
                for event in missed:
                    request.write(event.frame())
        state.subscribers.add(request)
        request.notifyFinish().addBoth(lambda _: state.subscribers.discard(request))
        return NOT_DONE_YET


class Keepalive:
    """A comment frame to every open stream every 15 s."""

    def __init__(self, state: AdminState, reactor: Any) -> None:
        self.loop = LoopingCall(state.keepalive)
        self.loop.clock = reactor

    def start(self) -> None:
        self.loop.start(KEEPALIVE_INTERVAL, now=False)

    def stop(self) -> None:
        if self.loop.running:
            self.loop.stop()
