import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "e2e"))  # test_cli_daemon / test_cli_cluster helpers
sys.path.insert(0, str(HERE.parent / "integration"))  # nodes: in-process clusters
sys.path.insert(0, str(HERE.parent / "interop"))  # stock_syncthing

from collections.abc import Iterator  # noqa: E402

import pytest  # noqa: E402
from strelaysrv_process import STRELAYSRV, Relay  # noqa: E402


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[Relay]:
    """A running strelaysrv on a loopback port (stopped at the end)."""
    if STRELAYSRV is None:
        pytest.skip("the Debian package syncthing-relaysrv is not installed (.ci/run installs it)")
    r = Relay(tmp_path)
    r.start()
    try:
        yield r
    finally:
        r.stop()
