"""PersonaMetricsCollector: the DESIGN metrics, budgets, stages, LLM calls, drops and serving."""

from __future__ import annotations

import re
import socket
import time
import urllib.request
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from hypertool.instrumentation import (
    LangfuseIntegration,
    ObservableLLM,
    Persona,
    PersonaMetricsCollector,
    PersonaRegistry,
    builtin_personas,
    start_metrics_server,
)
from hypertool.instrumentation.model.usage import estimate_tokens
from hypertool.instrumentation.pricing import PriceTable
from hypertool.instrumentation.test_instrumented_workflow import (
    CHATMODE,
    release_stages,
    run_release_workflow,
)

TOKENS_LINE = re.compile(r"^ {3}📊 Tokens: (-?\d+)$")
PERSONA_LINE = re.compile(r"^ {3}Persona: (\S+)$")

DESIGN_METRICS = (
    "hypertool_persona_switches_total",
    "hypertool_persona_duration_seconds",
    "hypertool_persona_tokens_used_total",
    "hypertool_persona_token_budget_remaining",
    "hypertool_workflow_stage_duration_seconds",
    "hypertool_workflow_quality_gate_total",
)
EXTRA_METRICS = (
    "hypertool_llm_requests_total",
    "hypertool_llm_request_duration_seconds",
    "hypertool_llm_cost_usd_total",
    "hypertool_persona_token_budget_limit",
    "hypertool_export_dropped_spans_total",
)


class ExporterReturningFailure(SpanExporter):
    """A sink that refuses every batch (as a 500 from the endpoint would)."""

    def __init__(self) -> None:
        self.batches: list[int] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.batches.append(len(spans))
        return SpanExportResult.FAILURE

    def shutdown(self) -> None:
        return None


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def collector(registry: CollectorRegistry) -> PersonaMetricsCollector:
    return PersonaMetricsCollector(registry=registry)


@pytest.fixture
def integration() -> Iterator[LangfuseIntegration]:
    langfuse = LangfuseIntegration(exporters={"memory": InMemorySpanExporter()})
    yield langfuse
    langfuse.shutdown(0)


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def family_total(registry: CollectorRegistry, sample_name: str) -> float:
    """Sum of every sample called ``sample_name`` over all label sets."""
    return sum(
        sample.value
        for metric in registry.collect()
        for sample in metric.samples
        if sample.name == sample_name
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def provider_response(prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
    return {
        "choices": [{"message": {"role": "assistant", "content": "done"}}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


# -- metric families -------------------------------------------------------------------------
def test_all_metric_families_are_registered(
    registry: CollectorRegistry, collector: PersonaMetricsCollector
) -> None:
    collector.switch_persona("backend-engineer", "devops-engineer", "debugging")
    collector.record_token_usage("backend-engineer", 10, "debugging", "gpt-4o")
    collector.record_workflow_stage("wf", "build", "backend-engineer", 0.2)
    collector.record_cost("backend-engineer", 0.5, "debugging", "gpt-4o")
    collector.record_dropped_spans("langfuse", 1)
    names = {metric.name for metric in registry.collect()}
    # prometheus_client strips "_total" from counter family names
    families = {name.removesuffix("_total") for name in names}
    for metric in (*DESIGN_METRICS, *EXTRA_METRICS):
        assert metric.removesuffix("_total") in families, metric


def test_budget_gauges_exist_for_every_builtin_persona_at_construction(
    registry: CollectorRegistry, collector: PersonaMetricsCollector
) -> None:
    personas = builtin_personas()
    assert len(personas) > 0
    for name, persona in personas.items():
        limit = value(registry, "hypertool_persona_token_budget_limit", persona=name)
        remaining = value(registry, "hypertool_persona_token_budget_remaining", persona=name)
        assert limit == persona.token_budget, name
        assert remaining == persona.token_budget, name


# -- persona switches ------------------------------------------------------------------------
def test_switch_persona_counts_each_pair(
    registry: CollectorRegistry, collector: PersonaMetricsCollector
) -> None:
    collector.switch_persona("backend-engineer", "testing-specialist", "package-release")
    collector.switch_persona("backend-engineer", "testing-specialist", "package-release")
    collector.switch_persona("testing-specialist", "backend-engineer", "package-release")
    name = "hypertool_persona_switches_total"
    forward = {"from_persona": "backend-engineer", "to_persona": "testing-specialist"}
    back = {"from_persona": "testing-specialist", "to_persona": "backend-engineer"}
    assert value(registry, name, **forward, chatmode="package-release") == 2
    assert value(registry, name, **back, chatmode="package-release") == 1


def test_switch_persona_uses_canonical_names(
    registry: CollectorRegistry, collector: PersonaMetricsCollector
) -> None:
    collector.switch_persona("Backend Engineer", "tta-devops-engineer", "debugging")
    assert (
        value(
            registry,
            "hypertool_persona_switches_total",
            from_persona="backend-engineer",
            to_persona="devops-engineer",
            chatmode="debugging",
        )
        == 1
    )


# -- tokens and budgets ----------------------------------------------------------------------
def test_record_token_usage_updates_tokens_and_remaining(
    registry: CollectorRegistry, collector: PersonaMetricsCollector
) -> None:
    budget = builtin_personas().budget("backend-engineer")
    assert budget is not None and budget > 0
    collector.record_token_usage("backend-engineer", 300, "debugging", "gpt-4o")
    collector.record_token_usage("backend-engineer", 200, "debugging", "gpt-4o")
    tokens = value(
        registry,
        "hypertool_persona_tokens_used_total",
        persona="backend-engineer",
        chatmode="debugging",
        model="gpt-4o",
    )
    assert tokens == 500
    remaining = value(
        registry, "hypertool_persona_token_budget_remaining", persona="backend-engineer"
    )
    assert remaining == budget - 500
    assert collector.get_remaining_budget("backend-engineer") == budget - 500


def test_remaining_goes_negative_past_the_budget(
    registry: CollectorRegistry, collector: PersonaMetricsCollector
) -> None:
    budget = builtin_personas().budget("devops-engineer")
    assert budget is not None and budget > 0
    overrun = 123
    collector.record_token_usage("devops-engineer", budget + overrun, "debugging", "gpt-4o")
    gauge = value(registry, "hypertool_persona_token_budget_remaining", persona="devops-engineer")
    assert gauge == -overrun
    assert collector.get_remaining_budget("devops-engineer") == -overrun
    # the limit gauge is unchanged by usage
    limit = value(registry, "hypertool_persona_token_budget_limit", persona="devops-engineer")
    assert limit == budget


def test_reset_budget_restores_the_full_budget(
    registry: CollectorRegistry, collector: PersonaMetricsCollector
) -> None:
    budget = builtin_personas().budget("backend-engineer")
    assert budget is not None
    collector.record_token_usage("backend-engineer", budget + 50, "debugging", "gpt-4o")
    collector.record_token_usage("testing-specialist", 40, "debugging", "gpt-4o")
    collector.reset_budget("backend-engineer")
    gauge = value(registry, "hypertool_persona_token_budget_remaining", persona="backend-engineer")
    assert gauge == budget
    assert collector.get_remaining_budget("backend-engineer") == budget
    # other personas keep their usage; the tokens counter is a counter and never decreases
    other_budget = builtin_personas().budget("testing-specialist")
    assert other_budget is not None
    assert collector.get_remaining_budget("testing-specialist") == other_budget - 40
    tokens = value(
        registry,
        "hypertool_persona_tokens_used_total",
        persona="backend-engineer",
        chatmode="debugging",
        model="gpt-4o",
    )
    assert tokens == budget + 50


def test_get_remaining_budget_unknown_persona_is_none(collector: PersonaMetricsCollector) -> None:
    assert collector.get_remaining_budget("no-such-persona") is None


def test_budgets_come_from_the_given_personas(registry: CollectorRegistry) -> None:
    personas = PersonaRegistry([Persona.model_validate({"name": "solo", "tokenBudget": 70})])
    collector = PersonaMetricsCollector(registry=registry, personas=personas)
    assert value(registry, "hypertool_persona_token_budget_limit", persona="solo") == 70
    assert (
        value(registry, "hypertool_persona_token_budget_limit", persona="backend-engineer") is None
    )
    collector.record_token_usage("solo", 100)
    assert value(registry, "hypertool_persona_token_budget_remaining", persona="solo") == -30


# -- workflow stages -------------------------------------------------------------------------
def test_record_workflow_stage(
    registry: CollectorRegistry, collector: PersonaMetricsCollector
) -> None:
    collector.record_workflow_stage("release", "build", "backend-engineer", 1.5, chatmode="dev")
    collector.record_workflow_stage(
        "release", "build", "backend-engineer", 0.5, passed=False, chatmode="dev"
    )
    stage = {"workflow": "release", "stage": "build", "persona": "backend-engineer"}
    assert value(registry, "hypertool_workflow_stage_duration_seconds_count", **stage) == 2
    assert value(registry, "hypertool_workflow_stage_duration_seconds_sum", **stage) == 2.0
    persona = {"persona": "backend-engineer", "chatmode": "dev"}
    assert value(registry, "hypertool_persona_duration_seconds_count", **persona) == 2
    assert value(registry, "hypertool_persona_duration_seconds_sum", **persona) == 2.0
    gate = "hypertool_workflow_quality_gate_total"
    assert value(registry, gate, workflow="release", stage="build", result="passed") == 1
    assert value(registry, gate, workflow="release", stage="build", result="failed") == 1


def test_track_stage_success_passes_the_gate(
    registry: CollectorRegistry, collector: PersonaMetricsCollector
) -> None:
    with collector.track_stage("release", "tests", "testing-specialist", "package-release"):
        time.sleep(0.02)
    gate = "hypertool_workflow_quality_gate_total"
    assert value(registry, gate, workflow="release", stage="tests", result="passed") == 1
    assert value(registry, gate, workflow="release", stage="tests", result="failed") is None
    stage = {"workflow": "release", "stage": "tests", "persona": "testing-specialist"}
    assert value(registry, "hypertool_workflow_stage_duration_seconds_count", **stage) == 1
    duration = value(registry, "hypertool_workflow_stage_duration_seconds_sum", **stage)
    assert duration is not None and 0.02 <= duration < 5


def test_track_stage_exception_fails_the_gate_and_reraises(
    registry: CollectorRegistry, collector: PersonaMetricsCollector
) -> None:
    error = ValueError("tests failed")
    with (
        pytest.raises(ValueError) as raised,
        collector.track_stage("release", "tests", "testing-specialist"),
    ):
        raise error
    assert raised.value is error
    gate = "hypertool_workflow_quality_gate_total"
    assert value(registry, gate, workflow="release", stage="tests", result="failed") == 1
    assert value(registry, gate, workflow="release", stage="tests", result="passed") is None
    stage = {"workflow": "release", "stage": "tests", "persona": "testing-specialist"}
    assert value(registry, "hypertool_workflow_stage_duration_seconds_count", **stage) == 1


async def test_track_stage_async_success_and_failure(
    registry: CollectorRegistry, collector: PersonaMetricsCollector
) -> None:
    async with collector.track_stage_async("release", "publish", "devops-engineer"):
        pass
    error = RuntimeError("upload refused")
    with pytest.raises(RuntimeError) as raised:
        async with collector.track_stage_async("release", "publish", "devops-engineer"):
            raise error
    assert raised.value is error
    gate = "hypertool_workflow_quality_gate_total"
    assert value(registry, gate, workflow="release", stage="publish", result="passed") == 1
    assert value(registry, gate, workflow="release", stage="publish", result="failed") == 1
    stage = {"workflow": "release", "stage": "publish", "persona": "devops-engineer"}
    assert value(registry, "hypertool_workflow_stage_duration_seconds_count", **stage) == 2


# -- fed by ObservableLLM --------------------------------------------------------------------
def test_attached_collector_counts_each_call_once(
    registry: CollectorRegistry,
    collector: PersonaMetricsCollector,
    integration: LangfuseIntegration,
) -> None:
    collector.attach(integration)
    calls: list[str] = []
    usages = [(11, 7), (20, 5), (3, 40)]

    def llm(prompt: str) -> dict[str, Any]:
        prompt_tokens, completion_tokens = usages[len(calls)]
        calls.append(prompt)
        return provider_response(prompt_tokens, completion_tokens)

    wrapped = ObservableLLM(llm, model="gpt-4o", langfuse=integration, chatmode="debugging")
    for number in range(len(usages)):
        wrapped(f"question {number}", persona="backend-engineer")
    integration.flush(timeout=5.0)

    assert len(calls) == 3
    expected_tokens = sum(p + c for p, c in usages)
    labels = {"persona": "backend-engineer", "model": "gpt-4o"}
    assert value(registry, "hypertool_llm_requests_total", **labels, status="success") == 3
    assert value(registry, "hypertool_llm_requests_total", **labels, status="error") is None
    assert value(registry, "hypertool_llm_request_duration_seconds_count", **labels) == 3
    tokens = value(
        registry,
        "hypertool_persona_tokens_used_total",
        persona="backend-engineer",
        chatmode="debugging",
        model="gpt-4o",
    )
    assert tokens == expected_tokens
    budget = builtin_personas().budget("backend-engineer")
    assert budget is not None
    remaining = value(
        registry, "hypertool_persona_token_budget_remaining", persona="backend-engineer"
    )
    assert remaining == budget - expected_tokens
    # flushing again records nothing more
    integration.flush(timeout=5.0)
    assert value(registry, "hypertool_llm_requests_total", **labels, status="success") == 3


def test_remaining_budget_gauge_reads_the_integrations_ledger(
    registry: CollectorRegistry, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    """One ledger: the gauge follows the integration's period and the store's history."""
    personas = PersonaRegistry(
        [Persona(name="nightly", tokenBudget=1_000, budgetPeriod="day")]  # type: ignore[call-arg]
    )
    monkeypatch.setenv("HYPERTOOL_STORE", str(tmp_path / "store.db"))
    earlier = LangfuseIntegration(personas=personas)  # an earlier process today
    earlier.create_generation(
        earlier.start_trace("t", "nightly"),
        "g",
        "gpt-4o",
        "p",
        "c",
        usage={"input": 300, "output": 100},
    )
    assert earlier.flush(5.0)
    earlier.shutdown()

    integration = LangfuseIntegration(personas=personas)
    collector = PersonaMetricsCollector(registry=registry).attach(integration)
    assert collector.budgets is integration.budgets
    remaining = "hypertool_persona_token_budget_remaining"
    assert value(registry, remaining, persona="nightly") == 600  # the store's 400 tokens count
    wrapped = ObservableLLM(
        lambda p: provider_response(50, 50), model="gpt-4o", langfuse=integration
    )
    wrapped("q", persona="nightly")
    integration.flush(5.0)
    assert value(registry, remaining, persona="nightly") == 500
    assert (
        collector.get_remaining_budget("nightly") == integration.budgets.remaining("nightly") == 500
    )
    integration.shutdown()


def test_failed_call_counts_as_error(
    registry: CollectorRegistry,
    collector: PersonaMetricsCollector,
    integration: LangfuseIntegration,
) -> None:
    collector.attach(integration)

    def broken(prompt: str) -> str:
        raise ConnectionError("provider down")

    wrapped = ObservableLLM(broken, model="gpt-4o", langfuse=integration)
    with pytest.raises(ConnectionError):
        wrapped("hello", persona="devops-engineer")
    integration.flush(timeout=5.0)
    labels = {"persona": "devops-engineer", "model": "gpt-4o"}
    assert value(registry, "hypertool_llm_requests_total", **labels, status="error") == 1
    assert value(registry, "hypertool_llm_requests_total", **labels, status="success") is None
    assert value(registry, "hypertool_llm_request_duration_seconds_count", **labels) == 1


def test_cost_counter_uses_the_price_of_a_known_model(
    registry: CollectorRegistry,
    collector: PersonaMetricsCollector,
    integration: LangfuseIntegration,
) -> None:
    collector.attach(integration)
    price = PriceTable().price("gpt-4o")
    assert price is not None
    wrapped = ObservableLLM(
        lambda prompt: provider_response(1_000, 2_000),
        model="gpt-4o",
        langfuse=integration,
        chatmode="debugging",
    )
    wrapped("a", persona="backend-engineer")
    wrapped("b", persona="backend-engineer")
    integration.flush(timeout=5.0)
    expected = 2 * (1_000 * price.input + 2_000 * price.output) / 1_000_000
    assert expected > 0
    cost = value(
        registry,
        "hypertool_llm_cost_usd_total",
        persona="backend-engineer",
        chatmode="debugging",
        model="gpt-4o",
    )
    assert cost == pytest.approx(expected)


def test_cost_counter_unchanged_for_an_unknown_model(
    registry: CollectorRegistry,
    collector: PersonaMetricsCollector,
    integration: LangfuseIntegration,
) -> None:
    collector.attach(integration)
    known = ObservableLLM(
        lambda prompt: provider_response(100, 100), model="gpt-4o-mini", langfuse=integration
    )
    known("priced", persona="backend-engineer")
    integration.flush(timeout=5.0)
    before = family_total(registry, "hypertool_llm_cost_usd_total")
    assert before > 0

    model = "acme-unreleased-model-9000"
    assert PriceTable().price(model) is None
    unknown = ObservableLLM(
        lambda prompt: provider_response(500, 500), model=model, langfuse=integration
    )
    unknown("unpriced", persona="backend-engineer")
    integration.flush(timeout=5.0)
    # the call was counted, the cost was not
    labels = {"persona": "backend-engineer", "model": model}
    assert value(registry, "hypertool_llm_requests_total", **labels, status="success") == 1
    assert family_total(registry, "hypertool_llm_cost_usd_total") == before
    cost_labels = {"persona": "backend-engineer", "chatmode": "", "model": model}
    assert value(registry, "hypertool_llm_cost_usd_total", **cost_labels) is None


def test_dropped_spans_are_counted_per_sink(
    registry: CollectorRegistry, collector: PersonaMetricsCollector
) -> None:
    bad = ExporterReturningFailure()
    integration = LangfuseIntegration(exporters={"bad": bad})
    try:
        collector.attach(integration)
        wrapped = ObservableLLM(
            lambda prompt: provider_response(1, 1), model="gpt-4o", langfuse=integration
        )
        for number in range(4):
            wrapped(f"call {number}", persona="backend-engineer")
        integration.flush(timeout=5.0)
        assert sum(bad.batches) == 4
        assert value(registry, "hypertool_export_dropped_spans_total", sink="bad") == 4
    finally:
        integration.shutdown(0)


def test_every_configured_sink_starts_at_zero_drops(
    registry: CollectorRegistry, collector: PersonaMetricsCollector, tmp_path: Any
) -> None:
    # A series born with the first drop has no earlier sample: rate()/increase() (the
    # TraceExportDropping alert) would miss that drop. Every configured sink is a series at 0.
    own = CollectorRegistry()
    integration = LangfuseIntegration(
        exporters={"bad": ExporterReturningFailure(), "memory": InMemorySpanExporter()},
        metrics_registry=own,
    )
    try:
        for reg in (own, None):
            if reg is None:
                collector.attach(integration)  # another registry: the collector's own counter
                reg = registry
            for sink in ("bad", "memory"):
                assert value(reg, "hypertool_export_dropped_spans_total", sink=sink) == 0.0
        ObservableLLM(lambda p: "ok", model="gpt-4o", langfuse=integration)("x")
        integration.flush(timeout=5.0)
        for reg in (own, registry):
            assert value(reg, "hypertool_export_dropped_spans_total", sink="bad") == 1.0
            assert value(reg, "hypertool_export_dropped_spans_total", sink="memory") == 0.0
    finally:
        integration.shutdown(0)


def test_label_cardinality_is_bounded(registry: CollectorRegistry) -> None:
    collector = PersonaMetricsCollector(
        registry=registry, personas=PersonaRegistry([]), max_label_values=3
    )
    for name in ("persona-a", "persona-b", "persona-c", "persona-d"):
        collector.record_token_usage(name, 10, "debugging", "gpt-4o")
    collector.record_token_usage("persona-a", 5, "debugging", "gpt-4o")
    tokens = "hypertool_persona_tokens_used_total"
    common = {"chatmode": "debugging", "model": "gpt-4o"}
    assert value(registry, tokens, persona="persona-a", **common) == 15
    assert value(registry, tokens, persona="persona-b", **common) == 10
    assert value(registry, tokens, persona="persona-c", **common) == 10
    assert value(registry, tokens, persona="persona-d", **common) is None
    assert value(registry, tokens, persona="other", **common) == 10


# -- serving ---------------------------------------------------------------------------------
def test_metrics_server_serves_our_metrics(
    registry: CollectorRegistry, collector: PersonaMetricsCollector
) -> None:
    collector.record_token_usage("backend-engineer", 42, "debugging", "gpt-4o")
    port = free_port()
    server = start_metrics_server(port, registry=registry)
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            assert response.status == 200
            body = response.read().decode("utf-8")
    finally:
        server.shutdown()
        server.server_close()
    for name in ("hypertool_persona_tokens_used_total", "hypertool_persona_token_budget_limit"):
        assert name in body
    assert (
        'hypertool_persona_tokens_used_total{chatmode="debugging",model="gpt-4o",'
        'persona="backend-engineer"} 42.0' in body
    )


def test_two_collectors_on_two_registries_do_not_conflict() -> None:
    first_registry, second_registry = CollectorRegistry(), CollectorRegistry()
    first = PersonaMetricsCollector(registry=first_registry)
    second = PersonaMetricsCollector(registry=second_registry)
    first.record_token_usage("backend-engineer", 10, "debugging", "gpt-4o")
    second.record_token_usage("backend-engineer", 25, "debugging", "gpt-4o")
    labels = {"persona": "backend-engineer", "chatmode": "debugging", "model": "gpt-4o"}
    assert value(first_registry, "hypertool_persona_tokens_used_total", **labels) == 10
    assert value(second_registry, "hypertool_persona_tokens_used_total", **labels) == 25


def test_same_registry_twice_is_refused(registry: CollectorRegistry) -> None:
    PersonaMetricsCollector(registry=registry)
    with pytest.raises(ValueError):
        PersonaMetricsCollector(registry=registry)


# -- the guide's workflow --------------------------------------------------------------------
def printed_tokens(lines: list[str]) -> dict[str, int]:
    totals: dict[str, int] = {}
    persona = ""
    for line in lines:
        if match := PERSONA_LINE.match(line):
            persona = match[1]
        elif match := TOKENS_LINE.match(line):
            totals[persona] = totals.get(persona, 0) + int(match[1])
    return totals


def mock_tokens(version: str) -> dict[str, int]:
    """What mock_llm reports per persona: estimated prompt + 60, fixed completion per persona."""
    completion = {"backend-engineer": 773, "testing-specialist": 640, "devops-engineer": 420}
    return {
        stage.persona: estimate_tokens(stage.prompt) + 60 + completion[stage.persona]
        for stage in release_stages(version)
    }


def metric_tokens(registry: CollectorRegistry, personas: list[str]) -> dict[str, float | None]:
    return {
        persona: value(
            registry,
            "hypertool_persona_tokens_used_total",
            persona=persona,
            chatmode=CHATMODE,
            model="gpt-4",
        )
        for persona in personas
    }


async def test_guide_workflow_counts_tokens_once_when_attached(
    registry: CollectorRegistry,
    collector: PersonaMetricsCollector,
    integration: LangfuseIntegration,
) -> None:
    """As the demo does it: attach, then hand the collector to the workflow."""
    collector.attach(integration)
    lines: list[str] = []
    await run_release_workflow(integration, metrics=collector, out=lines.append)
    integration.flush(timeout=5.0)
    printed = printed_tokens(lines)
    assert printed == mock_tokens("1.2.0")
    assert metric_tokens(registry, list(printed)) == {k: float(v) for k, v in printed.items()}
    for persona, tokens in printed.items():
        budget = builtin_personas().budget(persona)
        assert budget is not None
        assert collector.get_remaining_budget(persona) == budget - tokens
    labels = {"model": "gpt-4", "status": "success"}
    for persona in printed:
        assert value(registry, "hypertool_llm_requests_total", persona=persona, **labels) == 1


async def test_guide_workflow_feeds_the_collector_it_is_given(
    registry: CollectorRegistry,
    collector: PersonaMetricsCollector,
    integration: LangfuseIntegration,
) -> None:
    """run_release_workflow's docstring: "``metrics``, when given, is fed by the same
    generations" — without the caller attaching it first.
    """
    lines: list[str] = []
    await run_release_workflow(integration, metrics=collector, out=lines.append)
    integration.flush(timeout=5.0)
    printed = printed_tokens(lines)
    assert printed == mock_tokens("1.2.0")
    assert metric_tokens(registry, list(printed)) == {k: float(v) for k, v in printed.items()}
