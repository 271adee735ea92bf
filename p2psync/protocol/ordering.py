"""Compatibility re-export: the global-version rule now lives in ``p2psync/rules.py``
(with conflicts, equivalence and need). Import from there; this module goes once no
code imports it (``sync/puller.py`` still does)."""

from __future__ import annotations

from ..rules import is_conflict, pick_global, wins_over

__all__ = ["is_conflict", "pick_global", "wins_over"]
