"""The embedded local trace store: every trace, span and generation in one SQLite file.

:class:`TraceStore` writes batches of finished spans and scores (for
:class:`~.exporter.StoreExporter`, on the delivery thread) and answers the questions the
Langfuse UI answers — cost by persona, slowest and failed generations, a trace as a tree —
with no account and no network.

It is three layers, one module each: :mod:`.connection` (the connection's life: read-only,
fork, a moved file), :mod:`.reader` (the questions) and this module (the settings, the write
path of :mod:`.writes`, retention). Several threads and processes may write one store at once
(WAL mode, a busy timeout and bounded retries); a span delivered twice is stored once.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hypertool.instrumentation._config import (
    DEFAULT_RETENTION_DAYS,
    DEFAULT_STORE_MAX_FIELD_CHARS,
    ConfigError,
)
from hypertool.instrumentation._log import logger
from hypertool.instrumentation.store import listings, prompt_versions, writes
from hypertool.instrumentation.store.connection import DEFAULT_BUSY_TIMEOUT_MS
from hypertool.instrumentation.store.reader import StoreReader
from hypertool.instrumentation.store.schema import StoreError
from hypertool.instrumentation.store.usage import DAY_NS
from hypertool.instrumentation.store.writes import BatchAbandoned, Written

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan

    from hypertool.instrumentation.model.scores import Score

__all__ = ["DEFAULT_BUSY_TIMEOUT_MS", "BatchAbandoned", "TraceStore", "Written", "check_settings"]

_PURGE_INTERVAL_S = 3600.0


def check_settings(retention_days: float, max_field_chars: int) -> None:
    """Raise :class:`ConfigError` for a retention or field cap out of range."""
    if not (math.isfinite(retention_days) and retention_days >= 0):
        raise ConfigError(f"retention_days={retention_days!r} must be a number of at least 0")
    if max_field_chars < 1:
        raise ConfigError(f"max_field_chars={max_field_chars!r} must be at least 1")


class TraceStore(StoreReader):
    """One store file: writes spans, answers reports. Safe to share between threads.

    Args:
        path: The SQLite file (created with its directory, readable by its owner only).
        create: Create the file when missing; when False a missing file is a
            :class:`StoreError`.
        busy_timeout_ms: How long one attempt waits for another writer's lock.
        retention_days: Delete rows older than this (default 30); 0 keeps everything.
        max_field_chars: Characters kept per input/output field (default 20000).
        read_only: Open the file for reading only (SQLite ``mode=ro``): writing and purging
            raise :class:`StoreError`. Implies ``create=False``.

    Raises:
        StoreError: The file is missing (``create=False``), corrupt, not a trace store, or
            locked beyond the retries; the message names the file.
        ConfigError: A setting is malformed; the message names the variable.

    """

    def __init__(
        self,
        path: str | Path,
        *,
        create: bool = True,
        busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
        retention_days: float = DEFAULT_RETENTION_DAYS,
        max_field_chars: int = DEFAULT_STORE_MAX_FIELD_CHARS,
        read_only: bool = False,
    ) -> None:
        check_settings(retention_days, max_field_chars)
        self.retention_days, self.max_field_chars = retention_days, max_field_chars
        super().__init__(path, create=create, busy_timeout_ms=busy_timeout_ms, read_only=read_only)
        self._last_purge = time.monotonic()
        if read_only:
            return
        try:
            self.purge()
        except StoreError as exc:  # a busy store is still readable; purge next time
            logger.debug("trace store purge skipped: %s", exc)

    # -- writing -------------------------------------------------------------------------
    def write_spans(
        self, spans: Sequence[ReadableSpan], *, keep: Callable[[], bool] | None = None
    ) -> int:
        """Store finished spans in one transaction; a span stored before is replaced.

        A span that cannot be stored (text SQLite cannot encode, a number too large for it)
        costs that span only: when the batch fails for such a reason, its spans are written
        one by one and the bad ones left out (see :meth:`write_batch`).

        Args:
            spans: The spans.
            keep: Asked just before the commit; when it returns False the batch is rolled back
                and :class:`BatchAbandoned` raised (the delivery processor gave up on it).

        Returns:
            The number of spans written.

        Raises:
            StoreError: The batch could not be written (nothing of it was).
            BatchAbandoned: ``keep`` said no (nothing of it was written).

        """
        return len(self.write_batch(spans, keep=keep).observations)

    def write_batch(
        self,
        spans: Sequence[ReadableSpan],
        writer: str | None = None,
        *,
        keep: Callable[[], bool] | None = None,
    ) -> Written:
        """Like :meth:`write_spans`, saying which spans were written and how many were not.

        Args:
            spans: Finished spans.
            writer: Who writes (one id per process): the tokens, cost and calls of the
                generations written are added to its usage per persona and UTC day in the
                same transaction (see :meth:`spent_by_others`).
            keep: See :meth:`write_spans`.

        Raises:
            StoreError: Nothing could be written: the store is locked, unreadable or gone.
            BatchAbandoned: ``keep`` said no (nothing of it was written).

        """
        written = writes.write_spans(self, spans, writer, keep, self.max_field_chars)
        if time.monotonic() - self._last_purge >= _PURGE_INTERVAL_S:
            try:
                self.purge()
            except StoreError as exc:
                logger.debug("trace store purge failed: %s", exc)
        return written

    def write_scores(
        self, scores: Sequence[Score], *, keep: Callable[[], bool] | None = None
    ) -> int:
        """Store scores in one transaction; a score stored before (same id) is replaced.

        Args:
            scores: The scores.
            keep: See :meth:`write_spans`.

        Returns:
            The number of scores written.

        Raises:
            StoreError: The batch could not be written (nothing of it was).
            BatchAbandoned: ``keep`` said no (nothing of it was written).

        """
        return writes.write_scores(self, scores, keep, self.max_field_chars)

    def record_prompt_version(self, name: str, kind: str, prompt: str, config: str) -> int:
        """The version number of this content of local prompt ``name`` (a new one when it
        differs from the latest); ``prompt`` is the text or the messages as JSON.
        """
        return self.run(lambda c: prompt_versions.record(c, name, kind, prompt, config))

    def purge(self, now_ns: int | None = None) -> int:
        """Delete traces, observations and scores older than the retention period.

        Returns:
            The number of observations deleted.

        """
        self.writable()
        self._last_purge = time.monotonic()
        if not self.retention_days:
            return 0
        now = now_ns if now_ns is not None else time.time_ns()
        cutoff = now - int(self.retention_days * DAY_NS)
        return self.run(lambda c: writes.delete_older(c, cutoff))

    # -- the store as a whole ------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """Path, size on disk (with the WAL), schema version, row counts, time covered."""
        counts = self.run(listings.counts)
        size = 0
        for suffix in ("", "-wal"):
            with contextlib.suppress(OSError):
                size += Path(f"{self.path}{suffix}").stat().st_size
        return {
            "path": str(self.path),
            "size_bytes": size,
            "schema_version": self.run(
                lambda c: int(c.execute("PRAGMA user_version").fetchone()[0])
            ),
            "retention_days": self.retention_days,
            **counts,
        }
