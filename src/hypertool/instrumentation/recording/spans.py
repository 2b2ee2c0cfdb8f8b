"""Helpers to build and finish the OpenTelemetry spans behind traces, spans and generations."""

from __future__ import annotations

import json
import traceback
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from opentelemetry import trace as trace_api
from opentelemetry.trace import Status, StatusCode

from hypertool.instrumentation import semconv as attr
from hypertool.instrumentation.model.usage import text_of


def to_ns(moment: datetime | float | None) -> int | None:
    """Nanoseconds since the epoch of a datetime or of epoch seconds (int or float)."""
    if moment is None:
        return None
    if isinstance(moment, datetime):
        return int(moment.timestamp() * 1e9)
    return int(moment * 1e9)


def metadata_attributes(
    prefix: str, metadata: Mapping[str, Any] | None, clean: Callable[[str], str]
) -> dict[str, str]:
    """``prefix.key`` attributes for each metadata entry, values as cleaned text."""
    if not metadata:
        return {}
    result = {}
    for key, value in metadata.items():
        result[f"{prefix}.{key}"] = clean(value if isinstance(value, str) else text_of(value))
    return result


def finish(
    span: trace_api.Span,
    status: str,
    error: BaseException | str | None,
    clean: Callable[[str], str],
    *,
    default: str = "error",
    end_ns: int | None = None,
) -> None:
    """End ``span``; on error mark it ERROR (OTel status and Langfuse level) with a message."""
    if status == "error" or error is not None:
        raw = (str(error) or type(error).__name__) if error is not None else default
        message = clean(raw)
        span.set_attributes({attr.LEVEL: attr.LEVEL_ERROR, attr.STATUS_MESSAGE: message})
        if isinstance(error, BaseException):
            # Provider errors quote keys ("Incorrect API key: sk-…"): the event is masked too.
            stack = "".join(traceback.format_exception(error))
            span.record_exception(
                error,
                attributes={"exception.message": message, "exception.stacktrace": clean(stack)},
            )
        span.set_status(Status(StatusCode.ERROR, message))
    span.end(end_time=end_ns)


def iso_time(ns: int) -> str:
    """Epoch nanoseconds as langfuse's SDK sends a time attribute.

    A JSON-quoted ISO 8601 UTC string with microseconds and ``Z``, e.g. the 28 characters
    ``"2025-01-02T03:04:05.123456Z"`` including the quotes.
    """
    moment = datetime.fromtimestamp(ns / 1e9, tz=UTC)
    return json.dumps(moment.isoformat(timespec="microseconds").replace("+00:00", "Z"))
