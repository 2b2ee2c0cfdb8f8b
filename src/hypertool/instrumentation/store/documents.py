"""The JSON documents ``hypertool … --json`` prints and the web UI exports: one shape for both."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hypertool.instrumentation.store.filters import Filters
from hypertool.instrumentation.store.values import iso

Rows = Sequence[dict[str, Any]]


def report_document(by: str, filters: Filters, rows: Rows) -> dict[str, Any]:
    """``hypertool report --json``: generations grouped ``by`` a column."""
    return {"by": by, "since": iso(filters.since_ns), "filters": filters.as_dict(), "rows": rows}


def traces_document(filters: Filters, total: int, rows: Rows) -> dict[str, Any]:
    """``hypertool traces --json``: a page of traces and how many match in all."""
    return {"filters": filters.as_dict(), "total": total, "traces": rows}


def generations_document(filters: Filters, total: int | None, rows: Rows) -> dict[str, Any]:
    """``hypertool generations --json``: a page of generations and how many match in all."""
    return {"filters": filters.as_dict(), "total": total, "generations": rows}


def personas_document(filters: Filters, rows: Rows) -> dict[str, Any]:
    """``hypertool personas --json``: each persona's budget and its activity in the range."""
    return {"since": iso(filters.since_ns), "until": iso(filters.until_ns), "personas": rows}


def prompts_document(since_ns: int | None, report: dict[str, Any]) -> dict[str, Any]:
    """``hypertool prompts --json``: prompt × version × persona, and the best versions."""
    return {"since": iso(since_ns), **report}


def scores_document(rows: Rows) -> dict[str, Any]:
    """``hypertool scores --json``: a page of scores, newest first."""
    return {"scores": rows}
