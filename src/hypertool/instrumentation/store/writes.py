"""The write path of a trace store: a batch of spans in one transaction — all at once, or
span by span when one row is bad — with the writer's usage per persona and UTC day in the same
transaction; scores; and deleting what is older than the retention period.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hypertool.instrumentation._log import logger
from hypertool.instrumentation.store.connection import StoreConnection
from hypertool.instrumentation.store.schema import StoreLockedError, in_transaction, store_error
from hypertool.instrumentation.store.scores import INSERT_SCORE, score_row
from hypertool.instrumentation.store.usage import day_start

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan

    from hypertool.instrumentation.model.scores import Score


class BatchAbandoned(Exception):
    """The batch was rolled back: its writer was told, just before committing, to drop it."""


# Positions in an observation row (store.rows.OBSERVATION_COLUMNS; a test keeps them equal).
_TYPE, _PERSONA, _TOTAL, _COST, _START = 3, 5, 12, 14, 15

SpanRows = tuple[tuple[Any, ...], tuple[Any, ...], bool]


@dataclass(frozen=True)
class Written:
    """What :meth:`TraceStore.write_batch` wrote: the observation rows, and how many spans
    of the batch could not be written.
    """

    observations: list[tuple[Any, ...]]
    rejected: int


def write_spans(
    store: StoreConnection,
    spans: Sequence[ReadableSpan],
    writer: str | None,
    keep: Callable[[], bool] | None,
    max_field_chars: int,
) -> Written:
    """Write ``spans`` to ``store`` in one transaction (see :meth:`.TraceStore.write_batch`).

    A span that cannot be converted, or whose row SQLite refuses, costs that span only: when
    the batch fails for such a reason, its spans are written one by one, each in a savepoint.

    Raises:
        StoreError: Nothing could be written: the store is locked, unreadable or gone.
        BatchAbandoned: ``keep`` said no (nothing of it was written).

    """
    from hypertool.instrumentation.store import rows

    store.writable()
    batch: list[SpanRows] = []
    rejected = 0
    for span in spans:
        try:
            batch.append(rows.span_rows(span, max_field_chars))
        except Exception:  # a malformed span: it alone is lost
            logger.debug("trace store: a span could not be converted", exc_info=True)
            rejected += 1
    written = batch
    if batch:
        try:
            store.run(
                lambda c: in_transaction(c, writer_work(batch, writer, keep, one_by_one=False))
            )
        except (StoreLockedError, OSError, BatchAbandoned):
            raise
        except Exception as exc:
            # Perhaps one bad row: write them one by one, each in a savepoint.
            written = store.run(
                lambda c: in_transaction(c, writer_work(batch, writer, keep, one_by_one=True))
            )
            if not written:
                raise store_error(store.path, exc) from exc
            rejected += len(batch) - len(written)
    return Written([observation for observation, _, _ in written], rejected)


def write_scores(
    store: StoreConnection,
    scores: Sequence[Score],
    keep: Callable[[], bool] | None,
    max_field_chars: int,
) -> int:
    """Write ``scores`` to ``store`` in one transaction; returns how many."""
    store.writable()
    rows = [score_row(score, max_field_chars) for score in scores]

    def write(connection: sqlite3.Connection) -> None:
        INSERT_SCORE.run(connection, rows)
        if keep is not None and not keep():
            raise BatchAbandoned

    if rows:
        store.run(lambda connection: in_transaction(connection, write))
    return len(rows)


def delete_older(connection: sqlite3.Connection, cutoff_ns: int) -> int:
    """Delete the traces, observations, scores (and writers' usage of the days) before
    ``cutoff_ns``; returns the number of observations deleted.
    """
    # No trace starts later than its observations: when no trace is old, nothing is, and a
    # reader never takes the write lock for nothing.
    old = connection.execute("SELECT 1 FROM traces WHERE start_ns < ? LIMIT 1", (cutoff_ns,))
    if old.fetchone() is None:
        return 0

    def work(conn: sqlite3.Connection) -> int:
        deleted = conn.execute("DELETE FROM observations WHERE start_ns < ?", (cutoff_ns,))
        conn.execute("DELETE FROM traces WHERE start_ns < ?", (cutoff_ns,))
        conn.execute("DELETE FROM writer_usage WHERE day_ns < ?", (day_start(cutoff_ns),))
        conn.execute("DELETE FROM scores WHERE created_ns < ?", (cutoff_ns,))
        return int(deleted.rowcount)

    return in_transaction(connection, work)


def writer_work(
    batch: Sequence[SpanRows],
    writer: str | None,
    keep: Callable[[], bool] | None,
    *,
    one_by_one: bool,
) -> Callable[[sqlite3.Connection], list[SpanRows]]:
    """The work of one write transaction: ``batch`` (observation, trace row, is root) with a
    few multi-row statements — or span by span, each in a savepoint, leaving the bad ones
    out — then ``writer``'s usage of what was written; last, ``keep()`` may still abandon it
    (:class:`BatchAbandoned`: rolled back). Returns the spans written.
    """

    def write(connection: sqlite3.Connection) -> list[SpanRows]:
        from hypertool.instrumentation.store import rows

        if one_by_one:
            written = _one_by_one(connection, batch)
        else:
            written = list(batch)
            rows.INSERT_OBSERVATION.run(connection, [observation for observation, _, _ in batch])
            rows.UPSERT_PLACEHOLDER.run(connection, [trace for _, trace, root in batch if not root])
            rows.UPSERT_ROOT.run(connection, [trace for _, trace, root in batch if root])
        if writer is not None:
            _add_usage(connection, writer, written)
        if keep is not None and not keep():
            raise BatchAbandoned
        return written

    return write


def _one_by_one(connection: sqlite3.Connection, batch: Sequence[SpanRows]) -> list[SpanRows]:
    from hypertool.instrumentation.store import rows

    written = []
    for observation, trace, root in batch:
        connection.execute("SAVEPOINT one_span")
        try:
            rows.INSERT_OBSERVATION.run(connection, [observation])
            (rows.UPSERT_ROOT if root else rows.UPSERT_PLACEHOLDER).run(connection, [trace])
        except (sqlite3.Error, ValueError, OverflowError) as exc:  # the row, not the store
            if isinstance(exc, sqlite3.OperationalError):
                raise  # locked, full, read-only, I/O: no row would fare better
            connection.execute("ROLLBACK TO one_span")
            logger.debug("trace store: span %s left out: %r", observation[0], exc)
        else:
            written.append((observation, trace, root))
        connection.execute("RELEASE one_span")
    return written


def _add_usage(connection: sqlite3.Connection, writer: str, written: Sequence[SpanRows]) -> None:
    """Add the generations of ``written`` to ``writer``'s usage per persona and UTC day."""
    usage: dict[tuple[str, int], list[Any]] = {}
    for observation, _, _ in written:
        if observation[_TYPE] != "generation" or observation[_PERSONA] is None:
            continue
        key = (observation[_PERSONA], day_start(int(observation[_START])))
        counted = usage.setdefault(key, [0, 0.0, 0])
        counted[0] += observation[_TOTAL] or 0
        counted[1] += observation[_COST] or 0.0
        counted[2] += 1
    if usage:
        from hypertool.instrumentation.store import rows

        # One statement, whatever the number of personas: each statement step may wait for the
        # GIL behind the application's threads (see rows.MultiRow).
        rows.UPSERT_WRITER_USAGE.run(
            connection,
            [(writer, persona, day, *counted) for (persona, day), counted in usage.items()],
        )
