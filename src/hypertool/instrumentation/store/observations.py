"""One stored observation (a span or a generation) as the store's answers give it."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from typing import Any

from hypertool.instrumentation.store.values import iso, ms

OBSERVATION_FIELDS = (
    "span_id, trace_id, parent_id, type, name, persona, chatmode, workflow, stage, model, "
    "input_tokens, output_tokens, total_tokens, usage_estimated, cost_usd, start_ns, end_ns, "
    "status, error, input, output, metadata, completion_start_ns, prompt_name, prompt_version"
)
"""The columns :func:`observation` reads, in its order."""


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


def observation(row: Sequence[Any]) -> dict[str, Any]:
    """A row of :data:`OBSERVATION_FIELDS` as a dictionary (times also in ISO 8601 and ms)."""
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
        "latency_ms": ms(end - start),
        "time_to_first_token_ms": None if first_token is None else ms(first_token - start),
        "status": status,
        "error": error,
        "input": text_in,
        "output": text_out,
        "metadata": _metadata(metadata),
        "prompt_name": prompt_name,
        "prompt_version": prompt_version,
    }
