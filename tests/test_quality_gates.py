"""Quality gates become scores: a BOOLEAN ``quality_gate`` on each stage, of the stage's persona;
scores from inside a stage; ``hypertool_quality_score`` in Prometheus.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from hypertool.instrumentation import (
    LangfuseIntegration,
    PersonaMetricsCollector,
    WorkflowTracer,
)
from support.scores import MemoryScores
from support.spans import span_hex

HISTOGRAM = "hypertool_quality_score"


@pytest.fixture
def sink() -> MemoryScores:
    return MemoryScores()


@pytest.fixture
def spans() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def langfuse(
    sink: MemoryScores, spans: InMemorySpanExporter, registry: CollectorRegistry
) -> Iterator[LangfuseIntegration]:
    integration = LangfuseIntegration(
        exporters={"memory": spans}, score_sinks={"memory": sink}, metrics_registry=registry
    )
    yield integration
    integration.shutdown(0)


@pytest.fixture
def metrics(registry: CollectorRegistry, langfuse: LangfuseIntegration) -> PersonaMetricsCollector:
    return PersonaMetricsCollector(registry=registry).attach(langfuse)


def stage_ids(spans: InMemorySpanExporter) -> dict[str, str]:
    return {span.name: span_hex(span) for span in spans.get_finished_spans()}


def test_each_stage_gate_is_a_boolean_score_of_its_persona(
    langfuse: LangfuseIntegration,
    sink: MemoryScores,
    spans: InMemorySpanExporter,
    metrics: PersonaMetricsCollector,
    registry: CollectorRegistry,
) -> None:
    workflow = WorkflowTracer(
        "release", langfuse=langfuse, metrics=metrics, chatmode="package-release"
    )
    with workflow:
        with workflow.stage("build", "backend-engineer"):
            pass
        with workflow.stage("review", "testing-specialist") as review:
            review.passed = False
            assert review.score("coverage", 0.82, comment="lines") is not None
        with pytest.raises(RuntimeError), workflow.stage("publish", "devops-engineer"):
            raise RuntimeError("registry refused the upload")
    assert langfuse.flush(timeout=5)
    ids = stage_ids(spans)
    gates = {score.stage: score for score in sink.named("quality_gate")}
    assert set(gates) == {"build", "review", "publish"}
    for stage, persona, passed in (
        ("build", "backend-engineer", 1.0),
        ("review", "testing-specialist", 0.0),
        ("publish", "devops-engineer", 0.0),
    ):
        gate = gates[stage]
        assert (gate.value, gate.data_type) == (passed, "BOOLEAN")
        assert gate.observation_id == ids[stage]
        assert gate.trace_id == workflow.trace.trace_id  # type: ignore[union-attr]
        assert (gate.persona, gate.chatmode, gate.workflow) == (
            persona,
            "package-release",
            "release",
        )
    assert gates["build"].comment is None
    assert gates["review"].comment == "stage.passed was set to False"
    assert gates["publish"].comment == "stage raised RuntimeError: registry refused the upload"
    [coverage] = sink.named("coverage")
    assert (coverage.observation_id, coverage.persona) == (ids["review"], "testing-specialist")
    # The same scores in Prometheus, by persona, chatmode and name.
    get = registry.get_sample_value
    labels = {"chatmode": "package-release", "name": "quality_gate"}
    assert get(f"{HISTOGRAM}_count", {"persona": "backend-engineer", **labels}) == 1
    assert get(f"{HISTOGRAM}_sum", {"persona": "backend-engineer", **labels}) == 1
    assert get(f"{HISTOGRAM}_sum", {"persona": "devops-engineer", **labels}) == 0
    assert get(
        f"{HISTOGRAM}_sum",
        {"persona": "testing-specialist", "chatmode": "package-release", "name": "coverage"},
    ) == pytest.approx(0.82)


def test_only_numbers_are_observed_and_names_stay_bounded(
    langfuse: LangfuseIntegration, registry: CollectorRegistry
) -> None:
    metrics = PersonaMetricsCollector(registry=registry, max_label_values=2).attach(langfuse)
    assert metrics.quality_score is not None
    trace = langfuse.start_trace("t", "backend-engineer", "debugging")
    langfuse.score(trace, "tone", "friendly")  # CATEGORICAL: no number
    for name in ("a", "b", "c", "d"):
        langfuse.score(trace, name, 1.0)
    langfuse.drain()
    samples = [
        sample.labels["name"]
        for family in registry.collect()
        if family.name == HISTOGRAM
        for sample in family.samples
        if sample.name == f"{HISTOGRAM}_count"
    ]
    assert sorted(samples) == ["a", "b", "other"]
    assert (
        registry.get_sample_value(
            f"{HISTOGRAM}_count",
            {"persona": "backend-engineer", "chatmode": "debugging", "name": "other"},
        )
        == 2
    )


def test_dropped_scores_are_counted_in_an_attached_collectors_registry(
    sink: MemoryScores, spans: InMemorySpanExporter
) -> None:
    own, theirs = CollectorRegistry(), CollectorRegistry()
    sink.fail = True
    langfuse = LangfuseIntegration(
        exporters={"memory": spans}, score_sinks={"memory": sink}, metrics_registry=own
    )
    try:
        PersonaMetricsCollector(registry=theirs).attach(langfuse)
        name = "hypertool_export_dropped_scores_total"
        assert theirs.get_sample_value(name, {"sink": "memory"}) == 0  # starts at 0
        trace = langfuse.start_trace("t", "backend-engineer")
        for _ in range(3):
            langfuse.score(trace, "x", 1.0)
        assert langfuse.flush(timeout=5) is False
        assert own.get_sample_value(name, {"sink": "memory"}) == 3
        assert theirs.get_sample_value(name, {"sink": "memory"}) == 3
    finally:
        langfuse.shutdown(0)
