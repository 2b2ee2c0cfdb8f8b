"""Writing a batch of span rows in one transaction: all at once, or span by span when one
row is bad, and the writer's usage per persona and UTC day in the same transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from hypertool.instrumentation._log import logger
from hypertool.instrumentation.store import queries


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
        key = (observation[_PERSONA], queries.day_start(int(observation[_START])))
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
