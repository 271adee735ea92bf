"""Three `p2psync run` daemons configured only through CLI commands converge, and a
SIGKILLed daemon catches up after a restart."""

from __future__ import annotations

import contextlib
import signal
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from test_cli_daemon import ENV, P2PSYNC, cli_run, init_home, ok, status, stop, wait_for

NAMES = ("a", "b", "c")


def start(home: Path, env: dict[str, str] = ENV) -> subprocess.Popen:
    """A `p2psync run` daemon on ``home``, once its API answers."""
    (home / "api.address").unlink(missing_ok=True)
    proc = subprocess.Popen(
        [*P2PSYNC, "--home", str(home), "run"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for(
        lambda: (
            (home / "api.address").exists() and cli_run(home, "status", "--json").exit_code == 0
        ),
        what=f"daemon {home}",
    )
    return proc


@dataclass
class Cluster:
    """Daemons by name: their homes, folder paths (not created), processes, device IDs."""

    homes: dict[str, Path]
    data: dict[str, Path]
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)


@contextlib.contextmanager
def cluster(tmp_path: Path, names: Sequence[str] = NAMES) -> Iterator[Cluster]:
    """Daemons ``names`` on loopback, each told of every other through `peer add` (the
    CLI only); all stopped at the end."""
    c = Cluster(
        homes={n: tmp_path / n / "home" for n in names},
        data={n: tmp_path / n / "data" for n in names},
    )
    try:
        for n in names:
            init_home(c.homes[n], n)
            c.procs[n] = start(c.homes[n])
        info = {n: status(c.homes[n])["system"] for n in names}
        c.ids = {n: info[n]["device_id"] for n in names}
        for n in names:
            for m in names:
                if m != n:
                    addr = info[m]["listen_addresses"][0]
                    ok(c.homes[n], "peer", "add", c.ids[m], "--name", m, "--address", addr)
        yield c
    finally:
        for proc in c.procs.values():
            stop(proc)


def tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and not any(part.startswith(".p2p") for part in p.relative_to(root).parts)
    }


def converged(homes: dict[str, Path], data: dict[str, Path], expected: dict[str, bytes]) -> bool:
    if any(tree(data[n]) != expected for n in NAMES):
        return False
    for n in NAMES:
        f = status(homes[n])["folders"][0]
        if not (
            f["state"] == "idle"
            and f["need_items"] == 0
            and all(d["in_sync"] for d in f["devices"])
        ):
            return False
    return True


def test_three_daemons_configured_by_cli_converge(tmp_path) -> None:
    with cluster(tmp_path) as c:
        homes, data, procs, ids = c.homes, c.data, c.procs, c.ids
        ok(
            homes["a"],
            "folder",
            "add",
            str(data["a"]),
            "--id",
            "shared",
            "--share",
            ids["b"],
            "--share",
            ids["c"],
        )
        for n in ("b", "c"):
            wait_for(
                lambda n=n: "shared" in ok(homes[n], "folder", "pending"), what=f"offer on {n}"
            )
            ok(homes[n], "folder", "accept", "shared", str(data[n]))
        # b and c also share with each other
        ok(homes["b"], "folder", "share", "shared", ids["c"])
        ok(homes["c"], "folder", "share", "shared", ids["b"])
        expected = {}
        for n in NAMES:
            (data[n] / f"from-{n}.txt").write_text(f"written on {n}\n")
            expected[f"from-{n}.txt"] = f"written on {n}\n".encode()
            ok(homes[n], "scan", "shared")
        wait_for(lambda: converged(homes, data, expected), timeout=30, what="convergence")
        # SIGKILL c, change files elsewhere, restart c: it catches up
        procs["c"].send_signal(signal.SIGKILL)
        procs["c"].wait(timeout=10)
        (data["a"] / "from-a.txt").write_text("changed on a\n")
        (data["b"] / "new-b.bin").write_bytes(b"\x00" * 200_000)
        for n in ("a", "b"):
            ok(homes[n], "scan", "shared")
        expected |= {"from-a.txt": b"changed on a\n", "new-b.bin": b"\x00" * 200_000}
        procs["c"] = start(homes["c"])
        ok(homes["c"], "scan", "shared")
        wait_for(
            lambda: converged(homes, data, expected), timeout=30, what="convergence after restart"
        )
