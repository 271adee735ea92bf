"""``python -m p2psync.cli``."""

from .main import main

main()
