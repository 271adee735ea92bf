"""Fault injection outside the network: small disks, read-only remounts, daemons killed
with SIGKILL, damaged or locked index databases, and checks of what is left on disk.

Disk faults need root (mount). Without it they fail with a clear message instead of
being skipped: the suite is meant to run as root (CI and the dev container are).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from p2psync.config import Config, DeviceConfig, FolderConfig, load_config, save_config
from p2psync.fs.internal import is_temp_base
from p2psync.identity import load_identity

P2PSYNC = [sys.executable, "-m", "p2psync.cli"]
INDEX_FILE = "index.sqlite3"


# ---- mounts ---------------------------------------------------------------------------


def require_root(what: str) -> None:
    if os.geteuid() != 0:
        raise AssertionError(f"{what} needs root (mount/tmpfs); run the reliability suite as root")


@contextlib.contextmanager
def tmpfs(path: Path, size: str = "20m") -> Iterator[Path]:
    """A fresh tmpfs of ``size`` mounted on ``path``; unmounted (lazily if busy) afterwards."""
    require_root("a small tmpfs")
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
        check=True,
        capture_output=True,
    )
    try:
        yield path
    finally:
        if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], check=True, capture_output=True)


def remount(path: Path, *, read_only: bool) -> None:
    mode = "ro" if read_only else "rw"
    subprocess.run(["mount", "-o", f"remount,{mode}", str(path)], check=True, capture_output=True)


def fill(path: Path, leave_free: int) -> int:
    """Write a filler file into ``path``'s file system until ``leave_free`` bytes remain."""
    st = os.statvfs(path)
    free = st.f_bavail * st.f_frsize
    size = max(0, free - leave_free)
    with open(path / "filler.bin", "wb") as f:
        chunk = b"\0" * (1024 * 1024)
        left = size
        while left > 0:
            f.write(chunk[: min(left, len(chunk))])
            left -= min(left, len(chunk))
    return size


# ---- what is on disk ------------------------------------------------------------------


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def temp_files(root: Path) -> list[str]:
    """Puller temp files (``.p2psync.*.tmp``) anywhere under ``root``."""
    out = []
    for dirpath, _dirs, files in os.walk(root):
        out.extend(os.path.join(dirpath, f) for f in files if is_temp_base(f))
    return out


def user_files(root: Path) -> dict[str, str]:
    """name -> sha256 of every regular user file (internal names skipped)."""
    out: dict[str, str] = {}
    for dirpath, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".p2p")]
        for f in files:
            if f.startswith(".p2p"):
                continue
            p = Path(dirpath, f)
            if p.is_file() and not p.is_symlink():
                out[os.path.relpath(p, root)] = sha(p.read_bytes())
    return out


def mixed_files(root: Path, allowed: dict[str, set[str]]) -> list[str]:
    """Names whose content is none of the ``allowed`` versions (or that are unexpected)."""
    return [n for n, h in user_files(root).items() if h not in allowed.get(n, set())]


# ---- the index database ---------------------------------------------------------------


def drop_wal(home: Path) -> None:
    db = home / INDEX_FILE
    for suffix in ("-wal", "-shm"):
        extra = db.with_name(db.name + suffix)
        if extra.exists():
            extra.unlink()


def truncate_db(home: Path, keep: int) -> None:
    db = home / INDEX_FILE
    with open(db, "r+b") as f:
        f.truncate(keep)


def corrupt_db(home: Path, seed: int, flips: int = 64) -> None:
    """Overwrite bytes in the middle of the file (pages, not only the header)."""
    import random

    rng = random.Random(seed)
    db = home / INDEX_FILE
    data = bytearray(db.read_bytes())
    for _ in range(flips):
        i = rng.randrange(100, len(data))
        data[i] = rng.randrange(256)
    db.write_bytes(bytes(data))


class DbLocker:
    """Another process holding an exclusive write transaction on the index database."""

    def __init__(self, home: Path) -> None:
        code = (
            "import sqlite3, sys\n"
            "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
            "c.execute('BEGIN EXCLUSIVE')\n"
            "print('locked', flush=True)\n"
            "sys.stdin.read()\n"
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code, str(home / INDEX_FILE)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if line.strip() != "locked":
            raise AssertionError("the locker process could not lock the database")

    def release(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            self.proc.wait(timeout=10)


def db_is_intact(home: Path) -> bool:
    try:
        with contextlib.closing(sqlite3.connect(home / INDEX_FILE)) as c:
            return c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    except sqlite3.Error:
        return False


# ---- daemons as subprocesses ------------------------------------------------------------


def share_folder(
    home: Path, data: Path, peers: dict[Path, tuple[object, ...]], **folder: object
) -> None:
    """Trust each peer home's device at the given addresses (texts, or its config's
    listen addresses) and share the test folder."""
    cfg: Config = load_config(home)
    ids = []
    for peer_home, addresses in peers.items():
        ident = load_identity(peer_home)
        ids.append(ident.device_id)
        cfg = cfg.with_device(
            DeviceConfig(
                id=ident.device_id, name=peer_home.parent.name, addresses=tuple(map(str, addresses))
            )
        )
    cfg = cfg.with_folder(
        FolderConfig(
            id="shared",
            path=str(data),
            devices=tuple(ids),
            rescan_interval_s=0,
            watcher=False,
            **folder,
        )
    )  # type: ignore[arg-type]
    save_config(cfg, home)


class Daemon:
    """``p2psync --home H run`` as a real process, killable at any instant.

    ``drop_dac=True`` runs it without CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH, so that
    chmod 000 really makes a file unreadable for it even when the suite runs as root.
    """

    def __init__(
        self,
        home: Path,
        *,
        drop_dac: bool = False,
        wrapper: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.home = home
        self.drop_dac = drop_dac
        self.wrapper = list(wrapper)  # a command the daemon runs under, e.g. prlimit
        self.env = dict(env or {})  # added to its environment (e.g. a faked clock)
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self._log_offset = 0
        # Its stderr, beside its home (a file in the home would be the daemon's business):
        # where its stacks go on SIGUSR1, and a crash's traceback.
        self.stderr_path = home.with_name(home.name + ".stderr")

    @property
    def log_path(self) -> Path:
        return self.home / "p2psync.log"

    def start(self) -> None:
        prefix: list[str] = list(self.wrapper)
        if self.drop_dac and os.geteuid() == 0:
            prefix += ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"]
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        env = {**os.environ, "P2PSYNC_MDNS_INTERFACES": "127.0.0.1", **self.env}
        with open(self.stderr_path, "ab") as stderr:
            self.proc = subprocess.Popen(
                [*prefix, *P2PSYNC, "--home", str(self.home), "run"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        self.starts += 1

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run ``p2psync --home H ARGS`` against this daemon (through its control API)."""
        return subprocess.run(
            [*P2PSYNC, "--home", str(self.home), *args], capture_output=True, text=True, timeout=30
        )

    def log_since_start(self) -> str:
        if not self.log_path.exists():
            return ""
        with open(self.log_path, "rb") as f:
            f.seek(self._log_offset)
            return f.read().decode("utf-8", "replace")

    def ready(self) -> bool:
        return "ready: device" in self.log_since_start()

    def stacks(self, wait: float = 5.0) -> str:
        """Every thread's stack of the running daemon (SIGUSR1, ``logsetup``), for a
        failure message when it hangs; "" if it cannot say."""
        if self.proc is None or self.proc.poll() is not None:
            return ""
        before = self.stderr_path.stat().st_size
        self.proc.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + wait
        seen = False
        while time.monotonic() < deadline:  # polled: the interpreter writes it at once
            with open(self.stderr_path, "rb") as f:
                f.seek(before)
                text = f.read().decode("utf-8", "replace")
            if seen:  # read once more after the last block began: it is complete now
                others = text.find("Thread 0x")  # absent when there is one thread
                return text[others if others >= 0 else text.find("Current thread 0x") :]
            seen = "Current thread 0x" in text  # the signalled thread comes last
            time.sleep(0.1)
        return ""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no cleanup of any kind runs in the daemon."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None


def wait_until(predicate, timeout: float, what: str, interval: float = 0.05):
    """Blocking poll with a deadline, for code outside trio."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
