"""Turning run results into the markdown table, the JSON record and docs/performance.md."""

from __future__ import annotations

import json
import re
import statistics
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .catalog import TITLES, RunResult, Sizes, describe

BEGIN = "<!-- bench:begin -->"  # the quick preset's table (also other presets' default)
END = "<!-- bench:end -->"


def markers(preset: str) -> tuple[str, str]:
    """Where a preset's table lives in the doc: quick (and tiny) share the default
    markers; the full preset has its own, so both tables are kept."""
    if preset == "full":
        return "<!-- bench:full:begin -->", "<!-- bench:full:end -->"
    return BEGIN, END


MiB = 1 << 20


def _fmt_s(x: float) -> str:
    return f"{x:.3f}" if x < 1 else f"{x:.2f}" if x < 100 else f"{x:.0f}"


def summarize(results: list[RunResult], limits: dict[str, float] | None) -> list[dict[str, Any]]:
    """One row per (workload, system): min/median/max time and medians of the rest."""
    rows: list[dict[str, Any]] = []
    keys = list(dict.fromkeys((r.workload, r.system) for r in results))
    for wl, system in keys:
        runs = [r for r in results if r.workload == wl and r.system == system]
        ok = [r for r in runs if r.ok and r.seconds is not None]
        row: dict[str, Any] = {
            "workload": wl,
            "system": system,
            "runs": len(runs),
            "ok": len(ok),
            "errors": sorted({r.error for r in runs if not r.ok}),
        }
        if ok:
            times = [r.seconds for r in ok]
            med = statistics.median(times)
            row.update(min_s=min(times), median_s=med, max_s=max(times))
            data = ok[0].data_bytes
            if data and wl not in ("d",):
                row["mbps"] = data / med / 1e6
                if limits and limits.get("tightest_mbps"):
                    row["pct_of_limit"] = 100 * row["mbps"] / limits["tightest_mbps"]
            wires = [r.wire_bytes for r in ok if r.wire_bytes is not None]
            if wires:
                row["wire_bytes"] = statistics.median(wires)
            row["peak_rss"] = [max(r.peak_rss[i] for r in ok) for i in range(len(ok[0].peak_rss))]
            row["cpu_s"] = [
                statistics.median(r.cpu_s[i] for r in ok) for i in range(len(ok[0].cpu_s))
            ]
            harness = [r.extra["harness_cpu_s"] for r in ok if "harness_cpu_s" in r.extra]
            if harness:
                row["harness_cpu_s"] = statistics.median(harness)
        rows.append(row)
    for row in rows:  # p2psync and the mixed pairs, each against Syncthing→Syncthing
        if row["system"] == "syncthing" or "median_s" not in row:
            continue
        other = next(
            (r for r in rows if r["workload"] == row["workload"] and r["system"] == "syncthing"),
            None,
        )
        if other and other.get("median_s"):
            row["ratio"] = row["median_s"] / other["median_s"]
            if row.get("peak_rss") and other.get("peak_rss"):
                row["rss_ratio"] = max(row["peak_rss"]) / max(other["peak_rss"])
    return rows


def markdown(rows: list[dict[str, Any]], meta: dict[str, Any], sizes: Sizes) -> str:
    m = meta["machine"]
    lim = meta.get("limits") or {}
    lines = [
        f"Run {meta['date']} · `{meta['command']}` · preset **{meta['preset']}**, "
        f"{meta['repeat']} repeat(s), p2psync and Syncthing runs alternating.",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['ram_gib']} GiB RAM, Linux {m['kernel']}, "
        f"{meta.get('fs', 'local disk')}. Python {m['python']}, p2psync {m['p2psync']} "
        f"(git {meta.get('git', '?')}), Syncthing {m['syncthing'] or 'not installed'}.",
        "",
    ]
    if lim:
        lines += [
            f"Limits: SHA-256 {lim['sha256_1core_mbps']:.0f} MB/s on one core, "
            f"{lim['sha256_2cores_mbps']:.0f} MB/s on two; TLS over loopback (p2psync's stack, "
            f"one process) {lim['tls_loopback_mbps']:.0f} MB/s; disk write + fsync "
            f"{lim['disk_write_fsync_mbps']:.0f} MB/s. "
            f"Tightest: **{lim['tightest_mbps']:.0f} MB/s**.",
            "",
        ]
    if meta.get("p2psync_folder_overrides"):
        over = ", ".join(f"{k}={v}" for k, v in meta["p2psync_folder_overrides"].items())
        lines += [f"p2psync folder settings overridden for this run: {over}.", ""]
    if meta.get("syncthing_settings"):
        s = meta["syncthing_settings"]
        lines += [
            "Syncthing: "
            + ", ".join(f"{k} {v}" for k, v in s.items())
            + "; other settings default.",
            "",
        ]
    lines += [
        "| | workload | system | ok | time s (min / median / max) | MB/s | % limit | wire MiB "
        "| peak RSS MiB | CPU s | ÷ Syncthing→Syncthing |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        wl = row["workload"]
        cells = [
            wl,
            f"{TITLES[wl]}: {describe(wl, sizes)}",
            row["system"],
            f"{row['ok']}/{row['runs']}",
        ]
        if "median_s" in row:
            cells.append(
                f"{_fmt_s(row['min_s'])} / **{_fmt_s(row['median_s'])}** / {_fmt_s(row['max_s'])}"
            )
            cells.append(f"{row['mbps']:.1f}" if "mbps" in row else "")
            cells.append(f"{row['pct_of_limit']:.0f}%" if "pct_of_limit" in row else "")
            cells.append(f"{row['wire_bytes'] / MiB:.2f}" if "wire_bytes" in row else "")
            cells.append(" / ".join(f"{x / MiB:.0f}" for x in row["peak_rss"]))
            cells.append(" / ".join(f"{x:.2f}" for x in row["cpu_s"]))
            ratio = ""
            if "ratio" in row:
                ratio = (
                    f"**{row['ratio']:.2f}** (RSS {row['rss_ratio']:.2f})"
                    if "rss_ratio" in row
                    else f"{row['ratio']:.2f}"
                )
            cells.append(ratio)
        else:
            cells += ["FAILED (see below)", "", "", "", "", "", ""]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "Time: from the change (one rename into A's folder, an in-place write for d, a "
        "directory rename for e) until B's tree is verified identical (names, sizes, mtimes, "
        "SHA-256 of every file). g: median latency per run. f/h: one node, watcher off — "
        "p2psync is the in-process scanner + SQLite index (`bench/inproc.py`), Syncthing a "
        "daemon driven over REST. Wire: bytes through the counting proxy, both directions, "
        "timed window only. Peak RSS: VmHWM of A / B over the daemon's life. CPU: "
        "utime+stime of A / B in the timed window.",
    ]
    harness = [
        f"{row['workload']} {row['system']} {row['harness_cpu_s']:.2f}"
        for row in rows
        if "harness_cpu_s" in row
    ]
    if harness:
        lines += [
            "",
            "Harness CPU s in the timed window (its polling and the counting proxies' "
            "threads, up to the match; median): " + ", ".join(harness) + ".",
        ]
    failures = [(row["workload"], row["system"], e) for row in rows for e in row["errors"]]
    if failures:
        lines += ["", "Failures:", ""]
        lines += [f"- {wl} {system}: {_clip(err)}" for wl, system, err in failures]
    return "\n".join(lines) + "\n"


def _clip(text: str, n: int = 400) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def write_json(
    path: Path, meta: dict[str, Any], results: list[RunResult], rows: list[dict[str, Any]]
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(
            {"meta": meta, "summary": rows, "runs": [asdict(r) for r in results]},
            indent=2,
            default=str,
        )
        + "\n"
    )


def update_doc(doc: Path, table: str, preset: str = "quick") -> None:
    """Replace the text between the preset's markers (or append a marked section)."""
    begin, end = markers(preset)
    block = f"{begin}\n{table}{end}"
    text = doc.read_text() if doc.exists() else "# Performance\n\n"
    if begin in text and end in text:
        text = re.sub(
            re.escape(begin) + ".*?" + re.escape(end), lambda _: block, text, count=1, flags=re.S
        )
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(text)
