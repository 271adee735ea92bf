"""The dial schedule (pure): any failure backs off, only a lasting connection resets it."""

from __future__ import annotations

from p2psync.identity import DeviceID
from p2psync.net.dialstate import DialBackoff, backoff_base_from_env

DEV = DeviceID(bytes(range(32)))


def schedule(jitter: float = 0.0) -> DialBackoff:
    return DialBackoff(base=0.5, cap=60.0, stable_after=10.0, jitter=jitter)


def test_failures_double_the_wait_up_to_the_cap() -> None:
    b = schedule()
    waits = [b.failed(DEV, 0.0, "connection refused") for _ in range(10)]
    assert waits[:5] == [0.5, 1.0, 2.0, 4.0, 8.0]
    assert waits[-1] == 60.0
    assert b.state(DEV).last_error == "connection refused"


def test_a_refusal_right_after_the_hello_backs_off_and_says_why() -> None:
    b = schedule()
    waits = []
    now = 0.0
    for _ in range(4):
        b.connected(DEV, now, 1000.0 + now)
        waits.append(b.disconnected(DEV, now + 0.01, 1000.0 + now, "peer closed: unknown device"))
        now += waits[-1]
    assert waits == [0.5, 1.0, 2.0, 4.0]
    s = b.state(DEV)
    assert s.refusal == "unknown device"
    assert s.last_error == "refused by the peer: unknown device"
    assert s.failures == 4 and s.last_seen is not None


def test_a_lasting_connection_resets_the_backoff() -> None:
    b = schedule()
    for _ in range(5):
        b.failed(DEV, 0.0, "timeout")
    b.connected(DEV, 100.0, 5000.0)
    assert b.disconnected(DEV, 111.0, 5011.0, "connection lost: reset") == 0.5
    s = b.state(DEV)
    assert s.failures == 0 and s.refusal == "" and s.last_seen == 5011.0


def test_retry_now_keeps_the_failure_count() -> None:
    b = schedule()
    b.failed(DEV, 0.0, "x")
    b.failed(DEV, 0.0, "x")
    b.retry_now()
    assert b.due_at(DEV) == 0.0
    assert b.failed(DEV, 0.0, "x") == 2.0


def test_keep_only_forgets_removed_devices() -> None:
    b = schedule()
    other = DeviceID(bytes(32))
    b.failed(DEV, 0.0, "x")
    b.failed(other, 0.0, "x")
    b.keep_only({DEV})
    assert set(b.states) == {DEV}


def test_jitter_stays_within_bounds() -> None:
    b = schedule(jitter=0.2)
    for _ in range(50):
        b.states.clear()
        assert 0.4 <= b.failed(DEV, 0.0, "x") <= 0.6


def test_backoff_base_from_env(monkeypatch) -> None:
    monkeypatch.setenv("P2PSYNC_DIAL_BACKOFF", "0.1")
    assert backoff_base_from_env() == 0.1
    for bad in ("", "abc", "-1", "0", "1e9"):
        monkeypatch.setenv("P2PSYNC_DIAL_BACKOFF", bad)
        assert backoff_base_from_env() == 0.5
