"""Transfer rates from successive byte-counter samples (pure; ``now`` is passed in)."""

from __future__ import annotations

import collections
from dataclasses import dataclass

WINDOW = 10.0  # seconds of samples a rate is computed over
MIN_SPAN = 0.5  # below this, samples are too close: use the average since connecting
IDLE_AFTER = 1.0  # a counter unchanged since a sample this old: nothing moves, rate 0


@dataclass(frozen=True)
class Sample:
    time: float
    bytes_in: int
    bytes_out: int


class RateMeter:
    """Per-key byte rates: the slope over the last ``WINDOW`` seconds of samples, or the
    average since ``connected_at`` while there is not yet a long enough history. A
    direction whose counter has not moved since a sample ``IDLE_AFTER`` seconds old
    reads 0 at once: a finished transfer does not keep showing a
    decaying rate for the rest of the window."""

    def __init__(self, window: float = WINDOW, max_keys: int = 1000) -> None:
        self.window = window
        self.max_keys = max_keys
        self._samples: dict[object, collections.deque[Sample]] = {}

    def sample(
        self, key: object, now: float, bytes_in: int, bytes_out: int, connected_at: float
    ) -> tuple[float, float]:
        """Record counters for ``key`` and return (in, out) bytes per second."""
        history = self._samples.setdefault(key, collections.deque(maxlen=64))
        if history and (bytes_in < history[-1].bytes_in or bytes_out < history[-1].bytes_out):
            history.clear()  # a new connection: counters restarted
        if not history or now - history[-1].time >= MIN_SPAN:
            history.append(Sample(now, bytes_in, bytes_out))
        still = next((h for h in reversed(history) if now - h.time >= IDLE_AFTER), None)
        in_rate, out_rate = self._rates(history, now, bytes_in, bytes_out, connected_at)
        if still is not None:
            if bytes_in == still.bytes_in:
                in_rate = 0.0
            if bytes_out == still.bytes_out:
                out_rate = 0.0
        return in_rate, out_rate

    def _rates(
        self,
        history: collections.deque[Sample],
        now: float,
        bytes_in: int,
        bytes_out: int,
        connected_at: float,
    ) -> tuple[float, float]:
        # keep one sample at or before the window's start as the base of the slope
        while len(history) > 2 and now - history[1].time >= self.window:
            history.popleft()
        if len(self._samples) > self.max_keys:
            self._samples.pop(next(iter(self._samples)))
        first = history[0]
        span = now - first.time
        if span >= MIN_SPAN:
            return (bytes_in - first.bytes_in) / span, (bytes_out - first.bytes_out) / span
        since = now - connected_at
        if since <= 0:
            return 0.0, 0.0
        return bytes_in / since, bytes_out / since

    def forget(self, key: object) -> None:
        self._samples.pop(key, None)
