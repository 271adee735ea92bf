"""The one writer thread: runs write jobs against the single write connection.

Callers on any thread submit a job (a function of the connection) and block until it is
committed (``run``), or hold a future and wait for it later (``submit``). Jobs that queue
up while a transaction runs are committed together in the next transaction (group
commit); each job runs in its own savepoint, so a job that raises is rolled back alone and
only its caller sees the error. A caller's call returns only after the commit that holds
its job, so every returned write is durable and a crash leaves the state of the last
completed transaction.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from ..errors import IndexError_

log = logging.getLogger(__name__)

T = TypeVar("T")
Job = Callable[[sqlite3.Connection], Any]

MAX_JOBS_PER_TRANSACTION = 64
_STOP = object()


class Writer:
    def __init__(self, conn: sqlite3.Connection, *, name: str = "p2psync-index-writer") -> None:
        self._conn = conn
        self._queue: queue.Queue[Any] = queue.Queue()
        self._closed = False
        self._lock = threading.Lock()
        self._listeners: list[Callable[[], None]] = []
        self.transactions = 0  # statistics: committed transactions
        self.jobs = 0  # statistics: committed jobs
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def on_rollback(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` on the writer thread whenever a job is rolled back (caches
        derived from the database must then be dropped)."""
        self._listeners.append(listener)

    def run(self, job: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``job`` in a write transaction and return its result once committed."""
        return self.submit(job).result()

    def submit(self, job: Callable[[sqlite3.Connection], T]) -> Future[T]:
        """Queue ``job`` without waiting: the future holds its result once committed."""
        if threading.current_thread() is self._thread:
            raise IndexError_("an index write job tried to submit another write (a bug)")
        future: Future[T] = Future()
        with self._lock:
            if self._closed:
                raise IndexError_("the index store is closed")
            self._queue.put((job, future))
        return future

    def close(self) -> None:
        """Finish the queued jobs, stop the thread and close the connection."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(_STOP)
        self._thread.join()
        self._conn.close()

    def _run(self) -> None:
        stop = False
        while not stop:
            item = self._queue.get()
            if item is _STOP:
                break
            batch = [item]
            while len(batch) < MAX_JOBS_PER_TRANSACTION:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                    break
                batch.append(item)
            self._transaction(batch)

    def _transaction(self, batch: list[tuple[Job, Future[Any]]]) -> None:
        conn = self._conn
        outcomes: list[tuple[Future[Any], Any, BaseException | None]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for job, future in batch:
                conn.execute("SAVEPOINT job")
                try:
                    result = job(conn)
                except Exception as exc:
                    conn.execute("ROLLBACK TO job")
                    conn.execute("RELEASE job")
                    self._rolled_back()
                    outcomes.append((future, None, _wrap(exc)))
                else:
                    conn.execute("RELEASE job")
                    outcomes.append((future, result, None))
            conn.execute("COMMIT")
        except Exception as exc:  # the whole transaction failed: every job fails
            log.error("index transaction failed: %s", exc)
            try:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            except sqlite3.Error as rollback_exc:  # keep serving; the next BEGIN will tell
                log.error("index rollback failed: %s", rollback_exc)
            self._rolled_back()
            for _job, future in batch:
                future.set_exception(IndexError_(f"writing the index failed: {exc}"))
            return
        self.transactions += 1
        self.jobs += len(batch)
        for future, result, error in outcomes:
            if error is None:
                future.set_result(result)
            else:
                future.set_exception(error)

    def _rolled_back(self) -> None:
        for listener in self._listeners:
            listener()


def _wrap(exc: Exception) -> Exception:
    if isinstance(exc, sqlite3.Error):
        wrapped = IndexError_(f"writing the index failed: {exc}")
        wrapped.__cause__ = exc
        return wrapped
    return exc
