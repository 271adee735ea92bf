"""CompletionCache: a peer's need is a pass over the whole folder, so while a big folder
syncs (every poll sees the indexes moved) a result is reused for a while instead of
making each poll pay for a pass."""

from __future__ import annotations

from p2psync.api.progress import CompletionCache
from p2psync.index import Counts

DEVICE = b"\x01" * 32


class MovingIndex:
    """The two calls the cache makes; every pass "takes" ``pass_s`` of the fake clock."""

    def __init__(self, clock: list[float], pass_s: float) -> None:
        self.clock = clock
        self.pass_s = pass_s
        self.sequence = 0
        self.passes = 0
        self.key_queries = 0

    def devices(self, folder: str) -> list[bytes]:
        return [DEVICE]

    def max_sequence(self, folder: str, device: bytes) -> int:
        self.key_queries += 1
        return self.sequence

    def need_counts_of(self, folder: str, device: bytes) -> Counts:
        self.passes += 1
        self.clock[0] += self.pass_s
        return Counts(files=self.sequence)


def _cache(clock: list[float]) -> CompletionCache:
    return CompletionCache(reuse_factor=10, reuse_min_s=2, clock=lambda: clock[0])


def test_an_unchanged_folder_is_counted_once() -> None:
    clock = [0.0]
    index = MovingIndex(clock, pass_s=0.1)
    cache = _cache(clock)
    for _ in range(5):
        clock[0] += 100
        assert cache.need_of(index, "f", DEVICE) == Counts()  # type: ignore[arg-type]
    assert index.passes == 1


def test_a_folder_that_keeps_moving_is_counted_at_most_every_ten_passes() -> None:
    clock = [0.0]
    index = MovingIndex(clock, pass_s=3.0)  # a million entries on a busy machine
    cache = _cache(clock)
    seen = []
    for _ in range(120):  # polled every second for two minutes, the index moving
        index.sequence += 1
        seen.append(cache.need_of(index, "f", DEVICE).files)  # type: ignore[arg-type]
        clock[0] += 1.0
    # a pass of 3 s is reused for 30 s: about one pass in every 30 polls
    assert index.passes <= 5
    assert seen[-1] < index.sequence  # shown behind while it syncs...
    index.sequence += 1
    clock[0] += 31
    assert cache.need_of(index, "f", DEVICE).files == index.sequence  # type: ignore[arg-type]


def test_a_cheap_pass_is_reused_for_the_minimum_only() -> None:
    clock = [0.0]
    index = MovingIndex(clock, pass_s=0.001)
    cache = _cache(clock)
    cache.need_of(index, "f", DEVICE)  # type: ignore[arg-type]
    index.sequence += 1
    clock[0] += 1.0
    assert cache.need_of(index, "f", DEVICE).files == 0  # type: ignore[arg-type]
    clock[0] += 1.5
    assert cache.need_of(index, "f", DEVICE).files == 1  # type: ignore[arg-type]
    assert index.passes == 2


def test_a_reused_result_costs_no_query() -> None:
    clock = [0.0]
    index = MovingIndex(clock, pass_s=0.5)
    cache = _cache(clock)
    cache.need_of(index, "f", DEVICE)  # type: ignore[arg-type]
    queries = index.key_queries
    for _ in range(4):  # polls within the 5 s a pass of 0.5 s is reused for
        clock[0] += 1.0
        cache.need_of(index, "f", DEVICE)  # type: ignore[arg-type]
    assert index.key_queries == queries
