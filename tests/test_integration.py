"""LangfuseIntegration: traces, spans and generations as OpenTelemetry spans with Langfuse keys."""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry import trace as trace_api
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from hypertool.instrumentation import (
    GenerationRecord,
    LangfuseIntegration,
    get_langfuse_integration,
    reset_langfuse_integration,
    set_langfuse_integration,
)
from hypertool.instrumentation import semconv as attr
from support.spans import attrs, named, parent_hex, span_hex, spans_of, trace_hex

HEX32 = re.compile(r"^[0-9a-f]{32}$")
UNREACHABLE = "http://127.0.0.1:9"
NOT_CONFIGURED = "Langfuse not configured"

Factory = Callable[..., LangfuseIntegration]


# -- fixtures and helpers --------------------------------------------------------------------


def keyed(make: Factory, **kwargs: Any) -> LangfuseIntegration:
    """An integration with Langfuse keys for an unreachable local host (never flushed)."""
    kwargs.setdefault("public_key", "pk-lf-test")
    kwargs.setdefault("secret_key", "sk-lf-test-secret")
    kwargs.setdefault("host", UNREACHABLE)
    kwargs.setdefault("export_timeout", 0.5)
    return make(**kwargs)


# -- configuration -----------------------------------------------------------------------


def test_not_configured_by_default_warns_once(
    make: Factory, exporter: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="hypertool.instrumentation"):
        first = make(exporters={"memory": exporter})
        second = make(exporters={"memory": InMemorySpanExporter()})
    assert first.enabled is False
    assert second.enabled is False
    warnings = [r for r in caplog.records if NOT_CONFIGURED in r.getMessage()]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING
    assert first.sinks == ["memory"]
    assert first.recording is True


def test_keys_enable_langfuse_sink(make: Factory, exporter: InMemorySpanExporter) -> None:
    integration = keyed(make, exporters={"memory": exporter})
    assert integration.enabled is True
    assert integration.sinks == ["langfuse", "memory"]
    assert integration.host == UNREACHABLE


def test_keys_from_environment(make: Factory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LANGFUSE_PUBLIC_KEY", "pk-lf-env")
    monkeypatch.setenv("LANGFUSE_SECRET_KEY", "sk-lf-env")
    monkeypatch.setenv("LANGFUSE_HOST", UNREACHABLE + "/")
    integration = make()
    assert integration.enabled is True
    assert integration.host == UNREACHABLE
    assert integration.settings.public_key == "pk-lf-env"


def test_second_integration_uses_its_own_arguments(make: Factory) -> None:
    first = keyed(make, host="http://127.0.0.1:9", public_key="pk-lf-first")
    second = keyed(make, host="http://127.0.0.1:10", public_key="pk-lf-second", project_id="p2")
    assert first.host == "http://127.0.0.1:9"
    assert second.host == "http://127.0.0.1:10"
    assert first.settings.public_key == "pk-lf-first"
    assert second.settings.public_key == "pk-lf-second"
    assert first.settings.project_id is None
    assert second.settings.project_id == "p2"
    trace_a = first.start_trace("a", "backend-engineer")
    trace_b = second.start_trace("b", "backend-engineer")
    assert trace_a.url == f"http://127.0.0.1:9/trace/{trace_a.trace_id}"
    assert trace_b.url == f"http://127.0.0.1:10/project/p2/traces/{trace_b.trace_id}"


class _Collector(BaseHTTPRequestHandler):
    """Answers OTLP posts with 200 and records path and headers."""

    received: list[tuple[str, dict[str, str]]]

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self.server.received.append((self.path, dict(self.headers)))  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def collectors() -> Iterator[Callable[[], tuple[str, list[tuple[str, dict[str, str]]]]]]:
    servers: list[ThreadingHTTPServer] = []

    def start() -> tuple[str, list[tuple[str, dict[str, str]]]]:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
        server.received = []  # type: ignore[attr-defined]
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}", server.received  # type: ignore[attr-defined]

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_two_integrations_send_to_their_own_host_with_their_own_keys(
    make: Factory,
    collectors: Callable[[], tuple[str, list[tuple[str, dict[str, str]]]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    host_a, received_a = collectors()
    host_b, received_b = collectors()
    a = make(public_key="pk-lf-a", secret_key="sk-lf-a", host=host_a, export_timeout=2.0)
    b = make(public_key="pk-lf-b", secret_key="sk-lf-b", host=host_b, export_timeout=2.0)
    for integration in (a, b):
        trace = integration.start_trace("t", "backend-engineer")
        integration.end_trace(trace)
        assert integration.flush(timeout=5.0) is True
    for received, key, secret in (
        (received_a, "pk-lf-a", "sk-lf-a"),
        (received_b, "pk-lf-b", "sk-lf-b"),
    ):
        assert received, "nothing reached the collector"
        path, headers = received[0]
        assert path == "/api/public/otel/v1/traces"
        lowered = {k.lower(): v for k, v in headers.items()}
        expected = base64.b64encode(f"{key}:{secret}".encode()).decode()
        assert lowered["authorization"] == f"Basic {expected}"
        assert lowered["x-langfuse-public-key"] == key


# -- traces ------------------------------------------------------------------------------


def test_start_trace_attributes(
    langfuse: LangfuseIntegration, exporter: InMemorySpanExporter
) -> None:
    trace = langfuse.start_trace(
        "release-workflow",
        "Backend Engineer",
        "package-release",
        {"version": "1.2.0", "attempt": 3, "flags": {"dry": True}},
        session_id="session-7",
        tags=["nightly"],
    )
    assert trace.persona == "backend-engineer"
    assert trace.chatmode == "package-release"
    assert trace.name == "release-workflow"
    assert trace.metadata == {"version": "1.2.0", "attempt": 3, "flags": {"dry": True}}
    langfuse.end_trace(trace)
    root = named(spans_of(langfuse, exporter), "release-workflow")
    a = attrs(root)
    assert a[attr.USER_ID] == "backend-engineer"
    assert a[attr.PERSONA] == "backend-engineer"
    assert a[attr.TRACE_NAME] == "release-workflow"
    assert "package-release" in a[attr.TRACE_TAGS]
    assert "nightly" in a[attr.TRACE_TAGS]
    assert a[f"{attr.TRACE_METADATA}.chatmode"] == "package-release"
    assert a[f"{attr.TRACE_METADATA}.version"] == "1.2.0"
    assert json.loads(a[f"{attr.TRACE_METADATA}.attempt"]) == 3
    assert json.loads(a[f"{attr.TRACE_METADATA}.flags"]) == {"dry": True}
    assert a[attr.SESSION_ID] == "session-7"
    assert a[attr.OBSERVATION_TYPE] == attr.TYPE_SPAN
    assert a[attr.TRACE_STATUS] == "success"
    assert root.parent is None


def test_trace_id_is_32_hex_and_the_otel_trace_id(
    langfuse: LangfuseIntegration, exporter: InMemorySpanExporter
) -> None:
    trace = langfuse.start_trace("t", "backend-engineer")
    assert HEX32.match(trace.trace_id)
    assert trace.trace_id == format(trace.span.get_span_context().trace_id, "032x")
    langfuse.end_trace(trace)
    assert trace_hex(named(spans_of(langfuse, exporter), "t")) == trace.trace_id


def test_each_trace_has_a_new_id(langfuse: LangfuseIntegration) -> None:
    ids = {langfuse.start_trace(f"t{i}", "backend-engineer").trace_id for i in range(5)}
    assert len(ids) == 5


def test_trace_root_ignores_the_applications_current_span(
    langfuse: LangfuseIntegration, exporter: InMemorySpanExporter
) -> None:
    outer = langfuse.start_trace("outer", "backend-engineer")
    with trace_api.use_span(outer.span, end_on_exit=False):
        inner = langfuse.start_trace("inner", "backend-engineer")
    assert inner.trace_id != outer.trace_id
    langfuse.end_trace(inner)
    langfuse.end_trace(outer)
    assert named(spans_of(langfuse, exporter), "inner").parent is None


def test_trace_url_none_without_keys(langfuse: LangfuseIntegration) -> None:
    assert langfuse.start_trace("t", "backend-engineer").url is None
    assert langfuse.trace_url("0" * 32) is None


def test_trace_url_with_keys(make: Factory) -> None:
    integration = keyed(make)
    trace = integration.start_trace("t", "backend-engineer")
    assert trace.url == f"{UNREACHABLE}/trace/{trace.trace_id}"


def test_trace_url_with_project_id(make: Factory) -> None:
    integration = keyed(make, project_id="proj-123")
    trace = integration.start_trace("t", "backend-engineer")
    assert trace.url == f"{UNREACHABLE}/project/proj-123/traces/{trace.trace_id}"


def test_trace_as_context_manager_ends_it(
    langfuse: LangfuseIntegration, exporter: InMemorySpanExporter
) -> None:
    with langfuse.start_trace("ok-trace", "backend-engineer") as trace:
        assert trace.status == "running"
    assert trace.ended and trace.status == "success"
    with (
        pytest.raises(KeyError),
        langfuse.start_trace("failed-trace", "backend-engineer") as failed,
    ):
        raise KeyError("missing")
    assert failed.status == "error"
    spans = spans_of(langfuse, exporter)
    assert named(spans, "ok-trace").status.status_code is not StatusCode.ERROR
    bad = named(spans, "failed-trace")
    assert bad.status.status_code is StatusCode.ERROR
    assert attrs(bad)[attr.LEVEL] == attr.LEVEL_ERROR


def test_end_trace_error_status(
    langfuse: LangfuseIntegration, exporter: InMemorySpanExporter
) -> None:
    plain = langfuse.start_trace("plain-error", "backend-engineer")
    langfuse.end_trace(plain, status="error")
    with_error = langfuse.start_trace("with-error", "backend-engineer")
    langfuse.end_trace(with_error, status="error", error=ValueError("stage 2 failed"))
    assert plain.status == with_error.status == "error"
    spans = spans_of(langfuse, exporter)
    for name in ("plain-error", "with-error"):
        span = named(spans, name)
        assert span.status.status_code is StatusCode.ERROR
        a = attrs(span)
        assert a[attr.LEVEL] == "ERROR"
        assert a[attr.STATUS_MESSAGE]
        assert a[attr.TRACE_STATUS] == "error"
    assert attrs(named(spans, "with-error"))[attr.STATUS_MESSAGE] == "stage 2 failed"
    assert named(spans, "with-error").status.description == "stage 2 failed"


def test_end_trace_success_has_no_error_level(
    langfuse: LangfuseIntegration, exporter: InMemorySpanExporter
) -> None:
    trace = langfuse.start_trace("fine", "backend-engineer")
    langfuse.end_trace(trace, output={"released": "1.2.0"})
    span = named(spans_of(langfuse, exporter), "fine")
    assert attr.LEVEL not in attrs(span)
    assert span.status.status_code is not StatusCode.ERROR
    assert json.loads(attrs(span)[attr.OUTPUT]) == {"released": "1.2.0"}


def test_end_trace_is_idempotent(
    langfuse: LangfuseIntegration, exporter: InMemorySpanExporter
) -> None:
    trace = langfuse.start_trace("once", "backend-engineer")
    langfuse.end_trace(trace)
    langfuse.end_trace(trace, status="error")
    assert trace.status == "success"
    spans = spans_of(langfuse, exporter)
    assert len([s for s in spans if s.name == "once"]) == 1


class _ThreadRecordingExporter(InMemorySpanExporter):
    def __init__(self) -> None:
        super().__init__()
        self.export_threads: list[threading.Thread] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.export_threads.append(threading.current_thread())
        return super().export(spans)


def test_end_trace_does_no_export(make: Factory) -> None:
    exporter = _ThreadRecordingExporter()
    langfuse = make(exporters={"memory": exporter})
    trace = langfuse.start_trace("t", "backend-engineer")
    span = langfuse.start_span(trace, "stage")
    langfuse.create_generation(
        trace, "g", "gpt-4", "p", "c", {"input": 1, "output": 1}, parent=span
    )
    langfuse.end_trace(trace)
    # end_trace handed the spans over; it exported nothing itself
    assert threading.current_thread() not in exporter.export_threads
    spans = spans_of(langfuse, exporter)
    assert {s.name for s in spans} == {"t", "stage", "g"}
    assert exporter.export_threads
    assert threading.current_thread() not in exporter.export_threads


class _HangingExporter(InMemorySpanExporter):
    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.release.wait(10.0)
        return super().export(spans)


def test_end_trace_and_flush_are_bounded_with_a_hanging_sink(make: Factory) -> None:
    exporter = _HangingExporter()
    try:
        langfuse = make(exporters={"hanging": exporter})
        first = langfuse.start_trace("first", "backend-engineer")
        langfuse.end_trace(first)
        start = time.monotonic()
        assert langfuse.flush(timeout=0.3) is False
        second = langfuse.start_trace("second", "backend-engineer")
        langfuse.start_span(second, "open-stage")
        langfuse.end_trace(second)
        assert time.monotonic() - start < 1.5
    finally:
        exporter.release.set()


# -- spans -------------------------------------------------------------------------------


def test_start_span_parent_is_trace_root(
    langfuse: LangfuseIntegration, exporter: InMemorySpanExporter
) -> None:
    trace = langfuse.start_trace("root", "backend-engineer", "package-release")
    span = langfuse.start_span(
        trace, "stage-one", {"workflow": "wf", "stage": "one"}, persona="Testing Specialist"
    )
    assert span.persona == "testing-specialist"
    assert span.trace is trace
    span.end()
    langfuse.end_trace(trace)
    spans = spans_of(langfuse, exporter)
    root, stage = named(spans, "root"), named(spans, "stage-one")
    assert parent_hex(stage) == span_hex(root)
    assert trace_hex(stage) == trace.trace_id
    assert span.span_id == span_hex(stage)
    a = attrs(stage)
    assert a[attr.USER_ID] == a[attr.PERSONA] == "testing-specialist"
    # A span with a persona of its own is a Langfuse trace of its own (one user per trace),
    # named after its trace, in the trace's session; the OpenTelemetry tree is unchanged.
    assert a[attr.TRACE_NAME] == "root/stage-one"
    assert a[attr.LANGFUSE_TRACE_ID] == span.langfuse_trace_id
    assert span.langfuse_trace_id == trace.trace_id[:16] + span.span_id
    assert a[attr.SESSION_ID] == trace.trace_id
    assert json.loads(a[attr.TRACE_METADATA])["workflow_trace_id"] == trace.trace_id
    assert attrs(root)[attr.SESSION_ID] == trace.trace_id
    assert a[attr.OBSERVATION_TYPE] == attr.TYPE_SPAN
    assert a[f"{attr.OBSERVATION_METADATA}.stage"] == "one"
    assert a[attr.CHATMODE] == "package-release"


def test_span_defaults_to_trace_persona(
    langfuse: LangfuseIntegration, exporter: InMemorySpanExporter
) -> None:
    trace = langfuse.start_trace("root", "devops-engineer")
    with langfuse.start_span(trace, "stage"):
        pass
    langfuse.end_trace(trace)
    assert attrs(named(spans_of(langfuse, exporter), "stage"))[attr.USER_ID] == "devops-engineer"


def test_spans_left_open_are_ended_by_end_trace(
    langfuse: LangfuseIntegration, exporter: InMemorySpanExporter
) -> None:
    trace = langfuse.start_trace("root", "backend-engineer")
    left_open = langfuse.start_span(trace, "left-open")
    nested_open = langfuse.start_span(trace, "nested-open", parent=left_open)
    assert not left_open.ended
    langfuse.end_trace(trace)
    assert left_open.ended and nested_open.ended
    spans = spans_of(langfuse, exporter)
    root = named(spans, "root")
    for name in ("left-open", "nested-open"):
        span = named(spans, name)
        assert span.end_time is not None and root.end_time is not None
        assert span.end_time <= root.end_time
    assert parent_hex(named(spans, "nested-open")) == span_hex(named(spans, "left-open"))


def test_with_start_span_ends_it(
    langfuse: LangfuseIntegration, exporter: InMemorySpanExporter
) -> None:
    trace = langfuse.start_trace("root", "backend-engineer")
    with langfuse.start_span(trace, "in-with") as span:
        assert not span.ended
    assert span.ended
    with pytest.raises(RuntimeError), langfuse.start_span(trace, "raising") as bad:
        raise RuntimeError("stage blew up")
    assert bad.ended
    # both were exported before end_trace: the with block ended them
    spans_before_end = spans_of(langfuse, exporter)
    assert {"in-with", "raising"} <= {s.name for s in spans_before_end}
    failed = named(spans_before_end, "raising")
    assert failed.status.status_code is StatusCode.ERROR
    assert attrs(failed)[attr.STATUS_MESSAGE] == "stage blew up"
    langfuse.end_trace(trace)


def test_end_span_twice_is_harmless(
    langfuse: LangfuseIntegration, exporter: InMemorySpanExporter
) -> None:
    trace = langfuse.start_trace("root", "backend-engineer")
    span = langfuse.start_span(trace, "s")
    span.end()
    span.end(status="error")
    langfuse.end_trace(trace)
    spans = spans_of(langfuse, exporter)
    assert named(spans, "s").status.status_code is not StatusCode.ERROR


# -- generations -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        ({"prompt_tokens": 120, "completion_tokens": 45, "total_tokens": 165}, (120, 45)),
        ({"input": 33, "output": 7}, (33, 7)),
    ],
    ids=["openai", "langfuse"],
)
def test_create_generation_usage_forms(
    langfuse: LangfuseIntegration,
    exporter: InMemorySpanExporter,
    usage: dict[str, int],
    expected: tuple[int, int],
) -> None:
    trace = langfuse.start_trace("root", "backend-engineer", "package-release")
    generation = langfuse.create_generation(
        trace, "llm-call", "gpt-4", "What is 2+2?", "4", usage, {"attempt": 1}
    )
    langfuse.end_trace(trace)
    span = named(spans_of(langfuse, exporter), "llm-call")
    a = attrs(span)
    inp, out = expected
    assert json.loads(a[attr.USAGE_DETAILS]) == {"input": inp, "output": out, "total": inp + out}
    assert a[attr.OBSERVATION_TYPE] == attr.TYPE_GENERATION
    assert a[attr.MODEL] == "gpt-4"
    assert a[attr.INPUT] == "What is 2+2?"
    assert a[attr.OUTPUT] == "4"
    assert a[attr.GEN_AI_INPUT_TOKENS] == inp
    assert a[attr.GEN_AI_OUTPUT_TOKENS] == out
    assert a[attr.USAGE_ESTIMATED] is False
    assert a[attr.USER_ID] == "backend-engineer"
    assert a[f"{attr.OBSERVATION_METADATA}.attempt"] == "1"
    assert generation.usage.input == inp and generation.usage.output == out
    assert generation.generation_id == span_hex(span)
    assert generation.trace_id == trace.trace_id == trace_hex(span)
    assert parent_hex(span) == span_hex(named(spans_of(langfuse, exporter), "root"))


def test_create_generation_without_usage_is_estimated(
    langfuse: LangfuseIntegration, exporter: InMemorySpanExporter
) -> None:
    trace = langfuse.start_trace("root", "backend-engineer")
    generation = langfuse.create_generation(
        trace, "estimated", "gpt-4", "one two three", "four five"
    )
    langfuse.end_trace(trace)
    a = attrs(named(spans_of(langfuse, exporter), "estimated"))
    assert a[attr.USAGE_ESTIMATED] is True
    assert generation.usage.estimated is True
    assert generation.usage.input > 0 and generation.usage.output > 0
    # Kept for the store, never sent as usage or cost: Langfuse counts the tokens itself.
    assert (a[attr.USAGE_INPUT], a[attr.USAGE_OUTPUT]) == (
        generation.usage.input,
        generation.usage.output,
    )
    assert a[attr.COST_USD] == generation.cost_usd
    assert attr.USAGE_DETAILS not in a and attr.COST_DETAILS not in a


def test_create_generation_structured_prompt_is_json(
    langfuse: LangfuseIntegration, exporter: InMemorySpanExporter
) -> None:
    trace = langfuse.start_trace("root", "backend-engineer")
    messages = [{"role": "user", "content": "hi"}]
    langfuse.create_generation(
        trace, "g", "gpt-4", messages, {"answer": "hello"}, model_parameters={"temperature": 0.2}
    )
    langfuse.end_trace(trace)
    a = attrs(named(spans_of(langfuse, exporter), "g"))
    assert json.loads(a[attr.INPUT]) == messages
    assert json.loads(a[attr.OUTPUT]) == {"answer": "hello"}
    assert json.loads(a[attr.MODEL_PARAMETERS]) == {"temperature": 0.2}


def test_create_generation_times_datetime(
    langfuse: LangfuseIntegration, exporter: InMemorySpanExporter
) -> None:
    trace = langfuse.start_trace("root", "backend-engineer")
    start = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
    end = start + timedelta(seconds=2, milliseconds=250)
    generation = langfuse.create_generation(
        trace, "timed", "gpt-4", "p", "c", {"input": 1, "output": 1}, start_time=start, end_time=end
    )
    langfuse.end_trace(trace)
    span = named(spans_of(langfuse, exporter), "timed")
    assert span.start_time is not None and span.end_time is not None
    assert abs(span.start_time - int(start.timestamp()) * 10**9) < 1_000
    assert abs(span.end_time - span.start_time - 2_250_000_000) < 1_000
    assert generation.latency_s == pytest.approx(2.25, abs=1e-6)


def test_create_generation_times_epoch_float(
    langfuse: LangfuseIntegration, exporter: InMemorySpanExporter
) -> None:
    trace = langfuse.start_trace("root", "backend-engineer")
    start_s = 1_714_564_800.5
    langfuse.create_generation(
        trace, "timed", "gpt-4", "p", "c", start_time=start_s, end_time=start_s + 1.5
    )
    langfuse.end_trace(trace)
    span = named(spans_of(langfuse, exporter), "timed")
    assert span.start_time is not None and span.end_time is not None
    assert abs(span.start_time - 1_714_564_800_500_000_000) < 1_000
    assert abs(span.end_time - 1_714_564_802_000_000_000) < 1_000


def test_create_generation_times_epoch_int_seconds(
    langfuse: LangfuseIntegration, exporter: InMemorySpanExporter
) -> None:
    # The docstring promises "datetimes or epoch seconds"; an int is a valid float argument.
    trace = langfuse.start_trace("root", "backend-engineer")
    langfuse.create_generation(
        trace, "int-timed", "gpt-4", "p", "c", start_time=1_714_564_800, end_time=1_714_564_803
    )
    langfuse.end_trace(trace)
    span = named(spans_of(langfuse, exporter), "int-timed")
    assert span.start_time == 1_714_564_800 * 10**9
    assert span.end_time == 1_714_564_803 * 10**9


def test_create_generation_without_times_ends_now(
    langfuse: LangfuseIntegration, exporter: InMemorySpanExporter
) -> None:
    trace = langfuse.start_trace("root", "backend-engineer")
    before = time.time_ns()
    langfuse.create_generation(trace, "now", "gpt-4", "p", "c")
    after = time.time_ns()
    langfuse.end_trace(trace)
    span = named(spans_of(langfuse, exporter), "now")
    assert span.end_time is not None
    assert before <= span.end_time <= after


def test_create_generation_parent_span_nests(
    langfuse: LangfuseIntegration, exporter: InMemorySpanExporter
) -> None:
    trace = langfuse.start_trace("root", "backend-engineer")
    with langfuse.start_span(trace, "stage", persona="testing-specialist") as stage:
        langfuse.create_generation(trace, "nested", "gpt-4", "p", "c", parent=stage)
        langfuse.create_generation(
            trace, "other-persona", "gpt-4", "p", "c", parent=stage, persona="DevOps Engineer"
        )
    langfuse.end_trace(trace)
    spans = spans_of(langfuse, exporter)
    stage_span = named(spans, "stage")
    nested = named(spans, "nested")
    assert parent_hex(nested) == span_hex(stage_span)
    assert trace_hex(nested) == trace.trace_id
    # persona comes from the parent span unless given; the Langfuse user is the stage's
    assert attrs(nested)[attr.PERSONA] == "testing-specialist"
    assert attrs(named(spans, "other-persona"))[attr.PERSONA] == "devops-engineer"
    assert attrs(named(spans, "other-persona"))[attr.USER_ID] == "testing-specialist"
    assert {attrs(s).get(attr.LANGFUSE_TRACE_ID) for s in (stage_span, nested)} == {
        stage.langfuse_trace_id
    }


def test_create_generation_error(
    langfuse: LangfuseIntegration, exporter: InMemorySpanExporter
) -> None:
    trace = langfuse.start_trace("root", "backend-engineer")
    generation = langfuse.create_generation(
        trace, "failed-call", "gpt-4", "p", None, error=TimeoutError("provider timed out")
    )
    langfuse.end_trace(trace)
    assert generation.error == "provider timed out"
    span = named(spans_of(langfuse, exporter), "failed-call")
    assert span.status.status_code is StatusCode.ERROR
    assert attrs(span)[attr.LEVEL] == "ERROR"
    assert attrs(span)[attr.STATUS_MESSAGE] == "provider timed out"
    # No usage was reported and none is made up: 0 tokens locally, nothing sent; no output.
    assert generation.usage.total == 0
    assert attr.USAGE_DETAILS not in attrs(span) and attr.COST_DETAILS not in attrs(span)
    assert attr.OUTPUT not in attrs(span)


def test_generation_counts_toward_budget_and_listeners(langfuse: LangfuseIntegration) -> None:
    records: list[GenerationRecord] = []
    langfuse.add_listener(records.append)
    trace = langfuse.start_trace("root", "backend-engineer", "package-release")
    langfuse.create_generation(trace, "g", "gpt-4", "p", "c", {"input": 100, "output": 23})
    budget = langfuse.budgets.budget("backend-engineer")
    assert budget is not None
    assert langfuse.budgets.used("backend-engineer") == 123
    assert langfuse.budgets.remaining("backend-engineer") == budget - 123
    assert len(records) == 1
    record = records[0]
    assert record.persona == "backend-engineer"
    assert record.chatmode == "package-release"
    assert record.usage.total == 123
    assert record.trace_id == trace.trace_id
    assert record.status == "success"
    langfuse.remove_listener(records.append)
    langfuse.create_generation(trace, "g2", "gpt-4", "p", "c", {"input": 1, "output": 1})
    assert len(records) == 1
    langfuse.end_trace(trace)


def test_failing_listener_does_not_break_recording(
    langfuse: LangfuseIntegration, exporter: InMemorySpanExporter
) -> None:
    def bad(record: GenerationRecord) -> None:
        raise RuntimeError("listener failed")

    langfuse.add_listener(bad)
    trace = langfuse.start_trace("root", "backend-engineer")
    generation = langfuse.create_generation(
        trace, "g", "gpt-4", "p", "c", {"input": 1, "output": 2}
    )
    assert generation.generation_id
    langfuse.end_trace(trace)
    assert named(spans_of(langfuse, exporter), "g")


def test_long_fields_are_capped(make: Factory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HYPERTOOL_MAX_FIELD_CHARS", "10")
    exporter = InMemorySpanExporter()
    langfuse = make(exporters={"memory": exporter})
    trace = langfuse.start_trace("root", "backend-engineer")
    langfuse.create_generation(trace, "g", "gpt-4", "x" * 25, "short")
    langfuse.end_trace(trace)
    a = attrs(named(spans_of(langfuse, exporter), "g"))
    assert a[attr.INPUT].startswith("x" * 10)
    assert "x" * 11 not in a[attr.INPUT]
    assert "15" in a[attr.INPUT]
    assert a[attr.OUTPUT] == "short"


# -- the process default -----------------------------------------------------------------


def test_get_langfuse_integration_is_shared_until_reset() -> None:
    first = get_langfuse_integration()
    assert get_langfuse_integration() is first
    reset_langfuse_integration()
    second = get_langfuse_integration()
    assert second is not first
    assert get_langfuse_integration() is second


def test_set_langfuse_integration(make: Factory) -> None:
    mine = make()
    set_langfuse_integration(mine)
    assert get_langfuse_integration() is mine
    set_langfuse_integration(None)
    assert get_langfuse_integration() is not mine


def test_default_integration_reads_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LANGFUSE_HOST", "http://127.0.0.1:11")
    assert get_langfuse_integration().host == "http://127.0.0.1:11"


# -- no sink at all ----------------------------------------------------------------------


def test_everything_works_without_any_sink(make: Factory) -> None:
    langfuse = make()
    assert langfuse.recording is False
    assert langfuse.sinks == []
    assert langfuse.pipeline is None
    assert langfuse.enabled is False
    trace = langfuse.start_trace("t", "Backend Engineer", "package-release", {"k": "v"})
    assert HEX32.match(trace.trace_id)
    assert trace.url is None
    assert trace.persona == "backend-engineer"
    with langfuse.start_span(trace, "stage", persona="devops-engineer") as span:
        generation = langfuse.create_generation(
            trace, "g", "gpt-4", "p", "c", {"prompt_tokens": 5, "completion_tokens": 6}, parent=span
        )
    assert span.ended
    assert generation.trace_id == trace.trace_id
    assert generation.persona == "devops-engineer"
    assert generation.usage.total == 11
    assert langfuse.budgets.used("devops-engineer") == 11
    open_span = langfuse.start_span(trace, "left-open")
    langfuse.end_trace(trace, status="error", error="boom", output="x")
    assert open_span.ended
    assert trace.status == "error"
    with langfuse.start_trace("t2", "backend-engineer"):
        pass
    assert langfuse.flush(timeout=0.1) is True
    assert langfuse.shutdown(0.1) is True


def test_shutdown_then_use_does_not_raise(langfuse: LangfuseIntegration) -> None:
    assert langfuse.shutdown(1.0) is True
    trace = langfuse.start_trace("after", "backend-engineer")
    langfuse.create_generation(trace, "g", "gpt-4", "p", "c")
    langfuse.end_trace(trace)
    langfuse.flush(timeout=0.1)
