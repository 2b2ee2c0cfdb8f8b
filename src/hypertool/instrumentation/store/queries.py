"""Read queries of the trace store: the CLI's reports and listings, and budget usage.

Aggregates are computed by SQLite; latency percentiles come from one sorted column read once.
Percentiles interpolate linearly between the closest ranks (numpy's default, and
``statistics.quantiles(..., method="inclusive")``).
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from hypertool.instrumentation.store.filters import WORKFLOW_OF_GENERATION, Filters
from hypertool.instrumentation.store.schema import StoreError

DAY_NS = 86_400 * 10**9

ReportBy = Literal["persona", "model", "chatmode", "workflow"]
REPORT_GROUPS: tuple[ReportBy, ...] = ("persona", "model", "chatmode", "workflow")
TraceSort = Literal["start", "duration", "cost"]
TRACE_SORTS: tuple[TraceSort, ...] = ("start", "duration", "cost")
Order = Literal["desc", "asc"]

_GROUP_EXPRESSIONS: dict[str, str] = {
    "persona": "o.persona",
    "model": "o.model",
    "chatmode": "o.chatmode",
    "workflow": WORKFLOW_OF_GENERATION.format(o="o"),
}

_HEX = re.compile(r"^[0-9a-f]+$")
MIN_TRACE_PREFIX = 8

_OBSERVATION_FIELDS = (
    "span_id, trace_id, parent_id, type, name, persona, chatmode, workflow, stage, model, "
    "input_tokens, output_tokens, total_tokens, usage_estimated, cost_usd, start_ns, end_ns, "
    "status, error, input, output, metadata, completion_start_ns, prompt_name, prompt_version"
)


@dataclass(slots=True)
class _Group:
    traces: set[str] = field(default_factory=set)
    latencies: list[int] = field(default_factory=list)
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    cost_usd: float | None = None
    cost_unknown: int = 0
    errors: int = 0


def percentile(ordered: Sequence[float], fraction: float) -> float | None:
    """The ``fraction`` quantile of ascending ``ordered`` values (linear interpolation)."""
    if not ordered:
        return None
    position = (len(ordered) - 1) * fraction
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def iso(ns: int | None) -> str | None:
    """An epoch-nanosecond time as ISO 8601 UTC, to the millisecond."""
    if ns is None:
        return None
    return datetime.fromtimestamp(ns / 1e9, tz=UTC).isoformat(timespec="milliseconds")


def _ms(ns: int | None) -> float | None:
    return None if ns is None else round(ns / 1e6, 3)


def _since(column: str, since_ns: int | None) -> tuple[str, list[Any]]:
    return ("", []) if since_ns is None else (f" AND {column} >= ?", [since_ns])


def report(connection: sqlite3.Connection, by: ReportBy, filters: Filters) -> list[dict[str, Any]]:
    """Per group: traces, generations, tokens, cost, unknown costs, errors, p50/p95 latency.

    One pass over the report index: distinct traces and sorted latencies need every row
    anyway, and summing in the same loop measured faster than a second, grouped query.
    """
    if by not in _GROUP_EXPRESSIONS:
        raise ValueError(f"cannot report by {by!r}; choose one of {', '.join(REPORT_GROUPS)}")
    where, params = filters.on_generations("o")
    cursor = connection.execute(
        f"""
        SELECT {_GROUP_EXPRESSIONS[by]}, o.trace_id, o.input_tokens, o.output_tokens,
               o.total_tokens, o.cost_usd, o.status, o.end_ns - o.start_ns
        FROM observations o WHERE {where}
        """,
        params,
    )
    groups: dict[Any, _Group] = {}
    for grp, trace_id, tokens_in, tokens_out, total, cost, status, latency in cursor:
        group = groups.get(grp)
        if group is None:
            group = groups[grp] = _Group()
        group.traces.add(trace_id)
        group.latencies.append(latency)
        if tokens_in:
            group.input_tokens += tokens_in
        if tokens_out:
            group.output_tokens += tokens_out
        if total:
            group.total_tokens += total
        if cost is None:
            group.cost_unknown += 1
        else:
            group.cost_usd = cost if group.cost_usd is None else group.cost_usd + cost
        if status == "error":
            group.errors += 1
    result = []
    for grp in sorted(groups, key=lambda key: (key is None, key or "")):
        group = groups[grp]
        group.latencies.sort()
        p50 = percentile(group.latencies, 0.50)
        p95 = percentile(group.latencies, 0.95)
        result.append(
            {
                "group": grp,
                "traces": len(group.traces),
                "generations": len(group.latencies),
                "input_tokens": group.input_tokens,
                "output_tokens": group.output_tokens,
                "total_tokens": group.total_tokens,
                "cost_usd": group.cost_usd,
                "cost_unknown": group.cost_unknown,
                "errors": group.errors,
                "p50_ms": None if p50 is None else round(p50 / 1e6, 3),
                "p95_ms": None if p95 is None else round(p95 / 1e6, 3),
            }
        )
    return result


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
            "duration_ms": _ms(row[6] - row[5]),
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


def _metadata(text: str | None) -> dict[str, Any]:
    from hypertool.instrumentation import semconv as attr  # only when rows are shown

    try:
        metadata = json.loads(text) if text else {}
    except ValueError:  # not written by us: shown as it is rather than failing the page
        metadata = {"unparsed": text}
    if not isinstance(metadata, dict):
        metadata = {"unparsed": metadata}
    for key in (attr.USAGE_DETAILS, attr.COST_DETAILS):
        value = metadata.get(key)
        if isinstance(value, str):  # stored as sent (a JSON string), shown as an object
            with contextlib.suppress(ValueError):
                metadata[key] = json.loads(value)
    return metadata


def _observation(row: Sequence[Any]) -> dict[str, Any]:
    (span_id, trace_id, parent_id, kind, name, persona, chatmode, workflow, stage, model) = row[:10]
    tokens_in, tokens_out, total, estimated, cost, start, end, status, error = row[10:19]
    text_in, text_out, metadata, first_token, prompt_name, prompt_version = row[19:25]
    return {
        "span_id": span_id,
        "trace_id": trace_id,
        "parent_id": parent_id,
        "type": kind,
        "name": name,
        "persona": persona,
        "chatmode": chatmode,
        "workflow": workflow,
        "stage": stage,
        "model": model,
        "input_tokens": tokens_in,
        "output_tokens": tokens_out,
        "total_tokens": total,
        "usage_estimated": None if estimated is None else bool(estimated),
        "cost_usd": cost,
        "start": iso(start),
        "start_ns": start,
        "end_ns": end,
        "latency_ms": _ms(end - start),
        "time_to_first_token_ms": None if first_token is None else _ms(first_token - start),
        "status": status,
        "error": error,
        "input": text_in,
        "output": text_out,
        "metadata": _metadata(metadata),
        "prompt_name": prompt_name,
        "prompt_version": prompt_version,
    }


def resolve_trace_id(connection: sqlite3.Connection, trace_id: str) -> str | None:
    """The full id of the one trace whose id starts with ``trace_id`` (≥ 8 hex digits).

    Raises:
        ValueError: ``trace_id`` is not hexadecimal or too short.
        StoreError: the prefix matches more than one trace.

    """
    prefix = trace_id.strip().lower()
    if len(prefix) < MIN_TRACE_PREFIX or len(prefix) > 32 or not _HEX.match(prefix):
        raise ValueError(
            f"{trace_id!r} is not a trace id: give at least {MIN_TRACE_PREFIX} hex digits"
        )
    # A range instead of LIKE, so the primary key index answers it.
    found = [
        row[0]
        for row in connection.execute(
            "SELECT trace_id FROM traces WHERE trace_id >= ? AND trace_id < ? LIMIT 2",
            (prefix, prefix + "g"),
        )
    ]
    if len(found) > 1:
        raise StoreError(f"trace id prefix {prefix!r} matches several traces; give more digits")
    return found[0] if found else None


def _stage(connection: sqlite3.Connection, langfuse_trace_id: str) -> tuple[str, str] | None:
    """The trace id and span id of the stage whose Langfuse trace id this is, if any.

    A stage (a span with a persona of its own) is a Langfuse trace of its own; its id is the
    workflow trace's first 16 hex digits and the stage's span id (``stage_trace_id``).
    """
    from hypertool.instrumentation.model.handles import split_stage_trace_id

    prefix, span_id = split_stage_trace_id(langfuse_trace_id)
    row = connection.execute(
        "SELECT trace_id FROM observations WHERE span_id = ?", (span_id,)
    ).fetchone()
    if row is None or not row[0].startswith(prefix):
        return None
    return row[0], span_id


def _subtree(root: dict[str, Any]) -> list[dict[str, Any]]:
    """``root`` and every node under it, parents first."""
    found, pending = [], [root]
    while pending:
        node = pending.pop()
        found.append(node)
        pending.extend(reversed(node["children"]))
    return found


def trace(connection: sqlite3.Connection, trace_id: str) -> dict[str, Any] | None:
    """One trace as a tree: its observations nested under their parents in ``children``.

    ``trace_id`` may also be the Langfuse trace id of a stage (what Langfuse shows for a span
    with a persona of its own): the stage is then shown, with the spans and generations inside
    it, and ``langfuse_trace_id`` says which one it is.
    """
    full_id = resolve_trace_id(connection, trace_id)
    stage = None
    if full_id is None and len(trace_id.strip()) == 32:
        stage = _stage(connection, trace_id.strip().lower())
        if stage is not None:
            full_id = stage[0]
    if full_id is None:
        return None
    head = connection.execute(
        "SELECT trace_id, name, persona, chatmode, workflow, start_ns, end_ns, status, error, "
        "environment, release FROM traces WHERE trace_id = ?",
        (full_id,),
    ).fetchone()
    nodes = [
        _observation(row)
        for row in connection.execute(
            f"SELECT {_OBSERVATION_FIELDS} FROM observations WHERE trace_id = ? "
            "ORDER BY start_ns, span_id",
            (full_id,),
        )
    ]
    by_id = {node["span_id"]: node for node in nodes}
    top: list[dict[str, Any]] = []
    for node in nodes:
        node["children"] = []
    for node in nodes:
        parent = by_id.get(node["parent_id"])
        (parent["children"] if parent is not None else top).append(node)
    langfuse_trace_id = head[0]
    if stage is not None:
        root = by_id[stage[1]]
        top, nodes = [root], _subtree(root)
        langfuse_trace_id = trace_id.strip().lower()
        head = (
            head[0], root["name"], root["persona"], root["chatmode"], root["workflow"],
            root["start_ns"], root["end_ns"], root["status"], root["error"], head[9], head[10],
        )  # fmt: skip
    generations = [node for node in nodes if node["type"] == "generation"]
    known = [node["cost_usd"] for node in generations if node["cost_usd"] is not None]
    return {
        "trace_id": head[0],
        "langfuse_trace_id": langfuse_trace_id,
        "name": head[1],
        "persona": head[2],
        "chatmode": head[3],
        "workflow": head[4],
        "environment": head[9],
        "release": head[10],
        "start": iso(head[5]),
        "start_ns": head[5],
        "end_ns": head[6],
        "duration_ms": _ms(head[6] - head[5]),
        "status": head[7],
        "error": head[8],
        "observations": len(nodes),
        "generations": len(generations),
        "input_tokens": sum(node["input_tokens"] or 0 for node in generations),
        "output_tokens": sum(node["output_tokens"] or 0 for node in generations),
        "total_tokens": sum(node["total_tokens"] or 0 for node in generations),
        "cost_usd": sum(known) if known else None,
        "cost_unknown": len(generations) - len(known),
        "children": top,
    }


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
        f"SELECT {_OBSERVATION_FIELDS} FROM observations WHERE rowid IN ("
        f"SELECT o.rowid FROM observations o WHERE {where} "
        f"ORDER BY {order}, o.rowid LIMIT ? OFFSET ?) ORDER BY {order}, rowid",
        params,
    )
    return [_observation(row) for row in rows]


def count_generations(connection: sqlite3.Connection, filters: Filters) -> int:
    """How many generations match ``filters`` (for pages of :func:`generations`)."""
    where, params = filters.on_generations("o")
    return int(
        connection.execute(f"SELECT count(*) FROM observations o WHERE {where}", params).fetchone()[
            0
        ]
    )


def usage_since(
    connection: sqlite3.Connection, persona: str, since_ns: int | None
) -> tuple[int, float]:
    """Tokens and known cost (USD) of ``persona``'s generations since ``since_ns``."""
    tokens, cost, _ = spent_since(connection, persona, since_ns)
    return tokens, cost


def spent_since(
    connection: sqlite3.Connection, persona: str, since_ns: int | None
) -> tuple[int, float, int]:
    """Tokens, known cost (USD) and number of ``persona``'s generations since ``since_ns``."""
    where, params = _since("start_ns", since_ns)
    tokens, cost, calls = connection.execute(
        "SELECT coalesce(sum(total_tokens), 0), coalesce(sum(cost_usd), 0.0), count(*) "
        f"FROM observations WHERE persona = ? AND type = 'generation'{where}",
        [persona, *params],
    ).fetchone()
    return int(tokens), float(cost), int(calls)


def spent_by_others(
    connection: sqlite3.Connection, persona: str, since_ns: int, writer: str
) -> tuple[int, float, int]:
    """What ``persona``'s generations since ``since_ns`` used, less what ``writer`` stored:
    tokens, known cost (USD), calls. One statement, so one snapshot of both.
    """
    found = connection.execute(
        """
        SELECT
            (SELECT coalesce(sum(total_tokens), 0) FROM observations
             WHERE persona = :persona AND type = 'generation' AND start_ns >= :since),
            (SELECT coalesce(sum(cost_usd), 0.0) FROM observations
             WHERE persona = :persona AND type = 'generation' AND start_ns >= :since),
            (SELECT count(*) FROM observations
             WHERE persona = :persona AND type = 'generation' AND start_ns >= :since),
            (SELECT coalesce(sum(tokens), 0) FROM writer_usage
             WHERE writer = :writer AND persona = :persona AND day_ns >= :day),
            (SELECT coalesce(sum(cost_usd), 0.0) FROM writer_usage
             WHERE writer = :writer AND persona = :persona AND day_ns >= :day),
            (SELECT coalesce(sum(calls), 0) FROM writer_usage
             WHERE writer = :writer AND persona = :persona AND day_ns >= :day)
        """,
        {"persona": persona, "since": since_ns, "writer": writer, "day": day_start(since_ns)},
    ).fetchone()
    tokens, cost, calls, own_tokens, own_cost, own_calls = found
    return (
        max(int(tokens) - int(own_tokens), 0),
        max(float(cost) - float(own_cost), 0.0),
        max(int(calls) - int(own_calls), 0),
    )


def day_start(ns: int) -> int:
    """Start of the UTC day of ``ns`` (budget periods start on UTC day boundaries)."""
    return ns - ns % DAY_NS


def counts(connection: sqlite3.Connection) -> dict[str, Any]:
    """Numbers of traces, observations and generations, and the time span covered."""
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
