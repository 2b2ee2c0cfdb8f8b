"""Our OTLP request encoder writes exactly the bytes OpenTelemetry's encoder writes."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
    set_span_in_context,
)

from hypertool.instrumentation.export.otlp_encoding import encode_request

INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
SCALARS = st.one_of(st.text(), st.booleans(), INT64, st.floats(allow_nan=False))
VALUES = st.one_of(
    SCALARS,
    st.lists(st.text(), max_size=3),
    st.lists(st.booleans(), max_size=3),
    st.lists(INT64, max_size=3),
    st.lists(st.floats(allow_nan=False), max_size=3),
)
ATTRIBUTES = st.dictionaries(st.text(min_size=1, max_size=20), VALUES, max_size=12)


class Collect(SpanProcessor):
    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def on_end(self, span: ReadableSpan) -> None:
        self.spans.append(span)


def official(spans: list[ReadableSpan]) -> bytes:
    return bytes(encode_spans(spans).SerializeToString())


@settings(max_examples=150, deadline=None)
@given(
    name=st.text(max_size=30),
    attributes=ATTRIBUTES,
    event_attributes=ATTRIBUTES,
    status=st.sampled_from([StatusCode.UNSET, StatusCode.OK, StatusCode.ERROR]),
    description=st.text(max_size=20),
    kind=st.sampled_from(list(SpanKind)),
    remote_parent=st.booleans(),
    scope_version=st.one_of(st.none(), st.text(min_size=1, max_size=8)),
)
def test_same_bytes_as_opentelemetry(
    name: str,
    attributes: dict[str, Any],
    event_attributes: dict[str, Any],
    status: StatusCode,
    description: str,
    kind: SpanKind,
    remote_parent: bool,
    scope_version: str | None,
) -> None:
    collect = Collect()
    provider = TracerProvider(resource=Resource.create({"service.name": "test", "n": 3}))
    provider.add_span_processor(collect)
    tracer = provider.get_tracer("scope", scope_version)
    other = provider.get_tracer("other-scope")
    root = tracer.start_span(name, attributes=attributes, kind=kind)
    child = other.start_span("child", context=set_span_in_context(root))
    child.add_event("event", event_attributes)
    child.record_exception(ValueError("boom"))
    child.set_status(
        Status(status, description if status is StatusCode.ERROR and description else None)
    )
    child.end()
    root.end()
    parent = SpanContext(
        0xABC, 0xDEF, is_remote=remote_parent, trace_flags=TraceFlags(1), trace_state=TraceState()
    )
    linked = tracer.start_span(
        "linked",
        context=set_span_in_context(NonRecordingSpan(parent)),
        links=[Link(parent, {"weight": 1})],
    )
    linked.end()
    assert encode_request(collect.spans) == official(collect.spans)


def test_ints_beyond_int64_are_left_out_as_opentelemetry_does() -> None:
    collect = Collect()
    provider = TracerProvider()
    provider.add_span_processor(collect)
    provider.get_tracer("t").start_span("s", attributes={"big": 2**70, "ok": 1}).end()
    assert encode_request(collect.spans) == official(collect.spans)


def test_trace_state_is_written() -> None:
    collect = Collect()
    provider = TracerProvider()
    provider.add_span_processor(collect)
    state = TraceState([("k", "v"), ("a", "b")])
    parent = SpanContext(1, 2, is_remote=True, trace_flags=TraceFlags(1), trace_state=state)
    provider.get_tracer("t").start_span(
        "s", context=set_span_in_context(NonRecordingSpan(parent))
    ).end()
    span = collect.spans[0]
    assert span.context is not None and span.context.trace_state
    assert encode_request(collect.spans) == official(collect.spans)
