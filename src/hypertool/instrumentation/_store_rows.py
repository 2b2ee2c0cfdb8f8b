"""Finished OpenTelemetry spans as rows of the trace store."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

from hypertool.instrumentation import _attributes as attr

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
)

INSERT_OBSERVATION = (
    f"INSERT OR REPLACE INTO observations ({', '.join(OBSERVATION_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(OBSERVATION_COLUMNS))})"
)

_TRACE_COLUMNS = "trace_id, name, persona, chatmode, workflow, start_ns, end_ns, status, error"

UPSERT_ROOT = f"""
INSERT INTO traces ({_TRACE_COLUMNS}, root_seen) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1)
ON CONFLICT (trace_id) DO UPDATE SET
    name = excluded.name, persona = excluded.persona, chatmode = excluded.chatmode,
    workflow = excluded.workflow, start_ns = excluded.start_ns, end_ns = excluded.end_ns,
    status = excluded.status, error = excluded.error, root_seen = 1
"""

# A trace whose root has not arrived (yet, or ever: it may have been dropped) is still listed,
# spanning its observations; the root replaces all of this when it comes.
UPSERT_PLACEHOLDER = f"""
INSERT INTO traces ({_TRACE_COLUMNS}, root_seen) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0)
ON CONFLICT (trace_id) DO UPDATE SET
    name = coalesce(name, excluded.name), persona = coalesce(persona, excluded.persona),
    chatmode = coalesce(chatmode, excluded.chatmode),
    workflow = coalesce(workflow, excluded.workflow),
    start_ns = min(start_ns, excluded.start_ns), end_ns = max(end_ns, excluded.end_ns),
    status = CASE WHEN excluded.status = 'error' THEN 'error' ELSE status END,
    error = coalesce(error, excluded.error)
WHERE root_seen = 0
"""

# Attributes with a column of their own; every other attribute goes to the metadata JSON.
_COLUMN_KEYS = frozenset(
    {
        attr.TRACE_NAME,
        attr.USER_ID,
        attr.PERSONA,
        attr.CHATMODE,
        attr.WORKFLOW,
        attr.STAGE,
        attr.OBSERVATION_TYPE,
        attr.MODEL,
        attr.INPUT,
        attr.OUTPUT,
        attr.USAGE_ESTIMATED,
        attr.COST_KNOWN,
        attr.LEVEL,
        attr.STATUS_MESSAGE,
        attr.GEN_AI_INPUT_TOKENS,
        attr.GEN_AI_OUTPUT_TOKENS,
        attr.GEN_AI_REQUEST_MODEL,
        attr.TRACE_STATUS,
    }
)

Row = tuple[Any, ...]


def cap(text: str | None, limit: int) -> str | None:
    """``text`` cut to ``limit`` characters, with a visible marker saying how much was cut."""
    if text is None or len(text) <= limit:
        return text
    return f"{text[:limit]}…[truncated {len(text) - limit} chars]"


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value or None
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


def _usage(attributes: Mapping[str, Any]) -> tuple[int | None, int | None, int | None]:
    details = _json_object(attributes.get(attr.USAGE_DETAILS))
    tokens_in = _int(details.get("input"))
    tokens_out = _int(details.get("output"))
    if tokens_in is None:
        tokens_in = _int(attributes.get(attr.GEN_AI_INPUT_TOKENS))
    if tokens_out is None:
        tokens_out = _int(attributes.get(attr.GEN_AI_OUTPUT_TOKENS))
    total = _int(details.get("total"))
    if total is None and (tokens_in is not None or tokens_out is not None):
        total = (tokens_in or 0) + (tokens_out or 0)
    return tokens_in, tokens_out, total


def _cost(attributes: Mapping[str, Any]) -> float | None:
    """The generation's cost in USD; None when unknown (never a silent 0)."""
    if attributes.get(attr.COST_KNOWN) is False:
        return None
    details = _json_object(attributes.get(attr.COST_DETAILS))
    if not details:
        return None
    total = details.get("total")
    if isinstance(total, int | float) and not isinstance(total, bool):
        return float(total)
    parts = [v for v in details.values() if isinstance(v, int | float) and not isinstance(v, bool)]
    return float(sum(parts)) if parts else None


def _metadata(attributes: Mapping[str, Any]) -> str | None:
    extra = {
        key: list(value) if isinstance(value, tuple) else value
        for key, value in attributes.items()
        if key not in _COLUMN_KEYS
    }
    for key in (attr.USAGE_DETAILS, attr.COST_DETAILS):
        if key in extra:
            extra[key] = _json_object(extra[key]) or extra[key]
    return json.dumps(extra, default=str, ensure_ascii=False) if extra else None


def span_rows(span: ReadableSpan, max_field_chars: int) -> tuple[Row, Row, bool]:
    """The observation row and trace row of ``span``, and whether it is its trace's root."""
    context = span.get_span_context()
    assert context is not None
    attributes: Mapping[str, Any] = span.attributes or {}
    span_id = format(context.span_id, "016x")
    trace_id = format(context.trace_id, "032x")
    parent_id = format(span.parent.span_id, "016x") if span.parent is not None else None
    kind = _text(attributes.get(attr.OBSERVATION_TYPE)) or attr.TYPE_SPAN
    persona = _text(attributes.get(attr.PERSONA)) or _text(attributes.get(attr.USER_ID))
    chatmode = _text(attributes.get(attr.CHATMODE))
    workflow = _text(attributes.get(attr.WORKFLOW))
    start_ns = int(span.start_time or 0)
    end_ns = int(span.end_time or start_ns)
    failed = (
        span.status.status_code is StatusCode.ERROR
        or attributes.get(attr.LEVEL) == attr.LEVEL_ERROR
    )
    status = "error" if failed else "success"
    error = (
        cap(
            _text(attributes.get(attr.STATUS_MESSAGE)) or span.status.description or "error",
            max_field_chars,
        )
        if failed
        else None
    )
    generation = kind == attr.TYPE_GENERATION
    tokens_in, tokens_out, total = _usage(attributes) if generation else (None, None, None)
    estimated = attributes.get(attr.USAGE_ESTIMATED)
    observation = (
        span_id,
        trace_id,
        parent_id,
        kind,
        span.name,
        persona,
        chatmode,
        workflow,
        _text(attributes.get(attr.STAGE)),
        _text(attributes.get(attr.MODEL)) or _text(attributes.get(attr.GEN_AI_REQUEST_MODEL)),
        tokens_in,
        tokens_out,
        total,
        int(estimated) if isinstance(estimated, bool) else None,
        _cost(attributes) if generation else None,
        start_ns,
        end_ns,
        status,
        error,
        cap(_text(attributes.get(attr.INPUT)), max_field_chars),
        cap(_text(attributes.get(attr.OUTPUT)), max_field_chars),
        _metadata(attributes),
    )
    trace = (
        trace_id,
        _text(attributes.get(attr.TRACE_NAME)) or (span.name if parent_id is None else None),
        persona,
        chatmode,
        workflow,
        start_ns,
        end_ns,
        status,
        error,
    )
    return observation, trace, parent_id is None
