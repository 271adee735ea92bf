"""``python -m bench``: run the workloads on p2psync (and Syncthing when installed),
print the table, write JSON to bench/results/ and the table into docs/performance.md."""

from __future__ import annotations

import argparse
import compileall
import dataclasses
import datetime
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from . import limits, p2p, st
from .catalog import ALL, DATA_OF, DEFAULT, PRESETS, RunResult, Sizes
from .context import Context
from .mixed import MIXED_SYSTEMS, MIXED_WORKLOADS
from .procstats import machine
from .profile import Profiler
from .report import markdown, summarize, update_doc, write_json
from .workloads import run_one

ROOT = Path(__file__).resolve().parent.parent


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument(
        "--quick",
        action="store_true",
        help="small sizes (a few minutes in all); same as --preset quick",
    )
    p.add_argument(
        "--preset", choices=sorted(PRESETS), default=None, help="size preset (default: full)"
    )
    p.add_argument(
        "--workloads",
        default=",".join(DEFAULT),
        help=f"comma-separated subset of {','.join(ALL)} (default: all but i)",
    )
    p.add_argument(
        "--repeat", type=int, default=None, help="runs per workload and system (default 3, quick 1)"
    )
    p.add_argument("--no-syncthing", action="store_true", help="p2psync only")
    p.add_argument(
        "--mixed",
        action="store_true",
        help="also run a, c, d, g on a mixed pair each way (p2psync>syncthing, "
        "syncthing>p2psync); needs Syncthing",
    )
    p.add_argument(
        "--no-limits", action="store_true", help="skip the SHA-256/TLS/disk limit measurements"
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="JSON results file (default bench/results/<stamp>.json)",
    )
    p.add_argument(
        "--doc",
        type=Path,
        default=ROOT / "docs" / "performance.md",
        help="markdown file whose bench markers receive the table",
    )
    p.add_argument("--no-doc", action="store_true", help="do not touch the markdown file")
    p.add_argument(
        "--workdir", type=Path, default=None, help="parent of the temp dir (default: system temp)"
    )
    p.add_argument(
        "--keep", action="store_true", help="keep the temp dir (daemon logs) after the run"
    )
    p.add_argument(
        "--profile", type=Path, default=None, help="py-spy profiles of the p2psync daemons into DIR"
    )
    p.add_argument("--timeout-scale", type=float, default=1.0, help="multiply every deadline")
    p.add_argument(
        "--p2p-folder-set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="diagnosis: override a p2psync folder setting (e.g. mass_delete_min_deletes=100000)",
    )
    p.add_argument(
        "--p2p-scan",
        choices=["inprocess", "daemon"],
        default="inprocess",
        help="f, h for p2psync: the in-process scanner (default) or a running daemon "
        "followed through its control API, as Syncthing is",
    )
    p.add_argument(
        "--p2p-no-history",
        action="store_true",
        help="diagnosis: p2psync without its change log (what the log costs)",
    )
    p.add_argument(
        "--size",
        action="append",
        default=[],
        metavar="KEY=N",
        help="override one size of the preset (e.g. scale_files=10000 for i): a growth "
        "curve is runs of one workload at several sizes",
    )
    p.add_argument("--strict", action="store_true", help="exit 1 if any run failed")
    args = p.parse_args(argv)
    if args.quick and args.preset not in (None, "quick"):
        p.error("--quick and --preset disagree")
    args.preset = "quick" if args.quick else args.preset or "full"
    if args.repeat is None:
        args.repeat = 3 if args.preset == "full" else 1
    args.workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    bad = [w for w in args.workloads if w not in ALL]
    if bad:
        p.error(f"unknown workload(s) {bad}; choose from {','.join(ALL)}")
    return args


def _sizes(preset: Sizes, overrides: list[str]) -> Sizes:
    """``preset`` with ``KEY=N`` overrides (N an integer; SystemExit on a bad one)."""
    changes: dict[str, int] = {}
    for item in overrides:
        key, _, value = item.partition("=")
        if key not in preset.__dataclass_fields__ or not value.isdigit():
            known = ", ".join(preset.__dataclass_fields__)
            raise SystemExit(f"--size {item!r}: expected KEY=N with KEY one of {known}")
        changes[key] = int(value)
    return dataclasses.replace(preset, **changes)


def _folder_options(items: list[str]) -> dict[str, object]:
    out: dict[str, object] = {}
    for item in items:
        key, _, text = item.partition("=")
        value: object = text
        if text.lower() in ("true", "false"):
            value = text.lower() == "true"
        else:
            for kind in (int, float):
                try:
                    value = kind(text)
                    break
                except ValueError:
                    continue
        out[key.strip()] = value
    return out


def _git() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return f"{head}{'+dirty' if dirty else ''}" if head else "?"


def _log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    systems = ["p2psync"]
    if not args.no_syncthing:
        if st.available():
            systems.append("syncthing")
            if args.mixed:
                systems += list(MIXED_SYSTEMS)
        else:
            _log("syncthing not installed: p2psync only (apt-get install -y syncthing)")
    sizes = _sizes(PRESETS[args.preset], args.size)
    workdir = Path(tempfile.mkdtemp(prefix="p2psync-bench-", dir=args.workdir))
    if args.p2p_no_history:
        os.environ[p2p.NO_HISTORY_ENV] = "1"
    meta: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python -m bench " + shlex.join(sys.argv[1:] if argv is None else argv),
        "preset": args.preset,
        "repeat": args.repeat,
        "workloads": args.workloads,
        "systems": systems,
        "machine": machine(),
        "p2psync_folder_overrides": _folder_options(args.p2p_folder_set),
        "p2psync_scan": args.p2p_scan,
        "p2psync_history": not args.p2p_no_history,
        "git": _git(),
        "sizes": sizes.__dict__,
    }
    if "syncthing" in systems:
        meta["syncthing_settings"] = st.SETTINGS
    results: list[RunResult] = []
    # The daemons start as an installed package does, from bytecode: with
    # PYTHONDONTWRITEBYTECODE set (as in this project's sandboxes) every start would
    # otherwise compile all of p2psync again (0.42 s of CPU to "ready" instead of 0.27).
    meta["bytecode_compiled"] = compileall.compile_dir(str(ROOT / "p2psync"), quiet=1, workers=1)
    try:
        if not args.no_limits:
            _log("measuring limits (SHA-256, TLS, disk)")
            meta["limits"] = limits.measure(workdir, quick=args.preset != "full")
            _log(f"limits: {meta['limits']}")
        ctx = Context(
            workdir,
            sizes,
            args.timeout_scale,
            Profiler(args.profile) if args.profile else None,
            keep_runs=args.keep,
            p2p_folder_options=_folder_options(args.p2p_folder_set),
            p2p_scan=args.p2p_scan,
        )
        for i, wl in enumerate(args.workloads):
            _log(f"workload {wl}: preparing data")
            ctx.master(wl)
            for rep in range(args.repeat):
                for system in systems:
                    if system in MIXED_SYSTEMS and wl not in MIXED_WORKLOADS:
                        continue
                    r = run_one(ctx, wl, system)
                    results.append(r)
                    status = (
                        f"{r.seconds:.3f}s wire={r.wire_bytes}"
                        if r.ok
                        else f"FAILED: {r.error[:300]}"
                    )
                    _log(f"workload {wl} run {rep + 1}/{args.repeat} {system}: {status}")
            data = DATA_OF.get(wl, wl)
            if all(DATA_OF.get(w, w) != data for w in args.workloads[i + 1 :]):
                ctx.drop_master(wl)
    finally:
        if args.keep:
            _log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    rows = summarize(results, meta.get("limits"))
    table = markdown(rows, meta, sizes)
    print(table)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = args.out or ROOT / "bench" / "results" / f"bench-{args.preset}-{stamp}.json"
    write_json(out, meta, results, rows)
    _log(f"results in {out}")
    if not args.no_doc:
        update_doc(args.doc, table, args.preset)
        _log(f"table written to {args.doc}")
    return 1 if args.strict and any(not r.ok for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
