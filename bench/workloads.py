"""The workloads (a)–(h): each run builds a fresh system, times one change, and measures.

A pair run: start two daemons, prove the link with a probe file, do any untimed set-up
and wait until identical, then time ``change`` until the receiver is verified identical
(:func:`bench.trees.wait_identical`). CPU seconds and wire bytes are taken over the timed
window; peak RSS (VmHWM) over each daemon's life. Test data is generated once per
workload (deterministic seeds) and hard-linked into each run, so generation is not timed.
"""

from __future__ import annotations

import os
import resource
import shutil
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from . import st
from .catalog import DATA_OF, MiB, RunResult
from .context import Context
from .errors import WorkloadFailed
from .million import run_million
from .mixed import MIXED_SYSTEMS, MIXED_WORKLOADS, MixedPair
from .p2p import P2PSyncPair, P2PSyncSingle, inprocess_scan
from .procstats import cpu_seconds, peak_rss
from .swarm import run_swarm
from .trees import (
    fingerprint,
    link_tree,
    overwrite_middle,
    wait_file,
    wait_gone,
    wait_identical,
)

# ---- pair plumbing -------------------------------------------------------------------

Pair = P2PSyncPair | st.SyncthingPair | MixedPair


def _make_pair(ctx: Context, system: str, base: Path, *, start_source: bool = True) -> Pair:
    if system == "p2psync":
        return P2PSyncPair(base, ctx.p2p_folder_options, start_source=start_source)
    if system in MIXED_SYSTEMS:
        if not start_source:
            raise WorkloadFailed(f"{system}: only workloads {', '.join(MIXED_WORKLOADS)}")
        return MixedPair(base, system, ctx.p2p_folder_options)
    return st.SyncthingPair(base, start_source=start_source)


def _confirm(pair: Pair) -> None:
    """Where Syncthing receives, its API must agree too (after the tree check)."""
    if isinstance(pair, st.SyncthingPair | MixedPair):
        pair.confirm()


def _probe(pair: Pair) -> None:
    """Prove the pair is connected and syncing: a file A→B, then its deletion."""
    token = os.urandom(16).hex().encode()
    probe = pair.a_dir / "bench-probe.txt"
    probe.write_bytes(token)
    wait_file(
        pair.b_dir / probe.name, token, timeout=90, what="connection probe", alive=pair.check_alive
    )
    probe.unlink()
    wait_gone(pair.b_dir / probe.name, timeout=60, what="connection probe")


def _move_in(src: Path, dst: Path) -> None:
    """Put prepared data into the folder with one rename (an instant change)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    os.rename(src, dst)


def _timed_pair_run(
    ctx: Context,
    wl: str,
    system: str,
    *,
    change: Callable[[Pair], None],
    setup: Callable[[Pair], None] | None = None,
    prepare: Callable[[], None] | None = None,
    data_bytes: int = 0,
    timeout: float,
) -> RunResult:
    """``prepare``: untimed, right before the change and after the flush (condition ii:
    the data it writes is still dirty in the page cache when the change happens)."""
    base = ctx.new_run_dir()
    try:
        with _make_pair(ctx, system, base) as pair:
            _probe(pair)
            if setup is not None:
                setup(pair)
                wait_identical(
                    pair.a_dir,
                    pair.b_dir,
                    timeout=timeout,
                    what=f"{wl} set-up",
                    alive=pair.check_alive,
                )
            pids = [d.pid for d in pair.daemons]
            # What set-up wrote (up to 2 GiB for d) would otherwise still be on its way to
            # the disk and throttle the timed writes: flush it first, for both systems.
            os.sync()
            if prepare is not None:
                prepare()
            cpu0 = [cpu_seconds(p) for p in pids]
            wire0 = pair.wire_bytes()
            stats: dict[str, float] = {}
            harness0 = _own_cpu()
            with _maybe_profile(ctx, system, wl, pids):
                t0 = time.monotonic()
                change(pair)
                t1 = wait_identical(
                    pair.a_dir,
                    pair.b_dir,
                    timeout=timeout,
                    what=wl,
                    alive=pair.check_alive,
                    stats=stats,
                )
            harness_cpu = stats["cpu_at_match"] - harness0
            result = RunResult(
                wl,
                system,
                True,
                seconds=t1 - t0,
                data_bytes=data_bytes,
                wire_bytes=pair.wire_bytes() - wire0,
                cpu_s=[cpu_seconds(p) - c for p, c in zip(pids, cpu0, strict=False)],
                peak_rss=[peak_rss(p) for p in pids],
                extra={"harness_cpu_s": round(harness_cpu, 3)},
            )
            _confirm(pair)
            return result
    finally:
        ctx.finish_run_dir(base, f"{wl}-{system}")


def _own_cpu() -> float:
    """CPU seconds of the harness itself (its polling, hashing and proxy threads)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class _NoProfile:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _maybe_profile(ctx: Context, system: str, wl: str, pids: list[int]):  # type: ignore[no-untyped-def]
    if ctx.profiler is None or system != "p2psync":
        return _NoProfile()
    return ctx.profiler.record(wl, pids)


# ---- the workloads ---------------------------------------------------------------------


def run_a(ctx: Context, system: str) -> RunResult:
    master = ctx.master("a") / "a"
    stage = ctx.workdir / "stage"
    shutil.rmtree(stage, ignore_errors=True)
    link_tree(master, stage)
    n = ctx.sizes.small_files
    size = sum(v[1] for v in fingerprint(master).values())
    return _timed_pair_run(
        ctx,
        "a",
        system,
        change=lambda p: _move_in(stage, p.a_dir / "a"),
        data_bytes=size,
        timeout=ctx.timeout(size, n),
    )


def run_b(ctx: Context, system: str) -> RunResult:
    master = ctx.master("b") / "b"
    stage = ctx.workdir / "stage"
    shutil.rmtree(stage, ignore_errors=True)
    link_tree(master, stage)
    size = ctx.sizes.big_count * ctx.sizes.big_size
    return _timed_pair_run(
        ctx,
        "b",
        system,
        change=lambda p: _move_in(stage, p.a_dir / "b"),
        data_bytes=size,
        timeout=ctx.timeout(size, ctx.sizes.big_count),
    )


def run_c(ctx: Context, system: str) -> RunResult:
    master = ctx.master("c") / "big.bin"
    stage = ctx.workdir / "stage.bin"
    stage.unlink(missing_ok=True)
    os.link(master, stage)
    size = ctx.sizes.huge_size
    return _timed_pair_run(
        ctx,
        "c",
        system,
        change=lambda p: _move_in(stage, p.a_dir / "big.bin"),
        data_bytes=size,
        timeout=ctx.timeout(size, 1),
    )


def _data_of(ctx: Context, wl: str) -> tuple[Path, str, int, int]:
    """(master path, its name in the folder, bytes, files) of (a), (b) or (c)'s data."""
    base = DATA_OF.get(wl, wl)
    s = ctx.sizes
    if base == "a":
        master = ctx.master("a") / "a"
        return master, "a", sum(v[1] for v in fingerprint(master).values()), s.small_files
    if base == "b":
        return ctx.master("b") / "b", "b", s.big_count * s.big_size, s.big_count
    if base == "i":
        master = ctx.master("i") / "i"
        return master, "i", sum(v[1] for v in fingerprint(master).values()), s.scale_files
    return ctx.master("c") / "big.bin", "big.bin", s.huge_size, 1


def _copy_data(master: Path, dest: Path) -> None:
    """A real copy (every byte written now, left dirty in the page cache)."""
    if dest.is_dir():
        shutil.rmtree(dest)
    dest.unlink(missing_ok=True)
    if master.is_dir():
        shutil.copytree(master, dest)
    else:
        shutil.copyfile(master, dest)


def run_fresh(ctx: Context, system: str, wl: str) -> RunResult:
    """Condition (ii): the data is written (copied) right before the change and not
    flushed, then moved into the running pair with one rename."""
    master, name, size, files = _data_of(ctx, wl)
    stage = ctx.workdir / "stage"
    return _timed_pair_run(
        ctx,
        wl,
        system,
        prepare=lambda: _copy_data(master, stage),
        change=lambda p: _move_in(stage, p.a_dir / name),
        data_bytes=size,
        timeout=ctx.timeout(size, files),
    )


def drop_caches() -> None:
    """Flush, then drop the page cache, dentries and inodes (root only)."""
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError as exc:
        raise WorkloadFailed(f"cannot drop the page cache (root needed): {exc}") from exc


def run_source_start(ctx: Context, system: str, wl: str) -> RunResult:
    """Condition (iii): the receiver runs, the source holds the data in its folder and
    is started; timed from its process start (start-up, initial scan, transfer) until
    the receiver is identical. ``cold``: caches dropped right before the start."""
    cold = wl.endswith("cold")
    master, name, size, files = _data_of(ctx, wl)
    base = ctx.new_run_dir()
    timeout = ctx.timeout(size, files)
    try:
        with _make_pair(ctx, system, base, start_source=False) as pair:
            if master.is_dir():
                link_tree(master, pair.a_dir / name)
            else:
                os.link(master, pair.a_dir / name)
            if cold:
                drop_caches()
            else:
                os.sync()
            wire0 = pair.wire_bytes()
            b_pid = pair.daemons[0].pid
            b_cpu0 = cpu_seconds(b_pid)
            harness0 = _own_cpu()
            t0 = time.monotonic()
            pair.start_source()
            pids = [d.pid for d in pair.daemons]
            stats: dict[str, float] = {}
            with _maybe_profile(ctx, system, wl, pids):
                t1 = wait_identical(
                    pair.a_dir,
                    pair.b_dir,
                    timeout=timeout,
                    what=wl,
                    alive=pair.check_alive,
                    stats=stats,
                )
            harness_cpu = stats["cpu_at_match"] - harness0
            a_pid = next(p for p in pids if p != b_pid)
            result = RunResult(
                wl,
                system,
                True,
                seconds=t1 - t0,
                data_bytes=size,
                wire_bytes=pair.wire_bytes() - wire0,
                cpu_s=[cpu_seconds(a_pid), cpu_seconds(b_pid) - b_cpu0],
                peak_rss=[peak_rss(a_pid), peak_rss(b_pid)],
                extra={"cold_cache": cold, "harness_cpu_s": round(harness_cpu, 3)},
            )
            _confirm(pair)
            return result
    finally:
        ctx.finish_run_dir(base, f"{wl}-{system}")


def run_d(ctx: Context, system: str) -> RunResult:
    master = ctx.master("d") / "big.bin"
    stage = ctx.workdir / "stage.bin"
    stage.unlink(missing_ok=True)
    shutil.copyfile(master, stage)  # a real copy: this one is edited in place
    s = ctx.sizes
    timeout = ctx.timeout(s.huge_size, 1)
    result = _timed_pair_run(
        ctx,
        "d",
        system,
        setup=lambda p: _move_in(stage, p.a_dir / "big.bin"),
        change=lambda p: overwrite_middle(p.a_dir / "big.bin", s.delta_size, seed=4),
        data_bytes=s.delta_size,
        timeout=timeout,
    )
    return result


def run_e(ctx: Context, system: str) -> RunResult:
    master = ctx.master("e") / "tree"
    stage = ctx.workdir / "stage"
    shutil.rmtree(stage, ignore_errors=True)
    link_tree(master, stage)
    n = ctx.sizes.rename_files
    return _timed_pair_run(
        ctx,
        "e",
        system,
        setup=lambda p: _move_in(stage, p.a_dir / "tree"),
        change=lambda p: os.rename(p.a_dir / "tree" / "dir1", p.a_dir / "tree" / "dir2"),
        timeout=ctx.timeout(8 * 1024 * n, n),
    )


def run_g(ctx: Context, system: str) -> RunResult:
    """Latency: n small files written on A one after another, each timed until on B."""
    base = ctx.new_run_dir()
    n = ctx.sizes.latency_n
    try:
        with _make_pair(ctx, system, base) as pair:
            _probe(pair)
            pids = [d.pid for d in pair.daemons]
            cpu0 = [cpu_seconds(p) for p in pids]
            wire0 = pair.wire_bytes()
            latencies = []
            with _maybe_profile(ctx, system, "g", pids):
                for i in range(n):
                    content = f"latency probe {i:04d} {os.urandom(8).hex()}\n".ljust(
                        100, "."
                    ).encode()
                    name = f"lat-{i:04d}.txt"
                    tmp = base / name
                    tmp.write_bytes(content)
                    t0 = time.monotonic()
                    os.rename(tmp, pair.a_dir / name)
                    t1 = wait_file(
                        pair.b_dir / name,
                        content,
                        timeout=60,
                        what=f"g #{i}",
                        alive=pair.check_alive,
                    )
                    latencies.append(t1 - t0)
            return RunResult(
                "g",
                system,
                True,
                seconds=statistics.median(latencies),
                wire_bytes=pair.wire_bytes() - wire0,
                cpu_s=[cpu_seconds(p) - c for p, c in zip(pids, cpu0, strict=False)],
                peak_rss=[peak_rss(p) for p in pids],
                extra={"latencies": [round(x, 4) for x in latencies], "max": max(latencies)},
            )
    finally:
        ctx.finish_run_dir(base, f"g-{system}")


def _count_files(root: Path) -> tuple[int, int]:
    fp = fingerprint(root)
    files = [v for v in fp.values() if v[0] == "file"]
    return len(files), sum(v[1] for v in files)


def run_scan(ctx: Context, system: str, wl: str) -> RunResult:
    """(f) initial scan, (h) rescan of an unchanged tree: one node, watcher off."""
    root = ctx.master(wl)
    files, size = _count_files(root)
    timeout = ctx.timeout(size, files)
    work = ctx.new_run_dir()
    # As before every timed window: what the bench wrote (the tree itself, minutes ago
    # at most) must not be written back during it, stalling the index's own writes.
    os.sync()
    try:
        if system == "p2psync" and ctx.p2p_scan == "daemon":
            return _scan_on_daemon(wl, work, root, files, size, timeout)
        if system == "p2psync":
            out = inprocess_scan(root, work, "scan" if wl == "f" else "rescan", timeout)
            if wl == "f" and out["entries"] < files:
                raise WorkloadFailed(f"scan stored {out['entries']} entries for {files} files")
            if wl == "h" and out["entries"] != 0:
                raise WorkloadFailed(f"rescan of an unchanged tree stored {out['entries']} changes")
            return RunResult(
                wl,
                system,
                True,
                seconds=out["seconds"],
                data_bytes=size if wl == "f" else 0,
                peak_rss=[int(out["peak_rss"])],
                cpu_s=[out["cpu_s"]],
                extra={k: v for k, v in out.items() if k not in ("seconds", "peak_rss", "cpu_s")},
            )
        with st.SyncthingSingle(work) as node:
            extra: dict[str, Any] = {}
            cpu0 = cpu_seconds(node.pid)
            t0 = time.monotonic()
            node.add_folder(root)
            node.node.wait_scanned(files, timeout)
            t1 = time.monotonic()
            if wl == "h":
                extra["initial_seconds"] = t1 - t0
                cpu0 = cpu_seconds(node.pid)
                t0 = time.monotonic()
                node.rescan(timeout)
                node.node.wait_scanned(files, timeout)
                t1 = time.monotonic()
            return RunResult(
                wl,
                system,
                True,
                seconds=t1 - t0,
                data_bytes=size if wl == "f" else 0,
                peak_rss=[peak_rss(node.pid)],
                cpu_s=[cpu_seconds(node.pid) - cpu0],
                extra=extra,
            )
    finally:
        ctx.finish_run_dir(work, f"{wl}-{system}")
        shutil.rmtree(root / ".stfolder", ignore_errors=True)
        for entry in root.iterdir():  # p2psync's own files (marker, index of ignores)
            if entry.name.startswith(".p2p"):
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()


def _scan_on_daemon(
    wl: str, work: Path, root: Path, files: int, size: int, timeout: float
) -> RunResult:
    """(f)/(h) on a running p2psync daemon, followed from the outside as Syncthing's are:
    the folder added over the API until its view says the initial scan is complete with
    every file (f); then a full scan requested until its completion event (h)."""
    with P2PSyncSingle(work) as node:
        extra: dict[str, Any] = {"measured": "daemon via the control API"}
        cpu0 = cpu_seconds(node.pid)
        t0 = time.monotonic()
        node.add_folder(root)
        node.wait_initial_scan(files, timeout)
        t1 = time.monotonic()
        if wl == "h":
            extra["initial_seconds"] = t1 - t0
            cpu0 = cpu_seconds(node.pid)
            t0 = time.monotonic()
            node.rescan(timeout)
            t1 = time.monotonic()
        return RunResult(
            wl,
            "p2psync",
            True,
            seconds=t1 - t0,
            data_bytes=size if wl == "f" else 0,
            peak_rss=[peak_rss(node.pid)],
            cpu_s=[cpu_seconds(node.pid) - cpu0],
            extra=extra,
        )


def _conditioned(
    runner: Callable[[Context, str, str], RunResult], wl: str, ctx: Context, system: str
) -> RunResult:
    return runner(ctx, system, wl)


def run_j(ctx: Context, system: str) -> RunResult:
    files = ctx.sizes.million_files
    base = ctx.new_run_dir()
    try:
        fields = run_million(
            system, base, ctx.master("j") / "tree", files, ctx.timeout(files * 512, files)
        )
        return RunResult("j", system, True, **fields)
    finally:
        ctx.finish_run_dir(base, f"j-{system}")


def run_k(ctx: Context, system: str, wl: str) -> RunResult:
    s = ctx.sizes
    data = s.swarm_files * MiB + s.swarm_big
    base = ctx.new_run_dir()
    try:
        fields = run_swarm(
            system,
            base,
            ctx.master("k"),
            fetch=wl == "k",
            timeout=ctx.timeout(3 * data, s.swarm_files),
            folder_options=ctx.p2p_folder_options,
            delta_size=s.delta_size,
            data_bytes=data,
        )
        return RunResult(wl, system, True, **fields)
    finally:
        ctx.finish_run_dir(base, f"{wl}-{system}")


RUNNERS: dict[str, Callable[[Context, str], RunResult]] = {
    "a": run_a,
    "b": run_b,
    "c": run_c,
    **{wl: partial(_conditioned, run_fresh, wl) for wl in ("a2", "b2", "c2")},
    **{
        wl: partial(_conditioned, run_source_start, wl)
        for wl in ("a3", "b3", "b3cold", "c3", "c3cold", "i")
    },
    "d": run_d,
    "e": run_e,
    "f": lambda ctx, system: run_scan(ctx, system, "f"),
    "g": run_g,
    "h": lambda ctx, system: run_scan(ctx, system, "h"),
    "j": run_j,
    "k": lambda ctx, system: run_k(ctx, system, "k"),
    "k2": lambda ctx, system: run_k(ctx, system, "k2"),
}


def run_one(ctx: Context, wl: str, system: str) -> RunResult:
    """One run; any failure becomes a failed RunResult with the reason."""
    try:
        return RUNNERS[wl](ctx, system)
    except WorkloadFailed as exc:
        return RunResult(wl, system, False, error=str(exc))
    except Exception as exc:  # noqa: BLE001 - a harness bug must not stop the other runs
        return RunResult(wl, system, False, error=f"{type(exc).__name__}: {exc}")
