"""WorkflowTracer: workflow span → stage spans → generations, metrics, and errors."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from prometheus_client import CollectorRegistry

from hypertool.instrumentation import (
    LangfuseIntegration,
    ObservableLLM,
    PersonaMetricsCollector,
    WorkflowTracer,
)
from hypertool.instrumentation import semconv as attr
from support.spans import attrs

WORKFLOW = "feature-workflow"
CHATMODE = "feature-implementation"
GATE = "hypertool_workflow_quality_gate_total"
SWITCHES = "hypertool_persona_switches_total"


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def langfuse(exporter: InMemorySpanExporter) -> Iterator[LangfuseIntegration]:
    integration = LangfuseIntegration(exporters={"memory": exporter})
    yield integration
    integration.shutdown(0)


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def metrics(registry: CollectorRegistry) -> PersonaMetricsCollector:
    return PersonaMetricsCollector(registry=registry)


@pytest.fixture
def tracer(langfuse: LangfuseIntegration, metrics: PersonaMetricsCollector) -> WorkflowTracer:
    return WorkflowTracer(
        WORKFLOW, {"ticket": "HT-1"}, langfuse=langfuse, metrics=metrics, chatmode=CHATMODE
    )


def finished(langfuse: LangfuseIntegration, exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    assert langfuse.flush(timeout=5.0)
    return list(exporter.get_finished_spans())


def span_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.span_id


def parent_id(span: ReadableSpan) -> int | None:
    return None if span.parent is None else span.parent.span_id


def trace_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.trace_id


def by_name(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    matches = [span for span in spans if span.name == name]
    assert len(matches) == 1, [span.name for span in spans]
    return matches[0]


def roots(spans: list[ReadableSpan]) -> list[ReadableSpan]:
    return [span for span in spans if span.parent is None]


def gate(registry: CollectorRegistry, stage: str, result: str) -> float | None:
    return registry.get_sample_value(GATE, {"workflow": WORKFLOW, "stage": stage, "result": result})


def switches(registry: CollectorRegistry, from_persona: str, to_persona: str) -> float | None:
    return registry.get_sample_value(
        SWITCHES, {"from_persona": from_persona, "to_persona": to_persona, "chatmode": CHATMODE}
    )


def all_switches(registry: CollectorRegistry) -> float:
    return sum(
        sample.value
        for metric in registry.collect()
        for sample in metric.samples
        if sample.name == SWITCHES
    )


def reply(prompt: str) -> dict[str, Any]:
    return {
        "choices": [{"message": {"content": f"answer to {prompt}"}}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 20},
    }


async def areply(prompt: str) -> dict[str, Any]:
    await asyncio.sleep(0)
    return reply(prompt)


# -- entering --------------------------------------------------------------------------------
def test_with_makes_one_root_span(
    tracer: WorkflowTracer, langfuse: LangfuseIntegration, exporter: InMemorySpanExporter
) -> None:
    with tracer as entered:
        assert entered is tracer
        assert tracer.trace is not None
        with tracer.stage("design", "backend-engineer"):
            pass
    spans = finished(langfuse, exporter)
    root = by_name(spans, WORKFLOW)
    assert roots(spans) == [root]
    assert attrs(root)[attr.WORKFLOW] == WORKFLOW
    assert attrs(root)[attr.TRACE_NAME] == WORKFLOW
    assert format(trace_id(root), "032x") == tracer.trace.trace_id
    assert root.status.status_code is not StatusCode.ERROR


async def test_async_with_and_async_stage(
    tracer: WorkflowTracer, langfuse: LangfuseIntegration, exporter: InMemorySpanExporter
) -> None:
    async with tracer as entered:
        assert entered is tracer
        async with tracer.stage("design", "backend-engineer") as stage:
            assert stage.persona == "backend-engineer"
            await asyncio.sleep(0)
    spans = finished(langfuse, exporter)
    root = by_name(spans, WORKFLOW)
    design = by_name(spans, "design")
    assert parent_id(design) == span_id(root)
    assert trace_id(design) == trace_id(root)


def test_trace_stage_sync_returns_the_value(
    tracer: WorkflowTracer, langfuse: LangfuseIntegration, exporter: InMemorySpanExporter
) -> None:
    def add(a: int, b: int, *, times: int) -> int:
        return (a + b) * times

    with tracer:
        result = tracer.trace_stage("compute", "backend-engineer", add, 2, 3, times=4)
    assert result == 20
    spans = finished(langfuse, exporter)
    stage = by_name(spans, "compute")
    assert parent_id(stage) == span_id(by_name(spans, WORKFLOW))
    assert attrs(stage)[attr.STAGE] == "compute"


async def test_trace_stage_async_returns_an_awaitable(
    tracer: WorkflowTracer, langfuse: LangfuseIntegration, exporter: InMemorySpanExporter
) -> None:
    async def double(value: int, *, plus: int) -> int:
        await asyncio.sleep(0)
        return value * 2 + plus

    async with tracer:
        pending = tracer.trace_stage("compute", "data-scientist", double, 21, plus=1)
        assert inspect.isawaitable(pending)
        assert await pending == 43
    spans = finished(langfuse, exporter)
    stage = by_name(spans, "compute")
    assert parent_id(stage) == span_id(by_name(spans, WORKFLOW))
    assert attrs(stage)[attr.PERSONA] == "data-scientist"


# -- the tree --------------------------------------------------------------------------------
async def test_span_tree_workflow_stage_generation_multi_persona(
    tracer: WorkflowTracer, langfuse: LangfuseIntegration, exporter: InMemorySpanExporter
) -> None:
    sync_llm = ObservableLLM(reply, model="gpt-4o", langfuse=langfuse, name="sync-llm")
    async_llm = ObservableLLM(areply, model="gpt-4o", langfuse=langfuse, name="async-llm")
    plan = [("design", "backend-engineer"), ("tests", "testing-specialist")]
    async with tracer:
        with tracer.stage("design", "backend-engineer"):
            sync_llm("design the API")
        async with tracer.stage("tests", "testing-specialist"):
            await async_llm("write the tests")
    spans = finished(langfuse, exporter)
    root = by_name(spans, WORKFLOW)
    assert roots(spans) == [root]
    generations = {"design": by_name(spans, "sync-llm"), "tests": by_name(spans, "async-llm")}
    for stage_name, persona in plan:
        stage = by_name(spans, stage_name)
        stage_attrs = attrs(stage)
        assert parent_id(stage) == span_id(root)
        assert stage_attrs[attr.PERSONA] == persona
        assert stage_attrs[attr.USER_ID] == persona
        assert stage_attrs[attr.STAGE] == stage_name
        assert stage_attrs[attr.WORKFLOW] == WORKFLOW
        assert stage_attrs[attr.CHATMODE] == CHATMODE
        assert stage_attrs[attr.OBSERVATION_TYPE] == attr.TYPE_SPAN

        generation = generations[stage_name]
        gen_attrs = attrs(generation)
        assert parent_id(generation) == span_id(stage)
        assert trace_id(generation) == trace_id(root)
        assert gen_attrs[attr.OBSERVATION_TYPE] == attr.TYPE_GENERATION
        assert gen_attrs[attr.USER_ID] == persona
        assert gen_attrs[attr.PERSONA] == persona
        assert gen_attrs[attr.STAGE] == stage_name
        assert gen_attrs[attr.WORKFLOW] == WORKFLOW
        # In Langfuse the stage is a trace of its own, in the workflow's session.
        assert gen_attrs[attr.LANGFUSE_TRACE_ID] == stage_attrs[attr.LANGFUSE_TRACE_ID]
        workflow_id = format(trace_id(root), "032x")
        assert stage_attrs[attr.LANGFUSE_TRACE_ID] == workflow_id[:16] + format(
            span_id(stage), "016x"
        )
        assert gen_attrs[attr.SESSION_ID] == stage_attrs[attr.SESSION_ID] == workflow_id
    assert attrs(root)[attr.SESSION_ID] == format(trace_id(root), "032x")
    assert tracer.langfuse_session_id == attrs(root)[attr.SESSION_ID]
    assert attr.LANGFUSE_TRACE_ID not in attrs(root)


def test_a_session_of_the_callers_choice(
    langfuse: LangfuseIntegration, exporter: InMemorySpanExporter
) -> None:
    workflow = WorkflowTracer(WORKFLOW, langfuse=langfuse, session_id="chat-42")
    assert workflow.langfuse_session_id is None  # not started
    with workflow, workflow.stage("design", "backend-engineer"):
        pass
    spans = finished(langfuse, exporter)
    assert {attrs(s)[attr.SESSION_ID] for s in spans} == {"chat-42"}
    assert workflow.langfuse_session_id == "chat-42"


def test_generation_after_a_stage_belongs_to_the_workflow(
    tracer: WorkflowTracer, langfuse: LangfuseIntegration, exporter: InMemorySpanExporter
) -> None:
    llm = ObservableLLM(reply, model="gpt-4o", langfuse=langfuse, name="wrap-up")
    with tracer:
        with tracer.stage("design", "backend-engineer"):
            pass
        llm("summarise")
    spans = finished(langfuse, exporter)
    generation = by_name(spans, "wrap-up")
    assert parent_id(generation) == span_id(by_name(spans, WORKFLOW))
    assert attr.STAGE not in attrs(generation)


# -- persona switches ------------------------------------------------------------------------
def test_persona_switches_between_stages(
    tracer: WorkflowTracer, registry: CollectorRegistry
) -> None:
    with tracer:
        for stage, persona in [
            ("design", "backend-engineer"),
            ("implement", "backend-engineer"),
            ("tests", "testing-specialist"),
            ("fix", "backend-engineer"),
            ("deploy", "devops-engineer"),
        ]:
            with tracer.stage(stage, persona):
                pass
    assert switches(registry, "backend-engineer", "testing-specialist") == 1
    assert switches(registry, "testing-specialist", "backend-engineer") == 1
    assert switches(registry, "backend-engineer", "devops-engineer") == 1
    assert switches(registry, "backend-engineer", "backend-engineer") is None
    assert all_switches(registry) == 3


def test_consecutive_stages_of_one_persona_switch_nothing(
    tracer: WorkflowTracer, registry: CollectorRegistry
) -> None:
    with tracer:
        for stage in ("one", "two", "three"):
            with tracer.stage(stage, "backend-engineer"):
                pass
    assert all_switches(registry) == 0
    for stage in ("one", "two", "three"):
        assert gate(registry, stage, "passed") == 1


# -- failures --------------------------------------------------------------------------------
def test_failing_stage_leaving_the_workflow(
    tracer: WorkflowTracer,
    langfuse: LangfuseIntegration,
    exporter: InMemorySpanExporter,
    registry: CollectorRegistry,
) -> None:
    error = RuntimeError("tests are red")
    with pytest.raises(RuntimeError) as raised, tracer:
        with tracer.stage("design", "backend-engineer"):
            pass
        with tracer.stage("tests", "testing-specialist"):
            raise error
    assert raised.value is error
    spans = finished(langfuse, exporter)
    stage = by_name(spans, "tests")
    assert stage.status.status_code is StatusCode.ERROR
    assert attrs(stage)[attr.LEVEL] == "ERROR"
    assert attrs(stage)[attr.STATUS_MESSAGE] == "tests are red"
    events = [event for event in stage.events if event.name == "exception"]
    assert len(events) == 1
    event_attrs = dict(events[0].attributes or {})
    assert event_attrs["exception.type"] == "RuntimeError"
    assert event_attrs["exception.message"] == "tests are red"

    design = by_name(spans, "design")
    assert design.status.status_code is not StatusCode.ERROR
    assert attr.LEVEL not in attrs(design)

    root = by_name(spans, WORKFLOW)
    assert root.status.status_code is StatusCode.ERROR
    assert attrs(root)[attr.LEVEL] == "ERROR"
    assert attrs(root)[attr.TRACE_STATUS] == "error"

    assert gate(registry, "tests", "failed") == 1
    assert gate(registry, "tests", "passed") is None
    assert gate(registry, "design", "passed") == 1


async def test_failing_async_stage_reraises_unchanged(
    tracer: WorkflowTracer,
    langfuse: LangfuseIntegration,
    exporter: InMemorySpanExporter,
    registry: CollectorRegistry,
) -> None:
    class DeployError(Exception):
        pass

    error = DeployError("registry unreachable")
    with pytest.raises(DeployError) as raised:
        async with tracer, tracer.stage("deploy", "devops-engineer"):
            raise error
    assert raised.value is error
    spans = finished(langfuse, exporter)
    stage = by_name(spans, "deploy")
    assert stage.status.status_code is StatusCode.ERROR
    assert any(event.name == "exception" for event in stage.events)
    assert by_name(spans, WORKFLOW).status.status_code is StatusCode.ERROR
    assert gate(registry, "deploy", "failed") == 1


def test_stage_failure_caught_inside_the_workflow_leaves_the_root_ok(
    tracer: WorkflowTracer,
    langfuse: LangfuseIntegration,
    exporter: InMemorySpanExporter,
    registry: CollectorRegistry,
) -> None:
    with tracer:
        try:
            with tracer.stage("flaky", "backend-engineer"):
                raise TimeoutError("slow tool")
        except TimeoutError:
            pass
        with tracer.stage("retry", "backend-engineer"):
            pass
    spans = finished(langfuse, exporter)
    assert by_name(spans, "flaky").status.status_code is StatusCode.ERROR
    root = by_name(spans, WORKFLOW)
    assert root.status.status_code is not StatusCode.ERROR
    assert attrs(root)[attr.TRACE_STATUS] == "success"
    assert gate(registry, "flaky", "failed") == 1
    assert gate(registry, "retry", "passed") == 1


def test_stage_passed_false_fails_the_gate_without_an_exception(
    tracer: WorkflowTracer,
    langfuse: LangfuseIntegration,
    exporter: InMemorySpanExporter,
    registry: CollectorRegistry,
) -> None:
    with tracer:
        with tracer.stage("review", "testing-specialist") as stage:
            stage.passed = False
        with tracer.stage("merge", "backend-engineer"):
            pass
    assert gate(registry, "review", "failed") == 1
    assert gate(registry, "review", "passed") is None
    assert gate(registry, "merge", "passed") == 1
    spans = finished(langfuse, exporter)
    review = by_name(spans, "review")
    assert not [event for event in review.events if event.name == "exception"]


def test_stage_durations_are_observed(
    tracer: WorkflowTracer, registry: CollectorRegistry, metrics: PersonaMetricsCollector
) -> None:
    with tracer:
        with tracer.stage("slow", "backend-engineer"):
            time.sleep(0.05)
        with tracer.stage("slow", "backend-engineer"):
            time.sleep(0.05)
        with tracer.stage("quick", "devops-engineer"):
            pass
    name = "hypertool_workflow_stage_duration_seconds"
    slow = {"workflow": WORKFLOW, "stage": "slow", "persona": "backend-engineer"}
    quick = {"workflow": WORKFLOW, "stage": "quick", "persona": "devops-engineer"}
    assert registry.get_sample_value(f"{name}_count", slow) == 2
    assert registry.get_sample_value(f"{name}_count", quick) == 1
    slow_sum = registry.get_sample_value(f"{name}_sum", slow)
    assert slow_sum is not None and 0.1 <= slow_sum < 5
    persona = {"persona": "backend-engineer", "chatmode": CHATMODE}
    assert registry.get_sample_value("hypertool_persona_duration_seconds_count", persona) == 2
