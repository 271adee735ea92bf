"""Scanner benchmark (issue 3): ``python -m bench.scan_bench [--quick]``.

The scanner and index alone, in a child process each (``--child``: ``scanner.scan.scan``
over ``BasicFS`` into a fresh SQLite ``IndexStore`` through ``sync.scan_round.IndexView``,
two hash threads, every batch stored with ``update_local`` — what the folder runner does
for a full scan, without the daemon). Workloads, on real files in a temp directory
(page cache warm: each tree is scanned right after it is written):

* initial scan of many small files (1–8 KiB, nested directories);
* initial scan of big files (random data);
* rescan of an unchanged tree of small files (the first scan is not timed);
* peak RSS (VmHWM of the child) of an initial scan of a synthetic tree of empty files in
  1,000 directories, at two sizes, to show it does not grow with the folder.

Limits, on the same files: ``find -print0 | xargs -0 -P2 sha256sum`` (two cores) for the
hashing scans, ``find -printf`` (one lstat per entry, no hashing, no index) for the
rescan. Prints a markdown table, writes JSON to ``bench/results/`` and the table between
the ``scan`` markers of docs/performance.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.errors import BenchError
from bench.procstats import machine
from bench.trees import make_big_files, make_small_files

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DOC = ROOT / "docs" / "performance.md"
BEGIN = "<!-- scan:begin -->"
END = "<!-- scan:end -->"
MiB = 1 << 20
GiB = 1 << 30
RSS_DIRS = 1_000
CHILD_TIMEOUT = 3600.0
FOLDER = "bench"
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL


@dataclass(frozen=True)
class Sizes:
    small_files: int
    big_files: int
    big_bytes: int
    rescan_files: int
    rss_files: tuple[int, ...]


# RSS at two sizes: 1,000,000 empty files take ~70 s to create here (two threads).
FULL = Sizes(10_000, 200, GiB, 100_000, (200_000, 1_000_000))
QUICK = Sizes(2_000, 20, 64 * MiB, 10_000, (10_000, 100_000))


# ---- the child: one scan, measured from inside ---------------------------------------------


def _vmhwm() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def scan_once(store: Any, root: Path, short_id: int) -> tuple[int, int]:
    """One full scan of ``root`` stored in ``store``; (entries stored, bytes hashed)."""
    from p2psync.fs.basic import BasicFS
    from p2psync.scanner.scan import scan
    from p2psync.sync.scan_round import IndexView

    stored = hashed = 0
    batches = scan(
        BasicFS(root),
        IndexView(store, FOLDER),
        short_id=short_id,
        now=lambda: int(time.time()),
        hash_workers=2,
    )
    for batch in batches:
        if batch.files:
            done = store.update_local(FOLDER, batch.files)
            stored += len(done)
            hashed += sum(f.size for f in done)
    return stored, hashed


def child(mode: str, root: Path, db: Path) -> dict[str, float]:
    """``scan``: one timed initial scan. ``rescan``: one untimed scan, then a timed one."""
    from p2psync.identity import generate_identity
    from p2psync.index.store import IndexStore

    device = generate_identity().device_id
    out: dict[str, float] = {}
    with IndexStore.open(db, device.raw) as store:
        if mode == "rescan":
            t0 = time.perf_counter()
            out["initial_entries"], _ = scan_once(store, root, device.short_id)
            out["initial_seconds"] = time.perf_counter() - t0
        elif mode != "scan":
            raise BenchError(f"unknown child mode {mode!r}")
        cpu0, t0 = _cpu(), time.perf_counter()
        out["entries"], out["bytes_hashed"] = scan_once(store, root, device.short_id)
        out["seconds"] = time.perf_counter() - t0
        out["cpu_s"] = _cpu() - cpu0
    out["peak_rss"] = _vmhwm()
    return out


def run_child(mode: str, root: Path, db: Path) -> dict[str, float]:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.scan_bench", "--child", mode, str(root), str(db)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT,
    )
    if proc.returncode != 0:
        raise BenchError(f"scanner child ({mode} {root}) failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---- trees and limits ------------------------------------------------------------------------


def make_empty_files(root: Path, count: int, dirs: int = RSS_DIRS) -> None:
    """Grow ``root`` to ``count`` 0-byte files spread evenly over ``dirs`` directories
    (metadata only); files already there are kept, so a bigger tree extends a smaller one.
    Two threads: file creation is kernel work, and the GIL is released around it."""
    per_dir = [count // dirs + (1 if d < count % dirs else 0) for d in range(dirs)]

    def fill(d: int) -> None:
        if per_dir[d] == 0:
            return
        path = root / f"d{d:04d}"
        path.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            for i in range(per_dir[d]):
                try:
                    os.close(os.open(f"e{i:05d}", _CREATE, 0o644, dir_fd=fd))
                except FileExistsError:
                    pass
        finally:
            os.close(fd)

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(fill, range(dirs)))


def tree_size(root: Path) -> tuple[int, int]:
    """(regular files, bytes) under ``root``."""
    files = size = 0
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            files += 1
            size += os.lstat(os.path.join(dirpath, name)).st_size
    return files, size


def _timed_shell(command: str) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(["bash", "-o", "pipefail", "-c", command], capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise BenchError(f"{command!r} failed: {proc.stderr[-1000:]}")
    return seconds


def sha256sum_seconds(root: Path, files: int) -> float:
    """All files hashed by coreutils on two cores; batches small enough to keep both busy."""
    if shutil.which("sha256sum") is None:
        raise BenchError("sha256sum (coreutils) is not installed")
    per_call = max(1, -(-files // 8))
    return _timed_shell(
        f"find {shlex.quote(str(root))} -type f -print0 "
        f"| xargs -0 -P2 -n {per_call} sha256sum > /dev/null"
    )


def find_stat_seconds(root: Path) -> float:
    """One lstat per entry (find's %s forces it), no hashing, no index: the walk limit."""
    return _timed_shell(f"find {shlex.quote(str(root))} -printf '%s %T@\\n' > /dev/null")


# ---- the workloads ---------------------------------------------------------------------------


def _row(
    workload: str, kind: str, files: int, nbytes: int, seconds: float, **extra: Any
) -> dict[str, Any]:
    return {
        "workload": workload,
        "kind": kind,  # "p2psync" or "limit"
        "files": files,
        "bytes": nbytes,
        "seconds": seconds,
        "files_per_s": files / seconds if seconds else None,
        "mbps": nbytes / seconds / 1e6 if seconds and nbytes else None,
        **extra,
    }


def _scan_rows(name: str, root: Path, work: Path, limit: str) -> list[dict[str, Any]]:
    files, nbytes = tree_size(root)
    out = run_child("scan", root, work / f"{root.name}.db")
    if out["entries"] < files:
        raise BenchError(f"{name}: the scan stored {out['entries']} entries for {files} files")
    if out["bytes_hashed"] != nbytes:
        raise BenchError(f"{name}: hashed {out['bytes_hashed']} bytes of {nbytes}")
    rows = [
        _row(
            name,
            "p2psync",
            files,
            nbytes,
            out["seconds"],
            cpu_s=out["cpu_s"],
            peak_rss=out["peak_rss"],
            entries=out["entries"],
        )
    ]
    if limit == "sha256sum":
        seconds = sha256sum_seconds(root, files)
        rows.append(_row(name, "limit", files, nbytes, seconds, limit="sha256sum -P2"))
    rows[0]["pct_of_limit"] = 100 * rows[1]["seconds"] / out["seconds"] if len(rows) > 1 else None
    return rows


def run_all(sizes: Sizes, work: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []

    def note(text: str) -> None:
        print(f"  {text}", file=sys.stderr, flush=True)

    small = work / "small"
    make_small_files(small, sizes.small_files, seed=31)
    note(f"initial scan: {sizes.small_files:,} small files")
    rows += _scan_rows(
        f"initial scan, {sizes.small_files:,} files of 1–8 KiB", small, work, "sha256sum"
    )
    shutil.rmtree(small)

    big = work / "big"
    make_big_files(big, sizes.big_files, sizes.big_bytes // sizes.big_files, seed=32)
    note(f"initial scan: {sizes.big_bytes // MiB} MiB in {sizes.big_files} files")
    rows += _scan_rows(
        f"initial scan, {_mib(sizes.big_bytes)} in {sizes.big_files} files", big, work, "sha256sum"
    )
    shutil.rmtree(big)

    tree = work / "rescan"
    make_small_files(tree, sizes.rescan_files, seed=33)
    files, nbytes = tree_size(tree)
    note(f"rescan: {files:,} unchanged files")
    out = run_child("rescan", tree, work / "rescan.db")
    if out["entries"] != 0:
        raise BenchError(f"the rescan of an unchanged tree stored {out['entries']} changes")
    name = f"rescan, {files:,} unchanged files"
    walk = find_stat_seconds(tree)
    rows += [
        _row(
            name,
            "p2psync",
            files,
            0,
            out["seconds"],
            cpu_s=out["cpu_s"],
            peak_rss=out["peak_rss"],
            initial_seconds=out["initial_seconds"],
            tree_bytes=nbytes,
            pct_of_limit=100 * walk / out["seconds"],
        ),
        _row(name, "limit", files, 0, walk, limit="find -printf (lstat)"),
    ]
    shutil.rmtree(tree)

    empty = work / "empty"
    for count in sorted(sizes.rss_files):
        t0 = time.perf_counter()
        make_empty_files(empty, count)
        note(f"peak RSS: {count:,} empty files (tree grown in {time.perf_counter() - t0:.0f} s)")
        out = run_child("scan", empty, work / f"empty{count}.db")
        if out["entries"] < count:
            raise BenchError(f"the scan stored {out['entries']} entries for {count} files")
        rows.append(
            _row(
                f"initial scan (peak RSS), {count:,} empty files in {RSS_DIRS:,} dirs",
                "p2psync",
                count,
                0,
                out["seconds"],
                cpu_s=out["cpu_s"],
                peak_rss=out["peak_rss"],
                entries=out["entries"],
            )
        )
        for db in work.glob(f"empty{count}.db*"):
            db.unlink()
    shutil.rmtree(empty, ignore_errors=True)
    return rows


# ---- report ------------------------------------------------------------------------------------


def _mib(n: int) -> str:
    return f"{n // GiB} GiB" if n % GiB == 0 else f"{n / MiB:.0f} MiB"


def _fmt(x: float | None, digits: int = 0) -> str:
    return "" if x is None else f"{x:,.{digits}f}"


def markdown(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    m = meta["machine"]
    lines = [
        f"Run {meta['date']} · `{meta['command']}`.",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['ram_gib']} GiB RAM, Linux {m['kernel']}, "
        f"work dir on {meta['filesystem']}. Python {m['python']}, p2psync {m['p2psync']}.",
        "",
        "| workload | system | files | MB | seconds | files/s | MB/s | % of limit | CPU s | peak RSS MiB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        p2p = r["kind"] == "p2psync"
        lines.append(
            "| {w} | {sys} | {files:,} | {mb} | {s} | {fps} | {mbps} | {pct} | {cpu} | {rss} |".format(
                w=r["workload"],
                sys="p2psync scanner + index" if p2p else f"limit: `{r['limit']}`",
                files=r["files"],
                mb=_fmt(r["bytes"] / 1e6, 1) if r["bytes"] else "",
                s=f"**{r['seconds']:.2f}**" if p2p else f"{r['seconds']:.2f}",
                fps=_fmt(r["files_per_s"]),
                mbps=_fmt(r["mbps"], 1),
                pct=f"{r['pct_of_limit']:.0f}%" if r.get("pct_of_limit") is not None else "",
                cpu=_fmt(r.get("cpu_s"), 2),
                rss=_fmt(r["peak_rss"] / MiB) if r.get("peak_rss") else "",
            )
        )
    lines += [
        "",
        "p2psync: one child process per row, `scanner.scan.scan()` over `BasicFS` into a fresh "
        "SQLite `IndexStore` (two hash threads, each batch stored with `update_local`); the "
        "rescan row times the second of two scans. Peak RSS: the child's VmHWM over its life "
        "(Python + SQLite included). Limits on the same files: `find | xargs -0 -P2 sha256sum` "
        "(coreutils, two cores) for the hashing scans, `find -printf '%s %T@'` (one lstat per "
        "entry) for the rescan; % of limit = limit time ÷ p2psync time. Page cache warm "
        "(each tree is scanned right after it is written). MB = 10^6 bytes.",
    ]
    return "\n".join(lines) + "\n"


def replace_marked(doc: Path, table: str) -> None:
    """Replace the text between the scan markers in ``doc`` with ``table``."""
    text = doc.read_text()
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise BenchError(f"{doc} has no {BEGIN} ... {END} markers")
    doc.write_text(text[: start + len(BEGIN)] + "\n" + table + text[end:])


def _filesystem(path: Path) -> str:
    try:
        out = subprocess.run(
            ["df", "--output=fstype", str(path)], capture_output=True, text=True, timeout=10
        ).stdout.split()
        return out[-1] if len(out) > 1 else "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


# ---- command line --------------------------------------------------------------------------


def _counts(text: str) -> tuple[int, ...]:
    return tuple(int(x.replace("_", "")) for x in text.split(","))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.scan_bench", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--quick", action="store_true", help="small sizes (a minute or two)")
    p.add_argument("--small-files", type=int, help="files of 1–8 KiB for the initial scan")
    p.add_argument("--big-files", type=int, help="number of big files")
    p.add_argument("--big-mib", type=int, help="total MiB of the big files")
    p.add_argument("--rescan-files", type=int, help="files in the unchanged rescan tree")
    p.add_argument("--rss-files", type=_counts, help="empty-file tree sizes, e.g. 100000,1000000")
    p.add_argument("--workdir", type=Path, help="parent of the temp dir (default: system temp)")
    p.add_argument("--out", type=Path, help="JSON record (default bench/results/scan-*.json)")
    p.add_argument("--doc", type=Path, default=DOC, help="markdown file with the scan markers")
    p.add_argument("--no-doc", action="store_true", help="do not touch the markdown file")
    p.add_argument("--child", nargs=3, metavar=("MODE", "ROOT", "DB"), help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        mode, root, db = args.child
        print(json.dumps(child(mode, Path(root), Path(db))))
        return 0
    base = QUICK if args.quick else FULL
    sizes = Sizes(
        small_files=args.small_files or base.small_files,
        big_files=args.big_files or base.big_files,
        big_bytes=(args.big_mib * MiB) if args.big_mib else base.big_bytes,
        rescan_files=args.rescan_files or base.rescan_files,
        rss_files=args.rss_files or base.rss_files,
    )
    custom = sizes not in (FULL, QUICK)
    work = Path(tempfile.mkdtemp(prefix="p2psync-scan-bench-", dir=args.workdir))
    try:
        rows = run_all(sizes, work)
        filesystem = _filesystem(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    now = datetime.datetime.now(datetime.UTC)
    command = "python -m bench.scan_bench" + (" --quick" if args.quick else "")
    if custom:
        command += (
            f" --small-files {sizes.small_files} --big-files {sizes.big_files}"
            f" --big-mib {sizes.big_bytes // MiB} --rescan-files {sizes.rescan_files}"
            f" --rss-files {','.join(map(str, sizes.rss_files))}"
        )
    meta = {
        "date": now.strftime("%Y-%m-%d %H:%M UTC"),
        "command": command,
        "filesystem": filesystem,
        "machine": machine(),
    }
    table = markdown(rows, meta)
    print(table)
    preset = "custom" if custom else ("quick" if args.quick else "full")
    out = args.out or RESULTS / f"scan-{preset}-{now:%Y%m%d-%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    if not args.no_doc:
        replace_marked(args.doc, table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
