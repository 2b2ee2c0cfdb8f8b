"""The Langfuse sink's view of a span: scope, stage re-keying, context as metadata."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, TraceFlags

from hypertool.instrumentation import semconv as attr
from hypertool.instrumentation.export.langfuse import (
    SCOPE_NAME,
    LangfuseSpanExporter,
    langfuse_view,
)
from hypertool.instrumentation.model.handles import stage_trace_id

TRACE = int("12" * 16, 16)
SCOPE = InstrumentationScope(SCOPE_NAME, "9.9.9")
RESOURCE = Resource.create({"service.name": "test"})


def span(span_id: int, parent: int | None, attributes: dict[str, Any]) -> ReadableSpan:
    return ReadableSpan(
        name=f"span-{span_id}",
        context=SpanContext(TRACE, span_id, False, TraceFlags(1)),
        parent=None if parent is None else SpanContext(TRACE, parent, False, TraceFlags(1)),
        resource=RESOURCE,
        attributes=attributes,
        start_time=1,
        end_time=2,
        instrumentation_scope=InstrumentationScope("hypertool.instrumentation", "0"),
    )


def test_a_stage_and_what_is_inside_it_move_to_the_stages_trace() -> None:
    stage_id = stage_trace_id(format(TRACE, "032x"), format(7, "016x"))
    stage = langfuse_view(span(7, 1, {attr.LANGFUSE_TRACE_ID: stage_id}), SCOPE)
    inside = langfuse_view(span(8, 7, {attr.LANGFUSE_TRACE_ID: stage_id}), SCOPE)
    root = langfuse_view(span(1, None, {}), SCOPE)
    assert stage.context is not None and inside.context is not None and root.context is not None
    assert format(stage.context.trace_id, "032x") == stage_id
    assert stage.parent is None  # the root of its Langfuse trace
    assert format(inside.context.trace_id, "032x") == stage_id
    assert inside.parent is not None and inside.parent.span_id == 7
    assert root.context.trace_id == TRACE  # the workflow's own trace is left as it is
    assert {s.instrumentation_scope for s in (stage, inside, root)} == {SCOPE}
    assert SCOPE_NAME.startswith("langfuse-sdk") and SCOPE_NAME != "langfuse-sdk"


def test_an_id_it_did_not_write_leaves_the_span_where_it_is() -> None:
    viewed = langfuse_view(span(3, 1, {attr.LANGFUSE_TRACE_ID: "not hex"}), SCOPE)
    assert viewed.context is not None and viewed.context.trace_id == TRACE
    assert viewed.parent is not None and viewed.parent.span_id == 1


def test_context_becomes_metadata_unless_the_caller_gave_it() -> None:
    attributes = {
        attr.PERSONA: "backend-engineer",
        attr.CHATMODE: "",
        attr.STAGE: "qa",
        f"{attr.OBSERVATION_METADATA}.stage": "the caller's",
        attr.USAGE_ESTIMATED: True,
        attr.USAGE_INPUT: 3,
        attr.USAGE_OUTPUT: 0,
        attr.STREAM_ABANDONED: True,
    }
    viewed = dict(langfuse_view(span(2, 1, attributes), SCOPE).attributes or {})
    metadata = {
        key.removeprefix(f"{attr.OBSERVATION_METADATA}."): value
        for key, value in viewed.items()
        if key.startswith(f"{attr.OBSERVATION_METADATA}.")
    }
    assert metadata == {
        "persona": "backend-engineer",
        "stage": "the caller's",
        "usage_estimated": "true",
        "stream_abandoned": "true",
    }
    # A failed call's empty usage is no estimate: nothing to say.
    failed = {attr.USAGE_ESTIMATED: True, attr.USAGE_INPUT: 0, attr.USAGE_OUTPUT: 0}
    viewed = dict(langfuse_view(span(4, 1, failed), SCOPE).attributes or {})
    assert f"{attr.OBSERVATION_METADATA}.usage_estimated" not in viewed
    assert attributes[attr.STAGE] == "qa"  # the span the other sinks get is not changed


class Recording(SpanExporter):
    def __init__(self) -> None:
        self.batches: list[list[ReadableSpan]] = []
        self.flushed = self.shut = False

    def export(self, spans: Any) -> SpanExportResult:
        self.batches.append(list(spans))
        return SpanExportResult.FAILURE

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        self.flushed = True
        return True

    def shutdown(self) -> None:
        self.shut = True


def test_the_exporter_hands_the_view_on_and_passes_results_back() -> None:
    inner = Recording()
    exporter = LangfuseSpanExporter(inner, "1.2.3")
    assert exporter.export([span(1, None, {})]) is SpanExportResult.FAILURE
    ((sent,),) = inner.batches
    assert sent.instrumentation_scope == InstrumentationScope(SCOPE_NAME, "1.2.3")
    assert exporter.force_flush() and inner.flushed
    exporter.shutdown()
    assert inner.shut
