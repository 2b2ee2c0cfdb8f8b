"""The life of a store's one SQLite connection: opened (read-write, or read-only), shared by
threads behind a lock, retried while another writer holds the file, never carried across a
fork, closed — and told when the file at its path is no longer the one it opened.

A store object carried into a forked child opens a connection of its own there on first use
(SQLite connections must not cross a fork; the inherited one is never used nor closed).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Self, TypeVar

from hypertool.instrumentation._fork import hold_during_fork, keep_forever, reset_in_child
from hypertool.instrumentation.store.schema import (
    StoreError,
    connect,
    connect_read_only,
    with_retry,
)

T = TypeVar("T")

DEFAULT_BUSY_TIMEOUT_MS = 5_000


class StoreConnection:
    """One store file's connection: every query runs through :meth:`run`.

    Args:
        path: The SQLite file (created with its directory, readable by its owner only).
        create: Create the file when missing; when False a missing file is a
            :class:`StoreError`.
        busy_timeout_ms: How long one attempt waits for another writer's lock.
        read_only: Open the file for reading only (SQLite ``mode=ro``). Implies
            ``create=False``.

    Raises:
        StoreError: The file is missing (``create=False``), corrupt, not a trace store, or
            locked beyond the retries; the message names the file.

    """

    def __init__(
        self,
        path: str | Path,
        *,
        create: bool = True,
        busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
        read_only: bool = False,
    ) -> None:
        self.path = Path(path).expanduser()
        self.read_only = read_only
        self._lock = threading.RLock()
        self._create, self._busy_timeout_ms = create, busy_timeout_ms
        self._busy_timeout_s = busy_timeout_ms / 1000
        self._connection: sqlite3.Connection | None = None
        self._reopen = False
        self._held_at_fork = False
        # Registered before connecting: opening migrates the file in a write transaction,
        # which a fork must not cut in half either.
        hold_during_fork(self, StoreConnection._before_fork, StoreConnection._after_fork_in_parent)
        reset_in_child(self, StoreConnection._after_fork)
        with self._lock:
            self._connection = self._open()
        self._identity = _identity(self.path)

    def run(self, operation: Callable[[sqlite3.Connection], T]) -> T:
        """``operation(connection)`` under the lock, retried while the file is locked.

        Raises:
            StoreError: The store is closed, or stayed locked beyond the retries.

        """
        with self._lock:
            connection = self._connection
            if connection is None:
                if not self._reopen:
                    raise StoreError(f"{self.path}: the trace store is closed")
                connection = self._open()
                self._connection, self._reopen = connection, False
            return with_retry(self.path, lambda: operation(connection), self._busy_timeout_s)

    def writable(self) -> None:
        """Raise :class:`StoreError` when the store was opened read-only."""
        if self.read_only:
            raise StoreError(f"{self.path}: the trace store is open read-only")

    def moved(self) -> bool:
        """True when the file at :attr:`path` is no longer the one this store opened: it was
        deleted, moved or replaced (writes would go to a file nobody reads). One ``stat``.
        """
        return _identity(self.path) != self._identity

    def close_moved(self) -> None:
        """Close a store whose file was deleted, moved or replaced (see :meth:`moved`).

        What its write-ahead log still holds is first written into the file, wherever it is
        now (a moved store keeps all its rows), and the log emptied: SQLite leaves the log
        and shared-memory files of a moved database beside the old path, where a new store
        there would read them as its own. Those leftovers are removed when no store is at the
        path yet.
        """
        with self._lock:
            self._reopen = False
            if self._connection is not None:
                with contextlib.suppress(sqlite3.Error):
                    self._connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                self._connection.close()
                self._connection = None
        if not self.path.exists():
            for suffix in ("-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(f"{self.path}{suffix}")

    def close(self) -> None:
        """Close the connection (idempotent)."""
        with self._lock:
            self._reopen = False
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    def _open(self) -> sqlite3.Connection:
        if self.read_only:
            return connect_read_only(self.path, busy_timeout_ms=self._busy_timeout_ms)
        return connect(self.path, create=self._create, busy_timeout_ms=self._busy_timeout_ms)

    # No SQLite connection crosses a fork: SQLite keeps per-process lock state for each open
    # file (shared by every connection to it), which a child would inherit and trust, so the
    # parent waits for the operation in progress (a write: milliseconds; at most the busy
    # timeout) and closes its connection before forking. Both processes open a connection of
    # their own on next use.
    def _before_fork(self) -> bool:
        self._held_at_fork = self._lock.acquire(timeout=self._busy_timeout_s * 2 + 1)
        if self._held_at_fork and self._connection is not None:
            with contextlib.suppress(sqlite3.Error):
                self._connection.close()
            self._connection, self._reopen = None, True
        return self._held_at_fork

    def _after_fork_in_parent(self) -> None:
        self._held_at_fork = False
        self._lock.release()

    def _after_fork(self) -> None:
        self._lock = threading.RLock()
        if self._connection is not None:
            # Cut in the middle of an operation (the wait gave up): never touch it.
            keep_forever(self._connection)
            self._connection, self._reopen = None, True
        self._held_at_fork = False

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"


def _identity(path: Path) -> tuple[int, int] | None:
    """The file's (device, inode), or None when there is no file at ``path``."""
    try:
        found = os.stat(path)
    except OSError:
        return None
    return found.st_dev, found.st_ino
