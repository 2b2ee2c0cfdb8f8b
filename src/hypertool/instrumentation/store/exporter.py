"""The local store as a sink: an OpenTelemetry span exporter writing to a :class:`TraceStore`,
and a score sink (:class:`~hypertool.instrumentation.model.scores.ScoreSink`) for scores.

A corrupt or locked database never raises into the application: the exporter reports the batch
as failed, and the delivery processor counts its spans (or scores) as dropped. A span the store
cannot take costs that span only: :meth:`StoreExporter.export_partial` tells the delivery
processor how many of a batch were left out. In a forked child the exporter opens connections
of its own on first use, behind new locks, and is another writer in the store's per-writer
usage.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from hypertool.instrumentation._config import DEFAULT_RETENTION_DAYS, DEFAULT_STORE_MAX_FIELD_CHARS
from hypertool.instrumentation._fork import reset_in_child
from hypertool.instrumentation._log import logger, warn_once
from hypertool.instrumentation.store.schema import StoreError, StoreLockedError
from hypertool.instrumentation.store.trace_store import (
    DEFAULT_BUSY_TIMEOUT_MS,
    TraceStore,
    check_settings,
)
from hypertool.instrumentation.store.writes import BatchAbandoned

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan

    from hypertool.instrumentation.model.scores import Score

T = TypeVar("T")

_FAILURE_REPORT_INTERVAL_S = 60.0
DELIVERY_INTERVAL_S = 0.2
"""How often the store's delivery thread writes what is queued (when under 512 spans): local
writes are cheap, and processes sharing a ``day``/``month`` budget see each other's usage
through the store, so it is written soon.
"""


class StoreExporter(SpanExporter):
    """An OpenTelemetry span exporter writing each batch to a :class:`TraceStore`.

    The store is opened on the first batch, so building the exporter never fails on a bad file.
    :meth:`export` never raises: a batch that cannot be written returns ``FAILURE`` (the
    delivery processor counts its spans as dropped) and the reason is logged at most once a
    minute.

    Args:
        path: The store file.
        busy_timeout_ms: How long one write attempt waits for another writer's lock.
        retention_days: See :class:`TraceStore`.
        max_field_chars: See :class:`TraceStore`.

    """

    def __init__(
        self,
        path: str | Path,
        *,
        busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
        retention_days: float = DEFAULT_RETENTION_DAYS,
        max_field_chars: int = DEFAULT_STORE_MAX_FIELD_CHARS,
    ) -> None:
        check_settings(retention_days, max_field_chars)
        self.path = Path(path).expanduser()
        self._busy_timeout_ms = busy_timeout_ms
        self._retention_days, self._max_field_chars = retention_days, max_field_chars
        self._store: TraceStore | None = None
        self._lock = threading.Lock()
        self._reader: TraceStore | None = None
        self._reader_lock = threading.Lock()
        self._stopped = False
        self._last_failure_report = -_FAILURE_REPORT_INTERVAL_S
        self.exported_spans = 0
        self.rejected_spans = 0
        self.exported_scores = 0
        self.failed_batches = 0
        # Who writes, in the store's per-writer usage: a budget read tells this process's own
        # usage from the others'. A new one in a forked child (same object, other process).
        self._writer_pid = 0
        self._writer = ""
        reset_in_child(self, StoreExporter._after_fork)

    def _after_fork(self) -> None:
        # The parent's export thread may have held these locks. The stores stay: each opens a
        # connection of its own in the child on first use (see TraceStore).
        self._lock = threading.Lock()
        self._reader_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"StoreExporter({str(self.path)!r})"

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Write ``spans`` in one transaction; ``FAILURE`` (never an exception) unless every
        span was written.
        """
        if self.export_partial(spans):
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def export_partial(
        self, spans: Sequence[ReadableSpan], claim: Callable[[], bool] | None = None
    ) -> int:
        """Write ``spans``; return how many were not written (never raises).

        One span the store cannot take (text SQLite cannot encode, say) costs that span, not
        its batch. ``claim()`` is asked just before the commit: when it says no (the delivery
        processor already counted the batch as dropped) nothing is written.
        """
        with self._lock:
            if self._stopped:
                return len(spans)
            try:
                written = self._writing().write_batch(spans, self.writer, keep=claim)
            except BatchAbandoned:
                return len(spans)
            except Exception as exc:
                self._failed(exc)
                return len(spans)
            finally:
                if self._stopped:  # shutdown() came while this batch was written
                    self._close_writer()
            rejected = written.rejected
            self.exported_spans += len(spans) - rejected
            if rejected:
                self.rejected_spans += rejected
                warn_once(
                    "store-rejected-span",
                    "trace store %s: %d span(s) of a batch could not be stored and were left "
                    "out (the rest of the batch was stored; they are counted in "
                    "hypertool_export_dropped_spans_total)",
                    self.path,
                    rejected,
                )
        return rejected

    @property
    def writer(self) -> str:
        """This process's writer id in the store (see :meth:`spent_by_others`)."""
        pid = os.getpid()
        if pid != self._writer_pid:
            self._writer_pid, self._writer = pid, f"{pid}-{uuid.uuid4().hex}"
        return self._writer

    def _close_writer(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def _writing(self) -> TraceStore:
        """The writing connection's store (call with the lock held): opened on first use, and
        afresh when the file was deleted, moved or replaced.
        """
        if self._store is not None and self._store.moved():
            # Writing on would "deliver" into a file nobody reads. The old file gets what it
            # had; a new one starts here.
            logger.warning(
                "trace store %s was deleted, moved or replaced while in use: a new store is "
                "created there",
                self.path,
            )
            store, self._store = self._store, None
            store.close_moved()
        if self._store is None:
            self._store = self._open()
        return self._store

    def export_scores(
        self, scores: Sequence[Score], claim: Callable[[], bool] | None = None
    ) -> int:
        """Write ``scores`` in one transaction; how many were not written (never raises).

        ``claim()`` is asked just before the commit, as for spans (see :meth:`export_partial`).
        """
        with self._lock:
            if self._stopped:
                return len(scores)
            try:
                self.exported_scores += self._writing().write_scores(scores, keep=claim)
            except BatchAbandoned:
                return len(scores)
            except Exception as exc:
                self._failed(exc, "scores")
                return len(scores)
            finally:
                if self._stopped:  # shutdown() came while this batch was written
                    self._close_writer()
        return 0

    def close_scores(self) -> None:
        """Nothing of the scores' own to release: the store closes with the span sink."""

    def _open(self) -> TraceStore:
        return TraceStore(
            self.path,
            busy_timeout_ms=self._busy_timeout_ms,
            retention_days=self._retention_days,
            max_field_chars=self._max_field_chars,
        )

    def _failed(self, exc: Exception, what: str = "spans") -> None:
        self.failed_batches += 1
        if not isinstance(exc, StoreLockedError) and self._store is not None:
            # Corrupt, moved or replaced: open afresh on the next batch.
            store, self._store = self._store, None
            store.close()
        now = time.monotonic()
        if now - self._last_failure_report >= _FAILURE_REPORT_INTERVAL_S:
            self._last_failure_report = now
            logger.error(
                "trace store: %s (%d batch(es) failed so far; their %s are counted in "
                "hypertool_export_dropped_%s_total)",
                exc if isinstance(exc, StoreError) else f"{self.path}: {exc!r}",
                self.failed_batches,
                what,
                what,
            )
        else:
            logger.debug("trace store batch failed: %s", exc)

    def usage_since(self, persona: str, since_ns: int | None = None) -> tuple[int, float]:
        """Tokens and known cost in USD of ``persona``'s generations in the store since then.

        Reads go through a connection of their own: they never wait for a batch being written.

        Raises:
            StoreError: The store cannot be read.

        """
        tokens, cost, _ = self._read(persona, since_ns)
        return tokens, cost

    def spent_by_others(self, persona: str, since_ns: int) -> tuple[int, float, int]:
        """Tokens, known USD and generations of ``persona`` in the store since ``since_ns``
        that this process did not write: earlier runs' and other processes'.

        Fits :class:`~hypertool.instrumentation.budget.BudgetLedger`'s ``history``: the
        ledger counts its own usage itself, exactly, whether or not it has reached the store
        yet, and adds this. The store keeps each writer's usage in the same transaction as
        its rows, so one snapshot answers, however busy the writers are.

        Raises:
            StoreError: The store cannot be read.

        """
        writer = self.writer
        with self._reader_lock:
            return self._open_reader().spent_by_others(persona, since_ns, writer)

    def _read(self, persona: str, since_ns: int | None) -> tuple[int, float, int]:
        with self._reader_lock:
            return self._open_reader().spent_since(persona, since_ns)

    def _open_reader(self) -> TraceStore:
        """The reading connection (call with the reader lock held), reopened when the file
        was deleted, moved or replaced.
        """
        if self._reader is not None and self._reader.moved():
            self._reader.close_moved()
            self._reader = None
        if self._reader is None:
            self._reader = self._open()
        return self._reader

    def read(self, operation: Callable[[TraceStore], T]) -> T:
        """Run ``operation`` with the store's reading connection (opened on first use; it
        never waits for a batch being written). Local prompt versions are recorded through it.

        Raises:
            StoreError: The store cannot be opened or read.

        """
        with self._reader_lock:
            return operation(self._open_reader())

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Nothing is buffered here: every :meth:`export` call commits before returning."""
        return True

    def shutdown(self) -> None:
        """Close the store; later batches fail.

        Never waits for a batch being written (it may wait on another process's lock): that
        batch's writer closes the store when it is done.
        """
        self._stopped = True
        if self._lock.acquire(blocking=False):
            try:
                self._close_writer()
            finally:
                self._lock.release()
        with self._reader_lock:
            if self._reader is not None:
                self._reader.close()
                self._reader = None
