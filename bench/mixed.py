"""A mixed pair for the benchmark (issue 20): a p2psync daemon and a stock Syncthing
sharing folder ``bench`` over BEP, every byte through a CountingProxy, in either
direction. Workloads a, c, d and g run on it as on the two same-system pairs, so a
mixed row reads next to p2psync→p2psync and Syncthing→Syncthing of the same run."""

from __future__ import annotations

from pathlib import Path

from . import st
from .daemon import Daemon
from .p2p import _Node, _parallel
from .proxy import CountingProxy

P2P_TO_ST = "p2psync>syncthing"
ST_TO_P2P = "syncthing>p2psync"
MIXED_SYSTEMS = (P2P_TO_ST, ST_TO_P2P)
MIXED_WORKLOADS = ("a", "c", "d", "g")


class MixedPair:
    """``a`` is the source (the side the workload writes on), ``b`` the receiver."""

    def __init__(self, base: Path, system: str, folder_options: dict[str, object] | None = None):
        if system not in MIXED_SYSTEMS:
            raise ValueError(system)
        self.system = system
        p2p, stn = _Node(base, "P"), st._STNode(base, "S")
        self.p2p, self.stn = p2p, stn
        self.a, self.b = (p2p, stn) if system == P2P_TO_ST else (stn, p2p)
        self.a_dir, self.b_dir = self.a.data, self.b.data
        self.folder_options = folder_options or {}
        self._proxies: list[CountingProxy] = []

    def __enter__(self) -> MixedPair:
        try:
            _parallel(self.p2p.init, self.stn.generate)
            to_st = CountingProxy(self.stn.port).start()
            to_p2p = CountingProxy(self.p2p.port).start()
            self._proxies = [to_st, to_p2p]
            self.p2p.share_with(self.stn, to_st.port)  # type: ignore[arg-type]
            if self.folder_options:
                self.p2p.set_folder_options(self.folder_options)
            _parallel(self.p2p.start, self.stn.start)
            self.stn.add_device(self.p2p, to_p2p.port)  # type: ignore[arg-type]
            self.stn.add_folder(self.stn.data, [self.stn.device_id, self.p2p.device_id])
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for node in (self.p2p, self.stn):
            if node.daemon is not None:
                node.daemon.stop()
        for p in self._proxies:
            p.close()

    @property
    def daemons(self) -> list[Daemon]:
        return [d for d in (self.a.daemon, self.b.daemon) if d is not None]

    def check_alive(self) -> None:
        for d in self.daemons:
            d.check_alive()

    def wire_bytes(self) -> int:
        return sum(p.total for p in self._proxies)

    def confirm(self, timeout: float = 30.0) -> None:
        """When Syncthing receives, its API must agree that nothing is needed."""
        if self.b is self.stn:
            self.stn.wait_in_sync(timeout)
