"""An application's own tracer provider gets our spans; our sinks take only ours from it."""

from __future__ import annotations

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from hypertool.instrumentation import LangfuseIntegration, ObservableLLM


def test_application_provider_receives_our_spans_and_our_sinks_only_ours() -> None:
    provider = TracerProvider()
    application = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(application))
    ours = InMemorySpanExporter()
    langfuse = LangfuseIntegration(exporters={"memory": ours}, tracer_provider=provider)

    with provider.get_tracer("the-app").start_as_current_span("http-request"):
        ObservableLLM(lambda prompt: "answer", model="gpt-4", langfuse=langfuse)(
            "question", persona="backend-engineer"
        )
    langfuse.flush(timeout=5)

    app_names = [span.name for span in application.get_finished_spans()]
    our_names = [span.name for span in ours.get_finished_spans()]
    assert sorted(app_names) == ["<lambda>", "http-request"]
    assert our_names == ["<lambda>"]
    langfuse.shutdown(0)
