"""The admin console's pages: `/`, `/login`, `/logout` and the static files under `/console/`.

The page is the template (`netboot.admin.console_page`) with the machines and
images rendered in, and the session's CSRF token for console.js. Logging in
turns the admin token into a session cookie (HttpOnly, SameSite=Strict); the
token is checked, rate-limited and refused exactly as the API's (`authorize`,
`login`). Every page carries a Content-Security-Policy that allows only our
own scripts, so text a client sent (a host name, a model) can never run.
"""

from __future__ import annotations

import hmac
from typing import Any

from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import Request

from netboot import __version__
from netboot.admin.auth import Granted, Refusal, Refused, login
from netboot.admin.console_page import (
    STATIC_TYPES,
    console_file,
    content_security_policy,
    render_console,
)
from netboot_services.admin_api import (
    SESSION_COOKIE,
    AdminState,
    access_of,
    client_host,
    credentials,
    no_store,
    refuse,
)

log = Logger(namespace="netboot.admin")


def _page_headers(request: Request, html: str) -> None:
    no_store(request)
    request.setHeader(b"Content-Type", b"text/html; charset=utf-8")
    request.setHeader(b"Content-Security-Policy", content_security_policy(html).encode())
    request.setHeader(b"X-Frame-Options", b"DENY")
    request.setHeader(b"Referrer-Policy", b"no-referrer")


def _redirect(request: Request, location: bytes) -> bytes:
    request.setResponseCode(303)
    request.setHeader(b"Location", location)
    no_store(request)
    return b""


class ConsolePage(Resource):
    """`/`: the console for a logged-in admin (or anyone, read-only, on loopback)."""

    isLeaf = True  # noqa: N815 - Twisted's name

    def __init__(self, state: AdminState) -> None:
        super().__init__()
        self.state = state
        self.template = console_file("index.html")

    def render_GET(self, request: Request) -> bytes:  # noqa: N802
        if request.postpath not in ([], [b""]):
            request.setResponseCode(404)
            return b"not found\n"
        state = self.state
        access = access_of(state, request, changes_state=False)
        if isinstance(access, Refused):
            if access.status is Refusal.UNAUTHORIZED and credentials(request).bearer is None:
                return _redirect(request, b"/login")  # a browser without a session: log in
            return refuse(request, access)
        assert isinstance(access, Granted)
        html = render_console(
            self.template,
            csrf_token=access.session.csrf if access.session is not None else "",
            version=__version__,
            machines=state.machines_json(),
            images=state.images_json(),
        )
        _page_headers(request, html)
        return html.encode()


class LoginPage(Resource):
    """`/login`: the form (GET), the token turned into a session (POST)."""

    isLeaf = True  # noqa: N815 - Twisted's name

    def __init__(self, state: AdminState) -> None:
        super().__init__()
        self.state = state
        self.html = console_file("login.html")

    def render_GET(self, request: Request) -> bytes:  # noqa: N802
        _page_headers(request, self.html)
        return self.html.encode()

    def render_POST(self, request: Request) -> bytes:  # noqa: N802
        state = self.state
        field = request.args.get(b"token") or [b""]
        offered = field[0].decode("utf-8", "replace").strip()
        address = client_host(request)
        session = login(
            state.token,
            offered,
            address=address,
            sessions=state.sessions,
            limiter=state.limiter,
            now=state.clock(),
        )
        if isinstance(session, Refused):
            log.info("console: refused a login from {address}", address=address)
            if session.status is Refusal.TOO_MANY:
                request.setHeader(b"Retry-After", str(int(session.retry_after or 60)).encode())
            request.setResponseCode(int(session.status))
            _page_headers(request, self.html)
            return self.html.encode()
        log.info("console: {who} logged in from {address}", who=session.label, address=address)
        cookie = (
            f"{SESSION_COOKIE.decode()}={session.id}; HttpOnly; SameSite=Strict; Path=/; "
            f"Max-Age={int(state.sessions.lifetime)}"
        )
        request.setHeader(b"Set-Cookie", cookie.encode())
        return _redirect(request, b"/")


class LogoutPage(Resource):
    """`POST /logout`: ends the session; carries the CSRF token (header or form field)."""

    isLeaf = True  # noqa: N815 - Twisted's name

    def __init__(self, state: AdminState) -> None:
        super().__init__()
        self.state = state

    def render_POST(self, request: Request) -> bytes:  # noqa: N802
        state = self.state
        offered = credentials(request)
        session = state.sessions.get(offered.session, state.clock()) if offered.session else None
        field = (request.args.get(b"csrf_token") or [b""])[0].decode("ascii", "replace")
        presented = offered.csrf or field
        if session is not None and hmac.compare_digest(presented, session.csrf):
            state.sessions.close(session.id)
        elif session is not None:
            return refuse(request, Refused(Refusal.CSRF))
        request.setHeader(
            b"Set-Cookie",
            f"{SESSION_COOKIE.decode()}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0".encode(),
        )
        return _redirect(request, b"/login")


class StaticFiles(Resource):
    """`/console/<name>`: the console's script and style sheet, read once, nothing else."""

    isLeaf = True  # noqa: N815 - Twisted's name

    def __init__(self) -> None:
        super().__init__()
        self.files = {
            name.encode(): (console_file(name).encode(), kind.encode())
            for name, kind in STATIC_TYPES.items()
        }

    def render_GET(self, request: Request) -> bytes:  # noqa: N802
        path = request.postpath or []
        name = path[0] if len(path) == 1 else b""
        found = self.files.get(name)
        if found is None:
            request.setResponseCode(404)
            return b"not found\n"
        body, kind = found
        request.setHeader(b"Content-Type", kind)
        request.setHeader(b"Cache-Control", b"no-cache")
        request.setHeader(b"X-Content-Type-Options", b"nosniff")
        return body


def console_pages(state: AdminState, top: Any) -> dict[bytes, Resource]:
    return {
        b"": ConsolePage(state),
        b"login": LoginPage(state),
        b"logout": LogoutPage(state),
        b"console": StaticFiles(),
    }
