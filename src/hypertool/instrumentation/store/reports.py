"""Generations grouped by persona, model, chatmode or workflow (Langfuse's Users view): traces,
generations, tokens, cost, errors, p50/p95 latency, and the mean of each score given to the
group's work (``hypertool report``, the web UI's Personas and model tables).

Aggregates are computed in one pass over the report index; latency percentiles come from the
sorted latencies of each group (see :func:`.values.percentile`).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from typing import Any, Literal

from hypertool.instrumentation.store import quality
from hypertool.instrumentation.store.filters import WORKFLOW_OF_GENERATION, Filters
from hypertool.instrumentation.store.values import percentile

ReportBy = Literal["persona", "model", "chatmode", "workflow"]
REPORT_GROUPS: tuple[ReportBy, ...] = ("persona", "model", "chatmode", "workflow")

_GROUP_EXPRESSIONS: dict[str, str] = {
    "persona": "o.persona",
    "model": "o.model",
    "chatmode": "o.chatmode",
    "workflow": WORKFLOW_OF_GENERATION.format(o="o"),
}

EMPTY_ACTIVITY: dict[str, Any] = {
    # A report row's numbers for a group without generations.
    "traces": 0,
    "generations": 0,
    "input_tokens": 0,
    "output_tokens": 0,
    "total_tokens": 0,
    "cost_usd": None,
    "cost_unknown": 0,
    "errors": 0,
    "p50_ms": None,
    "p95_ms": None,
}


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


def empty_report_row(group: Any) -> dict[str, Any]:
    """A report row of a group without generations."""
    return {"group": group, **EMPTY_ACTIVITY}


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


def scored_report(
    connection: sqlite3.Connection, by: ReportBy, filters: Filters
) -> list[dict[str, Any]]:
    """:func:`report` with each group's ``scores`` (name → ``{"mean", "n"}`` of each numeric
    score given to its work) and ``gate_pass_rate`` (the mean of ``quality_gate``, None
    without gates). A group with scores and no generation has a row of its own.
    """
    rows = report(connection, by, filters)
    means = quality.score_means(connection, by, filters)
    for row in rows:
        row.update(quality.quality_of(means.pop(row["group"], None)))
    for group, scored in means.items():  # scored work without generations
        rows.append({**empty_report_row(group), **quality.quality_of(scored)})
    rows.sort(key=lambda row: (row["group"] is None, row["group"] or ""))
    return rows
