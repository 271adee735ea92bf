"""The web interface's session store: expiry, caps, one-time tickets, cookie parsing."""

from __future__ import annotations

from p2psync.web.sessions import (
    TICKET_LIFETIME,
    Sessions,
    cookie_name,
    cookie_value,
    csrf_matches,
    set_cookie,
)


def test_sessions_expire_when_idle_and_are_capped() -> None:
    s = Sessions(max_sessions=2, idle_timeout=100.0)
    a = s.create(0.0)
    assert s.get(a.token, 90.0) is a  # use refreshes the idle timer
    assert s.get(a.token, 180.0) is a
    assert s.get(a.token, 281.0) is None and s.get(a.token, 0.0) is None  # gone for good
    b, c, d = s.create(300.0), s.create(301.0), s.create(302.0)
    assert s.get(b.token, 303.0) is None  # the least recently used went first
    assert s.get(c.token, 303.0) is c and s.get(d.token, 303.0) is d
    s.end(c.token)
    assert s.get(c.token, 304.0) is None
    assert s.get(None, 0.0) is None and s.get("made-up", 0.0) is None


def test_csrf_token_is_per_session() -> None:
    s = Sessions()
    a, b = s.create(0.0), s.create(0.0)
    assert csrf_matches(a, a.csrf) and not csrf_matches(a, b.csrf)
    assert not csrf_matches(a, None) and not csrf_matches(a, "")


def test_tickets_work_once_and_expire() -> None:
    s = Sessions()
    t = s.new_ticket(0.0)
    assert s.redeem(t, 1.0) and not s.redeem(t, 1.0)
    late = s.new_ticket(0.0)
    assert not s.redeem(late, TICKET_LIFETIME + 1)
    assert not s.redeem(None, 0.0)


def test_cookies() -> None:
    name = cookie_name("127.0.0.1:8385")
    assert name == "p2psync_session_8385" and cookie_name(None) == "p2psync_session_0"
    header = set_cookie(name, "tok")
    assert "HttpOnly" in header and "SameSite=Strict" in header
    headers = [(b"cookie", b"other=1; p2psync_session_8385=tok; p2psync_session_9=x")]
    assert cookie_value(headers, name) == "tok"
    assert cookie_value(headers, "p2psync_session_1") is None
