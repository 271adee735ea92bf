"""Per-device dial state: when to dial next, and why the last attempt did not work (pure).

Any failure to get a working connection backs off exponentially: a TCP or TLS error, a
failed Hello, and also a connection the peer closes at once (it refused us at the
application level: "unknown device", "device paused"). The backoff resets only after a
connection has stayed up for ``stable_after`` seconds. Without this a refusing peer was
dialled every 0.5 s (87 attempts in 15 s, a WARNING each on its side).

Times: ``now`` is the trio clock (scheduling), ``wall`` is ``time.time()`` (shown to the
user as "last seen"); both are passed in.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass

from ..identity import DeviceID

ENV_DIAL_BACKOFF = "P2PSYNC_DIAL_BACKOFF"  # the first backoff in seconds (tests use a short one)
BACKOFF_MIN = 0.5
BACKOFF_MAX = 60.0
STABLE_AFTER = 10.0
PEER_CLOSED = "peer closed: "


def backoff_base_from_env(default: float = BACKOFF_MIN) -> float:
    """``$P2PSYNC_DIAL_BACKOFF`` if it is a positive number, else ``default``."""
    try:
        value = float(os.environ.get(ENV_DIAL_BACKOFF, ""))
    except ValueError:
        return default
    return value if 0 < value <= BACKOFF_MAX else default


@dataclass
class DialState:
    """What the dialler knows about one device."""

    failures: int = 0  # consecutive attempts that did not give a working connection
    next_attempt: float = 0.0  # trio clock
    last_error: str = ""
    refusal: str = ""  # the peer's own reason when it closed a fresh connection
    last_seen: float | None = None  # wall clock: the last time a connection was up
    connected_since: float | None = None  # trio clock, while connected


class DialBackoff:
    """The dial schedule of every device (no I/O, no clock of its own)."""

    def __init__(
        self,
        base: float = BACKOFF_MIN,
        cap: float = BACKOFF_MAX,
        stable_after: float = STABLE_AFTER,
        jitter: float = 0.2,
    ) -> None:
        self.base = base
        self.cap = cap
        self.stable_after = stable_after
        self.jitter = jitter
        self.states: dict[DeviceID, DialState] = {}

    def state(self, device: DeviceID) -> DialState:
        return self.states.setdefault(device, DialState())

    def due_at(self, device: DeviceID) -> float:
        return self.state(device).next_attempt

    def delay(self, failures: int) -> float:
        """The wait after ``failures`` consecutive failures (>= 1), jittered."""
        exact = min(self.cap, self.base * 2 ** min(failures - 1, 32))
        return exact * random.uniform(1 - self.jitter, 1 + self.jitter)

    def failed(self, device: DeviceID, now: float, error: str, refusal: str = "") -> float:
        """An attempt failed; returns how long until the next one."""
        s = self.state(device)
        s.failures += 1
        s.last_error = error
        s.refusal = refusal
        wait = self.delay(s.failures)
        s.next_attempt = now + wait
        return wait

    def connected(self, device: DeviceID, now: float, wall: float) -> None:
        s = self.state(device)
        s.connected_since = now
        s.last_seen = wall

    def disconnected(self, device: DeviceID, now: float, wall: float, reason: str) -> float:
        """A connection ended; a short one counts as a failure (and a "peer closed: X" in
        it is the peer refusing us for X). Returns how long until the next dial."""
        s = self.state(device)
        since, s.connected_since = s.connected_since, None
        s.last_seen = wall
        if since is not None and now - since >= self.stable_after:
            s.failures = 0
            s.last_error = reason
            s.refusal = ""
            s.next_attempt = now + self.base
            return self.base
        refusal = reason[len(PEER_CLOSED) :] if reason.startswith(PEER_CLOSED) else ""
        error = f"refused by the peer: {refusal}" if refusal else reason
        return self.failed(device, now, error, refusal)

    def retry_now(self) -> None:
        """Config or addresses changed: every device may be dialled at once (the failure
        counts stay, so a peer that still refuses is backed off again)."""
        for s in self.states.values():
            s.next_attempt = 0.0

    def keep_only(self, devices: set[DeviceID]) -> None:
        """Forget devices no longer configured."""
        for device in set(self.states) - devices:
            del self.states[device]
