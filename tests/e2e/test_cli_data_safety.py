"""Issue 18.1-3 as a new user meets them, with the CLI and real `p2psync run` daemons:
a second daemon on a running home, nested and overlapping folders, the default accept
path, and removing/re-accepting a folder and recovering a lost marker without deleting
anything on the other devices."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from test_cli_cluster import start, status, stop
from test_cli_daemon import ENV, P2PSYNC, cli_run, init_home, ok, wait_for

from p2psync.config import load_config


def test_second_run_on_a_running_home_refuses_and_touches_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    init_home(home)
    first = start(home)
    try:
        ok(home, "folder", "add", str(tmp_path / "data"), "--id", "data")
        wait_for(lambda: (home / "index.sqlite3-wal").exists(), what="the index's WAL file")
        before = {p.name: p.stat().st_mtime_ns for p in home.iterdir()}
        second = subprocess.run(
            [*P2PSYNC, "--home", str(home), "run"],
            env=ENV,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert second.returncode == 5, second.stderr
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in second.stderr, second.stderr
        assert f"already running on {home} (PID {first.pid})" in lines[0]
        after = {p.name: p.stat().st_mtime_ns for p in home.iterdir()}
        assert after == before  # not even the log was opened
        assert first.poll() is None
        (tmp_path / "data" / "after.txt").write_text("still syncing\n")
        ok(home, "scan", "data")
        wait_for(lambda: status(home)["folders"][0]["local"]["files"] == 1, what="the first daemon")
    finally:
        stop(first)
    # the lock dies with its process: the home runs again after a stop
    again = start(home)
    stop(again)
    assert again.returncode == 0


@pytest.fixture
def user_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh $HOME, for `~` in the CLI (in-process) and in the daemons (environment)."""
    home = tmp_path / "user"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    return home


def start_in(home: Path, user_home: Path) -> subprocess.Popen:
    (home / "api.address").unlink(missing_ok=True)
    proc = subprocess.Popen(
        [*P2PSYNC, "--home", str(home), "run"],
        env={**ENV, "HOME": str(user_home)},
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


def folder_status(home: Path, folder_id: str) -> dict:
    return next(f for f in status(home)["folders"] if f["id"] == folder_id)


def pair(homes: dict[str, Path]) -> dict[str, dict]:
    """Trust each other (the README's two-machine steps)."""
    info = {n: status(h)["system"] for n, h in homes.items()}
    for n, h in homes.items():
        for m in homes:
            if m != n:
                ok(
                    h,
                    "peer",
                    "add",
                    info[m]["device_id"],
                    "--name",
                    m,
                    "--address",
                    info[m]["listen_addresses"][0],
                )
    return info


def names(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def test_accept_without_a_path_is_a_sibling_of_the_default_folder(
    tmp_path: Path, user_home: Path
) -> None:
    homes = {"a": tmp_path / "a", "b": tmp_path / "b"}
    init_home(homes["a"], "a")
    # b as the README sets it up: with the default folder ~/Sync
    ok(
        homes["b"],
        "init",
        "--name",
        "b",
        "--no-mdns",
        "--listen",
        "tcp://127.0.0.1:0",
        "--api",
        "127.0.0.1:0",
    )
    procs = {n: start_in(h, user_home) for n, h in homes.items()}
    try:
        info = pair(homes)
        acme = tmp_path / "acme-on-a"
        acme.mkdir()
        (acme / "plan.txt").write_text("the plan\n")
        ok(
            homes["a"],
            "folder",
            "add",
            str(acme),
            "--id",
            "acme",
            "--share",
            info["b"]["device_id"],
        )
        wait_for(lambda: "acme" in ok(homes["b"], "folder", "pending"), what="the offer")
        out = ok(homes["b"], "folder", "accept", "acme")
        assert f"at {user_home / 'acme'}" in out
        assert load_config(homes["b"]).folder("acme").path == str(user_home / "acme")
        wait_for(lambda: (user_home / "acme" / "plan.txt").exists(), what="acme's file on b")
        ok(homes["b"], "scan", "default")
        wait_for(
            lambda: folder_status(homes["b"], "default")["state"] == "idle",
            what="default folder idle",
        )
        assert not (user_home / "Sync" / "acme").exists()
        assert folder_status(homes["b"], "default")["local"]["files"] == 0
        # a second offer of the same ID at a taken default path gets a suffix
        (user_home / "other").mkdir()
        ok(homes["b"], "folder", "remove", "acme")
        ok(homes["b"], "folder", "add", str(user_home / "acme"), "--id", "mine")
        wait_for(lambda: "acme" in ok(homes["b"], "folder", "pending"), what="the offer again")
        out = ok(homes["b"], "folder", "accept", "acme")
        assert f"at {user_home / 'acme-2'}" in out
    finally:
        for proc in procs.values():
            stop(proc)


def test_nested_folders_and_the_home_inside_a_folder_are_refused(
    tmp_path: Path, user_home: Path
) -> None:
    home = user_home / ".local" / "share" / "p2psync"
    ok(
        home,
        "init",
        "--name",
        "solo",
        "--no-mdns",
        "--listen",
        "tcp://127.0.0.1:0",
        "--api",
        "127.0.0.1:0",
    )
    sync = user_home / "Sync"
    proc = start_in(home, user_home)
    try:
        wait_for(lambda: (sync / ".p2psync").is_dir(), what="the default folder")
        for path, why in (
            (sync / "inner", "is inside folder 'default'"),
            (user_home / "Documents" / ".." / "Sync" / "x", "is inside folder 'default'"),
            (user_home, "contains this node's home"),
            (tmp_path, "contains this node's home"),
        ):
            r = cli_run(home, "folder", "add", str(path), "--id", "nested")
            assert r.exit_code == 2 and why in r.output and "Traceback" not in r.output, r.output
        assert [f.id for f in load_config(home).folders] == ["default"]
        r = cli_run(user_home / "other-home", "init", "--default-folder-path", str(user_home))
        assert r.exit_code == 2 and "contains this node's home" in r.output, r.output
        assert not (user_home / "other-home" / "config.toml").exists()
        # A hand edit nests a folder anyway: the outer one stops; nothing of the inner
        # one (files, marker) enters the outer one's index.
        text = (home / "config.toml").read_text()
        text += f'\n[[folders]]\nid = "inner"\npath = "{sync / "inner"}"\n'
        (home / "config.toml").write_text(text)
        wait_for(lambda: folder_status(home, "default")["state"] == "error", what="outer blocked")
        reason = folder_status(home, "default")["reason"]
        assert "contains folder 'inner'" in reason and "folder remove" in reason
        (sync / "inner" / "secret.txt").write_text("inner only\n")
        ok(home, "scan")
        wait_for(lambda: folder_status(home, "inner")["local"]["files"] == 1, what="inner scan")
        assert folder_status(home, "default")["local"]["files"] == 0
        ok(home, "folder", "remove", "inner")
        wait_for(lambda: folder_status(home, "default")["state"] == "idle", what="outer runs again")
    finally:
        stop(proc)


FILES = {f"doc{i:02}.txt": f"document {i}\n" for i in range(12)}


@dataclass
class Pair:
    """Daemons a and b sharing "acme" (12 files, added on a, accepted on b at ``path_b``)."""

    homes: dict[str, Path]
    user_home: Path
    path_a: Path
    path_b: Path
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    def start(self, name: str) -> None:
        self.procs[name] = start_in(self.homes[name], self.user_home)

    def stop(self, name: str) -> None:
        stop(self.procs.pop(name))

    def synced(self, name: str, path: Path, expected: dict[str, str]) -> bool:
        files = {
            str(p.relative_to(path)): p.read_text()
            for p in path.rglob("*")
            if p.is_file() and not p.relative_to(path).parts[0].startswith(".p2p")
        }
        if files != expected:
            return False
        f = folder_status(self.homes[name], "acme")
        return f["state"] == "idle" and f["need_items"] == 0


@contextlib.contextmanager
def acme_pair(tmp_path: Path, user_home: Path) -> Iterator[Pair]:
    homes = {"a": tmp_path / "a", "b": tmp_path / "b"}
    pair_ = Pair(homes, user_home, tmp_path / "acme-a", tmp_path / "acme-b")
    try:
        for n, h in homes.items():
            init_home(h, n)
            pair_.start(n)
        info = pair(homes)
        pair_.path_a.mkdir()
        for name, text in FILES.items():
            (pair_.path_a / name).write_text(text)
        ok(
            homes["a"],
            "folder",
            "add",
            str(pair_.path_a),
            "--id",
            "acme",
            "--share",
            info["b"]["device_id"],
        )
        wait_for(lambda: "acme" in ok(homes["b"], "folder", "pending"), what="the offer")
        ok(homes["b"], "folder", "accept", "acme", str(pair_.path_b))
        wait_for(lambda: pair_.synced("b", pair_.path_b, FILES), timeout=60, what="first sync")
        yield pair_
    finally:
        for proc in pair_.procs.values():
            stop(proc)


def test_remove_then_accept_at_a_new_path_pulls_everything(tmp_path: Path, user_home: Path) -> None:
    with acme_pair(tmp_path, user_home) as p:
        ok(p.homes["b"], "folder", "remove", "acme")
        wait_for(lambda: "acme" in ok(p.homes["b"], "folder", "pending"), what="offered again")
        new_path = tmp_path / "acme-b-new"
        ok(p.homes["b"], "folder", "accept", "acme", str(new_path))
        wait_for(lambda: p.synced("b", new_path, FILES), timeout=60, what="b at the new path")
        assert p.synced("a", p.path_a, FILES)
        # the same offline: remove with the daemon stopped, accept after the start
        p.stop("b")
        ok(p.homes["b"], "folder", "remove", "acme")
        p.start("b")
        wait_for(lambda: "acme" in ok(p.homes["b"], "folder", "pending"), what="offered again")
        third = tmp_path / "acme-b-third"
        ok(p.homes["b"], "folder", "accept", "acme", str(third))
        wait_for(lambda: p.synced("b", third, FILES), timeout=60, what="b at the third path")
        assert p.synced("a", p.path_a, FILES)


def test_documented_marker_recovery_deletes_nothing_elsewhere(
    tmp_path: Path, user_home: Path
) -> None:
    with acme_pair(tmp_path, user_home) as p:
        # the folder is emptied, marker included, while b is stopped (a disk swapped)
        p.stop("b")
        shutil.rmtree(p.path_b)
        p.path_b.mkdir()
        (p.path_b / "doc00.txt").write_text("document 0\n")  # one file restored by hand
        p.start("b")
        wait_for(
            lambda: "marker .p2psync is missing" in folder_status(p.homes["b"], "acme")["reason"],
            what="the marker error",
        )
        # docs/operations.md, "Folder marker missing", literally:
        path = next(f for f in status(p.homes["b"])["folders"] if f["id"] == "acme")["path"]
        subprocess.run(["mkdir", "-p", f"{path}/.p2psync"], check=True)
        wait_for(lambda: p.synced("b", p.path_b, FILES), timeout=60, what="b pulled back")
        assert p.synced("a", p.path_a, FILES)  # a lost nothing


def test_folder_emptied_while_stopped_pulls_instead_of_deleting(
    tmp_path: Path, user_home: Path
) -> None:
    with acme_pair(tmp_path, user_home) as p:
        p.stop("b")
        for name in FILES:
            (p.path_b / name).unlink()  # the marker stays
        p.start("b")
        wait_for(lambda: p.synced("b", p.path_b, FILES), timeout=60, what="b pulled back")
        assert p.synced("a", p.path_a, FILES)


def test_everything_moved_into_a_subfolder_while_stopped_travels_as_renames(
    tmp_path: Path, user_home: Path
) -> None:
    """No indexed name is left on disk, but every file is there under a new name: the
    user's move, not an emptied disk; it must reach a as a move (not come back)."""
    with acme_pair(tmp_path, user_home) as p:
        p.stop("b")
        (p.path_b / "archive").mkdir()
        for name in FILES:
            os.rename(p.path_b / name, p.path_b / "archive" / name)
        p.start("b")
        moved = {f"archive/{n}": t for n, t in FILES.items()}
        wait_for(lambda: p.synced("a", p.path_a, moved), timeout=60, what="a has the move")
        assert p.synced("b", p.path_b, moved)


def test_small_folder_losing_most_files_waits_for_confirmation(
    tmp_path: Path, user_home: Path
) -> None:
    with acme_pair(tmp_path, user_home) as p:
        for i in range(10):
            (p.path_a / f"doc{i:02}.txt").unlink()
        ok(p.homes["a"], "scan", "acme")
        wait_for(
            lambda: folder_status(p.homes["b"], "acme")["state"] == "paused",
            what="b holds the deletions",
        )
        assert "would delete 10 of 12 files" in folder_status(p.homes["b"], "acme")["reason"]
        assert len(list(p.path_b.glob("doc*.txt"))) == 12
        ok(p.homes["b"], "folder", "confirm-deletes", "acme")
        rest = {n: t for n, t in FILES.items() if n in ("doc10.txt", "doc11.txt")}
        wait_for(lambda: p.synced("b", p.path_b, rest), timeout=60, what="deletes applied")


def test_two_homes_sharing_one_folder_path_never_run_it_together(
    tmp_path: Path, user_home: Path
) -> None:
    homes = {"a": tmp_path / "a", "b": tmp_path / "b"}
    shared = tmp_path / "same-folder"
    procs: dict[str, subprocess.Popen] = {}
    try:
        for n, h in homes.items():
            init_home(h, n)
            ok(h, "folder", "add", str(shared), "--id", f"on-{n}")
        procs["a"] = start_in(homes["a"], user_home)
        wait_for(lambda: folder_status(homes["a"], "on-a")["state"] == "idle", what="a runs it")
        (shared / "notes.txt").write_text("a's notes\n")
        ok(homes["a"], "scan")
        procs["b"] = start_in(homes["b"], user_home)
        wait_for(
            lambda: (
                "in use by another p2psync daemon" in folder_status(homes["b"], "on-b")["reason"]
            ),
            what="b refused",
        )
        assert folder_status(homes["b"], "on-b")["local"]["files"] == 0
        assert folder_status(homes["a"], "on-a")["state"] == "idle"
        stop(procs.pop("a"))
        ok(homes["b"], "scan", "on-b")  # retried at once instead of after the backoff
        wait_for(lambda: folder_status(homes["b"], "on-b")["local"]["files"] == 1, what="b runs it")
    finally:
        for proc in procs.values():
            stop(proc)
