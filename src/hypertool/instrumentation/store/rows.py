"""Finished OpenTelemetry spans as rows of the trace store."""

from __future__ import annotations

import functools
import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import chain
from json.encoder import encode_basestring as _encode_string
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

from hypertool.instrumentation import semconv as attr

OBSERVATION_COLUMNS = (
    "span_id",
    "trace_id",
    "parent_id",
    "type",
    "name",
    "persona",
    "chatmode",
    "workflow",
    "stage",
    "model",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "usage_estimated",
    "cost_usd",
    "start_ns",
    "end_ns",
    "status",
    "error",
    "input",
    "output",
    "metadata",
    "completion_start_ns",
    "prompt_name",
    "prompt_version",
)

Row = tuple[Any, ...]

# SQLite's limit on bound parameters per statement is 32766 (3.32+).
_MAX_PARAMETERS = 30_000


@dataclass(frozen=True)
class MultiRow:
    """An INSERT of many rows per statement.

    One statement per few hundred rows instead of one per row: Python's sqlite3 releases the
    GIL around every statement step, and each time it takes it back it may wait for the
    application's threads (up to the 5 ms switch interval), so a batch written row by row
    crawls exactly when the application is busy.
    """

    head: str
    row: str
    tail: str = ""

    @functools.cached_property
    def rows_per_statement(self) -> int:
        """Rows one statement takes without passing SQLite's parameter limit."""
        return max(1, _MAX_PARAMETERS // self.row.count("?"))

    @functools.lru_cache(maxsize=8)  # noqa: B019 - a handful of module-level instances
    def sql(self, count: int) -> str:
        """The statement inserting ``count`` rows."""
        return f"{self.head} {', '.join([self.row] * count)} {self.tail}"

    def run(self, connection: sqlite3.Connection, rows: Sequence[Row]) -> None:
        """Insert ``rows`` (in order: a later row wins over an earlier one of the same key)."""
        step = self.rows_per_statement
        for start in range(0, len(rows), step):
            chunk = rows[start : start + step]
            connection.execute(self.sql(len(chunk)), list(chain.from_iterable(chunk)))


INSERT_OBSERVATION = MultiRow(
    f"INSERT OR REPLACE INTO observations ({', '.join(OBSERVATION_COLUMNS)}) VALUES",
    f"({', '.join('?' * len(OBSERVATION_COLUMNS))})",
)

_TRACE_COLUMNS = (
    "trace_id, name, persona, chatmode, workflow, start_ns, end_ns, status, error, "
    "environment, release"
)

UPSERT_ROOT = MultiRow(
    f"INSERT INTO traces ({_TRACE_COLUMNS}, root_seen) VALUES",
    "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)",
    """
    ON CONFLICT (trace_id) DO UPDATE SET
        name = excluded.name, persona = excluded.persona, chatmode = excluded.chatmode,
        workflow = excluded.workflow, start_ns = excluded.start_ns, end_ns = excluded.end_ns,
        status = excluded.status, error = excluded.error, environment = excluded.environment,
        release = excluded.release, root_seen = 1
    """,
)

# A trace whose root has not arrived (yet, or ever: it may have been dropped) is still listed,
# spanning its observations; the root replaces all of this when it comes.
UPSERT_PLACEHOLDER = MultiRow(
    f"INSERT INTO traces ({_TRACE_COLUMNS}, root_seen) VALUES",
    "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)",
    """
    ON CONFLICT (trace_id) DO UPDATE SET
        name = coalesce(name, excluded.name), persona = coalesce(persona, excluded.persona),
        chatmode = coalesce(chatmode, excluded.chatmode),
        workflow = coalesce(workflow, excluded.workflow),
        start_ns = min(start_ns, excluded.start_ns), end_ns = max(end_ns, excluded.end_ns),
        status = CASE WHEN excluded.status = 'error' THEN 'error' ELSE status END,
        error = coalesce(error, excluded.error),
        environment = coalesce(environment, excluded.environment),
        release = coalesce(release, excluded.release)
    WHERE root_seen = 0
    """,
)


# What each writer stored per persona and UTC day (budgets shared by processes); the rows of
# one batch are aggregated first, so their keys are distinct.
UPSERT_WRITER_USAGE = MultiRow(
    "INSERT INTO writer_usage (writer, persona, day_ns, tokens, cost_usd, calls) VALUES",
    "(?, ?, ?, ?, ?, ?)",
    """
    ON CONFLICT (writer, persona, day_ns) DO UPDATE SET
        tokens = tokens + excluded.tokens, cost_usd = cost_usd + excluded.cost_usd,
        calls = calls + excluded.calls
    """,
)


def cap(text: str | None, limit: int) -> str | None:
    """``text`` cut to ``limit`` characters, with a visible marker saying how much was cut."""
    if text is None or len(text) <= limit:
        return text
    return f"{text[:limit]}…[truncated {len(text) - limit} chars]"


def _text(value: Any) -> str | None:
    if value is None or value.__class__ is str:
        return value or None
    if isinstance(value, str):
        return str(value) or None
    if isinstance(value, Sequence):
        return json.dumps(list(value), default=str)
    return str(value)


def _json_object(value: Any) -> dict[str, Any]:
    if not isinstance(value, str):
        return {}
    try:
        parsed = json.loads(value)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value)


def _usage(
    attributes: dict[str, Any],
) -> tuple[int | None, int | None, int | None]:
    """Input, output and total tokens: input and output inclusive (cached input and reasoning
    included, as the provider's prompt and completion counts), total their sum.
    """
    pop = attributes.pop
    tokens_in = _int(pop(attr.GEN_AI_INPUT_TOKENS, None))
    tokens_out = _int(pop(attr.GEN_AI_OUTPUT_TOKENS, None))
    local_in = _int(pop(attr.USAGE_INPUT, None))
    local_out = _int(pop(attr.USAGE_OUTPUT, None))
    if tokens_in is not None and tokens_out is not None:
        # Our spans carry both forms; the GenAI integers spare parsing the JSON.
        return tokens_in, tokens_out, tokens_in + tokens_out
    if local_in is not None and local_out is not None:  # an estimate, not sent as usage
        return local_in, local_out, local_in + local_out
    details = _json_object(attributes.get(attr.USAGE_DETAILS))
    # Langfuse's convention: input/output exclude the input_*/output_* buckets beside them.
    counts = {key: n for key, value in details.items() if (n := _int(value)) is not None}
    if tokens_in is None and "input" in counts:
        tokens_in = sum(n for key, n in counts.items() if key.startswith("input"))
    if tokens_out is None and "output" in counts:
        tokens_out = sum(n for key, n in counts.items() if key.startswith("output"))
    total = counts.get("total")
    if total is None and (tokens_in is not None or tokens_out is not None):
        total = (tokens_in or 0) + (tokens_out or 0)
    return tokens_in, tokens_out, total


def _cost(text: Any) -> float | None:
    """The generation's cost in USD from its cost details; None when unknown (never 0)."""
    details = _json_object(text)
    total = details.get("total")
    if isinstance(total, int | float) and not isinstance(total, bool):
        return float(total)
    parts = [v for v in details.values() if isinstance(v, int | float) and not isinstance(v, bool)]
    return float(sum(parts)) if parts else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _moment_ns(value: Any) -> int | None:
    """An ISO 8601 time attribute (JSON-quoted, as langfuse sends it, or bare) as epoch ns."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.strip().strip('"'))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1000


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _metadata(attributes: dict[str, Any]) -> str | None:
    """The attributes left as a JSON object (strings and numbers encoded directly: the
    general encoder costs several microseconds per span on the delivery thread).
    """
    if not attributes:
        return None
    parts = []
    for key, value in attributes.items():
        kind = value.__class__
        if kind is str:
            encoded = _encode_string(value)
        elif kind is bool:
            encoded = "true" if value else "false"
        elif kind is int:
            encoded = str(value)
        else:
            return json.dumps(attributes, default=str, ensure_ascii=False)
        parts.append(f"{_encode_string(key)}:{encoded}")
    return "{" + ",".join(parts) + "}"


def span_rows(span: ReadableSpan, max_field_chars: int) -> tuple[Row, Row, bool]:
    """The observation row and trace row of ``span``, and whether it is its trace's root.

    Attributes with a column of their own are taken out; the rest is the metadata JSON.
    This runs on the delivery thread for every span, so it stays lean: one copy of the
    attributes, plain dict operations, JSON parsed only when needed.
    """
    context = span.context
    assert context is not None
    attributes: dict[str, Any] = dict(span.attributes) if span.attributes else {}
    pop = attributes.pop
    span_id = format(context.span_id, "016x")
    trace_id = format(context.trace_id, "032x")
    parent = span.parent
    parent_id = format(parent.span_id, "016x") if parent is not None else None
    kind = _text(pop(attr.OBSERVATION_TYPE, None)) or attr.TYPE_SPAN
    persona = _text(pop(attr.PERSONA, None))
    user = _text(pop(attr.USER_ID, None))
    persona = persona or user
    chatmode = _text(pop(attr.CHATMODE, None))
    workflow = _text(pop(attr.WORKFLOW, None))
    stage = _text(pop(attr.STAGE, None))
    model = _text(pop(attr.MODEL, None))
    request_model = _text(pop(attr.GEN_AI_REQUEST_MODEL, None))
    trace_name = _text(pop(attr.TRACE_NAME, None))
    text_in = cap(_text(pop(attr.INPUT, None)), max_field_chars)
    text_out = cap(_text(pop(attr.OUTPUT, None)), max_field_chars)
    estimated = pop(attr.USAGE_ESTIMATED, None)
    known = pop(attr.COST_KNOWN, None)
    local_cost = pop(attr.COST_USD, None)
    level = pop(attr.LEVEL, None)
    message = _text(pop(attr.STATUS_MESSAGE, None))
    environment = _text(pop(attr.ENVIRONMENT, None))
    release = _text(pop(attr.RELEASE, None))
    pop(attr.TRACE_STATUS, None)
    if parent_id is not None:
        pop(attr.TRACE_METADATA, None)  # the trace's metadata, repeated: the root keeps it
    prompt_name = _text(pop(attr.PROMPT_NAME, None))
    prompt_version = _int(pop(attr.PROMPT_VERSION, None))
    start_ns = int(span.start_time or 0)
    end_ns = int(span.end_time or start_ns)
    status = span.status
    failed = status.status_code is StatusCode.ERROR or level == attr.LEVEL_ERROR
    error = cap(message or status.description or "error", max_field_chars) if failed else None
    tokens_in = tokens_out = total = None
    cost = None
    first_token = None
    if kind == attr.TYPE_GENERATION:
        tokens_in, tokens_out, total = _usage(attributes)
        if known is not False and attr.COST_DETAILS in attributes:
            cost = _cost(attributes[attr.COST_DETAILS])
        elif known is not False:
            cost = _number(local_cost)
        if attr.COMPLETION_START_TIME in attributes:  # kept in the metadata too, as sent
            first_token = _moment_ns(attributes[attr.COMPLETION_START_TIME])
    observation = (
        span_id,
        trace_id,
        parent_id,
        kind,
        span.name,
        persona,
        chatmode,
        workflow,
        stage,
        model or request_model,
        tokens_in,
        tokens_out,
        total,
        int(estimated) if isinstance(estimated, bool) else None,
        cost,
        start_ns,
        end_ns,
        "error" if failed else "success",
        error,
        text_in,
        text_out,
        _metadata(attributes),
        first_token,
        # Langfuse links only generations to prompts; so does the store.
        prompt_name if kind == attr.TYPE_GENERATION else None,
        prompt_version if kind == attr.TYPE_GENERATION and prompt_name else None,
    )
    trace = (
        trace_id,
        trace_name or (span.name if parent_id is None else None),
        persona,
        chatmode,
        workflow,
        start_ns,
        end_ns,
        "error" if failed else "success",
        error,
        environment,
        release,
    )
    return observation, trace, parent_id is None
