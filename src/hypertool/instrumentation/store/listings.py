"""Listings of the trace store, a page at a time: traces (with their generations' totals) and
generations, sorted and filtered as ``hypertool traces`` / ``generations`` and the web UI ask;
how many match; and how much the store holds.
"""

from __future__ import annotations

import sqlite3
from typing import Any, Literal

from hypertool.instrumentation.store.filters import Filters
from hypertool.instrumentation.store.observations import OBSERVATION_FIELDS, observation
from hypertool.instrumentation.store.values import iso, ms

TraceSort = Literal["start", "duration", "cost"]
TRACE_SORTS: tuple[TraceSort, ...] = ("start", "duration", "cost")
Order = Literal["desc", "asc"]

_TRACE_ORDER: dict[str, str] = {
    "start": "{t}.start_ns {order}, {t}.trace_id",
    "duration": "{t}.end_ns - {t}.start_ns {order}, {t}.start_ns DESC, {t}.trace_id",
    "cost": "{cost} IS NULL, {cost} {order}, {t}.start_ns DESC, {t}.trace_id",
}


def traces(
    connection: sqlite3.Connection,
    filters: Filters,
    *,
    sort: TraceSort = "start",
    order: Order = "desc",
    limit: int,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Traces with their generations' totals, sorted (most recent first by default).

    ``running`` is true while the trace's root span has not arrived: a workflow still running
    (or one whose root was lost).
    """
    if sort not in _TRACE_ORDER or order not in ("asc", "desc"):
        raise ValueError(f"cannot sort traces by {sort!r} {order!r}")
    where, params = filters.on_traces("t")
    template = _TRACE_ORDER[sort]
    inner = template.format(t="t", cost="c.cost", order=order.upper())
    outer = template.format(t="p", cost="p.cost", order=order.upper())
    costs = ""
    if sort == "cost":
        # Sum the cost per trace from the report index alone, over the window's generations
        # (a trace's generations start no earlier than the trace).
        spent, spent_params = Filters(since_ns=filters.since_ns).on_generations("o")
        costs = (
            "LEFT JOIN (SELECT o.trace_id, sum(o.cost_usd) AS cost FROM observations o "
            f"WHERE {spent} GROUP BY o.trace_id) c ON c.trace_id = t.trace_id"
        )
        params = spent_params + params
    select_cost = "c.cost" if sort == "cost" else "NULL"
    params += [max(int(limit), 0), max(int(offset), 0)]
    rows = connection.execute(
        f"""
        WITH page AS (
            SELECT t.*, {select_cost} AS cost FROM traces t {costs} WHERE {where}
            ORDER BY {inner} LIMIT ? OFFSET ?
        )
        SELECT p.trace_id, p.name, p.persona, p.chatmode, p.workflow, p.start_ns, p.end_ns,
               p.status, p.error, count(o.span_id), coalesce(sum(o.total_tokens), 0),
               sum(o.cost_usd), coalesce(sum(o.cost_usd IS NULL AND o.span_id IS NOT NULL), 0),
               coalesce(sum(o.status = 'error'), 0), p.root_seen, p.environment, p.release
        FROM page p
        LEFT JOIN observations o ON o.trace_id = p.trace_id AND o.type = 'generation'
        GROUP BY p.trace_id ORDER BY {outer}
        """,
        params,
    ).fetchall()
    return [
        {
            "trace_id": row[0],
            "name": row[1],
            "persona": row[2],
            "chatmode": row[3],
            "workflow": row[4],
            "start": iso(row[5]),
            "start_ns": row[5],
            "end_ns": row[6],
            "duration_ms": ms(row[6] - row[5]),
            "status": row[7],
            "error": row[8],
            "generations": row[9],
            "total_tokens": row[10],
            "cost_usd": row[11],
            "cost_unknown": row[12],
            "failed_generations": row[13],
            "running": not row[14],
            "environment": row[15],
            "release": row[16],
        }
        for row in rows
    ]


def count_traces(connection: sqlite3.Connection, filters: Filters) -> int:
    """How many traces match ``filters`` (for pages of :func:`traces`)."""
    where, params = filters.on_traces("t")
    return int(
        connection.execute(f"SELECT count(*) FROM traces t WHERE {where}", params).fetchone()[0]
    )


def generations(
    connection: sqlite3.Connection,
    filters: Filters,
    *,
    slowest: bool,
    limit: int,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Generations matching ``filters``: the slowest first, or the most recent first."""
    where, params = filters.on_generations("o")
    order = "end_ns - start_ns DESC" if slowest else "start_ns DESC"
    params += [max(int(limit), 0), max(int(offset), 0)]
    # Rank on the report index alone (ties broken by rowid, which every index holds), then
    # read the wide rows of the few chosen.
    rows = connection.execute(
        f"SELECT {OBSERVATION_FIELDS} FROM observations WHERE rowid IN ("
        f"SELECT o.rowid FROM observations o WHERE {where} "
        f"ORDER BY {order}, o.rowid LIMIT ? OFFSET ?) ORDER BY {order}, rowid",
        params,
    )
    return [observation(row) for row in rows]


def count_generations(connection: sqlite3.Connection, filters: Filters) -> int:
    """How many generations match ``filters`` (for pages of :func:`generations`)."""
    where, params = filters.on_generations("o")
    found = connection.execute(f"SELECT count(*) FROM observations o WHERE {where}", params)
    return int(found.fetchone()[0])


def counts(connection: sqlite3.Connection) -> dict[str, Any]:
    """Numbers of traces, observations, generations and scores, and the time span covered."""
    traces_count, oldest, newest = connection.execute(
        "SELECT count(*), min(start_ns), max(end_ns) FROM traces"
    ).fetchone()
    observations, generations_count = connection.execute(
        "SELECT count(*), coalesce(sum(type = 'generation'), 0) FROM observations"
    ).fetchone()
    (scores_count,) = connection.execute("SELECT count(*) FROM scores").fetchone()
    return {
        "traces": traces_count,
        "observations": observations,
        "generations": generations_count,
        "scores": scores_count,
        "oldest": iso(oldest),
        "newest": iso(newest),
    }
