"""Benchmark data on disk: deterministic generation, tree fingerprints, "identical" waits.

A tree's *fingerprint* (name -> kind, size, mtime) is cheap and decides when to look
closer; its *digest* (name -> SHA-256 of the content) decides "identical". Internal
files of either daemon are skipped (``.p2p*``, ``.stfolder``, ``.stversions``,
``.syncthing.*``, ``~syncthing~*``).
"""

from __future__ import annotations

import hashlib
import os
import random
import resource
import shutil
import stat
import time
from collections.abc import Callable
from pathlib import Path

from .errors import WorkloadFailed

_INTERNAL_PREFIXES = (".p2p", ".stfolder", ".stversions", ".stignore", ".syncthing.", "~syncthing~")
_CHUNK = 4 << 20

Fingerprint = dict[str, tuple[str, int, int]]


def is_internal(name: str) -> bool:
    return name.startswith(_INTERNAL_PREFIXES)


# ---- generation --------------------------------------------------------------------


def small_file_name(i: int) -> str:
    """Nested layout: 100 files per leaf directory, 10 leaves per top directory."""
    return f"d{i // 1000:03d}/s{(i // 100) % 10:02d}/f{i:06d}.bin"


def make_small_files(
    root: Path, count: int, seed: int, min_size: int = 1024, max_size: int = 8192
) -> int:
    """``count`` random files of ``min_size``..``max_size`` bytes; returns total bytes."""
    rng = random.Random(seed)
    total = 0
    made: set[Path] = set()
    for i in range(count):
        path = root / small_file_name(i)
        if path.parent not in made:
            path.parent.mkdir(parents=True, exist_ok=True)
            made.add(path.parent)
        size = rng.randint(min_size, max_size)
        path.write_bytes(rng.randbytes(size))
        total += size
    return total


def make_big_files(root: Path, count: int, size: int, seed: int) -> int:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        make_random_file(root / f"big{i:04d}.bin", size, seed + i)
    return count * size


def make_random_file(path: Path, size: int, seed: int) -> int:
    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(_CHUNK, left)
            f.write(rng.randbytes(n))
            left -= n
    return size


def link_tree(src: Path, dst: Path) -> None:
    """Hard-link copy of ``src`` at ``dst`` (instant, no data written). Only for data
    that nobody modifies in place: the daemons replace files, never edit them."""
    shutil.copytree(src, dst, copy_function=os.link)


def overwrite_middle(path: Path, size: int, seed: int) -> int:
    """Overwrite ``size`` random bytes in the middle of ``path``; returns the offset."""
    length = path.stat().st_size
    offset = max(0, (length - size) // 2)
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(random.Random(seed).randbytes(size))
    return offset


# ---- comparison --------------------------------------------------------------------


def fingerprint(root: Path) -> Fingerprint:
    """name -> (kind, size, mtime_ns) for user files; directories as ("dir", 0, 0)."""
    out: Fingerprint = {}
    _walk(root, "", out)
    return out


def _walk(top: Path, prefix: str, out: Fingerprint) -> None:
    try:
        entries = list(os.scandir(top))
    except FileNotFoundError:
        return
    for item in entries:
        if is_internal(item.name):
            continue
        name = prefix + item.name
        try:
            out[name] = _describe(item.path, item.stat(follow_symlinks=False))
        except FileNotFoundError:
            continue  # vanished between listing and stat (a temp file renamed)
        if out[name][0] == "dir":
            _walk(Path(item.path), name + "/", out)


def _describe(path: str | Path, st: os.stat_result) -> tuple[str, int, int]:
    """A fingerprint entry from an ``lstat`` result."""
    if stat.S_ISLNK(st.st_mode):
        return ("link:" + os.readlink(path), 0, 0)
    if stat.S_ISDIR(st.st_mode):
        return ("dir", 0, 0)
    return ("file", st.st_size, st.st_mtime_ns)


def digest(root: Path, names: Fingerprint) -> dict[str, str]:
    """SHA-256 of every file named in ``names`` (missing files map to "missing")."""
    out: dict[str, str] = {}
    for name, (kind, _, _) in names.items():
        if kind != "file":
            continue
        h = hashlib.sha256()
        try:
            with open(root / name, "rb") as f:
                while chunk := f.read(_CHUNK):
                    h.update(chunk)
        except FileNotFoundError:
            out[name] = "missing"
            continue
        out[name] = h.hexdigest()
    return out


def _shape(fp: Fingerprint) -> dict[str, tuple[str, int]]:
    return {k: (v[0], v[1]) for k, v in fp.items()}


def describe_difference(want: Fingerprint, have: Fingerprint) -> str:
    missing = sorted(set(want) - set(have))
    extra = sorted(set(have) - set(want))
    differ = sorted(n for n in set(want) & set(have) if want[n][:2] != have[n][:2])
    mtime = sorted(
        n for n in set(want) & set(have) if want[n][:2] == have[n][:2] and want[n] != have[n]
    )
    parts = [f"{len(want)} expected, {len(have)} present"]
    for label, names in (
        ("missing", missing),
        ("extra", extra),
        ("different size/kind", differ),
        ("different mtime", mtime),
    ):
        if names:
            parts.append(f"{len(names)} {label} (e.g. {', '.join(names[:3])})")
    return "; ".join(parts)


def entry(root: Path, name: str) -> tuple[str, int, int] | None:
    """The fingerprint entry of one name under ``root`` (None if it does not exist)."""
    path = root / name
    try:
        return _describe(path, path.lstat())
    except (FileNotFoundError, NotADirectoryError):
        return None


def _differing(want: Fingerprint, have: Fingerprint) -> list[str]:
    return sorted(n for n in set(want) | set(have) if want.get(n) != have.get(n))


POLL_S = 0.01


def wait_identical(
    src: Path,
    dst: Path,
    *,
    timeout: float,
    what: str,
    alive: Callable[[], None] | None = None,
    stats: dict[str, float] | None = None,
    content_check_every: tuple[float, float] = (1.0, 8.0),
) -> float:
    """Wait until ``dst`` holds exactly ``src``'s user files; return the monotonic time
    at which the (then verified) match was first seen.

    Between full walks of ``dst`` it follows only the names that differed at the last
    walk, in name order, one ``lstat`` per poll, so the harness costs almost no CPU while
    the daemons work (a walk of 10,000 files every few tenths of a second took 15% of
    this two-core machine). When none of them differs any more, a full walk decides: the
    time returned is the end of the walk that found names, sizes and mtimes equal, then
    the content digests must match. If only mtimes differ, content is compared now and
    then, so that a daemon that does not preserve mtimes still completes: after 1 s, then
    at intervals doubling up to 8 s (``content_check_every``). Once a second, it hashed
    workload d's 1 GiB file every second while the daemon worked on it (both systems keep
    mtimes: the match is seen through the mtime). ``alive`` is called every poll and
    should raise if a daemon died.
    ``stats["cpu_at_match"]``: the harness's CPU seconds when the last match was seen.
    """
    want = fingerprint(src)
    # The source's digest is taken at the first match, outside the timed part: hashing
    # 1 GiB while the daemons work took one core from them for ~0.6 s.
    want_digest: dict[str, str] | None = None
    deadline = time.monotonic() + timeout
    check_every, check_every_max = content_check_every
    next_content_check = time.monotonic() + check_every
    only_mtimes_differed = False
    pending: list[str] = []  # names that differed at the last walk, in name order
    next_pending = 0
    while True:
        while next_pending < len(pending) and (
            entry(dst, pending[next_pending]) == want.get(pending[next_pending])
        ):
            next_pending += 1
        # walk when nothing differs any more; and once a second while only mtimes differ,
        # for the content check of a daemon that does not preserve them
        if next_pending >= len(pending) or (
            only_mtimes_differed and time.monotonic() >= next_content_check
        ):
            have = fingerprint(dst)
            seen = time.monotonic()
            only_mtimes_differed = _shape(have) == _shape(want)
            if have == want or (only_mtimes_differed and seen >= next_content_check):
                if stats is not None:
                    stats["cpu_at_match"] = _own_cpu()
                if have != want:  # the next content check for mtimes alone, later
                    check_every = min(check_every * 2, check_every_max)
                    next_content_check = seen + check_every
                if want_digest is None:
                    want_digest = digest(src, want)
                if digest(dst, have) == want_digest:
                    if fingerprint(src) != want:
                        raise WorkloadFailed(
                            f"{what}: the source tree changed while waiting ({src})"
                        )
                    return seen
            pending = _differing(want, have)
            next_pending = 0
        if alive is not None:
            alive()
        if time.monotonic() > deadline:
            raise WorkloadFailed(
                f"{what}: not identical after {timeout:.0f}s: "
                f"{describe_difference(want, fingerprint(dst))}"
            )
        time.sleep(POLL_S)


def _own_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def wait_file(
    path: Path,
    content: bytes,
    *,
    timeout: float,
    what: str,
    alive: Callable[[], None] | None = None,
) -> float:
    """Wait until ``path`` holds ``content``; return the monotonic time it was seen."""
    deadline = time.monotonic() + timeout
    polls = 0
    while True:
        try:
            if path.read_bytes() == content:
                return time.monotonic()
        except (FileNotFoundError, IsADirectoryError):
            pass
        polls += 1
        if alive is not None and polls % 50 == 0:
            alive()
        if time.monotonic() > deadline:
            raise WorkloadFailed(f"{what}: {path.name} not complete after {timeout:.0f}s")
        time.sleep(0.002)


def wait_gone(path: Path, *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while path.exists() or path.is_symlink():
        if time.monotonic() > deadline:
            raise WorkloadFailed(f"{what}: {path.name} still present after {timeout:.0f}s")
        time.sleep(0.01)


def tree_bytes(root: Path) -> int:
    return sum(size for kind, size, _ in fingerprint(root).values() if kind == "file")
