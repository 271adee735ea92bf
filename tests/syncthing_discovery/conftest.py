import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "interop"))  # stock_syncthing
sys.path.insert(0, str(HERE.parent / "integration"))  # nodes
sys.path.insert(0, str(HERE.parent / "discovery_server"))  # dsrv_helpers
sys.path.insert(0, str(HERE.parent / "relay"))  # strelaysrv_process (free_port, waiting)
