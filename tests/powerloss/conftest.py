"""tests/powerloss: crashfs (a FUSE filesystem that can lose power) and the daemon runs
cut at its sync points; see crashfs.py for the model. The ``outcomes`` recorder of the
reliability suite is shared so that docs/reliability.md lists these runs too."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

_spec = importlib.util.spec_from_file_location(
    "p2psync_reliability_conftest", HERE.parent / "reliability" / "conftest.py"
)
assert _spec is not None and _spec.loader is not None
_reliability = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = _reliability
_spec.loader.exec_module(_reliability)

outcomes = _reliability.outcomes
pytest_runtest_makereport = _reliability.pytest_runtest_makereport
