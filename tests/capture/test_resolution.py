"""One call resolution for every way of making a call: ObservableLLM, @observe_llm and the
provider clients give the same trace, parent, persona and chatmode, and async calls resolve
when they start running, not when their coroutine is created."""

from __future__ import annotations

import asyncio
import gc
import statistics
import time
import warnings
from collections.abc import Awaitable, Callable
from typing import Any

import openai
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from hypertool.instrumentation import (
    BudgetExceededError,
    LangfuseIntegration,
    ObservableLLM,
    Persona,
    PersonaRegistry,
    observe_llm,
)
from hypertool.instrumentation import semconv as attr
from hypertool.instrumentation.openai import instrument
from support.fake_servers import FakeProviderServer
from support.spans import attrs, parent_hex, spans_of

Factory = Callable[..., LangfuseIntegration]
RESPONSE = {
    "choices": [{"message": {"content": "ok"}}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 2},
}


def generations(
    langfuse: LangfuseIntegration, exporter: InMemorySpanExporter
) -> list[ReadableSpan]:
    return sorted(
        (
            s
            for s in spans_of(langfuse, exporter)
            if attrs(s).get(attr.OBSERVATION_TYPE) == "generation"
        ),
        key=lambda s: s.start_time or 0,
    )


def who(span: ReadableSpan) -> tuple[str, str]:
    """The persona that made the call, and its chatmode."""
    values = attrs(span)
    return values[attr.PERSONA], values[attr.CHATMODE]


def test_every_front_door_resolves_alike(
    langfuse: LangfuseIntegration, exporter: InMemorySpanExporter
) -> None:
    """The issue's reproduction: one trace, the same defaults, three ways of calling."""
    defaults = {"persona": "default-persona", "chatmode": "default-mode"}
    wrapped = ObservableLLM(lambda p: RESPONSE, model="gpt-4o", langfuse=langfuse, **defaults)

    @observe_llm(model="gpt-4o", langfuse=langfuse, **defaults)
    def decorated(prompt: str) -> dict[str, Any]:
        return RESPONSE

    with FakeProviderServer() as server:
        client = instrument(
            openai.OpenAI(api_key="sk-test-key", base_url=server.openai_url, max_retries=0),
            langfuse=langfuse,
            **defaults,
        )
        calls: list[Callable[[], object]] = [
            lambda: wrapped("hi"),
            lambda: decorated("hi"),
            lambda: client.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
            ),
        ]
        trace = langfuse.start_trace("t", persona="trace-persona", chatmode="trace-mode")
        with trace:
            for call in calls:
                call()
            with langfuse.start_span(trace, "unnamed-stage") as plain:
                for call in calls:
                    call()
            with langfuse.start_span(trace, "stage", persona="stage-persona") as stage:
                for call in calls:
                    call()
        # Outside any trace: each call is a trace of its own, with the defaults.
        for call in calls:
            call()

    spans = generations(langfuse, exporter)
    assert len(spans) == 12
    in_trace, in_plain, in_stage, outside = spans[0:3], spans[3:6], spans[6:9], spans[9:12]
    # call > stage (given a persona) > the wrapper's or client's default > the trace's
    for group in (in_trace, in_plain, outside):
        assert {who(s) for s in group} == {("default-persona", "default-mode")}
    assert {who(s) for s in in_stage} == {("stage-persona", "default-mode")}
    # Langfuse's user is the owner of the (Langfuse) trace: the trace's persona, the stage's.
    assert {attrs(s)[attr.USER_ID] for s in in_trace + in_plain} == {"trace-persona"}
    assert {attrs(s)[attr.USER_ID] for s in in_stage} == {"stage-persona"}
    assert {parent_hex(s) for s in in_plain} == {plain.span_id}
    assert {parent_hex(s) for s in in_stage} == {stage.span_id}
    assert {format(s.context.trace_id, "032x") for s in in_trace} == {trace.trace_id}  # type: ignore[union-attr]
    assert all(s.parent is None for s in outside)


def test_without_defaults_the_trace_persona_is_used(
    langfuse: LangfuseIntegration, exporter: InMemorySpanExporter
) -> None:
    wrapped = ObservableLLM(lambda p: RESPONSE, model="gpt-4o", langfuse=langfuse)
    with langfuse.start_trace("t", persona="trace-persona", chatmode="trace-mode"):
        wrapped("hi")
        wrapped("hi", persona="call-persona", chatmode="call-mode")
    first, second = generations(langfuse, exporter)
    assert who(first) == ("trace-persona", "trace-mode")
    assert who(second) == ("call-persona", "call-mode")


# -- asyncio: resolved, timed and budgeted when the coroutine starts -------------------------
async def test_latency_starts_when_the_coroutine_runs_not_when_it_is_created(
    langfuse: LangfuseIntegration, exporter: InMemorySpanExporter
) -> None:
    async def slow(prompt: str) -> str:
        await asyncio.sleep(0.05)
        return "done"

    llm = ObservableLLM(slow, model="gpt-4o", langfuse=langfuse)
    gate = asyncio.Semaphore(2)

    async def limited(coro: Awaitable[str]) -> str:
        async with gate:
            return await coro

    # All 12 coroutines are created first; at most two run at once (six rounds of 50 ms).
    await asyncio.gather(*(limited(llm(f"p{i}")) for i in range(12)))
    latencies = [
        (s.end_time - s.start_time) / 1e9  # type: ignore[operator]
        for s in generations(langfuse, exporter)
    ]
    assert len(latencies) == 12
    # Measured from creation, the median would be ~0.15 s and the slowest ~0.3 s.
    assert statistics.median(latencies) < 0.1, latencies
    assert max(latencies) < 0.1, latencies


async def test_a_block_budget_holds_for_coroutines_created_up_front(make: Factory) -> None:
    exporter = InMemorySpanExporter()
    personas = PersonaRegistry(
        [Persona(name="capped", tokenBudget=50, budgetPolicy="block")]  # type: ignore[call-arg]
    )
    langfuse = make(exporters={"memory": exporter}, personas=personas)

    async def call(prompt: str) -> dict[str, Any]:
        await asyncio.sleep(0)
        return {"text": "x", "usage": {"input": 5, "output": 5}}  # 10 tokens a call

    llm = ObservableLLM(call, model="gpt-4o", langfuse=langfuse, persona="capped")
    gate = asyncio.Semaphore(1)
    blocked = 0

    async def limited(coro: Awaitable[Any]) -> None:
        nonlocal blocked
        async with gate:
            try:
                await coro
            except BudgetExceededError:
                blocked += 1

    await asyncio.gather(*(limited(llm("p")) for _ in range(40)))
    assert langfuse.budgets.used("capped") == 50  # five calls, then the budget is spent
    assert blocked == 35


async def test_an_object_with_async_call_is_async(
    langfuse: LangfuseIntegration, exporter: InMemorySpanExporter
) -> None:
    class Client:
        async def __call__(self, prompt: str) -> str:
            await asyncio.sleep(0)
            return f"answer to {prompt}"

    llm = ObservableLLM(Client(), model="gpt-4o", langfuse=langfuse)
    assert llm.is_async
    assert await llm("q") == "answer to q"
    (span,) = generations(langfuse, exporter)
    assert attrs(span)[attr.OUTPUT] == "answer to q"


async def test_a_lambda_returning_a_coroutine_is_recorded_when_awaited(
    langfuse: LangfuseIntegration, exporter: InMemorySpanExporter
) -> None:
    async def real(prompt: str) -> str:
        await asyncio.sleep(0.05)
        return f"answer to {prompt}"

    llm = ObservableLLM(lambda prompt: real(prompt), model="gpt-4o", langfuse=langfuse)
    pending = llm("q")
    await asyncio.sleep(0.1)  # created, not yet awaited: not part of its latency
    started = time.monotonic()
    assert await pending == "answer to q"
    elapsed = time.monotonic() - started
    (span,) = generations(langfuse, exporter)
    values = attrs(span)
    assert values[attr.OUTPUT] == "answer to q"
    assert "coroutine" not in values[attr.OUTPUT]
    latency = (span.end_time - span.start_time) / 1e9  # type: ignore[operator]
    assert latency <= elapsed + 0.001


async def test_a_budget_spent_before_the_await_blocks_and_closes_the_coroutine(
    make: Factory,
) -> None:
    personas = PersonaRegistry(
        [Persona(name="capped", tokenBudget=10, budgetPolicy="block")]  # type: ignore[call-arg]
    )
    langfuse = make(exporters={"memory": InMemorySpanExporter()}, personas=personas)
    ran = False

    async def real(prompt: str) -> str:
        nonlocal ran
        ran = True
        return "x"

    llm = ObservableLLM(lambda prompt: real(prompt), model="gpt-4o", langfuse=langfuse)
    pending = llm("q", persona="capped")  # within budget when created
    langfuse.budgets.record("capped", 50)  # spent before it runs
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(BudgetExceededError):
            await pending
        del pending
        gc.collect()
    assert not ran
    assert not [w for w in caught if "never awaited" in str(w.message)]
