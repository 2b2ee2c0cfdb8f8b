"""OpenTelemetry's attribute limit never evicts our own attributes, and never floods the log.

OpenTelemetry keeps 128 attributes per span by default and evicts the oldest past it, logging
one line per evicted key: a generation with ~115 metadata keys used to arrive without persona,
model or tokens. User metadata is capped per span (the rest folded into one JSON attribute),
our provider's limit leaves room, and user entries come first so a tighter provider evicts
them before ours.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from hypertool.instrumentation import LangfuseIntegration, ObservableLLM
from hypertool.instrumentation import semconv as attr
from hypertool.instrumentation.recording.spans import (
    MAX_ATTRIBUTE_KEYS,
    MAX_METADATA_KEYS,
    MAX_OVERFLOW_CHARS,
)
from hypertool.instrumentation.store import StoreExporter, TraceStore
from support.spans import attrs, named, spans_of
from tests.conftest import Factory

OURS = (
    attr.USER_ID,
    attr.PERSONA,
    attr.OBSERVATION_TYPE,
    attr.MODEL,
    attr.GEN_AI_INPUT_TOKENS,
    attr.GEN_AI_OUTPUT_TOKENS,
    attr.USAGE_DETAILS,
    attr.INPUT,
    attr.OUTPUT,
    attr.TRACE_NAME,
)
OBSERVATION_OVERFLOW = f"{attr.OBSERVATION_METADATA}.{attr.METADATA_OVERFLOW}"


def answer(prompt: str) -> dict[str, Any]:
    """A provider answer with usage: the generation carries every usage attribute."""
    return {"text": "answer", "usage": {"input": 3, "output": 1}}


def many(count: int) -> dict[str, Any]:
    return {f"key{number:05d}": number for number in range(count)}


def record_everything(integration: LangfuseIntegration, metadata: dict[str, Any]) -> None:
    """A trace, a span and a generation with ``metadata``, and a call with it."""
    llm = ObservableLLM(answer, model="gpt-4o", langfuse=integration)
    llm("prompt", persona="backend-engineer", metadata=metadata)
    trace = integration.start_trace("trace", "backend-engineer", "debugging", metadata)
    with integration.start_span(trace, "span", metadata) as span:
        integration.create_generation(
            trace,
            "generation",
            "gpt-4o",
            "p",
            "c",
            usage={"input": 3, "output": 1},
            metadata=metadata,
            parent=span,
        )
    integration.end_trace(trace, status="error", error=RuntimeError("boom"))


def folded(attributes: dict[str, Any], prefix: str) -> dict[str, Any]:
    document = json.loads(attributes[f"{prefix}.{attr.METADATA_OVERFLOW}"])
    assert isinstance(document, dict)
    return document


@pytest.mark.parametrize("count", [MAX_METADATA_KEYS + 1, 115, 200])
def test_our_attributes_survive_any_number_of_metadata_keys(
    make: Factory, exporter: InMemorySpanExporter, caplog: pytest.LogCaptureFixture, count: int
) -> None:
    integration = make(exporters={"memory": exporter})
    with caplog.at_level(logging.WARNING):
        record_everything(integration, many(count))
        spans = spans_of(integration, exporter)
    assert len(spans) == 4
    for span in spans:
        found = attrs(span)
        assert span.dropped_attributes == 0, span.name
        root = span.name == "trace"  # its metadata starts with the chatmode
        prefix = attr.TRACE_METADATA if root else attr.OBSERVATION_METADATA
        kept = {key for key in found if key.startswith(f"{prefix}.key")}
        rest = folded(found, prefix)
        # Every key is there exactly once: as an attribute of its own, or folded.
        keys = {key.removeprefix(f"{prefix}.") for key in kept} | set(rest)
        assert keys == set(many(count)) and len(kept) + len(rest) == count
        assert len(kept) == (MAX_METADATA_KEYS - 1 if root else MAX_METADATA_KEYS)
        assert rest[f"key{count - 1:05d}"] == str(count - 1)  # the value, as cleaned text
        assert found[attr.USER_ID] == "backend-engineer"
    generation = named(spans, "generation")
    assert all(key in attrs(generation) for key in OURS)
    full = [r for r in caplog.records if "Attributes dict is full" in r.getMessage()]
    assert full == []
    ours = [r.getMessage() for r in caplog.records if "folded" in r.getMessage()]
    assert len(ours) == 1  # once per process, not per key, not per span


def test_ten_thousand_keys_cost_a_bounded_attribute_and_few_log_lines(
    make: Factory, exporter: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    integration = make(exporters={"memory": exporter})
    with caplog.at_level(logging.DEBUG):
        llm = ObservableLLM(answer, model="gpt-4o", langfuse=integration)
        llm("prompt", persona="backend-engineer", metadata=many(10_000))
        (span,) = spans_of(integration, exporter)
    found = attrs(span)
    assert all(key in found for key in OURS)
    overflow = found[OBSERVATION_OVERFLOW]
    assert len(overflow) <= MAX_OVERFLOW_CHARS + 64
    rest = json.loads(overflow)
    omitted = rest.pop(attr.OVERFLOW_OMITTED)
    assert omitted > 0 and MAX_METADATA_KEYS + len(rest) + omitted == 10_000
    assert len(caplog.records) < 10  # was 9,888 lines, one per evicted key


def test_the_application_provider_with_default_limits_keeps_our_attributes(
    make: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    """The application's provider keeps OpenTelemetry's 128: the cap fits under it."""
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    integration = make(tracer_provider=provider, exporters={"memory": InMemorySpanExporter()})
    with caplog.at_level(logging.WARNING):
        record_everything(integration, many(1_000))
        assert integration.flush(5.0)
    spans = memory.get_finished_spans()
    assert len(spans) == 4
    for span in spans:
        assert span.dropped_attributes == 0, (span.name, len(span.attributes or {}))
    assert all(key in attrs(named(spans, "generation")) for key in OURS)
    assert not [r for r in caplog.records if "Attributes dict is full" in r.getMessage()]


def test_a_tighter_application_limit_evicts_user_metadata_before_ours(make: Factory) -> None:
    memory = InMemorySpanExporter()
    provider = TracerProvider(span_limits=SpanLimits(max_span_attributes=48))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    integration = make(tracer_provider=provider, exporters={"memory": InMemorySpanExporter()})
    logging.getLogger("opentelemetry.attributes").setLevel(logging.ERROR)
    try:
        record_everything(integration, many(100))
        assert integration.flush(5.0)
    finally:
        logging.getLogger("opentelemetry.attributes").setLevel(logging.NOTSET)
    generation = attrs(named(memory.get_finished_spans(), "generation"))
    assert all(key in generation for key in OURS), sorted(generation)


def test_raw_span_attributes_are_capped_and_the_caller_still_overrides(
    make: Factory, exporter: InMemorySpanExporter
) -> None:
    integration = make(exporters={"memory": exporter})
    given: dict[str, Any] = {attr.CHATMODE: "overridden"}
    given.update({f"app.k{n:03d}": n for n in range(MAX_ATTRIBUTE_KEYS + 10)})
    trace = integration.start_trace("t", "backend-engineer", "debugging")
    integration.end_span(integration.start_span(trace, "s", attributes=given))
    integration.end_trace(trace)
    span = attrs(named(spans_of(integration, exporter), "s"))
    kept = {key for key in span if key.startswith("app.k")}
    rest = json.loads(span[attr.ATTRIBUTES_OVERFLOW])
    assert len(kept) == MAX_ATTRIBUTE_KEYS - 1 and len(rest) == 11
    assert span[attr.CHATMODE] == "overridden"  # the caller's value wins over ours
    assert span[attr.USER_ID] == "backend-engineer"


def test_folded_metadata_reaches_the_store(make: Factory, tmp_path: Path) -> None:
    path = tmp_path / "traces.db"
    integration = make(exporters={"store": StoreExporter(path)})
    ObservableLLM(answer, model="gpt-4o", langfuse=integration)(
        "prompt", persona="backend-engineer", metadata=many(100)
    )
    assert integration.flush(5.0)
    with TraceStore(path, create=False) as store:
        (generation,) = store.generations()
    assert generation["persona"] == "backend-engineer" and generation["total_tokens"] > 0
    assert generation["model"] == "gpt-4o"
