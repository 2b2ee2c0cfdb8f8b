"""The embedded local trace store: every trace, span and generation in one SQLite file.

:class:`TraceStore` writes batches of finished spans (for :class:`~.exporter.StoreExporter`,
on the delivery thread) and answers the questions the Langfuse UI answers — cost by persona,
slowest and failed generations, a trace as a tree — with no account and no network.

Several threads and processes may write one store at once (WAL mode, a busy timeout and
bounded retries); a span delivered twice is stored once. A store object carried into a forked
child opens a connection of its own there on first use (SQLite connections must not cross a
fork; the inherited one is never used nor closed).
"""

from __future__ import annotations

import contextlib
import math
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from hypertool.instrumentation._config import (
    DEFAULT_RETENTION_DAYS,
    DEFAULT_STORE_MAX_FIELD_CHARS,
    ConfigError,
)
from hypertool.instrumentation._fork import hold_during_fork, keep_forever, reset_in_child
from hypertool.instrumentation._log import logger
from hypertool.instrumentation.store import (
    analytics,
    catalog,
    overview,
    prompt_versions,
    quality,
    queries,
)
from hypertool.instrumentation.store.filters import Filters, Status
from hypertool.instrumentation.store.queries import Order, ReportBy, TraceSort
from hypertool.instrumentation.store.schema import (
    StoreError,
    StoreLockedError,
    connect,
    connect_read_only,
    in_transaction,
    store_error,
    with_retry,
)
from hypertool.instrumentation.store.writes import BatchAbandoned, SpanRows, Written, writer_work

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan

    from hypertool.instrumentation.model.scores import Score

T = TypeVar("T")

DEFAULT_BUSY_TIMEOUT_MS = 5_000
_PURGE_INTERVAL_S = 3600.0
_DAY_NS = 86_400 * 10**9


# Reading a store (the CLI) needs neither the persona model (pydantic) nor the span conversion
# (the attribute keys): both are imported on first use, so `hypertool report` starts faster.
def _canonical(persona: str) -> str:
    from hypertool.instrumentation.personas import canonical_name

    return canonical_name(persona)


def _canonical_filters(filters: Filters) -> Filters:
    if filters.persona is None:
        return filters
    return replace(filters, persona=_canonical(filters.persona))


def check_settings(retention_days: float, max_field_chars: int) -> None:
    """Raise :class:`ConfigError` for a retention or field cap out of range."""
    if not (math.isfinite(retention_days) and retention_days >= 0):
        raise ConfigError(f"retention_days={retention_days!r} must be a number of at least 0")
    if max_field_chars < 1:
        raise ConfigError(f"max_field_chars={max_field_chars!r} must be at least 1")


class TraceStore:
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
        self.path = Path(path).expanduser()
        self.retention_days, self.max_field_chars = retention_days, max_field_chars
        self.read_only = read_only
        self._lock = threading.RLock()
        self._create, self._busy_timeout_ms = create, busy_timeout_ms
        self._busy_timeout_s = busy_timeout_ms / 1000
        self._connection: sqlite3.Connection | None = None
        self._reopen = False
        self._held_at_fork = False
        # Registered before connecting: opening migrates the file in a write transaction,
        # which a fork must not cut in half either.
        hold_during_fork(self, TraceStore._before_fork, TraceStore._after_fork_in_parent)
        reset_in_child(self, TraceStore._after_fork)
        with self._lock:
            self._connection = self._open()
        self._identity = _identity(self.path)
        self._last_purge = time.monotonic()
        if read_only:
            return
        try:
            self.purge()
        except StoreError as exc:  # a busy store is still readable; purge next time
            logger.debug("trace store purge skipped: %s", exc)

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

    def moved(self) -> bool:
        """True when the file at :attr:`path` is no longer the one this store opened: it was
        deleted, moved or replaced (writes would go to a file nobody reads). One ``stat``.
        """
        return _identity(self.path) != self._identity

    # -- lifecycle -----------------------------------------------------------------------
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

    def _writable(self) -> None:
        if self.read_only:
            raise StoreError(f"{self.path}: the trace store is open read-only")

    def _run(self, operation: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            connection = self._connection
            if connection is None:
                if not self._reopen:
                    raise StoreError(f"{self.path}: the trace store is closed")
                connection = self._open()
                self._connection, self._reopen = connection, False
            return with_retry(self.path, lambda: operation(connection), self._busy_timeout_s)

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
        from hypertool.instrumentation.store import rows

        self._writable()
        batch: list[SpanRows] = []
        rejected = 0
        for span in spans:
            try:
                batch.append(rows.span_rows(span, self.max_field_chars))
            except Exception:  # a malformed span: it alone is lost
                logger.debug("trace store: a span could not be converted", exc_info=True)
                rejected += 1
        written = batch
        if batch:
            try:
                self._run(
                    lambda c: in_transaction(c, writer_work(batch, writer, keep, one_by_one=False))
                )
            except (StoreLockedError, OSError, BatchAbandoned):
                raise
            except Exception as exc:
                # Perhaps one bad row: write them one by one, each in a savepoint.
                written = self._run(
                    lambda c: in_transaction(c, writer_work(batch, writer, keep, one_by_one=True))
                )
                if not written:
                    raise store_error(self.path, exc) from exc
                rejected += len(batch) - len(written)
        if time.monotonic() - self._last_purge >= _PURGE_INTERVAL_S:
            try:
                self.purge()
            except StoreError as exc:
                logger.debug("trace store purge failed: %s", exc)
        return Written([observation for observation, _, _ in written], rejected)

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
        self._writable()
        rows = [quality.score_row(score, self.max_field_chars) for score in scores]

        def write(connection: sqlite3.Connection) -> None:
            quality.INSERT_SCORE.run(connection, rows)
            if keep is not None and not keep():
                raise BatchAbandoned

        if rows:
            self._run(lambda connection: in_transaction(connection, write))
        return len(rows)

    def record_prompt_version(self, name: str, kind: str, prompt: str, config: str) -> int:
        """The version number of this content of local prompt ``name`` (a new one when it
        differs from the latest); ``prompt`` is the text or the messages as JSON.
        """
        return self._run(lambda c: prompt_versions.record(c, name, kind, prompt, config))

    def prompt_version(self, name: str, version: int | None = None) -> dict[str, Any] | None:
        """A recorded version of local prompt ``name`` (the latest when None), or None."""
        return self._run(lambda c: prompt_versions.get(c, name, version))

    def prompt_versions(self) -> list[dict[str, Any]]:
        """Every recorded version of every local prompt."""
        return self._run(prompt_versions.listing)

    def purge(self, now_ns: int | None = None) -> int:
        """Delete traces and observations older than the retention period.

        Returns:
            The number of observations deleted.

        """
        self._writable()
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
                day = queries.day_start(cutoff)
                conn.execute("DELETE FROM writer_usage WHERE day_ns < ?", (day,))
                conn.execute("DELETE FROM scores WHERE created_ns < ?", (cutoff,))
                return int(deleted.rowcount)

            return in_transaction(connection, work)

        return self._run(delete)

    # -- reading -------------------------------------------------------------------------
    def report(
        self,
        by: ReportBy = "persona",
        since_ns: int | None = None,
        *,
        filters: Filters | None = None,
    ) -> list[dict[str, Any]]:
        """Generations grouped ``by`` persona, model, chatmode or workflow (the Users view).

        Each row: ``group``, ``traces``, ``generations``, ``input_tokens``, ``output_tokens``,
        ``total_tokens``, ``cost_usd`` (sum of known costs; None when none is known),
        ``cost_unknown`` (generations without a known cost), ``errors``, ``p50_ms``, ``p95_ms``,
        ``scores`` (name → ``{"mean", "n"}`` of each numeric score given to the group's work)
        and ``gate_pass_rate`` (the mean of ``quality_gate``, None without gates). A group with
        scores and no generation has a row of its own. Input and output tokens include cached
        input and reasoning tokens.
        """
        chosen = _canonical_filters((filters or Filters()).with_defaults(since_ns=since_ns))

        def read(connection: sqlite3.Connection) -> list[dict[str, Any]]:
            rows = queries.report(connection, by, chosen)
            means = quality.score_means(connection, by, chosen)
            for row in rows:
                row.update(quality.quality_of(means.pop(row["group"], None)))
            for group, scored in means.items():  # scored work without generations
                rows.append({**quality.empty_report_row(group), **quality.quality_of(scored)})
            rows.sort(key=lambda row: (row["group"] is None, row["group"] or ""))
            return rows

        return self._run(read)

    def traces(
        self,
        persona: str | None = None,
        status: Status | None = None,
        since_ns: int | None = None,
        limit: int = 50,
        *,
        filters: Filters | None = None,
        sort: TraceSort = "start",
        order: Order = "desc",
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """Traces, newest first (or by ``sort``: ``duration``, ``cost``; ``order`` asc/desc);
        ``persona`` matches traces it did any work in.
        """
        chosen = _canonical_filters(
            (filters or Filters()).with_defaults(persona=persona, status=status, since_ns=since_ns)
        )
        return self._run(
            lambda c: queries.traces(c, chosen, sort=sort, order=order, limit=limit, offset=offset)
        )

    def count_traces(self, filters: Filters | None = None) -> int:
        """How many traces match ``filters``."""
        chosen = _canonical_filters(filters or Filters())
        return self._run(lambda c: queries.count_traces(c, chosen))

    def trace(self, trace_id: str) -> dict[str, Any] | None:
        """One trace as a tree (``children`` nested), or None when unknown.

        ``trace_id`` may be a prefix of at least 8 hex digits, or the Langfuse trace id of a
        workflow stage (the stage is shown). Each node has its ``scores``; the trace's own (and
        those of observations not in the store) are its ``scores``. A stage shows only its own
        scores: those of its nodes, and those given to its Langfuse trace id.

        Raises:
            ValueError: ``trace_id`` is not hexadecimal or shorter than 8 digits.
            StoreError: The prefix matches several traces.

        """

        def read(connection: sqlite3.Connection) -> dict[str, Any] | None:
            tree = queries.trace(connection, trace_id)
            if tree is None:
                return None
            by_node: dict[str, list[dict[str, Any]]] = {}
            nodes = list(quality.walk(tree["children"]))
            for node in nodes:
                node["scores"] = by_node.setdefault(node["span_id"], [])
            tree["scores"] = []
            stage = tree["langfuse_trace_id"]
            if stage == tree["trace_id"]:
                for score in quality.trace_scores(connection, tree["trace_id"]):
                    by_node.get(score["observation_id"] or "", tree["scores"]).append(score)
                return tree
            # A stage (its own Langfuse trace): the workflow's other scores are not its.
            for score in quality.trace_scores(connection, tree["trace_id"], stage):
                node_scores = by_node.get(score["observation_id"] or "")
                if node_scores is not None:
                    node_scores.append(score)
                elif score["trace_id"] == stage:
                    tree["scores"].append(score)
            return tree

        return self._run(read)

    def scores(
        self,
        name: str | None = None,
        persona: str | None = None,
        since_ns: int | None = None,
        limit: int = 50,
    ) -> list[dict[str, Any]]:
        """Scores, newest first, of ``name`` and ``persona`` when given."""
        who = _canonical(persona) if persona else None
        return self._run(
            lambda c: quality.scores(c, name=name, persona=who, since_ns=since_ns, limit=limit)
        )

    def prompts_report(
        self,
        persona: str | None = None,
        since_ns: int | None = None,
        score: str | None = None,
        min_samples: int = quality.MIN_SAMPLES,
    ) -> dict[str, Any]:
        """Per prompt × version × persona: generations, tokens, cost, p50/p95 latency, error
        rate, the mean of each score; and the best version per prompt and persona on
        ``score`` (see :mod:`.quality` for the rule).
        """
        who = _canonical(persona) if persona else None
        return self._run(
            lambda c: quality.prompts_report(
                c, persona=who, since_ns=since_ns, score=score, min_samples=min_samples
            )
        )

    def generations(
        self,
        slowest: int | None = None,
        failed: bool = False,
        limit: int = 50,
        *,
        persona: str | None = None,
        since_ns: int | None = None,
        filters: Filters | None = None,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """The ``slowest`` N generations, or the most recent ``limit``; ``failed`` only."""
        chosen = _canonical_filters(
            (filters or Filters()).with_defaults(
                persona=persona, since_ns=since_ns, status="error" if failed else None
            )
        )
        count = slowest if slowest is not None else limit
        return self._run(
            lambda c: queries.generations(
                c, chosen, slowest=slowest is not None, limit=count, offset=offset
            )
        )

    def count_generations(self, filters: Filters | None = None) -> int:
        """How many generations match ``filters``."""
        chosen = _canonical_filters(filters or Filters())
        return self._run(lambda c: queries.count_generations(c, chosen))

    def analytics(
        self,
        filters: Filters | None = None,
        *,
        bucket_s: int | None = None,
        now_ns: int | None = None,
    ) -> dict[str, Any]:
        """Cost, tokens and errors per time bucket and persona, latency and time-to-first-token
        distributions (see :func:`.analytics.analytics`).
        """
        chosen = _canonical_filters(filters or Filters())
        return self._run(lambda c: analytics.analytics(c, chosen, bucket_s=bucket_s, now_ns=now_ns))

    def personas(
        self,
        budgets: overview.Budgets | None = None,
        filters: Filters | None = None,
        *,
        now_ns: int | None = None,
        only: str | None = None,
    ) -> list[dict[str, Any]]:
        """Each persona's budget this period and its activity within ``filters`` (the row of
        persona ``only``, when given).

        ``budgets`` defaults to the configured personas (see :func:`.overview.personas`).
        """
        chosen = _canonical_filters(filters or Filters())
        known = budgets if budgets is not None else overview.configured_budgets()
        name = _canonical(only) if only is not None else None
        return self._run(lambda c: overview.personas(c, known, chosen, now_ns, only=name))

    def facets(self) -> dict[str, list[Any]]:
        """The distinct personas, chatmodes, workflows and models stored."""
        return self._run(catalog.facets)

    def data_version(self, trace_id: str | None = None) -> int:
        """A number that changes whenever spans are stored (of ``trace_id`` only, if given)."""
        return self._run(lambda c: catalog.data_version(c, trace_id))

    def usage_since(self, persona: str, since_ns: int | None = None) -> tuple[int, float]:
        """Tokens and known cost in USD of ``persona``'s generations since ``since_ns``."""
        tokens, cost, _ = self.spent_since(persona, since_ns)
        return tokens, cost

    def spent_by_others(self, persona: str, since_ns: int, writer: str) -> tuple[int, float, int]:
        """Tokens, known USD and calls of ``persona``'s generations since ``since_ns`` (a UTC
        day boundary) that ``writer`` did not store: one snapshot, so exact however busy.
        """
        name = _canonical(persona)
        return self._run(lambda c: queries.spent_by_others(c, name, since_ns, writer))

    def spent_since(self, persona: str, since_ns: int | None = None) -> tuple[int, float, int]:
        """Tokens, known cost in USD and number of ``persona``'s generations since then."""
        name = _canonical(persona)
        return self._run(lambda c: queries.spent_since(c, name, since_ns))

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


def _identity(path: Path) -> tuple[int, int] | None:
    """The file's (device, inode), or None when there is no file at ``path``."""
    try:
        found = os.stat(path)
    except OSError:
        return None
    return found.st_dev, found.st_ino
