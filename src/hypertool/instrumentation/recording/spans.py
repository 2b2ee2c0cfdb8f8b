"""Helpers to build and finish the OpenTelemetry spans behind traces, spans and generations."""

from __future__ import annotations

import json
import traceback
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from random import getrandbits
from typing import TYPE_CHECKING, Any

from opentelemetry import trace as trace_api
from opentelemetry.trace import Status, StatusCode, TraceFlags

if TYPE_CHECKING:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

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


def error_marks(
    status: str,
    error: BaseException | str | None,
    clean: Callable[[str], str],
    default: str = "error",
) -> tuple[dict[str, Any], str, dict[str, Any] | None] | None:
    """What marks a failed span: Langfuse's level and message attributes, the OTel status
    message, and the attributes of an ``exception`` event (None when ``error`` is not an
    exception); None when the span did not fail.
    """
    if status != "error" and error is None:
        return None
    raw = (str(error) or type(error).__name__) if error is not None else default
    message = clean(raw)
    marks = {attr.LEVEL: attr.LEVEL_ERROR, attr.STATUS_MESSAGE: message}
    if not isinstance(error, BaseException):
        return marks, message, None
    # Provider errors quote keys ("Incorrect API key: sk-…"): the event is masked too.
    kind = type(error)
    module = kind.__module__
    event = {
        "exception.type": f"{module}.{kind.__qualname__}"
        if module and module != "builtins"
        else kind.__qualname__,
        "exception.message": message,
        "exception.stacktrace": clean("".join(traceback.format_exception(error))),
        "exception.escaped": "False",
    }
    return marks, message, event


def finish(
    span: trace_api.Span,
    status: str,
    error: BaseException | str | None,
    clean: Callable[[str], str],
    *,
    default: str = "error",
    end_ns: int | None = None,
) -> None:
    """End a live ``span``; on error mark it ERROR (OTel status and Langfuse level)."""
    failed = error_marks(status, error, clean, default)
    if failed is not None:
        marks, message, event = failed
        span.set_attributes(marks)
        if event is not None:
            span.add_event("exception", attributes=event)
        span.set_status(Status(StatusCode.ERROR, message))
    span.end(end_time=end_ns)


_OK = Status(StatusCode.UNSET)
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)


class FinishedSpans:
    """Builds spans of work that has already ended (a generation is recorded once its call
    returned) and hands them to the sinks, without the SDK's live-span machinery (locks,
    limits, ``on_start``), which costs more than the rest of recording a generation.

    Args:
        emit: Hands a finished span to every sink.
        resource: The pipeline's resource.
        scope: The pipeline's instrumentation scope.

    """

    def __init__(
        self,
        emit: Callable[[ReadableSpan], None],
        resource: Resource,
        scope: InstrumentationScope,
    ) -> None:
        # The SDK is loaded with the pipeline that uses it, not with the package.
        from opentelemetry.sdk.trace import Event, ReadableSpan

        self.emit = emit
        self.resource = resource
        self.scope = scope
        self._span = ReadableSpan
        self._event = Event

    def record(
        self,
        name: str,
        trace_id: int,
        parent: trace_api.SpanContext | None,
        attributes: dict[str, Any],
        start_ns: int,
        end_ns: int,
        failed: tuple[dict[str, Any], str, dict[str, Any] | None] | None,
    ) -> trace_api.SpanContext:
        """Emit one finished span; ``failed`` as :func:`error_marks` gives it."""
        context = trace_api.SpanContext(
            trace_id, getrandbits(64), is_remote=False, trace_flags=_SAMPLED
        )
        status = _OK
        events: tuple[Any, ...] = ()
        if failed is not None:
            marks, message, event = failed
            attributes.update(marks)
            status = Status(StatusCode.ERROR, message)
            if event is not None:
                events = (self._event("exception", event, end_ns),)
        self.emit(
            self._span(
                name,
                context=context,
                parent=parent,
                resource=self.resource,
                attributes=attributes,
                events=events,
                status=status,
                start_time=start_ns,
                end_time=end_ns,
                instrumentation_scope=self.scope,
            )
        )
        return context


def iso_time(ns: int) -> str:
    """Epoch nanoseconds as langfuse's SDK sends a time attribute.

    A JSON-quoted ISO 8601 UTC string with microseconds and ``Z``, e.g. the 28 characters
    ``"2025-01-02T03:04:05.123456Z"`` including the quotes.
    """
    moment = datetime.fromtimestamp(ns / 1e9, tz=UTC)
    return json.dumps(moment.isoformat(timespec="microseconds").replace("+00:00", "Z"))
