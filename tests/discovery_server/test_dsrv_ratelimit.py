"""The per-source token bucket."""

from __future__ import annotations

import pytest

from discovery_server.metrics import Metrics
from discovery_server.ratelimit import RateLimiter


def test_burst_then_refusal_then_refill() -> None:
    limiter = RateLimiter(rate=2.0, burst=3)
    assert [limiter.acquire("a", 0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.acquire("a", 0.0) == pytest.approx(0.5)
    assert limiter.acquire("b", 0.0) == 0.0  # other sources are unaffected
    assert limiter.acquire("a", 0.5) == 0.0  # one token back after 1 / rate seconds
    assert limiter.acquire("a", 0.5) > 0.0
    assert [limiter.acquire("a", 100.0) for _ in range(4)].count(0.0) == 3  # capped at burst


def test_table_is_bounded() -> None:
    limiter = RateLimiter(rate=1.0, burst=1, max_keys=2)
    limiter.acquire("a", 0.0)
    limiter.acquire("b", 0.0)
    limiter.acquire("a", 0.0)  # refused, but refreshes "a"
    limiter.acquire("c", 0.0)  # evicts the least recently used: "b"
    assert len(limiter) == 2
    assert limiter.acquire("b", 0.0) == 0.0  # forgotten source starts with a full bucket
    assert len(limiter) == 2


def test_metrics_render_prometheus_text() -> None:
    metrics = Metrics()
    metrics.inc("announces_total")
    metrics.reject("bad-signature")
    metrics.reject("bad-signature")
    text = metrics.render(devices=7)
    assert "# TYPE p2psync_discovery_announces_total counter" in text
    assert "p2psync_discovery_announces_total 1\n" in text
    assert 'p2psync_discovery_rejects_total{reason="bad-signature"} 2\n' in text
    assert "# TYPE p2psync_discovery_devices gauge\np2psync_discovery_devices 7\n" in text
    with pytest.raises(KeyError):
        metrics.inc("no_such_counter")
