"""How our spans are shown to Langfuse: the Langfuse sink's view of each finished span.

Three things differ from what the other sinks get, each because of how Langfuse's OTel
ingestion (``OtelIngestionProcessor.ts``) reads a span:

- **A stage is a Langfuse trace of its own.** Langfuse keeps one user per trace and sums a
  trace's tokens under that user, so the spans of a stage (a span with a persona of its own,
  marked ``hypertool.langfuse.trace_id`` when recorded) get that id as their trace id, and the
  stage span becomes that trace's root. The OpenTelemetry trace the store and OTLP collectors
  get stays the workflow's one tree.
- **The instrumentation scope says "Langfuse's attribute contract".** Langfuse copies every
  attribute of a span whose scope name does not start with ``langfuse-sdk`` into the
  observation's metadata under ``attributes`` (usage JSON, cost JSON, ``user.id``… on every
  generation): it cannot tell which of a foreign instrumentation's attributes it already
  mapped. Ours follow the langfuse SDK's contract key for key (``tests/test_semconv.py``), so
  the Langfuse sink names the scope :data:`SCOPE_NAME`, like the SDK's own ``langfuse-sdk``
  but not equal to it (that exact name turns on a fix-up for old Python SDK versions).
- **Our context is metadata.** With no raw attribute dump, the persona that made a call,
  chatmode, workflow and stage, and an estimated usage, are shown as observation metadata.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry import trace as trace_api
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from hypertool.instrumentation import semconv as attr
from hypertool.instrumentation.model.handles import split_stage_trace_id

SCOPE_NAME = "langfuse-sdk.hypertool-instrumentation"
"""The instrumentation scope the Langfuse sink gives our spans (see the module docstring)."""

# hypertool attribute → observation metadata key; shown unless the caller's metadata has it.
_CONTEXT_METADATA = tuple(
    (key, f"{attr.OBSERVATION_METADATA}.{name}")
    for key, name in (
        (attr.PERSONA, "persona"),
        (attr.CHATMODE, "chatmode"),
        (attr.WORKFLOW, "workflow"),
        (attr.STAGE, "stage"),
    )
)
_USAGE_ESTIMATED = f"{attr.OBSERVATION_METADATA}.usage_estimated"
_STREAM_ABANDONED = f"{attr.OBSERVATION_METADATA}.stream_abandoned"


def copy_attributes(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    """A plain dict of a span's attributes: a read-only view of a dict is copied in C (15x
    faster than ``dict(view)``); the SDK's ``BoundedAttributes`` item by item.
    """
    if not attributes:
        return {}
    try:
        copied = attributes.copy()  # type: ignore[attr-defined]
    except AttributeError:
        return dict(attributes)
    return copied if type(copied) is dict else dict(attributes)


def langfuse_view(span: ReadableSpan, scope: InstrumentationScope) -> ReadableSpan:
    """``span`` as the Langfuse sink sends it (see the module docstring)."""
    attributes = copy_attributes(span.attributes)
    context = span.context
    parent = span.parent
    stage_trace = attributes.get(attr.LANGFUSE_TRACE_ID)
    if context is not None and isinstance(stage_trace, str):
        try:
            context = trace_api.SpanContext(
                int(stage_trace, 16),
                context.span_id,
                is_remote=False,
                trace_flags=context.trace_flags,
                trace_state=context.trace_state,
            )
            if int(split_stage_trace_id(stage_trace)[1], 16) == context.span_id:
                parent = None  # the stage: its Langfuse trace's root
        except ValueError:
            pass  # not an id we wrote: leave the span where it is
    for key, metadata_key in _CONTEXT_METADATA:
        value = attributes.get(key)
        if value and metadata_key not in attributes:
            attributes[metadata_key] = value
    if attributes.get(attr.USAGE_ESTIMATED) is True and (
        attributes.get(attr.USAGE_INPUT) or attributes.get(attr.USAGE_OUTPUT)
    ):  # the tokens Langfuse shows are its own count; ours was only an estimate
        attributes[_USAGE_ESTIMATED] = "true"
    if attributes.get(attr.STREAM_ABANDONED) is True:
        attributes[_STREAM_ABANDONED] = "true"
    return ReadableSpan(
        name=span.name,
        context=context,
        parent=parent,
        resource=span.resource,
        attributes=attributes,
        events=span.events,
        links=span.links,
        kind=span.kind,
        status=span.status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=scope,
    )


class LangfuseSpanExporter(SpanExporter):
    """Sends each span to Langfuse as :func:`langfuse_view` shows it.

    Args:
        exporter: The OTLP exporter speaking to Langfuse's endpoint.
        version: Our version, the scope's version (Langfuse records it per observation).

    """

    def __init__(self, exporter: SpanExporter, version: str) -> None:
        self.exporter = exporter
        self.scope = InstrumentationScope(SCOPE_NAME, version)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Export the Langfuse view of ``spans``."""
        return self.exporter.export([langfuse_view(span, self.scope) for span in spans])

    def shutdown(self) -> None:
        """Shut the OTLP exporter down."""
        self.exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Flush the OTLP exporter."""
        return self.exporter.force_flush(timeout_millis)
