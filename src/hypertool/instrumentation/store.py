"""The embedded local trace store: every trace, span and generation in one SQLite file.

The store is a sink of the OpenTelemetry pipeline: :class:`StoreExporter` receives batches of
finished spans on the delivery thread (never on the caller's path) and writes each batch in one
transaction. :class:`TraceStore` answers the questions the Langfuse UI answers — cost by persona,
slowest and failed generations, a trace as a tree — with no account and no network.

Several threads and processes may write one store at once (WAL mode, a busy timeout and
bounded retries); a span delivered twice is stored once. A corrupt or locked database never
raises into the application: the exporter reports the batch as failed, and the delivery
processor counts the spans as dropped.

Settings (read when an object is built):

- ``HYPERTOOL_STORE``: path of the store; ``off`` disables it. Default: ``traces.db`` in the
  per-user data directory.
- ``HYPERTOOL_STORE_RETENTION_DAYS``: rows older than this are deleted when the store opens
  and at most once an hour after (default 30; 0 keeps everything).
- ``HYPERTOOL_STORE_MAX_FIELD_CHARS``: characters kept per input/output field (default
  20000); longer text ends with ``…[truncated N chars]``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import platformdirs
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from hypertool.instrumentation import _store_queries as queries
from hypertool.instrumentation._config import ConfigError, _environment
from hypertool.instrumentation._store_queries import REPORT_GROUPS, ReportBy, percentile
from hypertool.instrumentation._store_schema import (
    SCHEMA_VERSION,
    StoreError,
    StoreLockedError,
    connect,
    in_transaction,
    with_retry,
)

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan

__all__ = [
    "DEFAULT_MAX_FIELD_CHARS",
    "DEFAULT_RETENTION_DAYS",
    "HYPERTOOL_STORE",
    "HYPERTOOL_STORE_MAX_FIELD_CHARS",
    "HYPERTOOL_STORE_RETENTION_DAYS",
    "REPORT_GROUPS",
    "SCHEMA_VERSION",
    "ReportBy",
    "StoreError",
    "StoreExporter",
    "StoreLockedError",
    "TraceStore",
    "default_store_path",
    "percentile",
    "store_path_from_env",
]

logger = logging.getLogger("hypertool.instrumentation")

T = TypeVar("T")

HYPERTOOL_STORE = "HYPERTOOL_STORE"
HYPERTOOL_STORE_RETENTION_DAYS = "HYPERTOOL_STORE_RETENTION_DAYS"
HYPERTOOL_STORE_MAX_FIELD_CHARS = "HYPERTOOL_STORE_MAX_FIELD_CHARS"

DEFAULT_RETENTION_DAYS = 30.0
DEFAULT_MAX_FIELD_CHARS = 20_000
DEFAULT_BUSY_TIMEOUT_MS = 5_000
STORE_OFF = "off"
_PURGE_INTERVAL_S = 3600.0
_FAILURE_REPORT_INTERVAL_S = 60.0
_DAY_NS = 86_400 * 10**9


# Reading a store (the CLI) needs neither the persona model (pydantic) nor the span conversion
# (the Langfuse attribute keys): both are imported on first use, so `hypertool report` starts
# faster.
def _canonical(persona: str) -> str:
    from hypertool.instrumentation.personas import canonical_name

    return canonical_name(persona)


def default_store_path() -> Path:
    """``traces.db`` in the per-user data directory (``platformdirs``)."""
    return Path(platformdirs.user_data_dir("hypertool", appauthor=False)) / "traces.db"


def store_path_from_env(environ: Mapping[str, str] | None = None) -> Path | None:
    """Where the store is: ``HYPERTOOL_STORE``, or the default path; None when it is ``off``.

    Args:
        environ: Variables to read; the process environment (and a ``.env`` in the working
            directory) when None.

    """
    env = _environment() if environ is None else environ
    raw = env.get(HYPERTOOL_STORE, "").strip()
    if not raw:
        return default_store_path()
    if raw.lower() == STORE_OFF:
        return None
    return Path(raw).expanduser()


def _number(env: Mapping[str, str], name: str, default: float, *, minimum: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None
    if not (math.isfinite(value) and value >= minimum):
        raise ConfigError(f"{name}={raw!r} must be a number of at least {minimum:g}")
    return value


def _settings(retention_days: float | None, max_field_chars: int | None) -> tuple[float, int]:
    if retention_days is not None and not (math.isfinite(retention_days) and retention_days >= 0):
        raise ConfigError(f"retention_days={retention_days!r} must be a number of at least 0")
    if max_field_chars is not None and max_field_chars < 1:
        raise ConfigError(f"max_field_chars={max_field_chars!r} must be at least 1")
    env: Mapping[str, str] = (
        {} if retention_days is not None and max_field_chars is not None else _environment()
    )
    retention = (
        retention_days
        if retention_days is not None
        else _number(env, HYPERTOOL_STORE_RETENTION_DAYS, DEFAULT_RETENTION_DAYS, minimum=0)
    )
    chars = (
        max_field_chars
        if max_field_chars is not None
        else int(_number(env, HYPERTOOL_STORE_MAX_FIELD_CHARS, DEFAULT_MAX_FIELD_CHARS, minimum=1))
    )
    return retention, chars


class TraceStore:
    """One store file: writes spans, answers reports. Safe to share between threads.

    Args:
        path: The SQLite file (created with its directory, readable by its owner only).
        create: Create the file when missing; when False a missing file is a
            :class:`StoreError`.
        busy_timeout_ms: How long one attempt waits for another writer's lock.
        retention_days: Delete rows older than this (``HYPERTOOL_STORE_RETENTION_DAYS``,
            default 30); 0 keeps everything.
        max_field_chars: Characters kept per input/output field
            (``HYPERTOOL_STORE_MAX_FIELD_CHARS``, default 20000).

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
        retention_days: float | None = None,
        max_field_chars: int | None = None,
    ) -> None:
        self.path = Path(path).expanduser()
        self.retention_days, self.max_field_chars = _settings(retention_days, max_field_chars)
        self._lock = threading.RLock()
        self._busy_timeout_s = busy_timeout_ms / 1000
        self._connection: sqlite3.Connection | None = connect(
            self.path, create=create, busy_timeout_ms=busy_timeout_ms
        )
        self._last_purge = time.monotonic()
        try:
            self.purge()
        except StoreError as exc:  # a busy store is still readable; purge next time
            logger.debug("trace store purge skipped: %s", exc)

    # -- lifecycle -----------------------------------------------------------------------
    def close(self) -> None:
        """Close the connection (idempotent)."""
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    def __enter__(self) -> TraceStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"TraceStore({str(self.path)!r})"

    def _run(self, operation: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            connection = self._connection
            if connection is None:
                raise StoreError(f"{self.path}: the trace store is closed")
            return with_retry(self.path, lambda: operation(connection), self._busy_timeout_s)

    # -- writing -------------------------------------------------------------------------
    def write_spans(self, spans: Sequence[ReadableSpan]) -> int:
        """Store finished spans in one transaction; a span stored before is replaced.

        Returns:
            The number of spans written.

        Raises:
            StoreError: The batch could not be written (nothing of it was).

        """
        from hypertool.instrumentation import _store_rows as rows

        observations: list[tuple[Any, ...]] = []
        roots: list[tuple[Any, ...]] = []
        placeholders: list[tuple[Any, ...]] = []
        for span in spans:
            observation, trace, is_root = rows.span_rows(span, self.max_field_chars)
            observations.append(observation)
            (roots if is_root else placeholders).append(trace)

        def write(connection: sqlite3.Connection) -> None:
            rows.INSERT_OBSERVATION.run(connection, observations)
            rows.UPSERT_PLACEHOLDER.run(connection, placeholders)
            rows.UPSERT_ROOT.run(connection, roots)

        if observations:
            self._run(lambda connection: in_transaction(connection, write))
        if time.monotonic() - self._last_purge >= _PURGE_INTERVAL_S:
            try:
                self.purge()
            except StoreError as exc:
                logger.debug("trace store purge failed: %s", exc)
        return len(observations)

    def purge(self, now_ns: int | None = None) -> int:
        """Delete traces and observations older than the retention period.

        Returns:
            The number of observations deleted.

        """
        self._last_purge = time.monotonic()
        if not self.retention_days:
            return 0
        cutoff = (now_ns if now_ns is not None else time.time_ns()) - int(
            self.retention_days * _DAY_NS
        )

        def delete(connection: sqlite3.Connection) -> int:
            # No trace starts later than its observations: when no trace is old, nothing is,
            # and a reader never takes the write lock for nothing.
            if (
                connection.execute(
                    "SELECT 1 FROM traces WHERE start_ns < ? LIMIT 1", (cutoff,)
                ).fetchone()
                is None
            ):
                return 0

            def work(conn: sqlite3.Connection) -> int:
                deleted = conn.execute("DELETE FROM observations WHERE start_ns < ?", (cutoff,))
                conn.execute("DELETE FROM traces WHERE start_ns < ?", (cutoff,))
                return int(deleted.rowcount)

            return in_transaction(connection, work)

        return self._run(delete)

    # -- reading -------------------------------------------------------------------------
    def report(self, by: ReportBy = "persona", since_ns: int | None = None) -> list[dict[str, Any]]:
        """Generations grouped ``by`` persona, model, chatmode or workflow (the Users view).

        Each row: ``group``, ``traces``, ``generations``, ``input_tokens``, ``output_tokens``,
        ``total_tokens``, ``cost_usd`` (sum of known costs; None when none is known),
        ``cost_unknown`` (generations without a known cost), ``errors``, ``p50_ms``, ``p95_ms``.
        """
        return self._run(lambda c: queries.report(c, by, since_ns))

    def traces(
        self,
        persona: str | None = None,
        status: str | None = None,
        since_ns: int | None = None,
        limit: int = 50,
    ) -> list[dict[str, Any]]:
        """Recent traces, newest first; ``persona`` matches traces it did any work in."""
        name = _canonical(persona) if persona else None
        return self._run(
            lambda c: queries.traces(c, persona=name, status=status, since_ns=since_ns, limit=limit)
        )

    def trace(self, trace_id: str) -> dict[str, Any] | None:
        """One trace as a tree (``children`` nested), or None when unknown.

        ``trace_id`` may be a prefix of at least 8 hex digits.

        Raises:
            ValueError: ``trace_id`` is not hexadecimal or shorter than 8 digits.
            StoreError: The prefix matches several traces.

        """
        return self._run(lambda c: queries.trace(c, trace_id))

    def generations(
        self,
        slowest: int | None = None,
        failed: bool = False,
        limit: int = 50,
        *,
        persona: str | None = None,
        since_ns: int | None = None,
    ) -> list[dict[str, Any]]:
        """The ``slowest`` N generations, or the most recent ``limit``; ``failed`` only."""
        name = _canonical(persona) if persona else None
        return self._run(
            lambda c: queries.generations(
                c, slowest=slowest, failed=failed, persona=name, since_ns=since_ns, limit=limit
            )
        )

    def usage_since(self, persona: str, since_ns: int | None = None) -> tuple[int, float]:
        """Tokens and known cost in USD of ``persona``'s generations since ``since_ns``."""
        name = _canonical(persona)
        return self._run(lambda c: queries.usage_since(c, name, since_ns))

    def stats(self) -> dict[str, Any]:
        """Path, size on disk (with the WAL), schema version, row counts, time covered."""
        counts = self._run(queries.counts)
        size = 0
        for suffix in ("", "-wal"):
            with contextlib.suppress(OSError):
                size += Path(f"{self.path}{suffix}").stat().st_size
        return {
            "path": str(self.path),
            "size_bytes": size,
            "schema_version": self._run(
                lambda c: int(c.execute("PRAGMA user_version").fetchone()[0])
            ),
            "retention_days": self.retention_days,
            **counts,
        }


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
        retention_days: float | None = None,
        max_field_chars: int | None = None,
    ) -> None:
        self.path = Path(path).expanduser()
        self._busy_timeout_ms = busy_timeout_ms
        self._retention_days, self._max_field_chars = _settings(retention_days, max_field_chars)
        self._store: TraceStore | None = None
        self._lock = threading.Lock()
        self._reader: TraceStore | None = None
        self._reader_lock = threading.Lock()
        self._stopped = False
        self._last_failure_report = -_FAILURE_REPORT_INTERVAL_S
        self.exported_spans = 0
        self.failed_batches = 0

    def __repr__(self) -> str:
        return f"StoreExporter({str(self.path)!r})"

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Write ``spans`` in one transaction; ``FAILURE`` (never an exception) on any error."""
        with self._lock:
            if self._stopped:
                return SpanExportResult.FAILURE
            try:
                if self._store is None:
                    self._store = TraceStore(
                        self.path,
                        busy_timeout_ms=self._busy_timeout_ms,
                        retention_days=self._retention_days,
                        max_field_chars=self._max_field_chars,
                    )
                self.exported_spans += self._store.write_spans(spans)
            except Exception as exc:
                self._failed(exc)
                return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def _failed(self, exc: Exception) -> None:
        self.failed_batches += 1
        if not isinstance(exc, StoreLockedError) and self._store is not None:
            # Corrupt, moved or replaced: open afresh on the next batch.
            store, self._store = self._store, None
            store.close()
        now = time.monotonic()
        if now - self._last_failure_report >= _FAILURE_REPORT_INTERVAL_S:
            self._last_failure_report = now
            logger.error(
                "trace store: %s (%d batch(es) failed so far; their spans are counted in "
                "hypertool_export_dropped_spans_total)",
                exc if isinstance(exc, StoreError) else f"{self.path}: {exc!r}",
                self.failed_batches,
            )
        else:
            logger.debug("trace store batch failed: %s", exc)

    def usage_since(self, persona: str, since_ns: int | None = None) -> tuple[int, float]:
        """Tokens and known cost in USD of ``persona``'s generations in the store since then.

        Fits :class:`~hypertool.instrumentation.budget.BudgetLedger`'s ``history``, so usage
        over ``day`` and ``month`` periods survives restarts. Reads go through a connection of
        their own: they never wait for a batch being written.

        Raises:
            StoreError: The store cannot be read.

        """
        with self._reader_lock:
            if self._reader is None:
                self._reader = TraceStore(
                    self.path,
                    busy_timeout_ms=self._busy_timeout_ms,
                    retention_days=self._retention_days,
                    max_field_chars=self._max_field_chars,
                )
            return self._reader.usage_since(persona, since_ns)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Nothing is buffered here: every :meth:`export` call commits before returning."""
        return True

    def shutdown(self) -> None:
        """Close the store; later batches fail."""
        with self._lock:
            self._stopped = True
            if self._store is not None:
                self._store.close()
                self._store = None
        with self._reader_lock:
            if self._reader is not None:
                self._reader.close()
                self._reader = None
