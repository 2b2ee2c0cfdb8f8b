"""The tables of the web UI: which columns each shows, and every table as CSV or JSON.

A column is one entry in a list, so a view that gains a number gains one :class:`Column`; the
columns of score means depend on the scores stored (:func:`quality_columns`). The JSON export
of a table is the same document ``hypertool … --json`` prints for the same store and filters.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.responses import Response

QUALITY_GATE = "quality_gate"  # as model.scores.QUALITY_GATE, shown as the Gates column


@dataclass(frozen=True)
class Column:
    """One column of a table.

    Attributes:
        key: Where the value is in a row; dots reach into nested objects (``activity.errors``).
        label: The header.
        kind: How the value is shown: ``text``, ``tokens``, ``cost``, ``ms``, ``time``,
            ``percent``, ``count``, ``mean`` (of a score), ``status``, ``persona``, ``trace``,
            ``excerpt``, ``prompt`` (a link to the prompt), ``version`` (★ on the best),
            ``verdict`` (which version is best), ``score`` (a score's value), ``observation``.
        unknown: For ``cost``: the key of the count of generations without a known price.
        title: A longer explanation, shown on hover.
        path: The steps to the value when a step holds a dot itself (a score's name);
            :attr:`key` is then only the column's name.

    """

    key: str
    label: str
    kind: str = "text"
    unknown: str | None = None
    title: str = ""
    path: tuple[str, ...] = ()

    @property
    def numeric(self) -> bool:
        """Right-aligned, with the raw value in ``data-value``."""
        return self.kind in ("tokens", "cost", "ms", "percent", "count", "mean")

    def value(self, row: Mapping[str, Any]) -> Any:
        """The raw value of this column in ``row``."""
        return lookup(row, self.path or self.key)


@dataclass(frozen=True)
class Table:
    """A table on a page: its rows, and the document its JSON export returns."""

    name: str
    title: str
    columns: Sequence[Column]
    rows: Sequence[Mapping[str, Any]]
    document: Mapping[str, Any] = field(default_factory=dict)
    empty: str = "Nothing recorded here."


def lookup(row: Mapping[str, Any], key: str | Sequence[str]) -> Any:
    """``row[a][b]`` for ``key`` ``a.b`` (or the steps ``("a", "b")``); None when any step is
    missing.
    """
    value: Any = row
    for part in key.split(".") if isinstance(key, str) else key:
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def flatten(row: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested objects as dotted columns; lists as JSON text (one CSV cell)."""
    flat: dict[str, Any] = {}
    for key, value in row.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        elif isinstance(value, list | tuple):
            flat[name] = json.dumps(value, default=str)
        else:
            flat[name] = value
    return flat


def csv_text(rows: Iterable[Mapping[str, Any]]) -> str:
    """Rows as CSV, with every key any row has as a column, in first-seen order.

    Cells that a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@`` first) get a
    leading ``'``: prompts are untrusted text.
    """
    flat = [flatten(row) for row in rows]
    header: dict[str, None] = {}
    for row in flat:
        header.update(dict.fromkeys(row))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    for row in flat:
        writer.writerow([_cell(row.get(key)) for key in header])
    return out.getvalue()


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def export(table: Table, format: str, filename: str) -> Response:
    """``table`` as a CSV or JSON download named ``filename`` (without extension)."""
    if format == "csv":
        body = csv_text(table.rows)
        media = "text/csv; charset=utf-8"
    else:
        body = json.dumps(table.document, indent=2, default=str) + "\n"
        media = "application/json"
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", f"{filename}-{table.name}")
    disposition = f'attachment; filename="{safe}.{format}"'
    return Response(body, media_type=media, headers={"Content-Disposition": disposition})


# -- the columns of each table -------------------------------------------------------------
PERSONA_COLUMNS: list[Column] = [
    Column("persona", "Persona", "persona"),
    Column("budget_period", "Period"),
    Column("budget_tokens", "Budget", "tokens", title="token budget per period"),
    Column("used_tokens", "Used", "tokens", title="tokens used this period"),
    Column("remaining_tokens", "Remaining", "tokens", title="negative when overrun"),
    Column("cost_usd", "Cost (period)", "cost"),
    Column("activity.traces", "Traces", "count", title="in the range shown"),
    Column("activity.generations", "Generations", "count", title="in the range shown"),
    Column("activity.total_tokens", "Tokens", "tokens", title="in the range shown"),
    Column(
        "activity.cost_usd",
        "Cost",
        "cost",
        unknown="activity.cost_unknown",
        title="in the range shown; +N? = N generations without a known price",
    ),
    Column("activity.errors", "Errors", "count"),
    Column("activity.p50_ms", "p50", "ms", title="median latency"),
    Column("activity.p95_ms", "p95", "ms", title="95th percentile latency"),
]
"""The Personas page. Score means join here (one Column each) once scores are stored."""

REPORT_COLUMNS: list[Column] = [
    Column("group", "Group"),
    Column("traces", "Traces", "count"),
    Column("generations", "Generations", "count"),
    Column("input_tokens", "In", "tokens"),
    Column("output_tokens", "Out", "tokens"),
    Column("total_tokens", "Tokens", "tokens"),
    Column("cost_usd", "Cost", "cost", unknown="cost_unknown"),
    Column("errors", "Errors", "count"),
    Column("p50_ms", "p50", "ms"),
    Column("p95_ms", "p95", "ms"),
]

TRACE_COLUMNS: list[Column] = [
    Column("trace_id", "Trace", "trace"),
    Column("start_ns", "Started", "time"),
    Column("name", "Name"),
    Column("persona", "Persona", "persona"),
    Column("chatmode", "Chatmode"),
    Column("duration_ms", "Duration", "ms"),
    Column("status", "Status", "status"),
    Column("generations", "Gens", "count"),
    Column("total_tokens", "Tokens", "tokens"),
    Column("cost_usd", "Cost", "cost", unknown="cost_unknown"),
    Column("error", "Error", "excerpt"),
]

GENERATION_COLUMNS: list[Column] = [
    Column("start_ns", "Started", "time"),
    Column("trace_id", "Trace", "trace"),
    Column("persona", "Persona", "persona"),
    Column("model", "Model"),
    Column("name", "Name"),
    Column("latency_ms", "Latency", "ms"),
    Column("time_to_first_token_ms", "First token", "ms"),
    Column("total_tokens", "Tokens", "tokens"),
    Column("cost_usd", "Cost", "cost"),
    Column("status", "Status", "status"),
    Column("input", "Prompt / error", "excerpt"),
]

TIMELINE_COLUMNS: list[Column] = [
    Column("start_ns", "Bucket", "time"),
    Column("generations", "Generations", "count"),
    Column("errors", "Errors", "count"),
    Column("error_rate", "Error rate", "percent"),
    Column("total_tokens", "Tokens", "tokens"),
    Column("cost_usd", "Cost", "cost", unknown="cost_unknown"),
]

SERIES_COLUMNS: list[Column] = [
    Column("start_ns", "Bucket", "time"),
    Column("persona", "Persona", "persona"),
    Column("generations", "Generations", "count"),
    Column("errors", "Errors", "count"),
    Column("input_tokens", "In", "tokens"),
    Column("output_tokens", "Out", "tokens"),
    Column("cost_usd", "Cost", "cost", unknown="cost_unknown"),
]

DISTRIBUTION_COLUMNS: list[Column] = [
    Column("group", "Group"),
    Column("generations", "Generations", "count"),
    Column("p50_ms", "p50", "ms"),
    Column("p95_ms", "p95", "ms"),
]


# -- quality: score means, prompt versions, scores -----------------------------------------
def quality_columns(rows: Sequence[Mapping[str, Any]], within: str = "") -> list[Column]:
    """The gate pass rate and the mean of each other score that ``rows`` have (under
    ``within``, as ``activity`` in a persona's row): ``hypertool report``'s ``gate_pass_rate``
    and ``scores``.
    """
    base = (within,) if within else ()
    columns = []
    if any(lookup(row, (*base, "gate_pass_rate")) is not None for row in rows):
        columns.append(
            Column(
                ".".join((*base, "gate_pass_rate")),
                "Gates",
                "percent",
                title="quality gates passed (the mean of quality_gate)",
            )
        )
    names = sorted({name for row in rows for name in lookup(row, (*base, "scores")) or {}})
    for name in names:
        if name != QUALITY_GATE:
            path = (*base, "scores", name, "mean")
            columns.append(Column(".".join(path), name, "mean", title=f"mean of {name}", path=path))
    return columns


def score_sample_columns(rows: Iterable[Mapping[str, Any]]) -> list[Column]:
    """Per score name in ``rows``' ``scores``: its mean and its sample size (``n``)."""
    columns = []
    for name in sorted({name for row in rows for name in row.get("scores") or {}}):
        mean, n = ("scores", name, "mean"), ("scores", name, "n")
        columns.append(Column(".".join(mean), name, "mean", title=f"mean of {name}", path=mean))
        columns.append(Column(".".join(n), "n", "count", title=f"{name}: sample size", path=n))
    return columns


PROMPT_COLUMNS: list[Column] = [
    Column("prompt", "Prompt", "prompt"),
    Column("version", "Version", "version", title="★: the best version for that persona"),
    Column("persona", "Persona", "persona"),
    Column("generations", "Calls", "count"),
    Column("total_tokens", "Tokens", "tokens"),
    Column("cost_usd", "Cost", "cost", unknown="cost_unknown"),
    Column("p50_ms", "p50", "ms"),
    Column("p95_ms", "p95", "ms"),
    Column("errors", "Errors", "count"),
    Column("error_rate", "Error rate", "percent"),
]
"""The Prompts tables; the mean and sample size of each score follow."""

BEST_COLUMNS: list[Column] = [
    Column("prompt", "Prompt", "prompt"),
    Column("persona", "Persona", "persona"),
    Column("versions", "Versions", "count"),
    Column("score", "On score"),
    Column("best_version", "Best", "verdict", title="as hypertool prompts says it"),
]

SCORE_COLUMNS: list[Column] = [
    Column("created_ns", "Given", "time"),
    Column("trace_id", "Trace", "trace"),
    Column("observation_id", "Observation", "observation"),
    Column("persona", "Persona", "persona"),
    Column("chatmode", "Chatmode"),
    Column("name", "Name"),
    Column("value", "Value", "score"),
    Column("comment", "Comment", "excerpt"),
]

PROMPT_TEXT_COLUMNS: list[Column] = [
    Column("version", "Version"),
    Column("type", "Type"),
    Column("created", "Recorded"),
    Column("lines", "Lines", "count"),
]
