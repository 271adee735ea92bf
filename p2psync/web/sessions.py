"""Browser sessions for the web interface: random tokens held in memory, one CSRF token each.

A session is created by signing in with the API key; the browser keeps only its token, in
an HttpOnly, SameSite=Strict cookie. Sessions live in the daemon's memory (a restart signs
everyone out), expire after ``IDLE_TIMEOUT`` without use, and are capped in number (the
least recently used goes first). Pure apart from ``secrets``; the clock is passed in.
"""

from __future__ import annotations

import collections
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

IDLE_TIMEOUT = 12 * 3600.0
TICKET_LIFETIME = 120.0  # a one-time sign-in link from `p2psync open` works this long
MAX_TICKETS = 16
MAX_SESSIONS = 64
FAILURE_WINDOW = 60.0  # sign-in failures are counted over this many seconds
MAX_FAILURES = 10  # ... and sign-in is refused for the rest of the window beyond this
COOKIE_PREFIX = "p2psync_session_"


@dataclass
class Session:
    token: str
    csrf: str
    created: float
    last_used: float


class Sessions:
    def __init__(
        self, max_sessions: int = MAX_SESSIONS, idle_timeout: float = IDLE_TIMEOUT
    ) -> None:
        self.max_sessions = max_sessions
        self.idle_timeout = idle_timeout
        self._sessions: collections.OrderedDict[str, Session] = collections.OrderedDict()
        self._failures: collections.deque[float] = collections.deque(maxlen=MAX_FAILURES + 1)
        self._tickets: collections.OrderedDict[str, float] = collections.OrderedDict()

    def new_ticket(self, now: float) -> str:
        """A one-time sign-in token (for a link the CLI opens), valid ``TICKET_LIFETIME``."""
        ticket = secrets.token_urlsafe(32)
        self._tickets[ticket] = now
        while len(self._tickets) > MAX_TICKETS:
            self._tickets.popitem(last=False)
        return ticket

    def redeem(self, ticket: str | None, now: float) -> bool:
        """True once for a ticket issued less than ``TICKET_LIFETIME`` ago."""
        if not ticket:
            return False
        issued = self._tickets.pop(ticket, None)
        return issued is not None and now - issued <= TICKET_LIFETIME

    def create(self, now: float) -> Session:
        session = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), now, now)
        self._sessions[session.token] = session
        while len(self._sessions) > self.max_sessions:
            self._sessions.popitem(last=False)
        return session

    def get(self, token: str | None, now: float) -> Session | None:
        """The live session for ``token`` (refreshing its idle timer), else None."""
        if not token:
            return None
        session = self._sessions.get(token)
        if session is None:
            return None
        if now - session.last_used > self.idle_timeout:
            del self._sessions[token]
            return None
        session.last_used = now
        self._sessions.move_to_end(token)
        return session

    def end(self, token: str | None) -> None:
        if token:
            self._sessions.pop(token, None)

    def note_failure(self, now: float) -> None:
        self._failures.append(now)

    def throttled(self, now: float) -> bool:
        """True while more than ``MAX_FAILURES`` sign-ins failed in the last window."""
        recent = [t for t in self._failures if now - t < FAILURE_WINDOW]
        return len(recent) > MAX_FAILURES


def csrf_matches(session: Session, presented: str | None) -> bool:
    if not presented:
        return False
    return hmac.compare_digest(presented.encode("utf-8", "surrogateescape"), session.csrf.encode())


def cookie_name(bound: str | None) -> str:
    """One cookie per daemon: browsers share cookies between ports of a host, so two
    daemons on 127.0.0.1 would otherwise sign each other out."""
    port = (bound or "").rpartition(":")[2]
    return COOKIE_PREFIX + (port if port.isdigit() else "0")


def cookie_value(headers: Iterable[tuple[bytes, bytes]], name: str) -> str | None:
    for key, value in headers:
        if key.lower() != b"cookie":
            continue
        for part in value.decode("latin-1").split(";"):
            k, sep, v = part.strip().partition("=")
            if sep and k == name:
                return v.strip()
    return None


def set_cookie(name: str, token: str) -> str:
    return f"{name}={token}; Path=/; HttpOnly; SameSite=Strict"


def clear_cookie(name: str) -> str:
    return f"{name}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"
