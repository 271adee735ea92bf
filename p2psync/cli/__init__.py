"""The p2psync command line (``p2psync`` / ``python -m p2psync.cli``)."""

from __future__ import annotations

from .main import API_KEY_FILE, cli, main

__all__ = ["API_KEY_FILE", "cli", "main"]
