"""p2psync: peer-to-peer folder synchronisation."""

__version__ = "0.1.0"
CLIENT_NAME = "p2psync"
