"""Mounting crashfs for a test, driving its cuts, and the skip reason where it cannot run."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

CRASHFS = Path(__file__).with_name("crashfs.py")


def unavailable() -> str | None:
    """Why crashfs cannot run here, or None."""
    if not os.path.exists("/dev/fuse"):
        return "no /dev/fuse on this machine"
    if importlib.util.find_spec("pyfuse3") is None:
        return "pyfuse3 is not installed (.ci/run installs fuse3, libfuse3-dev and pyfuse3)"
    if shutil.which("fusermount3") is None and os.geteuid() != 0:
        return "neither fusermount3 nor root to mount FUSE filesystems"
    return None


needs_fuse = pytest.mark.skipif(unavailable() is not None, reason=unavailable() or "")


def mounted(path: Path) -> bool:
    real = os.path.realpath(path)
    with open("/proc/self/mounts") as f:
        return any(line.split()[1] == real for line in f)


class Mount:
    """One crashfs process: backing -> mountpoint; cuts write ``output``."""

    def __init__(self, backing: Path, mountpoint: Path, state: Path, output: Path) -> None:
        self.backing, self.mountpoint, self.state, self.output = backing, mountpoint, state, output
        self.lines: queue.Queue[str] = queue.Queue()
        self.proc = subprocess.Popen(
            [sys.executable, str(CRASHFS), str(backing), str(mountpoint), str(state), str(output)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()
        self.expect("mounted", 30)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.strip())
        self.lines.put("eof")

    def send(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def expect(self, prefix: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"crashfs: no {prefix!r} within {timeout}s")
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if line.startswith(prefix):
                return line
            if line == "eof":
                raise AssertionError(f"crashfs exited while waiting for {prefix!r}")

    def count(self) -> int:
        self.send("count")
        return int(self.expect("count", 10).split()[1])

    def arm(self, n: int) -> None:
        self.send(f"arm {n}")
        self.expect("armed", 10)

    def cut(self) -> None:
        self.send("cut")

    def wait_cut(self, timeout: float) -> bool:
        """True once the cut happened (output written), False if not within ``timeout``."""
        try:
            self.expect("cut", timeout)
        except AssertionError:
            return False
        return True

    def close(self) -> None:
        """Unmount (lazily if something still holds it) and end the process."""
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                self.send("quit")
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
        if mounted(self.mountpoint):
            subprocess.run(["umount", "-l", str(self.mountpoint)], capture_output=True)
        if mounted(self.mountpoint):
            subprocess.run(["fusermount3", "-u", "-z", str(self.mountpoint)], capture_output=True)
        assert not mounted(self.mountpoint), f"{self.mountpoint} is still mounted"


@contextlib.contextmanager
def crashfs(root: Path, backing: Path | None = None) -> Iterator[Mount]:
    """crashfs over ``root/backing`` mounted on ``root/mnt``; cuts go to ``root/out``."""
    backing = backing or root / "backing"
    for d in (backing, root / "mnt", root / "state"):
        d.mkdir(parents=True, exist_ok=True)
    mount = Mount(backing, root / "mnt", root / "state", root / "out")
    try:
        yield mount
    finally:
        mount.close()
