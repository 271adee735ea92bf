"""Scanning: walk a folder, hash changed files into blocks, honour ignore patterns.

Synchronous code: the daemon runs it in worker threads. ``scan.scan`` is the entry
point; ``blocks`` hashes files; ``ignore`` parses ``.p2pignore``. The names p2psync
reserves inside a folder live in ``p2psync.fs.internal``.
"""
