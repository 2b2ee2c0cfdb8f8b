"""Analytics over time: cost, tokens and errors per time bucket and persona, latency and time
to first token distributions — Langfuse's Analytics view, from the local store.

One pass over the report index gives the series and the latency histograms; time to first
token reads the small index of streamed generations. Buckets are aligned to multiples of their
size since the epoch (UTC), so the same range gives the same buckets everywhere.
"""

from __future__ import annotations

import bisect
import sqlite3
import time
from collections.abc import Iterable, Sequence
from typing import Any

from hypertool.instrumentation.store.filters import Filters
from hypertool.instrumentation.store.values import iso, percentile

_S = 10**9
LATENCY_EDGES_MS: tuple[int, ...] = (50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 60_000)
"""Upper edges of the latency histogram's bins; a last bin holds everything slower."""
TTFT_EDGES_MS: tuple[int, ...] = (50, 100, 200, 300, 500, 1_000, 2_000, 5_000)
"""Upper edges of the time-to-first-token histogram's bins."""
BUCKET_SECONDS: tuple[int, ...] = (
    60, 300, 900, 3_600, 3 * 3_600, 6 * 3_600, 12 * 3_600, 86_400, 7 * 86_400, 30 * 86_400,
)  # fmt: skip
"""Sizes a time bucket may take; the smallest giving at most :data:`MAX_BUCKETS` is chosen."""
MAX_BUCKETS = 120


def bucket_seconds(since_ns: int, until_ns: int) -> int:
    """The bucket size (seconds) that cuts ``since``..``until`` into at most MAX_BUCKETS."""
    span_s = max(until_ns - since_ns, 0) / _S
    for size in BUCKET_SECONDS:
        if span_s / size <= MAX_BUCKETS:
            return size
    return BUCKET_SECONDS[-1]


def _ms(ns: float | None) -> float | None:
    return None if ns is None else round(ns / 1e6, 3)


def _histogram_rows(
    counts: dict[Any, list[int]],
) -> list[dict[str, Any]]:
    return [
        {"group": group, "generations": sum(counts[group]), "counts": counts[group]}
        for group in sorted(counts, key=lambda key: (key is None, key or ""))
    ]


def _distribution(groups: dict[Any, list[int]]) -> list[dict[str, Any]]:
    rows = []
    for group in sorted(groups, key=lambda key: (key is None, key or "")):
        values = sorted(groups[group])
        rows.append(
            {
                "group": group,
                "generations": len(values),
                "p50_ms": _ms(percentile(values, 0.50)),
                "p95_ms": _ms(percentile(values, 0.95)),
            }
        )
    return rows


def _range(connection: sqlite3.Connection, filters: Filters, now_ns: int) -> tuple[int, int]:
    until = filters.until_ns if filters.until_ns is not None else now_ns
    since = filters.since_ns
    if since is None:  # all time: from the first generation stored (the index's first entry)
        first = connection.execute(
            "SELECT min(start_ns) FROM observations WHERE type = 'generation'"
        ).fetchone()[0]
        since = min(first if first is not None else until, until)
    return since, until


def analytics(
    connection: sqlite3.Connection,
    filters: Filters,
    *,
    bucket_s: int | None = None,
    now_ns: int | None = None,
) -> dict[str, Any]:
    """Series per time bucket and persona, error rate per bucket, latency and time-to-first-
    token distributions of the generations ``filters`` selects.

    Args:
        connection: The store.
        filters: Which generations; without ``since_ns`` the range starts at the first one.
        bucket_s: Bucket size in seconds; chosen from the range when None.
        now_ns: The end of the range when ``filters`` has no ``until_ns`` (default: now).

    """
    since, until = _range(connection, filters, time.time_ns() if now_ns is None else now_ns)
    size = bucket_s if bucket_s is not None else bucket_seconds(since, until)
    if size < 1:
        raise ValueError(f"bucket of {size} s: give at least 1 second")
    bucket_ns = size * _S
    where, params = filters.on_generations("o")
    edges = [edge * 1_000_000 for edge in LATENCY_EDGES_MS]
    bins = len(edges) + 1
    cells: dict[tuple[int, Any], list[Any]] = {}
    by_model: dict[Any, list[int]] = {}
    by_persona: dict[Any, list[int]] = {}
    place = bisect.bisect_right
    cursor = connection.execute(
        "SELECT o.persona, o.model, o.start_ns, o.end_ns - o.start_ns, o.input_tokens, "
        "o.output_tokens, o.total_tokens, o.cost_usd, o.status = 'error' "
        f"FROM observations o WHERE {where}",
        params,
    )
    for persona, model, start, latency, tokens_in, tokens_out, total, cost, failed in cursor:
        key = (start - start % bucket_ns, persona)
        cell = cells.get(key)
        if cell is None:  # generations, errors, in, out, total, cost, cost unknown
            cell = cells[key] = [0, 0, 0, 0, 0, None, 0]
        cell[0] += 1
        cell[1] += failed
        cell[2] += tokens_in or 0
        cell[3] += tokens_out or 0
        cell[4] += total or 0
        if cost is None:
            cell[6] += 1
        else:
            cell[5] = cost if cell[5] is None else cell[5] + cost
        slot = place(edges, latency)
        counts = by_model.get(model)
        if counts is None:
            counts = by_model[model] = [0] * bins
        counts[slot] += 1
        counts = by_persona.get(persona)
        if counts is None:
            counts = by_persona[persona] = [0] * bins
        counts[slot] += 1
    series = [
        {
            "start": iso(start),
            "start_ns": start,
            "persona": persona,
            "generations": cell[0],
            "errors": cell[1],
            "input_tokens": cell[2],
            "output_tokens": cell[3],
            "total_tokens": cell[4],
            "cost_usd": cell[5],
            "cost_unknown": cell[6],
        }
        for (start, persona), cell in sorted(
            cells.items(), key=lambda item: (item[0][0], item[0][1] is None, item[0][1] or "")
        )
    ]
    return {
        "since": iso(since),
        "since_ns": since,
        "until": iso(until),
        "until_ns": until,
        "bucket_seconds": size,
        "filters": filters.as_dict(),
        "series": series,
        "timeline": timeline(series),
        "latency_histogram": {
            "edges_ms": list(LATENCY_EDGES_MS),
            "by_model": _histogram_rows(by_model),
            "by_persona": _histogram_rows(by_persona),
        },
        "time_to_first_token": time_to_first_token(connection, filters),
    }


def timeline(series: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The series summed over personas per bucket, with the error rate (errors/generations)."""
    buckets: dict[int, dict[str, Any]] = {}
    for row in series:
        bucket = buckets.get(row["start_ns"])
        if bucket is None:
            bucket = buckets[row["start_ns"]] = {
                "start": row["start"],
                "start_ns": row["start_ns"],
                "generations": 0,
                "errors": 0,
                "total_tokens": 0,
                "cost_usd": None,
                "cost_unknown": 0,
            }
        for key in ("generations", "errors", "total_tokens", "cost_unknown"):
            bucket[key] += row[key]
        if row["cost_usd"] is not None:
            bucket["cost_usd"] = (bucket["cost_usd"] or 0.0) + row["cost_usd"]
    for bucket in buckets.values():
        bucket["error_rate"] = bucket["errors"] / bucket["generations"]
    return [buckets[key] for key in sorted(buckets)]


def time_to_first_token(connection: sqlite3.Connection, filters: Filters) -> dict[str, Any]:
    """Time from the request to the first token of streamed generations, by model and persona:
    count, p50, p95, and a histogram per model.
    """
    where, params = filters.on_generations("o")
    edges = [edge * 1_000_000 for edge in TTFT_EDGES_MS]
    by_model: dict[Any, list[int]] = {}
    by_persona: dict[Any, list[int]] = {}
    for persona, model, wait in connection.execute(
        "SELECT o.persona, o.model, o.completion_start_ns - o.start_ns FROM observations o "
        f"WHERE {where} AND o.completion_start_ns IS NOT NULL",
        params,
    ):
        by_model.setdefault(model, []).append(wait)
        by_persona.setdefault(persona, []).append(wait)
    return {
        "edges_ms": list(TTFT_EDGES_MS),
        "generations": sum(len(values) for values in by_model.values()),
        "by_model": _with_histograms(_distribution(by_model), by_model, edges),
        "by_persona": _distribution(by_persona),
    }


def _with_histograms(
    rows: list[dict[str, Any]], values: dict[Any, list[int]], edges: Sequence[int]
) -> list[dict[str, Any]]:
    for row in rows:
        counts = [0] * (len(edges) + 1)
        for value in values[row["group"]]:
            counts[bisect.bisect_right(edges, value)] += 1
        row["counts"] = counts
    return rows
