"""The OTLP/HTTP exporter: what reaches a loopback endpoint, retries, and bounded waits."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SpanExportResult

from hypertool.instrumentation.export.otlp_http import MAX_ATTEMPTS, OtlpHttpExporter
from support.loopback import LoopbackOTLP


class Collect(SpanProcessor):
    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def on_end(self, span: ReadableSpan) -> None:
        self.spans.append(span)


def spans(n: int) -> list[ReadableSpan]:
    collect = Collect()
    provider = TracerProvider(resource=Resource.create({"service.name": "test"}))
    provider.add_span_processor(collect)
    tracer = provider.get_tracer("test-scope")
    for i in range(n):
        tracer.start_span(f"span-{i}", attributes={"i": i, "text": "héllo"}).end()
    return collect.spans


@pytest.fixture
def receiver() -> Iterator[LoopbackOTLP]:
    with LoopbackOTLP(hang_max=5) as running:
        yield running


@pytest.mark.parametrize("compression", ["gzip", "deflate", None])
def test_spans_arrive_decoded_with_headers(receiver: LoopbackOTLP, compression: str | None) -> None:
    exporter = OtlpHttpExporter(
        f"{receiver.url}/v1/traces",
        headers={"authorization": "Bearer t0ken"},
        compression=compression,
        timeout=5,
    )
    assert exporter.export(spans(3)) is SpanExportResult.SUCCESS
    (request,) = receiver.trace_requests()
    assert request.header("content-type") == "application/x-protobuf"
    assert request.header("content-encoding") == compression
    assert request.header("authorization") == "Bearer t0ken"
    received = receiver.spans()
    assert [s.name for s in received] == ["span-0", "span-1", "span-2"]
    assert received[2].attributes == {"i": 2, "text": "héllo"}
    assert received[0].scope == "test-scope"
    assert "t0ken" not in repr(exporter)
    exporter.shutdown()


@pytest.mark.parametrize("status", [429, 503])
def test_retryable_answers_are_tried_three_times(receiver: LoopbackOTLP, status: int) -> None:
    receiver.mode = status
    exporter = OtlpHttpExporter(f"{receiver.url}/v1/traces", timeout=10)
    assert exporter.export(spans(1)) is SpanExportResult.FAILURE
    assert len(receiver.trace_requests()) == MAX_ATTEMPTS
    exporter.shutdown()


@pytest.mark.parametrize("status", [401, 500])
def test_other_failures_are_not_retried(receiver: LoopbackOTLP, status: int) -> None:
    receiver.mode = status
    exporter = OtlpHttpExporter(f"{receiver.url}/v1/traces", timeout=10)
    assert exporter.export(spans(1)) is SpanExportResult.FAILURE
    assert len(receiver.trace_requests()) == 1
    assert exporter.last_status == status
    exporter.shutdown()


def test_a_hanging_endpoint_costs_at_most_the_timeout(receiver: LoopbackOTLP) -> None:
    receiver.mode = "hang"
    exporter = OtlpHttpExporter(f"{receiver.url}/v1/traces", timeout=0.5)
    started = time.monotonic()
    assert exporter.export(spans(1)) is SpanExportResult.FAILURE
    assert time.monotonic() - started < 2.0
    exporter.shutdown()


def test_a_refused_connection_is_a_failure_not_an_exception() -> None:
    with LoopbackOTLP() as closed:
        url = closed.url
    exporter = OtlpHttpExporter(f"{url}/v1/traces", timeout=1)
    assert exporter.export(spans(1)) is SpanExportResult.FAILURE
    exporter.shutdown()


def test_after_shutdown_nothing_is_sent(receiver: LoopbackOTLP) -> None:
    exporter = OtlpHttpExporter(f"{receiver.url}/v1/traces", timeout=5)
    exporter.shutdown()
    assert exporter.export(spans(1)) is SpanExportResult.FAILURE
    assert receiver.trace_requests() == []
