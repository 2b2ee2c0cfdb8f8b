"""Chart specifications for ``static/charts.js`` (which draws them with uPlot), built from the
same documents the CLI prints: a chart shows the numbers of the table beside it.

A spec is plain JSON: ``kind`` (``time``: x is a time in seconds; ``category``: x is an index
into ``labels``), ``style`` (``line``, ``bars``), ``unit`` of the values (``usd``,
``tokens``, ``percent``, ``count``), ``x`` (and ``labels`` of categories) and ``series`` of
``{label, color, values}``; ``stacked`` bars sit on each other; ``bucket`` is the width of a
time bucket in seconds.
Personas keep one colour on every chart.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from itertools import pairwise
from typing import Any

PALETTE = (
    "#2563eb", "#db2777", "#16a34a", "#ea580c", "#7c3aed", "#0891b2", "#ca8a04", "#dc2626",
    "#4b5563", "#65a30d", "#9333ea", "#0d9488",
)  # fmt: skip
NO_NAME = "(none)"


def colour(name: str | None, names: Sequence[str | None]) -> str:
    """The colour of ``name`` among ``names`` (sorted), stable across a page's charts."""
    ordered = sorted(set(names), key=lambda key: (key is None, key or ""))
    return PALETTE[ordered.index(name) % len(PALETTE)] if name in ordered else PALETTE[-1]


def label(name: str | None) -> str:
    """A series label: the name, or ``(none)``."""
    return NO_NAME if name is None else name


def _buckets(document: Mapping[str, Any]) -> list[int]:
    size = int(document["bucket_seconds"]) * 10**9
    since, until = int(document["since_ns"]), int(document["until_ns"])
    first = since - since % size
    return list(range(first, max(until, first + 1), size))


def time_series(
    document: Mapping[str, Any],
    value: str,
    unit: str,
    names: Sequence[str | None],
    *,
    style: str = "bars",
) -> dict[str, Any]:
    """``value`` per bucket and persona from an analytics document (empty buckets are 0)."""
    buckets = _buckets(document)
    index = {start: number for number, start in enumerate(buckets)}
    personas = sorted(
        {row["persona"] for row in document["series"]}, key=lambda n: (n is None, n or "")
    )
    values = {persona: [0.0] * len(buckets) for persona in personas}
    for row in document["series"]:
        slot = index.get(row["start_ns"])
        if slot is not None:
            values[row["persona"]][slot] += row[value] or 0
    return {
        "kind": "time",
        "style": style,
        "unit": unit,
        "stacked": style == "bars",
        "bucket": document["bucket_seconds"],
        "x": [start / 1e9 for start in buckets],
        "series": [
            {"label": label(p), "color": colour(p, names), "values": values[p]} for p in personas
        ],
    }


def error_rate(document: Mapping[str, Any]) -> dict[str, Any]:
    """The share of failed generations per bucket (no point where there were none)."""
    buckets = _buckets(document)
    rates: dict[int, float] = {row["start_ns"]: row["error_rate"] for row in document["timeline"]}
    return {
        "kind": "time",
        "style": "line",
        "unit": "percent",
        "bucket": document["bucket_seconds"],
        "x": [start / 1e9 for start in buckets],
        "series": [
            {
                "label": "error rate",
                "color": PALETTE[7],
                "values": [rates.get(start) for start in buckets],
            }
        ],
    }


def totals_by_persona(
    series: Iterable[Mapping[str, Any]], names: Sequence[str | None]
) -> list[dict[str, Any]]:
    """Input, output and total tokens, generations, errors and cost per persona, summed."""
    totals: dict[str | None, dict[str, Any]] = {}
    for row in series:
        total = totals.setdefault(
            row["persona"],
            {
                "persona": row["persona"],
                "generations": 0,
                "errors": 0,
                "input_tokens": 0,
                "output_tokens": 0,
                "total_tokens": 0,
                "cost_usd": None,
                "cost_unknown": 0,
            },
        )
        for key in ("generations", "errors", "input_tokens", "output_tokens", "total_tokens"):
            total[key] += row[key]
        total["cost_unknown"] += row["cost_unknown"]
        if row["cost_usd"] is not None:
            total["cost_usd"] = (total["cost_usd"] or 0.0) + row["cost_usd"]
    return [totals[key] for key in sorted(totals, key=lambda n: (n is None, n or ""))]


def tokens_by_persona(totals: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Input and output tokens per persona, as stacked bars."""
    return {
        "kind": "category",
        "style": "bars",
        "unit": "tokens",
        "stacked": True,
        "xlabel": "persona",
        "labels": [label(row["persona"]) for row in totals],
        "x": list(range(len(totals))),
        "series": [
            {
                "label": "input",
                "color": PALETTE[0],
                "values": [row["input_tokens"] for row in totals],
            },
            {
                "label": "output",
                "color": PALETTE[3],
                "values": [row["output_tokens"] for row in totals],
            },
        ],
    }


def bin_labels(edges_ms: Sequence[int]) -> list[str]:
    """``< 50 ms``, ``50–100 ms``, …, ``≥ 60 s`` for histogram bins with these upper edges."""

    def short(ms: int) -> str:
        return f"{ms // 1000} s" if ms >= 1000 and ms % 1000 == 0 else f"{ms} ms"

    labels = [f"< {short(edges_ms[0])}"]
    labels += [f"{short(low)}–{short(high)}" for low, high in pairwise(edges_ms)]
    return [*labels, f"≥ {short(edges_ms[-1])}"]


def histogram(
    rows: Sequence[Mapping[str, Any]], edges_ms: Sequence[int], names: Sequence[str | None]
) -> dict[str, Any]:
    """Counts per latency bin, stacked by group (model or persona): the bars show the whole
    distribution, their segments who made it (lines of several groups would hide each other).
    """
    return {
        "kind": "category",
        "style": "bars",
        "stacked": True,
        "xlabel": "latency",
        "unit": "count",
        "labels": bin_labels(edges_ms),
        "x": list(range(len(edges_ms) + 1)),
        "series": [
            {
                "label": label(row["group"]),
                "color": colour(row["group"], names),
                "values": row["counts"],
            }
            for row in rows
        ],
    }
