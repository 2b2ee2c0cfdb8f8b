"""The embedded local trace store: every trace, span and generation in one SQLite file.

:class:`TraceStore` writes batches of finished spans (for :class:`~.exporter.StoreExporter`,
on the delivery thread) and answers the questions the Langfuse UI answers — cost by persona,
slowest and failed generations, a trace as a tree — with no account and no network.

Several threads and processes may write one store at once (WAL mode, a busy timeout and
bounded retries); a span delivered twice is stored once.
"""

from __future__ import annotations

import contextlib
import math
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from hypertool.instrumentation._config import (
    DEFAULT_RETENTION_DAYS,
    DEFAULT_STORE_MAX_FIELD_CHARS,
    ConfigError,
)
from hypertool.instrumentation._log import logger
from hypertool.instrumentation.store import prompt_versions, quality, queries
from hypertool.instrumentation.store.queries import ReportBy
from hypertool.instrumentation.store.schema import (
    StoreError,
    connect,
    in_transaction,
    with_retry,
)

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
    ) -> None:
        check_settings(retention_days, max_field_chars)
        self.path = Path(path).expanduser()
        self.retention_days, self.max_field_chars = retention_days, max_field_chars
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
        from hypertool.instrumentation.store import rows

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

    def write_scores(self, scores: Sequence[Score]) -> int:
        """Store scores in one transaction; a score stored before (same id) is replaced.

        Returns:
            The number of scores written.

        Raises:
            StoreError: The batch could not be written (nothing of it was).

        """
        rows = [quality.score_row(score, self.max_field_chars) for score in scores]
        if rows:
            self._run(
                lambda connection: in_transaction(
                    connection, lambda conn: quality.INSERT_SCORE.run(conn, rows)
                )
            )
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
                conn.execute("DELETE FROM scores WHERE created_ns < ?", (cutoff,))
                return int(deleted.rowcount)

            return in_transaction(connection, work)

        return self._run(delete)

    # -- reading -------------------------------------------------------------------------
    def report(self, by: ReportBy = "persona", since_ns: int | None = None) -> list[dict[str, Any]]:
        """Generations grouped ``by`` persona, model, chatmode or workflow (the Users view).

        Each row: ``group``, ``traces``, ``generations``, ``input_tokens``, ``output_tokens``,
        ``total_tokens``, ``cost_usd`` (sum of known costs; None when none is known),
        ``cost_unknown`` (generations without a known cost), ``errors``, ``p50_ms``, ``p95_ms``,
        ``scores`` (name → ``{"mean", "n"}`` of each numeric score given to the group's work)
        and ``gate_pass_rate`` (the mean of ``quality_gate``, None without gates). A group with
        scores and no generation has a row of its own.
        """

        def read(connection: sqlite3.Connection) -> list[dict[str, Any]]:
            rows = queries.report(connection, by, since_ns)
            means = quality.score_means(connection, by, since_ns)
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

        ``trace_id`` may be a prefix of at least 8 hex digits. Each node has its ``scores``;
        the trace's own (and those of observations not in the store) are its ``scores``.

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
            for score in quality.trace_scores(connection, tree["trace_id"]):
                by_node.get(score["observation_id"] or "", tree["scores"]).append(score)
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
