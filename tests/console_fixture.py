"""A TEST DOUBLE of the admin API, for the console's front-end tests only.

It is not the daemon: it serves the console's static files (`netboot/admin/console/`) and
answers the routes of issue #19's design (`/login`, `/logout`, `/api/images`, `/api/machines`,
`/api/assignments[/{mac}]`, `PATCH /api/images/{id}`, the `/api/events` stream) from in-memory
data that the test sets and pushes, so the page's behaviour (live updates, the assign control,
error display, the phone layout) can be checked in a real browser while the real server is
being written, and without booting anything. The browser tests take a base URL and a token, so
the same tests run against the real daemon (`netboot_services.admin`) too.

What it enforces like the design says: every `/api/*` call needs the session cookie or
`Authorization: Bearer`; a cookie-authenticated state change needs `X-CSRF-Token` (else 403
`{"error": "CSRF token missing or wrong"}`); error bodies are `{"error": ...}`. It records every
request so a test can check what the page sent.
"""

from __future__ import annotations

import itertools
import json
import queue
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote

import netboot
from netboot.admin import console_page

CONSOLE_DIRECTORY = Path(netboot.__file__).parent / "admin" / "console"
SESSION_COOKIE = "netboot_session"
STATIC_TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html"}

Json = dict[str, Any]


@dataclass(frozen=True)
class RecordedRequest:
    """One request the page made: enough to check method, path, headers and body."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def image(image_id: int, name: str, **overrides: Any) -> Json:
    """An Image object as GET /api/images lists it (a Mac set unless overrides say otherwise)."""
    value: Json = {
        "id": image_id,
        "index": image_id,
        "name": name,
        "description": f"{name} for the lab",
        "kind": 1,
        "is_install": False,
        "is_enabled": True,
        "is_default": False,
        "architectures": ["i386"],
        "pc_architectures": [],
        "path": f"/srv/netboot/{name}.nbi",
        "valid": True,
        "errors": [],
        "warnings": [],
        "servable": True,
        "enabled_system_identifiers": [],
        "disabled_system_identifiers": [],
        "enabled_mac_addresses": [],
        "disabled_mac_addresses": [],
    }
    value.update(overrides)
    return value


def machine(mac: str, now: float, **overrides: Any) -> Json:
    """A Machine object as GET /api/machines lists it: a Mac that has just sent a BSDP LIST."""
    value: Json = {
        "mac": mac,
        "address": "10.0.0.5",
        "kind": "mac",
        "model": "iMac13,2",
        "architecture": "i386",
        "firmware": None,
        "server": "netboot-test",
        "lease": None,
        "first_seen": now,
        "last_seen": now,
        "progress": "bsdp list",
        "image": None,
        "assignment": None,
        "journeys": [
            {
                "started": now,
                "ended": None,
                "steps": [{"stage": "bsdp list", "at": now, "detail": "", "bytes": None}],
                "transfers": [],
            }
        ],
    }
    value.update(overrides)
    return value


@dataclass
class ConsoleFixture:
    """The double's state; `with ConsoleFixture() as fixture:` serves it on 127.0.0.1."""

    images: list[Json] = field(default_factory=list)
    machines: dict[str, Json] = field(default_factory=dict)
    assignments: dict[str, Json] = field(default_factory=dict)
    token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    version: str = "0.1.0-fixture"
    requests: list[RecordedRequest] = field(default_factory=list)
    sessions: dict[str, str] = field(default_factory=dict)  # session id -> CSRF token
    _subscribers: list[queue.Queue[bytes | None]] = field(default_factory=list)
    _event_ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    def __enter__(self) -> ConsoleFixture:
        fixture = self

        class Handler(_Handler):
            state = fixture

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.drop_streams()
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    # --- what a test does --------------------------------------------------------------------

    def push_machine(self, value: Json) -> None:
        """A machine was seen (new or progressed): keep it and send a `machine` event."""
        value = {**value, "assignment": self.assignments.get(value["mac"])}
        self.machines[value["mac"]] = value
        self.send("machine", value)

    def push_images(self) -> None:
        self.send("images", {"images": self.images})

    def send(self, name: str, data: Json) -> None:
        """One server-sent event to every open /api/events stream."""
        with self._lock:
            frame = f"id: {next(self._event_ids)}\nevent: {name}\ndata: {json.dumps(data)}\n\n"
            for subscriber in self._subscribers:
                subscriber.put(frame.encode())

    def drop_streams(self) -> None:
        """End every open /api/events stream, as a restarting server or a lost network would."""
        with self._lock:
            for subscriber in self._subscribers:
                subscriber.put(None)

    def subscribers(self) -> int:
        with self._lock:
            return len(self._subscribers)

    def requests_to(self, method: str, path: str) -> list[RecordedRequest]:
        return [r for r in list(self.requests) if r.method == method and r.path == path]

    # --- the double's decisions -----------------------------------------------------------------

    def sorted_machines(self) -> list[Json]:
        return sorted(self.machines.values(), key=lambda m: m["last_seen"], reverse=True)

    def refusal(self, mac: str, image_id: int | None) -> tuple[HTTPStatus, str] | None:
        """Why this double refuses an assignment (404/422), as the design's statuses say."""
        if image_id is None:
            return None
        found = next((i for i in self.images if i["id"] == image_id), None)
        if found is None:
            return HTTPStatus.NOT_FOUND, f"no image with ID {image_id}"
        seen = self.machines.get(mac)
        model = seen.get("model") if seen else None
        if model and model in found["disabled_system_identifiers"]:
            return (
                HTTPStatus.UNPROCESSABLE_ENTITY,
                f"image {image_id} ({found['name']}) refuses model {model}",
            )
        return None

    def assign(self, mac: str, image_id: int | None, changed_by: str) -> None:
        found = next((i for i in self.images if i["id"] == image_id), None)
        assignment = {
            "mac": mac,
            "image_id": image_id,
            "image_name": found["name"] if found else None,
            "source": "api",
            "changed_by": changed_by,
            "changed_at": time.time(),
        }
        self.assignments[mac] = assignment
        if mac in self.machines:
            self.machines[mac]["assignment"] = assignment
        self.send("assignment", {"mac": mac, "assignment": assignment})

    def unassign(self, mac: str) -> None:
        del self.assignments[mac]
        if mac in self.machines:
            self.machines[mac]["assignment"] = None
        self.send("assignment", {"mac": mac, "assignment": None})


def render_console(fixture: ConsoleFixture, csrf_token: str) -> str:
    """index.html filled by the daemon's own renderer, from the fixture's data."""
    return console_page.render_console(
        (CONSOLE_DIRECTORY / "index.html").read_text(),
        csrf_token=csrf_token,
        version=fixture.version,
        machines=fixture.sorted_machines(),
        images=fixture.images,
    )


PATCHABLE = {
    "is_enabled": bool,
    "is_default": bool,
    "name": str,
    "description": str,
}


class _Handler(BaseHTTPRequestHandler):
    state: ConsoleFixture

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: pytest shows what the test asserts, not an access log."""

    # --- plumbing ----------------------------------------------------------------------------

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(
        self,
        status: HTTPStatus,
        body: bytes = b"",
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if status != HTTPStatus.NO_CONTENT:
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)

    def _json(self, status: HTTPStatus, value: Any) -> None:
        self._send(status, json.dumps(value).encode())

    def _error(self, status: HTTPStatus, text: str) -> None:
        headers = {"WWW-Authenticate": "Bearer"} if status == HTTPStatus.UNAUTHORIZED else None
        self._send(status, json.dumps({"error": text}).encode(), headers=headers)

    def _session(self) -> str | None:
        for part in (self.headers.get("Cookie") or "").split(";"):
            name, _, value = part.strip().partition("=")
            if name == SESSION_COOKIE and value in self.state.sessions:
                return value
        return None

    def _bearer(self) -> bool:
        given = self.headers.get("Authorization") or ""
        return secrets.compare_digest(given, f"Bearer {self.state.token}")

    def _authorized(self, changes_state: bool) -> bool:
        """Bearer or session; a session's state change needs its CSRF token as a header."""
        if self._bearer():
            return True
        session = self._session()
        if session is None:
            self._error(HTTPStatus.UNAUTHORIZED, "unauthorized")
            return False
        expected = self.state.sessions[session]
        given = self.headers.get("X-CSRF-Token") or ""
        if changes_state and not secrets.compare_digest(given, expected):
            self._error(HTTPStatus.FORBIDDEN, "CSRF token missing or wrong")
            return False
        return True

    def _record(self, body: bytes) -> None:
        self.state.requests.append(
            RecordedRequest(self.command, self.path, dict(self.headers.items()), body)
        )

    # --- routes ------------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._record(b"")
        path = self.path.split("?", 1)[0]
        if path.startswith("/console/"):
            self._static(path.removeprefix("/console/"))
        elif path == "/login":
            login = (CONSOLE_DIRECTORY / "login.html").read_bytes()
            self._send(HTTPStatus.OK, login, "text/html; charset=utf-8")
        elif path == "/":
            session = self._session()
            if session is None:
                self._send(HTTPStatus.SEE_OTHER, headers={"Location": "/login"})
                return
            page = render_console(self.state, self.state.sessions[session])
            self._send(HTTPStatus.OK, page.encode(), "text/html; charset=utf-8")
        elif path.startswith("/api/") and self._authorized(changes_state=False):
            self._api_get(path)

    def _static(self, name: str) -> None:
        target = CONSOLE_DIRECTORY / name
        if "/" in name or not target.is_file() or target.suffix not in STATIC_TYPES:
            self._error(HTTPStatus.NOT_FOUND, "not found")
            return
        self._send(HTTPStatus.OK, target.read_bytes(), STATIC_TYPES[target.suffix])

    def _api_get(self, path: str) -> None:
        if path == "/api/images":
            self._json(HTTPStatus.OK, {"images": self.state.images})
        elif path == "/api/machines":
            self._json(HTTPStatus.OK, {"machines": self.state.sorted_machines()})
        elif path == "/api/assignments":
            self._json(HTTPStatus.OK, {"assignments": list(self.state.assignments.values())})
        elif path == "/api/events":
            self._events()
        else:
            self._error(HTTPStatus.NOT_FOUND, "not found")

    def _events(self) -> None:
        subscriber: queue.Queue[bytes | None] = queue.Queue()
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        with self.state._lock:
            hello = {"version": self.state.version}
            event_id = next(self.state._event_ids)
            subscriber.put(f"id: {event_id}\nevent: hello\ndata: {json.dumps(hello)}\n\n".encode())
            self.state._subscribers.append(subscriber)
        try:
            while True:
                try:
                    frame = subscriber.get(timeout=15)
                except queue.Empty:
                    frame = b": keepalive\n\n"
                if frame is None:
                    return
                self.wfile.write(frame)
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            return
        finally:
            with self.state._lock:
                self.state._subscribers.remove(subscriber)

    def do_POST(self) -> None:
        body = self._body()
        self._record(body)
        if self.path == "/login":
            given = parse_qs(body.decode()).get("token", [""])[0]
            if not secrets.compare_digest(given, self.state.token):
                login = (CONSOLE_DIRECTORY / "login.html").read_bytes()
                self._send(HTTPStatus.UNAUTHORIZED, login, "text/html; charset=utf-8")
                return
            session = secrets.token_urlsafe(24)
            self.state.sessions[session] = secrets.token_urlsafe(24)
            cookie = f"{SESSION_COOKIE}={session}; HttpOnly; SameSite=Strict; Path=/"
            self._send(HTTPStatus.SEE_OTHER, headers={"Location": "/", "Set-Cookie": cookie})
        elif self.path == "/logout" and self._authorized(changes_state=True):
            ended = self._session()
            if ended is not None:
                del self.state.sessions[ended]
            self._send(HTTPStatus.NO_CONTENT)
        elif self.path != "/logout":
            self._error(HTTPStatus.NOT_FOUND, "not found")

    def _assignment_target(self, body: bytes) -> str | None:
        """The MAC of /api/assignments/{mac} once recorded and authorized; None: answered."""
        self._record(body)
        mac = _assignment_mac(self.path)
        if mac is None:
            self._error(HTTPStatus.NOT_FOUND, "not found")
            return None
        return mac if self._authorized(changes_state=True) else None

    def do_PUT(self) -> None:
        body = self._body()
        mac = self._assignment_target(body)
        if mac is None:
            return
        try:
            request = json.loads(body)
            image_id = request["image_id"]
        except (ValueError, KeyError, TypeError):
            self._error(HTTPStatus.BAD_REQUEST, 'the body must be {"image_id": N or null}')
            return
        if image_id is not None and not isinstance(image_id, int):
            self._error(HTTPStatus.BAD_REQUEST, "image_id must be an integer or null")
            return
        refused = self.state.refusal(mac, image_id)
        if refused is not None:
            self._error(*refused)
            return
        self.state.assign(mac, image_id, "console")
        self._send(HTTPStatus.NO_CONTENT)

    def do_DELETE(self) -> None:
        mac = self._assignment_target(b"")
        if mac is None:
            return
        if self.state.assignments.get(mac, {}).get("source") != "api":
            self._error(HTTPStatus.NOT_FOUND, f"{mac} has no API assignment")
            return
        self.state.unassign(mac)
        self._send(HTTPStatus.NO_CONTENT)

    def do_PATCH(self) -> None:
        body = self._body()
        self._record(body)
        prefix = "/api/images/"
        if not self.path.startswith(prefix) or not self.path[len(prefix) :].isdigit():
            self._error(HTTPStatus.NOT_FOUND, "not found")
            return
        if not self._authorized(changes_state=True):
            return
        image_id = int(self.path[len(prefix) :])
        found = next((i for i in self.state.images if i["id"] == image_id), None)
        if found is None:
            self._error(HTTPStatus.NOT_FOUND, f"no image with ID {image_id}")
            return
        try:
            changes = json.loads(body)
        except ValueError:
            self._error(HTTPStatus.BAD_REQUEST, "the body must be a JSON object")
            return
        for key, value in changes.items():
            if key not in PATCHABLE or not isinstance(value, PATCHABLE[key]):
                self._error(HTTPStatus.BAD_REQUEST, f"{key}: not an editable key of that type")
                return
        if changes.get("name") == "":
            self._error(HTTPStatus.UNPROCESSABLE_ENTITY, "name: must not be empty")
            return
        if changes.get("is_default"):
            for other in self.state.images:
                other["is_default"] = False
        found.update(changes)
        self._json(HTTPStatus.OK, found)
        self.state.push_images()


def _assignment_mac(path: str) -> str | None:
    prefix = "/api/assignments/"
    if not path.startswith(prefix) or len(path) == len(prefix):
        return None
    return unquote(path[len(prefix) :]).lower()
