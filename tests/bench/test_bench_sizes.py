"""``python -m bench --size KEY=N``: one size of a preset overridden (growth curves)."""

from __future__ import annotations

import pytest

from bench.__main__ import _sizes
from bench.catalog import PRESETS


def test_a_size_is_overridden_and_the_rest_kept() -> None:
    sizes = _sizes(PRESETS["full"], ["scale_files=1000", "swarm_files=8"])
    assert (sizes.scale_files, sizes.swarm_files) == (1000, 8)
    assert sizes.small_files == PRESETS["full"].small_files


@pytest.mark.parametrize("bad", ["nope=3", "scale_files=", "scale_files=-1", "scale_files"])
def test_a_bad_size_is_refused_with_the_known_keys(bad: str) -> None:
    with pytest.raises(SystemExit, match="scale_files"):
        _sizes(PRESETS["full"], [bad])
