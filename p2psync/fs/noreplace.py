"""``renameat2(RENAME_NOREPLACE)``: a rename that fails if the target exists, atomically.

The puller puts a new file in place this way: one syscall instead of an ``lstat`` that
must find nothing followed by a rename, and no window in which a file the user created
under that name would be replaced. Where the system has no ``renameat2`` (not Linux, libc
older than glibc 2.28) or the filesystem refuses the flag (``EINVAL``), ``rename_noreplace``
returns False and the caller checks, then renames.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import sys
from collections.abc import Callable

RENAME_NOREPLACE = 1  # linux/fs.h


@functools.cache
def _libc_renameat2() -> Callable[[int, bytes, int, bytes, int], int] | None:
    if sys.platform != "linux":
        return None
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn  # type: ignore[no-any-return]


def rename_noreplace(src_dir_fd: int, src: str, dst_dir_fd: int, dst: str) -> bool:
    """Rename ``src`` (in ``src_dir_fd``) to ``dst`` (in ``dst_dir_fd``) unless ``dst``
    exists (FileExistsError). False if this system or filesystem cannot do it: nothing
    was renamed. Other errors raise OSError as ``os.rename`` would."""
    fn = _libc_renameat2()
    if fn is None:
        return False
    if fn(src_dir_fd, os.fsencode(src), dst_dir_fd, os.fsencode(dst), RENAME_NOREPLACE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), dst)
