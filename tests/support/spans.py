"""Reading finished OpenTelemetry spans in tests: ids as hex, attributes, lookup by name."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from hypertool.instrumentation import LangfuseIntegration


def spans_of(langfuse: LangfuseIntegration, exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    """Everything recorded so far, after a flush that must complete."""
    assert langfuse.flush(timeout=5.0) is True
    return list(exporter.get_finished_spans())


def named(spans: Sequence[ReadableSpan], name: str) -> ReadableSpan:
    """The one span called ``name``."""
    matches = [span for span in spans if span.name == name]
    assert len(matches) == 1, [span.name for span in spans]
    return matches[0]


def trace_hex(span: ReadableSpan) -> str:
    assert span.context is not None
    return format(span.context.trace_id, "032x")


def span_hex(span: ReadableSpan) -> str:
    assert span.context is not None
    return format(span.context.span_id, "016x")


def parent_hex(span: ReadableSpan) -> str | None:
    return None if span.parent is None else format(span.parent.span_id, "016x")


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})
