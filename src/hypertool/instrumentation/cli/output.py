"""Human output of the ``hypertool`` command line: ``rich`` tables (a trace's tree is
:mod:`.tree`'s).

Every value from the store goes into a :class:`rich.text.Text`, never into markup, so a prompt
containing ``[brackets]`` prints as written.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from rich import box
from rich.console import Console, Group, RenderableType
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from hypertool.instrumentation.display import (
    EXCERPT_CHARS,
    NONE,
    bucket,
    cost,
    duration,
    excerpt,
    moment,
    tokens,
)

__all__ = [
    "EXCERPT_CHARS",
    "NONE",
    "UNKNOWN_CAPTION",
    "analytics_table",
    "cell",
    "cost",
    "duration",
    "excerpt",
    "generations_table",
    "moment",
    "personas_table",
    "report_table",
    "show",
    "status_cell",
    "titled_table",
    "tokens",
    "traces_table",
]

_UNBOUNDED = 10_000


def show(renderable: RenderableType) -> None:
    """Print ``renderable`` on standard output, wider than the terminal rather than cut.

    Rich squeezes a table into the terminal by folding every column, which turns a persona
    name or a number into pieces; below the table's minimum width it is printed at that
    width instead, and the terminal wraps the long lines.
    """
    console = Console(highlight=False)
    unbounded = console.options.update_width(_UNBOUNDED)  # measuring clamps to the width
    if isinstance(renderable, Table):
        for column in renderable.columns:
            if column.no_wrap:
                column.min_width = max(
                    Measurement.get(console, unbounded, cell).maximum
                    for cell in (column.header, *column.cells)
                )
    minimum = Measurement.get(console, unbounded, renderable).minimum
    if minimum > console.width:
        console = Console(highlight=False, width=minimum)
    console.print(renderable)


UNKNOWN_CAPTION = "+N? : N generation(s) without a known price, not counted"


def _short_moment(ns: int | None) -> str:
    if ns is None:
        return NONE
    return datetime.fromtimestamp(ns / 1e9).astimezone().strftime("%m-%d %H:%M:%S")


def cell(value: Any) -> Text:
    """A value from the store as plain text (never markup); a dash when empty."""
    return Text(NONE if value is None or value == "" else str(value))


def status_cell(value: str | None) -> Text:
    """``success`` or ``error``, coloured."""
    if value == "error":
        return Text("error", style="bold red")
    return Text(value or NONE, style="green" if value == "success" else "")


_WRAP = frozenset({"Name", "Error", "Prompt / error", "Details"})


def titled_table(title: str, columns: Iterable[tuple[str, bool]]) -> Table:
    """A table of ``columns`` (name, numeric); only free text wraps."""
    # No vertical rules: ten columns of numbers fit a 100-column terminal.
    table = Table(
        title=title, title_justify="left", header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False
    )
    for name, numeric in columns:
        # Only free text wraps; ids, personas, times and numbers stay whole (see ``show``).
        wrap = name in _WRAP
        table.add_column(
            name,
            justify="right" if numeric else "left",
            no_wrap=not wrap,
            overflow="fold",
            min_width=12 if wrap else None,
        )
    return table


def report_table(rows: Sequence[Mapping[str, Any]], by: str, since: str | None) -> Table:
    """The report: one row per group and a total; with scores, the gate pass rate and the mean
    of each score.
    """
    title = f"Generations by {by}" + (f" since {since}" if since else "")
    scored = any(row.get("scores") for row in rows)
    table = titled_table(
        title,
        [
            (by.capitalize(), False),
            ("Traces", True),
            ("Gens", True),
            ("In", True),
            ("Out", True),
            ("Tokens", True),
            ("Cost", True),
            ("Errors", True),
            ("p50", True),
            ("p95", True),
            *([("Gates", True), ("Scores", False)] if scored else []),
        ],
    )
    for row in rows:
        quality: list[str | Text] = []
        if scored:
            rate = row.get("gate_pass_rate")
            means = ", ".join(
                f"{name} {value['mean']:.2f}"
                for name, value in (row.get("scores") or {}).items()
                if name != "quality_gate" and value["mean"] is not None
            )
            quality = [NONE if rate is None else f"{rate:.0%}", Text(means or NONE)]
        table.add_row(
            cell(row["group"]),
            tokens(row["traces"]),
            tokens(row["generations"]),
            tokens(row["input_tokens"]),
            tokens(row["output_tokens"]),
            tokens(row["total_tokens"]),
            cost(row["cost_usd"], row["cost_unknown"], short=True),
            Text(str(row["errors"]), style="red" if row["errors"] else ""),
            duration(row["p50_ms"]),
            duration(row["p95_ms"]),
            *quality,
        )
    if len(rows) > 1:
        known = [row["cost_usd"] for row in rows if row["cost_usd"] is not None]
        table.add_section()
        table.add_row(
            Text("total", style="bold"),
            "",
            tokens(sum(row["generations"] for row in rows)),
            tokens(sum(row["input_tokens"] for row in rows)),
            tokens(sum(row["output_tokens"] for row in rows)),
            tokens(sum(row["total_tokens"] for row in rows)),
            cost(
                sum(known) if known else None,
                sum(row["cost_unknown"] for row in rows),
                short=True,
            ),
            str(sum(row["errors"] for row in rows)),
            "",
            "",
            *(["", ""] if scored else []),
        )
    if any(row["cost_unknown"] for row in rows):
        table.caption = UNKNOWN_CAPTION
    return table


def traces_table(rows: Sequence[Mapping[str, Any]]) -> Table:
    """Recent traces."""
    table = titled_table(
        "Traces (newest first)",
        [
            ("Trace", False),
            ("Started", False),
            ("Name", False),
            ("Persona", False),
            ("Duration", True),
            ("Status", False),
            ("Gens", True),
            ("Tokens", True),
            ("Cost", True),
            ("Error", False),
        ],
    )
    for row in rows:
        table.add_row(
            Text(row["trace_id"][:12], style="cyan"),
            _short_moment(row["start_ns"]),
            cell(row["name"]),
            cell(row["persona"]),
            duration(row["duration_ms"]),
            status_cell(row["status"]),
            tokens(row["generations"]),
            tokens(row["total_tokens"]),
            cost(row["cost_usd"], row["cost_unknown"], short=True),
            Text(excerpt(row["error"], 60), style="red"),
        )
    if any(row["cost_unknown"] for row in rows):
        table.caption = UNKNOWN_CAPTION
    return table


def generations_table(rows: Sequence[Mapping[str, Any]], title: str) -> Table:
    """Generations with their latency, usage, cost, and prompt or error."""
    table = titled_table(
        title,
        [
            ("Started", False),
            ("Trace", False),
            ("Persona", False),
            ("Model", False),
            ("Name", False),
            ("Latency", True),
            ("Tokens", True),
            ("Cost", True),
            ("Status", False),
            ("Prompt / error", False),
        ],
    )
    for row in rows:
        detail = (
            Text(excerpt(row["error"], 80), style="red")
            if row["error"]
            else Text(excerpt(row["input"], 80))
        )
        table.add_row(
            _short_moment(row["start_ns"]),
            Text(row["trace_id"][:12], style="cyan"),
            cell(row["persona"]),
            cell(row["model"]),
            cell(row["name"]),
            duration(row["latency_ms"]),
            tokens(row["total_tokens"]) + ("*" if row["usage_estimated"] else ""),
            cost(row["cost_usd"], 1 if row["cost_usd"] is None else 0),
            status_cell(row["status"]),
            detail,
        )
    if any(row["usage_estimated"] for row in rows):
        table.caption = "* estimated token count"
    return table


def personas_table(rows: Sequence[Mapping[str, Any]]) -> Table:
    """Each persona's budget, use this period, remaining (negative when overrun) and cost, and
    its generations, tokens, errors and latency in the range asked for.
    """
    table = titled_table(
        "Personas",
        [
            ("Persona", False),
            ("Period", False),
            ("Budget", True),
            ("Used", True),
            ("Remaining", True),
            ("Cost", True),
            ("Cost budget", True),
            ("Gens", True),
            ("Tokens", True),
            ("Errors", True),
            ("p50", True),
            ("p95", True),
        ],
    )
    for row in rows:
        remaining = row["remaining_tokens"]
        activity = row["activity"]
        table.add_row(
            Text(row["persona"] or NONE, style="bold"),
            row["budget_period"],
            tokens(row["budget_tokens"]),
            tokens(row["used_tokens"]),
            Text(
                tokens(remaining),
                style="bold red" if remaining is not None and remaining < 0 else "",
            ),
            cost(row["cost_usd"]),
            cost(row["cost_budget_usd"]),
            tokens(activity["generations"]),
            tokens(activity["total_tokens"]),
            Text(str(activity["errors"]), style="red" if activity["errors"] else ""),
            duration(activity["p50_ms"]),
            duration(activity["p95_ms"]),
        )
    table.caption = "Budget, Used, Remaining, Cost: this period. Gens to p95: the range asked."
    return table


def analytics_table(document: Mapping[str, Any]) -> Group:
    """Generations, errors, tokens and cost per time bucket; time to first token by model."""
    timeline = titled_table(
        f"Per {bucket(document['bucket_seconds'])} from {document['since']} to {document['until']}",
        [
            ("Bucket", False),
            ("Gens", True),
            ("Errors", True),
            ("Error rate", True),
            ("Tokens", True),
            ("Cost", True),
        ],
    )
    for row in document["timeline"]:
        timeline.add_row(
            moment(row["start_ns"]),
            tokens(row["generations"]),
            str(row["errors"]),
            f"{row['error_rate']:.1%}",
            tokens(row["total_tokens"]),
            cost(row["cost_usd"], row["cost_unknown"], short=True),
        )
    first_token = titled_table(
        "Time to first token (streamed generations)",
        [("Model", False), ("Gens", True), ("p50", True), ("p95", True)],
    )
    for row in document["time_to_first_token"]["by_model"]:
        first_token.add_row(
            cell(row["group"]),
            tokens(row["generations"]),
            duration(row["p50_ms"]),
            duration(row["p95_ms"]),
        )
    return Group(timeline, first_token)
