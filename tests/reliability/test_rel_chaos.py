"""Issue 25.2: chaos runs. Five daemons, random user actions and faults, then every
tree identical and nothing a user wrote lost (see chaos.py for the model).

The short run (fixed seed, about two minutes) is part of `make test`; `make chaos`
runs a long one (P2PSYNC_CHAOS_MINUTES, default 20; P2PSYNC_CHAOS_SEED)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from chaos import ChaosConfig, ChaosRun

MINUTES_ENV = "P2PSYNC_CHAOS_MINUTES"
SEED_ENV = "P2PSYNC_CHAOS_SEED"
REPORT_ENV = "P2PSYNC_CHAOS_REPORT"


def _run(tmp_path: Path, outcomes, config: ChaosConfig) -> dict:
    run = ChaosRun(tmp_path, config, use_tmpfs=os.geteuid() == 0)
    try:
        report = run.run()
    finally:
        run.close()
    out = Path(os.environ.get(REPORT_ENV) or tmp_path / "chaos-report.json")
    out.write_text(json.dumps(report, indent=1) + "\n")
    summary = {k: report[k] for k in report if k != "events"}
    assert report["converged"], f"no convergence: {summary}\n" + "\n".join(report["events"])
    assert not report["tokens_lost"], f"writes lost: {summary}\n" + "\n".join(report["events"])
    outcomes.record(
        "chaos",
        f"5 daemons, {config.seconds:.0f} s of random actions and faults, seed {config.seed}",
        "converged, no write lost",
        trials=sum(report["actions"].values()),
        detail=(
            f"{report['tokens_written']} writes, faults {report['faults']}, "
            f"{report['conflict_copies']} conflict copies, converged in "
            f"{report['converge_seconds']} s"
        ),
    )
    return report


@pytest.mark.timeout(600)
def test_short_chaos_run_loses_nothing(tmp_path, outcomes) -> None:
    _run(tmp_path, outcomes, ChaosConfig(seed=20261207, seconds=75))


@pytest.mark.skipif(not os.environ.get(MINUTES_ENV), reason=f"long run: set {MINUTES_ENV}")
@pytest.mark.timeout(0)
def test_long_chaos_run_loses_nothing(tmp_path, outcomes) -> None:
    minutes = float(os.environ[MINUTES_ENV])
    seed = int(os.environ.get(SEED_ENV) or 1)
    _run(tmp_path, outcomes, ChaosConfig(seed=seed, seconds=minutes * 60))
