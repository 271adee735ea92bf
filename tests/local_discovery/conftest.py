import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "e2e"))  # test_cli_daemon helpers
sys.path.insert(0, str(HERE.parent / "interop"))  # stock_syncthing
sys.path.insert(0, str(HERE.parent / "relay"))  # strelaysrv_process
