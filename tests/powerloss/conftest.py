"""tests/powerloss: crashfs (a FUSE filesystem that can lose power) and the daemon runs
cut at its sync points; see crashfs.py for the model."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
