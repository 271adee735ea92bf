"""The one exception hierarchy of p2psync.

Each class's docstring is the user-facing explanation; only the CLI (``cli/support.py``) turns these
into messages and exit codes.

    P2PSyncError
    ├── ConfigError              the config file is missing, malformed or invalid
    ├── IdentityError            key/certificate missing or unreadable
    │   └── DeviceIDError        a device ID string is malformed or fails its check
    ├── UsageError               the user asked for something that cannot be done
    │   └── NotFoundError        a folder, device or file named by the user does not exist
    ├── ProtocolError            the wire protocol was violated
    │   ├── RemoteProtocolError  ... by the peer: drop the connection, log why
    │   │   └── AnnouncementError  a discovery announcement is malformed, forged or stale
    │   └── LocalProtocolError   ... by us: a bug
    ├── TrustError               the peer is unknown, ourselves, or has the wrong certificate
    ├── FilesystemError          a file operation on a shared folder failed
    │   ├── UnsafePathError      a name would escape the folder or is not portable
    │   └── WatchLimitError      the OS limit on watched directories was reached
    ├── IndexError_              the index database is unusable
    │   └── IndexCorruptError    ... because it is damaged or not ours (safe to rebuild)
    ├── DaemonNotRunningError    the control API of the daemon cannot be reached
    └── DaemonRunningError       another daemon already runs on this node home
"""

from __future__ import annotations


class P2PSyncError(Exception):
    """Something went wrong in p2psync."""

    exit_code = 1


class ConfigError(P2PSyncError):
    """The configuration is missing, malformed or invalid."""

    exit_code = 3


class IdentityError(P2PSyncError):
    """This device's key or certificate is missing or unreadable; run `p2psync init`."""

    exit_code = 3


class DeviceIDError(IdentityError, ValueError):
    """A device ID is malformed or fails its check characters."""

    exit_code = 2


class UsageError(P2PSyncError):
    """The request cannot be carried out as asked."""

    exit_code = 2


class NotFoundError(UsageError):
    """The named folder, device or file does not exist."""


class ProtocolError(P2PSyncError):
    """The wire protocol was violated."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something invalid; the connection is dropped."""


class AnnouncementError(RemoteProtocolError):
    """A global-discovery announcement was rejected; ``reason`` is a short machine-readable tag."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class LocalProtocolError(ProtocolError):
    """We tried to send something invalid (a bug in p2psync)."""


class TrustError(P2PSyncError):
    """The peer is not a trusted device, is ourselves, or is not who it claims to be."""


class FilesystemError(P2PSyncError):
    """A file operation on a shared folder failed."""


class UnsafePathError(FilesystemError, ValueError):
    """A file name is unsafe: it would escape the folder or cannot be represented portably."""


class WatchLimitError(FilesystemError):
    """The operating system's limit on watched directories or watcher instances was reached.

    The folder still syncs, but changes are only noticed by periodic scans until the limit
    (``setting``, e.g. the sysctl fs.inotify.max_user_watches) is raised.
    """

    def __init__(self, message: str, setting: str) -> None:
        super().__init__(message)
        self.setting = setting


class IndexError_(P2PSyncError):  # noqa: N801 - avoid shadowing the builtin IndexError
    """The index database is unusable."""


class IndexCorruptError(IndexError_):
    """The index database is damaged or is not a p2psync index; it can be rebuilt."""


class DaemonNotRunningError(P2PSyncError):
    """The p2psync daemon is not running (its control API cannot be reached)."""

    exit_code = 4


class DaemonRunningError(P2PSyncError):
    """Another p2psync daemon already runs on this node home (one daemon per home)."""

    exit_code = 5
