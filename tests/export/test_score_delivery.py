"""Scores reaching a loopback Langfuse: the JSON of each score, batching, retries, partial
rejections, a hanging host, and every score delivered or counted as dropped.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from hypertool.instrumentation import LangfuseIntegration, ObservableLLM, last_generation
from support.loopback import LoopbackOTLP, ReceivedRequest
from support.scores import MemoryScores

SCORES = "/api/public/scores"
DROPPED = "hypertool_export_dropped_scores_total"
PK, SK = "pk-lf-scores", "sk-lf-scores-secret"


@pytest.fixture
def receiver() -> Iterator[LoopbackOTLP]:
    with LoopbackOTLP(hang_max=20) as loopback:
        yield loopback


def build(receiver: LoopbackOTLP, **kwargs: Any) -> tuple[LangfuseIntegration, CollectorRegistry]:
    registry = CollectorRegistry()
    integration = LangfuseIntegration(
        PK, SK, host=receiver.url, metrics_registry=registry, **kwargs
    )
    return integration, registry


def posted_scores(receiver: LoopbackOTLP) -> list[dict[str, Any]]:
    return [item for body in receiver.json_requests(SCORES) for item in body]


def score_requests(receiver: LoopbackOTLP) -> list[ReceivedRequest]:
    return [r for r in receiver.requests if r.path == SCORES]


def dropped(registry: CollectorRegistry, sink: str = "langfuse") -> float:
    return registry.get_sample_value(DROPPED, {"sink": sink}) or 0.0


def test_scores_on_a_trace_a_stage_and_a_generation_reach_langfuse(
    receiver: LoopbackOTLP,
) -> None:
    receiver.route("POST", SCORES, lambda request: (202, {"message": "Accepted"}))
    integration, registry = build(receiver)
    try:
        trace = integration.start_trace("release", "backend-engineer", "package-release")
        stage = integration.start_span(trace, "publish", persona="devops-engineer")
        generation = integration.create_generation(
            trace, "answer", "gpt-4", "prompt", "completion", parent=stage
        )
        stage.end()
        given = datetime.fromisoformat("2025-03-04T05:06:07.123456+00:00")
        ids = [
            integration.score(trace, "helpful", 0.75, comment="sk-lf-12345678abcdef leaked?"),
            stage.score("quality_gate", False, metadata={"reviewer": "ci", "tries": 2}),
            integration.score(generation, "tone", "friendly", config_id="cfg-1"),
            integration.score(
                trace.trace_id,
                "note",
                "free text",
                data_type="TEXT",
                observation_id=generation.generation_id,
                timestamp=given,
            ),
        ]
        integration.end_trace(trace)
        assert all(isinstance(score_id, str) and len(score_id) == 16 for score_id in ids)
        assert integration.flush(timeout=10)
    finally:
        integration.shutdown(0)
    items = {item["name"]: item for item in posted_scores(receiver)}
    assert [item["id"] for item in items.values()] == ids
    assert items["helpful"] == {
        "id": ids[0],
        "traceId": trace.trace_id,
        "name": "helpful",
        "value": 0.75,
        "comment": "[REDACTED] leaked?",  # masked like prompts
        "dataType": "NUMERIC",
        "timestamp": items["helpful"]["timestamp"],
    }
    assert items["quality_gate"]["observationId"] == stage.span_id
    # A stage is a Langfuse trace of its own: its score (and its generation's) go there.
    assert items["quality_gate"]["traceId"] == stage.langfuse_trace_id != trace.trace_id
    assert items["quality_gate"]["value"] == 0.0 and items["quality_gate"]["dataType"] == "BOOLEAN"
    assert items["quality_gate"]["metadata"] == {"reviewer": "ci", "tries": 2}
    assert items["tone"]["observationId"] == generation.generation_id
    assert items["tone"]["traceId"] == stage.langfuse_trace_id
    assert items["tone"]["dataType"] == "CATEGORICAL" and items["tone"]["configId"] == "cfg-1"
    assert items["note"]["timestamp"] == "2025-03-04T05:06:07.123456Z"
    assert items["note"]["observationId"] == generation.generation_id
    for item in items.values():
        stamp = datetime.fromisoformat(item["timestamp"].replace("Z", "+00:00"))
        assert stamp.tzinfo is not None
    # The ids are those of the observations Langfuse got.
    spans = {s.span_id: s for s in receiver.spans()}
    assert spans[stage.span_id].name == "publish"
    assert spans[generation.generation_id].name == "answer"
    for item in (items["quality_gate"], items["tone"]):
        assert item["traceId"] == spans[item["observationId"]].trace_id
    request = score_requests(receiver)[0]
    token = base64.b64encode(f"{PK}:{SK}".encode()).decode()
    assert request.header("Authorization") == f"Basic {token}"
    assert request.header("Content-Type") == "application/json"
    assert dropped(registry) == 0


def test_scores_are_batched_and_each_delivered_once(receiver: LoopbackOTLP) -> None:
    receiver.route("POST", SCORES, lambda request: (202, {"message": "Accepted"}))
    integration, registry = build(receiver)
    trace = integration.start_trace("t", "backend-engineer")
    try:
        ids = [integration.score(trace, "n", float(i)) for i in range(40)]
        assert integration.flush(timeout=10)
    finally:
        integration.shutdown(0)
    assert sorted(item["id"] for item in posted_scores(receiver)) == sorted(ids)  # type: ignore[type-var]
    assert all(len(json.loads(r.body)) <= 15 for r in score_requests(receiver))
    assert dropped(registry) == 0


@pytest.mark.parametrize("failure", [429, 500, 503])
def test_busy_and_failing_answers_are_retried(receiver: LoopbackOTLP, failure: int) -> None:
    answers = iter([failure, failure])
    receiver.route("POST", SCORES, lambda request: (next(answers, 202), {}))
    integration, registry = build(receiver)
    trace = integration.start_trace("t", "backend-engineer")
    try:
        score_id = integration.score(trace, "helpful", 1.0)
        assert integration.flush(timeout=10)
    finally:
        integration.shutdown(0)
    assert [r.status for r in score_requests(receiver)] == [failure, failure, 202]
    assert {item["id"] for item in posted_scores(receiver)} == {score_id}
    assert dropped(registry) == 0


def test_rejected_keys_drop_and_count_the_batch_with_one_error(
    receiver: LoopbackOTLP, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.route("POST", SCORES, lambda request: (401, {"message": "unauthorized"}))
    integration, registry = build(receiver)
    trace = integration.start_trace("t", "backend-engineer")
    try:
        with caplog.at_level(logging.WARNING, "hypertool.instrumentation"):
            for _ in range(3):
                integration.score(trace, "helpful", 1.0)
                assert integration.flush(timeout=10) is False
    finally:
        integration.shutdown(0)
    assert dropped(registry) == 3
    assert len([r for r in score_requests(receiver)]) == 3  # 401 is not retried
    rejected = [r for r in caplog.records if "rejected the keys" in r.getMessage()]
    assert len(rejected) == 1 and "scores" in rejected[0].getMessage()
    assert SK not in caplog.text


def test_items_a_207_rejects_are_counted_and_reported_once(
    receiver: LoopbackOTLP, caplog: pytest.LogCaptureFixture
) -> None:
    def partial(request: ReceivedRequest) -> tuple[int, Any]:
        sent = json.loads(request.body)
        return 207, {
            "accepted": len(sent) - 1,
            "rejected": 1,
            "errors": [{"message": f"trace of score {sent[-1]['id']} not found"}],
        }

    receiver.route("POST", SCORES, partial)
    integration, registry = build(receiver)
    trace = integration.start_trace("t", "backend-engineer")
    try:
        with caplog.at_level(logging.WARNING, "hypertool.instrumentation"):
            for batch in range(2):
                for i in range(3):
                    integration.score(trace, "n", float(batch * 3 + i))
                integration.flush(timeout=10)
    finally:
        integration.shutdown(0)
    assert len(score_requests(receiver)) == 2  # a 207 is never retried
    assert dropped(registry) == 2
    # Exactly: each score is counted once, as delivered or as dropped.
    assert integration.quality.delivery is not None
    [langfuse] = [p for p in integration.quality.delivery.processors if p.sink == "langfuse"]
    assert (langfuse.exported, langfuse.dropped) == (4, 2)
    warnings = [r.getMessage() for r in caplog.records if "rejected 1 of 3" in r.getMessage()]
    assert len(warnings) == 1 and "not found" in warnings[0]


def test_a_hanging_host_costs_the_caller_nothing_and_flush_and_exit_stay_bounded(
    receiver: LoopbackOTLP,
) -> None:
    receiver.route("POST", SCORES, lambda request: ("hang", {}))
    integration, registry = build(receiver, export_timeout=5, queue_size=50)
    trace = integration.start_trace("t", "backend-engineer")
    started = time.perf_counter()
    ids = [integration.score(trace, "n", float(i)) for i in range(120)]
    caller = time.perf_counter() - started
    assert all(ids)
    started = time.perf_counter()
    assert integration.flush(timeout=1) is False
    flushed = time.perf_counter() - started
    started = time.perf_counter()
    integration.shutdown(1.0)
    closed = time.perf_counter() - started
    assert caller < 0.5  # 120 scores: checked and handed over, never sent, on this thread
    assert flushed < 1.5 and closed < 1.5
    # Nothing delivered, everything counted: the queue of 50 overflowed, the rest at exit.
    assert score_requests(receiver) and all(r.mode == "hang" for r in score_requests(receiver))
    assert dropped(registry) == 120


def test_scores_given_after_exit_started_are_counted(receiver: LoopbackOTLP) -> None:
    receiver.route("POST", SCORES, lambda request: (202, {}))
    integration, registry = build(receiver)
    trace = integration.start_trace("t", "backend-engineer")
    integration.shutdown(1.0)
    integration.score(trace, "late", 1.0)
    integration.drain()
    assert dropped(registry) == 1


def test_every_score_is_delivered_or_counted_at_a_hurried_exit() -> None:
    sink = MemoryScores()
    registry = CollectorRegistry()
    integration = LangfuseIntegration(
        exporters={"spans": InMemorySpanExporter()},
        score_sinks={"memory": sink},
        metrics_registry=registry,
    )
    trace = integration.start_trace("t", "backend-engineer")

    def stream(prompt: str) -> Any:
        yield "never finished"

    llm = ObservableLLM(stream, model="gpt-4", langfuse=integration)
    chunks = llm("go")  # its generation is recorded when the stream ends: never, here
    integration.score(last_generation(), "waiting", 1.0)
    made = 1 + 2_000
    for i in range(2_000):
        integration.score(trace, "n", float(i))
    integration.shutdown(0.0)
    # The stream ends after exit: its waiting score was counted at exit, and is not again.
    assert list(chunks) == ["never finished"]
    integration.drain()
    delivered = len(sink.scores)
    lost = dropped(registry, "memory")
    assert delivered + lost == made and lost >= 1  # the waiting one, at least
