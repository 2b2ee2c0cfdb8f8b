"""The trace store's read queries, by one import path: each lives in the module of its
question — :mod:`.reports` (generations grouped), :mod:`.listings` (traces and generations a
page at a time), :mod:`.tree` (one trace), :mod:`.usage` (what a persona spent),
:mod:`.values` (times, milliseconds, percentiles).

Nothing in the store imports this module; it is kept for the code that reads these names here.
"""

from __future__ import annotations

from hypertool.instrumentation.store.listings import (
    TRACE_SORTS,
    Order,
    TraceSort,
    count_generations,
    count_traces,
    counts,
    generations,
    traces,
)
from hypertool.instrumentation.store.reports import REPORT_GROUPS, ReportBy, report
from hypertool.instrumentation.store.tree import MIN_TRACE_PREFIX, resolve_trace_id, trace
from hypertool.instrumentation.store.usage import (
    DAY_NS,
    day_start,
    spent_by_others,
    spent_since,
    usage_since,
)
from hypertool.instrumentation.store.values import iso, percentile

__all__ = [
    "DAY_NS",
    "MIN_TRACE_PREFIX",
    "REPORT_GROUPS",
    "TRACE_SORTS",
    "Order",
    "ReportBy",
    "TraceSort",
    "count_generations",
    "count_traces",
    "counts",
    "day_start",
    "generations",
    "iso",
    "percentile",
    "report",
    "resolve_trace_id",
    "spent_by_others",
    "spent_since",
    "trace",
    "traces",
    "usage_since",
]
