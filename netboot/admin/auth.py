"""Who may call the admin API: the bearer token, console sessions, CSRF, and the 401 limit.

One decision, `authorize`, made from values: the credentials a request
carries, whether it changes state, whether reads need a login (they do when
`admin.listen` is not loopback), the sessions open and the failures counted.

* **Token.** `Authorization: Bearer <token>`, compared in constant time. A
  wrong one on a read that needs no login (loopback) is ignored, not refused.
* **Sessions.** The console logs in with the same token once (`POST /login`)
  and then carries a random session ID in an HttpOnly, SameSite=Strict
  cookie; the token itself never sits in the browser. Sessions live in
  memory: a restart logs everyone out, which costs a login, not a secret.
* **CSRF.** A cookie rides along with any request the browser sends, so a
  cookie-authenticated change must also carry the session's own CSRF token
  in `X-CSRF-Token`, which only a page of ours can read (SameSite=Strict is
  the first guard, this is the second). Bearer calls need none: a browser
  never adds that header on its own.
* **Failures.** A wrong or missing credential gets 401 and nothing more; more
  than `limit` of them from one address within `window` seconds get 429
  until the window has passed, correct token or not, so the limit cannot be
  used to probe for it.
"""

from __future__ import annotations

import hmac
import secrets
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum

FAILURE_LIMIT = 10
FAILURE_WINDOW = 60.0
TRACKED_ADDRESSES = 4096
"""Addresses whose failures are remembered; the oldest is forgotten first."""


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a request carries."""

    bearer: str | None = None
    """The token after `Authorization: Bearer`."""
    session: str | None = None
    """The `netboot_session` cookie."""
    csrf: str | None = None
    """The `X-CSRF-Token` header."""


@dataclass(frozen=True, slots=True)
class Session:
    id: str
    csrf: str
    expires: float

    @property
    def label(self) -> str:
        """How the audit log names it: never the whole ID, which is a credential."""
        return f"session {self.id[:8]}"


class SessionTable:
    """Console logins, in memory; a lapsed session is refused and forgotten."""

    def __init__(
        self,
        lifetime: float,
        new_secret: Callable[[], str] = lambda: secrets.token_urlsafe(32),
        limit: int = 1024,
    ) -> None:
        self.lifetime = lifetime
        self._new_secret = new_secret
        self._limit = limit
        self._sessions: OrderedDict[str, Session] = OrderedDict()

    def open(self, now: float) -> Session:
        session = Session(self._new_secret(), self._new_secret(), now + self.lifetime)
        self._sessions[session.id] = session
        while len(self._sessions) > self._limit:
            self._sessions.popitem(last=False)
        return session

    def get(self, session_id: str, now: float) -> Session | None:
        session = self._sessions.get(session_id)
        if session is None:
            return None
        if session.expires <= now:
            del self._sessions[session_id]
            return None
        return session

    def close(self, session_id: str) -> None:
        self._sessions.pop(session_id, None)


class FailureLimiter:
    """Failed attempts per address within a sliding window."""

    def __init__(
        self,
        limit: int = FAILURE_LIMIT,
        window: float = FAILURE_WINDOW,
        addresses: int = TRACKED_ADDRESSES,
    ) -> None:
        self.limit = limit
        self.window = window
        self._addresses = addresses
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, address: str, now: float) -> deque[float]:
        times = self._failures.get(address)
        if times is None:
            return deque()
        while times and times[0] <= now - self.window:
            times.popleft()
        return times

    def blocked(self, address: str, now: float) -> float | None:
        """Seconds until `address` may try again, or None when it may now."""
        times = self._recent(address, now)
        if len(times) < self.limit:
            return None
        return max(1.0, times[-self.limit] + self.window - now)

    def failed(self, address: str, now: float) -> None:
        times = self._failures.pop(address, None) or deque()
        times.append(now)
        while len(times) > self.limit:
            times.popleft()
        self._failures[address] = times
        while len(self._failures) > self._addresses:
            self._failures.popitem(last=False)


class Refusal(IntEnum):
    """The HTTP status of a refusal."""

    UNAUTHORIZED = 401
    CSRF = 403
    TOO_MANY = 429


@dataclass(frozen=True, slots=True)
class Granted:
    who: str
    """For the audit log: `token`, `session 1a2b3c4d`, or `anonymous` (loopback reads)."""
    session: Session | None = None


@dataclass(frozen=True, slots=True)
class Refused:
    status: Refusal
    retry_after: float | None = None


Access = Granted | Refused


def token_matches(token: str, offered: str | None) -> bool:
    return offered is not None and hmac.compare_digest(token.encode(), offered.encode())


def authorize(
    token: str,
    credentials: Credentials,
    *,
    changes_state: bool,
    reads_need_login: bool,
    address: str,
    sessions: SessionTable,
    limiter: FailureLimiter,
    now: float,
) -> Access:
    """Whether this request may go on, and as whom. Counts a failure when it may not."""
    wait = limiter.blocked(address, now)
    if wait is not None:
        return Refused(Refusal.TOO_MANY, wait)
    if credentials.bearer is not None:
        if token_matches(token, credentials.bearer):
            return Granted("token")
        if not changes_state and not reads_need_login:
            # A read anyone may make: a stale token (another daemon's, a CLI's default
            # file) must not lock it out, and the answer says nothing about the token.
            return Granted("anonymous")
        limiter.failed(address, now)
        return Refused(Refusal.UNAUTHORIZED)
    session = sessions.get(credentials.session, now) if credentials.session else None
    if session is not None:
        if changes_state and not (
            credentials.csrf is not None and hmac.compare_digest(session.csrf, credentials.csrf)
        ):
            return Refused(Refusal.CSRF)
        return Granted(session.label, session)
    if not changes_state and not reads_need_login:
        return Granted("anonymous")
    limiter.failed(address, now)
    return Refused(Refusal.UNAUTHORIZED)


def login(
    token: str,
    offered: str | None,
    *,
    address: str,
    sessions: SessionTable,
    limiter: FailureLimiter,
    now: float,
) -> Session | Refused:
    """`POST /login`: a new session for the right token."""
    wait = limiter.blocked(address, now)
    if wait is not None:
        return Refused(Refusal.TOO_MANY, wait)
    if token_matches(token, offered):
        return sessions.open(now)
    limiter.failed(address, now)
    return Refused(Refusal.UNAUTHORIZED)
