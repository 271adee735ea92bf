"""p2psync's standalone global discovery server.

Devices announce signed address lists (``POST /v1/announce``); anyone looks a device up
by ID (``GET /v1/lookup``). Records live in memory (optionally snapshotted to SQLite) or
in Redis, shared by several instances. See docs/discovery-server.md.
"""
