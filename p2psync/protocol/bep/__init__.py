"""Syncthing's Block Exchange Protocol v1 (BEP), as a second codec for ``Connection``."""

from .codec import ALPN, BepCodec

__all__ = ["ALPN", "BepCodec"]
