"""Scoring the generation a call just made (last_generation), scorers on the recorder thread,
and bad score input: one warning, never an exception into the caller.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from hypertool.instrumentation import (
    GenerationContext,
    LangfuseIntegration,
    ObservableLLM,
    last_generation,
    observe_llm,
)
from hypertool.instrumentation import semconv as attr
from support.scores import MemoryScores
from support.spans import attrs, span_hex


@pytest.fixture
def sink() -> MemoryScores:
    return MemoryScores()


@pytest.fixture
def spans() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def langfuse(sink: MemoryScores, spans: InMemorySpanExporter) -> Iterator[LangfuseIntegration]:
    integration = LangfuseIntegration(exporters={"memory": spans}, score_sinks={"memory": sink})
    yield integration
    integration.shutdown(0)


def generation_ids(spans: InMemorySpanExporter) -> list[str]:
    return [
        span_hex(s)
        for s in spans.get_finished_spans()
        if attrs(s).get(attr.OBSERVATION_TYPE) == attr.TYPE_GENERATION
    ]


def test_last_generation_is_each_calls_own(
    langfuse: LangfuseIntegration, sink: MemoryScores, spans: InMemorySpanExporter
) -> None:
    llm = ObservableLLM(lambda prompt: f"re: {prompt}", model="gpt-4", langfuse=langfuse)

    @observe_llm(model="gpt-4", langfuse=langfuse, persona="testing-specialist")
    def decorated(prompt: str) -> str:
        return "ok"

    assert llm("first", persona="backend-engineer", chatmode="debugging") == "re: first"
    first = last_generation()
    decorated("second")
    second = last_generation()
    assert first is not None and second is not None and first is not second
    langfuse.score(second, "relevance", 0.5)
    langfuse.score(first, "relevance", 1.0)
    assert langfuse.flush(timeout=5)
    ids = generation_ids(spans)
    by_value = {score.value: score for score in sink.named("relevance")}
    assert by_value[1.0].observation_id == ids[0]
    assert (by_value[1.0].persona, by_value[1.0].chatmode) == ("backend-engineer", "debugging")
    assert by_value[0.5].observation_id == ids[1]
    assert by_value[0.5].persona == "testing-specialist"
    recorded = first.recorded
    assert isinstance(recorded, GenerationContext) and recorded.generation_id == ids[0]


async def test_async_calls_set_it_in_their_task_only(
    langfuse: LangfuseIntegration, sink: MemoryScores, spans: InMemorySpanExporter
) -> None:
    async def answer(prompt: str) -> str:
        await asyncio.sleep(0)
        return "ok"

    llm = ObservableLLM(answer, model="gpt-4", langfuse=langfuse)
    await llm("mine")
    mine = last_generation()

    async def other() -> Any:
        await llm("theirs")
        return last_generation()

    theirs = await asyncio.create_task(other())
    assert last_generation() is mine and theirs is not mine
    seen: list[Any] = []
    thread = threading.Thread(target=lambda: seen.append(last_generation()))
    thread.start()
    thread.join()
    assert seen == [None]  # another thread made no call
    langfuse.score(mine, "helpful", True)
    assert langfuse.flush(timeout=5)
    [score] = sink.named("helpful")
    assert score.observation_id == generation_ids(spans)[0]


def test_a_stream_scored_before_it_ends_is_scored_once_recorded(
    langfuse: LangfuseIntegration, sink: MemoryScores, spans: InMemorySpanExporter
) -> None:
    def stream(prompt: str) -> Iterator[str]:
        yield "one "
        yield "two"

    llm = ObservableLLM(stream, model="gpt-4", langfuse=langfuse)
    chunks = llm("go")
    handle = last_generation()
    assert handle is not None
    langfuse.score(handle, "early", 1.0)
    langfuse.drain()
    assert sink.named("early") == [] and langfuse.quality.recorder.parked == 1
    assert list(chunks) == ["one ", "two"]
    assert langfuse.flush(timeout=5)
    [score] = sink.named("early")
    assert score.observation_id == generation_ids(spans)[0]
    assert langfuse.quality.recorder.parked == 0


def test_scorers_run_off_the_callers_path_and_a_bad_one_never_breaks_the_call(
    langfuse: LangfuseIntegration,
    sink: MemoryScores,
    spans: InMemorySpanExporter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    released = threading.Event()
    after_the_call: list[bool] = []

    def length_ok(prompt: Any, completion: str) -> bool:
        # Run inside the call, this would wait its 5 s and see the event unset.
        after_the_call.append(released.wait(5))
        return len(completion) < 20

    def graded(prompt: Any, completion: str) -> list[dict[str, Any]]:
        return [
            {"name": "grade", "value": "B", "comment": f"for {prompt}"},
            {"name": "stars", "value": 4, "data_type": "NUMERIC"},
        ]

    def broken(prompt: Any, completion: str) -> float:
        raise ZeroDivisionError("scorer bug")

    def odd(prompt: Any, completion: str) -> object:
        return object()

    def silent(prompt: Any, completion: str) -> None:
        return None

    def failing(prompt: str) -> str:
        raise TimeoutError("provider down")

    llm = ObservableLLM(
        lambda prompt: "short answer",
        model="gpt-4",
        langfuse=langfuse,
        scorers=[broken, length_ok, odd, graded, silent],
    )
    failing_llm = ObservableLLM(failing, model="gpt-4", langfuse=langfuse, scorers=[length_ok])
    with caplog.at_level(logging.WARNING, "hypertool.instrumentation"):
        assert [llm("q1"), llm("q2")] == ["short answer", "short answer"]
        with pytest.raises(TimeoutError):
            failing_llm("q3")
        released.set()
        assert langfuse.flush(timeout=15)
    assert after_the_call == [True, True]
    assert [s.value for s in sink.named("length_ok")] == [1.0, 1.0]  # not for the failed call
    assert [(s.value, s.comment) for s in sink.named("grade")] == [("B", "for q1"), ("B", "for q2")]
    assert [s.data_type for s in sink.named("stars")] == ["NUMERIC", "NUMERIC"]
    ids = generation_ids(spans)
    assert {s.observation_id for s in sink.scores} == set(ids[:2])
    messages = [r.getMessage() for r in caplog.records]
    assert len([m for m in messages if "scorer broken raised ZeroDivisionError" in m]) == 1
    assert len([m for m in messages if "scorer odd returned" in m]) == 1


@pytest.mark.parametrize(
    "target,kwargs,says",
    [
        ("not-a-trace-id", {}, "trace id 'not-a-trace-id' is not 32 lower-case hex digits"),
        ("A" * 32, {}, "is not 32 lower-case hex digits"),
        ("a" * 32, {"observation_id": "xyz"}, "observation id 'xyz' is not 16"),
        (None, {}, "cannot be scored"),
        (42, {}, "cannot be scored"),
        ("a" * 32, {"data_type": "BOOLEAN", "value": 3}, "BOOLEAN takes True/False or 1/0"),
        ("a" * 32, {"value": float("nan")}, "is not finite"),
        ("a" * 32, {"score_id": ""}, "score_id must be 1 to 128 characters"),
        ("a" * 32, {"timestamp": "yesterday"}, "timestamp 'yesterday' is not a datetime"),
    ],
)
def test_bad_score_input_is_one_warning_and_never_raises(
    langfuse: LangfuseIntegration,
    sink: MemoryScores,
    caplog: pytest.LogCaptureFixture,
    target: Any,
    kwargs: dict[str, Any],
    says: str,
) -> None:
    value = kwargs.pop("value", 0.5)
    with caplog.at_level(logging.WARNING, "hypertool.instrumentation"):
        for _ in range(3):
            assert langfuse.score(target, "relevance", value, **kwargs) is None
    warnings = [r.getMessage() for r in caplog.records if "not recorded" in r.getMessage()]
    assert len(warnings) == 1 and says in warnings[0]
    assert langfuse.flush(timeout=5)
    assert sink.scores == []


def test_a_span_score_with_observation_id_is_refused(
    langfuse: LangfuseIntegration, caplog: pytest.LogCaptureFixture
) -> None:
    trace = langfuse.start_trace("t", "backend-engineer")
    span = langfuse.start_span(trace, "s")
    with caplog.at_level(logging.WARNING, "hypertool.instrumentation"):
        assert langfuse.score(span, "x", 1.0, observation_id="0123456789abcdef") is None
    assert "observation_id= goes with a trace" in caplog.text


def test_scores_reach_listeners_even_without_any_sink(make: Any) -> None:
    langfuse = make()  # no keys, the store off: nothing is sent anywhere
    seen: list[Any] = []
    langfuse.add_score_listener(seen.append)
    trace = langfuse.start_trace("t", "backend-engineer", "debugging")
    assert langfuse.score(trace, "quality", 0.8) is not None
    langfuse.drain()
    assert [(s.name, s.value, s.persona, s.chatmode) for s in seen] == [
        ("quality", 0.8, "backend-engineer", "debugging")
    ]
    langfuse.remove_score_listener(seen.append)
