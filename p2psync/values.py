"""Small typed values parsed once: a folder's type and the ``dynamic`` device address.

The config, the API, the CLI and the engine compare these through the names here, not
through string literals. A ``FolderKind`` is a ``StrEnum``: it is written to config.toml
and JSON as the same text as before (``sendreceive``, ``sendonly``, ``receiveonly``).
Device IDs are ``identity.DeviceID``; a device's configured addresses are
``endpoints.DeviceAddress`` values (dynamic, a tcp ``Endpoint`` or a relay URL).
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .protocol.messages import FolderType


class FolderKind(enum.StrEnum):
    """How a folder syncs (config ``type``)."""

    SEND_RECEIVE = "sendreceive"
    SEND_ONLY = "sendonly"
    RECEIVE_ONLY = "receiveonly"

    @classmethod
    def named(cls, text: str) -> FolderKind | None:
        """The kind spelled ``text`` exactly, or None (callers raise their own error)."""
        try:
            return cls(text)
        except ValueError:
            return None

    @property
    def description(self) -> str:
        """How people read the kind: "send and receive", "send only", "receive only"."""
        return _DESCRIPTIONS[self]

    @property
    def wire(self) -> FolderType:
        """The folder type announced in ClusterConfig (imported here only: the CLI and
        the config do not load the protocol messages)."""
        from .protocol.messages import FolderType

        return FolderType[self.name]


_DESCRIPTIONS = {
    FolderKind.SEND_RECEIVE: "send and receive",
    FolderKind.SEND_ONLY: "send only",
    FolderKind.RECEIVE_ONLY: "receive only",
}
FOLDER_TYPES: tuple[str, ...] = tuple(kind.value for kind in FolderKind)


DYNAMIC = "dynamic"
"""The device address meaning "find this device through discovery"."""


def is_dynamic(address: str) -> bool:
    """Is this configured device address ``dynamic`` (stored exactly so)?"""
    return address == DYNAMIC
