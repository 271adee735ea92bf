"""p2psync's benchmark harness: `python -m bench --help` (docs/performance.md has the figures)."""
