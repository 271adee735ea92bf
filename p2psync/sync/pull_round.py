"""``PullRound`` where the folder imports it from; it lives in ``p2psync.sync.pull.round``."""

from .pull import PullRound

__all__ = ["PullRound"]
