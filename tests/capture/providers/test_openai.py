"""The real ``openai`` SDK, instrumented, against a loopback server speaking OpenAI's wire format.

What reaches the sinks is asserted twice where it matters: on an in-memory exporter, and on the
wire of a loopback Langfuse OTLP endpoint. Every usage number asserted is one the fake server
sent.
"""

from __future__ import annotations

import gc
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import openai
import pytest
from prometheus_client import CollectorRegistry

from hypertool.instrumentation import BudgetExceededError, PersonaMetricsCollector
from hypertool.instrumentation.model.usage import usage_from_mapping
from hypertool.instrumentation.openai import instrument
from hypertool.instrumentation.store import StoreExporter, TraceStore
from support.fake_servers import (
    OPENAI_MODEL,
    OPENAI_USAGE,
    PIECES,
    WEATHER_TOOL,
    FakeProviderServer,
    Recorded,
    Sink,
    openai_completion,
    openai_error,
    openai_stream,
)

MESSAGES = [{"role": "user", "content": "What is the answer?"}]
# Langfuse's usage convention: `input`/`output` exclude the cached and reasoning buckets sent
# beside them (Langfuse sums every input* and output* key); `total` is OpenAI's total_tokens.
EXPECTED_USAGE = {
    "input": 1200 - 1024,
    "output": 340 - 64,
    "total": 1540,
    "input_cached_tokens": 1024,
    "output_reasoning_tokens": 64,
}
TEXT = "".join(PIECES)


def client_for(server: FakeProviderServer, sink: Sink, **kwargs: Any) -> openai.OpenAI:
    raw = openai.OpenAI(api_key="sk-test-key", base_url=server.openai_url, max_retries=0)
    return instrument(raw, langfuse=sink.integration, **kwargs)


def async_client_for(server: FakeProviderServer, sink: Sink, **kwargs: Any) -> openai.AsyncOpenAI:
    raw = openai.AsyncOpenAI(api_key="sk-test-key", base_url=server.openai_url, max_retries=0)
    return instrument(raw, langfuse=sink.integration, **kwargs)


def expected_cost(sink: Sink) -> dict[str, float]:
    usage = usage_from_mapping(OPENAI_USAGE)
    assert usage is not None
    cost = sink.integration.prices.cost(OPENAI_MODEL, usage)
    assert cost is not None
    return cost.as_langfuse()


def assert_exact(generation: Recorded, sink: Sink, *, persona: str) -> None:
    attributes = generation.attributes
    assert generation.name == "openai.chat.completions"
    assert attributes["user.id"] == persona
    assert attributes["hypertool.persona"] == persona
    assert attributes["langfuse.observation.model.name"] == OPENAI_MODEL
    assert attributes["gen_ai.request.model"] == "gpt-4o"
    assert attributes["gen_ai.system"] == "openai"
    assert generation.usage == EXPECTED_USAGE
    assert attributes["hypertool.usage.estimated"] is False
    assert generation.cost == pytest.approx(expected_cost(sink))
    assert not generation.error


def completion_start_ns(generation: Recorded) -> int:
    raw = generation.attributes["langfuse.observation.completion_start_time"]
    moment = datetime.fromisoformat(json.loads(raw).replace("Z", "+00:00"))
    return int(moment.timestamp() * 1_000_000) * 1000


# -- plain calls -----------------------------------------------------------------------------
def test_create_records_model_parameters_messages_output_exact_usage_and_cost(
    server: FakeProviderServer, sink: Sink
) -> None:
    client = client_for(server, sink, persona="frontend-engineer")
    response = client.chat.completions.create(
        model="gpt-4o",
        messages=MESSAGES,
        temperature=0.2,
        max_tokens=50,
        top_p=0.9,
        hypertool_persona="Backend Engineer",
        hypertool_chatmode="feature-implementation",
    )

    assert type(response).__name__ == "ChatCompletion"
    assert response.choices[0].message.content == TEXT
    assert response.usage is not None and response.usage.prompt_tokens == 1200
    sent = server.requests[-1].body
    assert not any(key.startswith("hypertool") for key in sent), sent
    assert "stream_options" not in sent

    (generation,) = sink.generations(1)
    assert_exact(generation, sink, persona="backend-engineer")
    attributes = generation.attributes
    assert attributes["hypertool.chatmode"] == "feature-implementation"
    assert json.loads(attributes["langfuse.observation.model.parameters"]) == {
        "temperature": 0.2,
        "max_tokens": 50,
        "top_p": 0.9,
    }
    assert json.loads(attributes["langfuse.observation.input"]) == MESSAGES
    assert attributes["langfuse.observation.output"] == TEXT
    assert attributes["hypertool.stream"] is False
    assert attributes["gen_ai.response.id"] == "chatcmpl-fake-1"
    assert "langfuse.observation.completion_start_time" not in attributes
    assert not generation.parent_span_id  # outside any trace: the root of its own


async def test_async_create_records_the_same(server: FakeProviderServer, memory: Sink) -> None:
    client = async_client_for(server, memory, persona="data-scientist")
    response = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert response.choices[0].message.content == TEXT
    (generation,) = memory.generations(1)
    assert_exact(generation, memory, persona="data-scientist")


def test_messages_appended_after_the_call_are_not_recorded(
    server: FakeProviderServer, memory: Sink
) -> None:
    client = client_for(server, memory)
    messages = list(MESSAGES)
    client.chat.completions.create(model="gpt-4o", messages=messages)
    messages.append({"role": "assistant", "content": "later"})
    (generation,) = memory.generations(1)
    assert json.loads(generation.attributes["langfuse.observation.input"]) == MESSAGES


def test_tool_calls_are_in_the_output(server: FakeProviderServer, memory: Sink) -> None:
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]
    client = client_for(server, memory)
    server.enqueue(openai_completion(None, tool=WEATHER_TOOL), openai_stream((), tool=WEATHER_TOOL))

    response = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, tools=tools)
    assert response.choices[0].message.tool_calls is not None
    streamed = client.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, tools=tools, stream=True
    )
    for _ in streamed:
        pass

    for generation in memory.generations(2):
        output = json.loads(generation.attributes["langfuse.observation.output"])
        (call,) = output["tool_calls"]
        assert call["function"]["name"] == "get_weather"
        assert json.loads(call["function"]["arguments"]) == WEATHER_TOOL["arguments"]
        assert json.loads(generation.attributes["langfuse.observation.input"])["tools"] == tools
        assert generation.attributes["gen_ai.response.finish_reasons"] == ["tool_calls"]
        assert generation.usage == EXPECTED_USAGE


@pytest.mark.parametrize(
    ("status", "error_class", "message"),
    [
        (429, openai.RateLimitError, "Rate limit reached for gpt-4o in organization org-x"),
        (500, openai.InternalServerError, "The server had an error processing your request"),
    ],
)
def test_errors_are_recorded_with_status_code_and_re_raised_unchanged(
    server: FakeProviderServer,
    sink: Sink,
    status: int,
    error_class: type[openai.APIStatusError],
    message: str,
) -> None:
    client = client_for(server, sink, persona="devops-engineer")
    server.enqueue(openai_error(status, message))
    with pytest.raises(openai.APIStatusError) as raised:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert type(raised.value) is error_class
    assert raised.value.status_code == status

    (generation,) = sink.generations(1)
    attributes = generation.attributes
    assert generation.error
    assert attributes["langfuse.observation.level"] == "ERROR"
    assert str(status) in attributes["langfuse.observation.status_message"]
    assert message in attributes["langfuse.observation.status_message"]
    assert attributes["http.response.status_code"] == status
    assert attributes["error.type"] == error_class.__name__
    assert attributes["user.id"] == "devops-engineer"
    # The provider reported nothing: no usage, cost or empty output is sent (as langfuse's SDK).
    assert "langfuse.observation.usage_details" not in attributes
    assert "langfuse.observation.cost_details" not in attributes
    assert "langfuse.observation.output" not in attributes
    assert attributes["hypertool.usage.input_tokens"] == 0
    assert attributes["hypertool.usage.output_tokens"] == 0


# -- streams ---------------------------------------------------------------------------------
def test_stream_yields_the_same_chunks_and_records_ttft_output_and_final_usage(
    server: FakeProviderServer, sink: Sink
) -> None:
    client = client_for(server, sink, persona="backend-engineer")
    server.enqueue(openai_stream(delay_s=0.01))
    stream = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    assert isinstance(stream, openai.Stream)
    chunks = list(stream)

    # The usage-only chunk we asked for is not shown: the caller sees what it would have seen.
    assert len(chunks) == len(PIECES) + 2
    assert all(chunk.choices for chunk in chunks)
    assert "".join(chunk.choices[0].delta.content or "" for chunk in chunks) == TEXT
    assert server.requests[-1].body["stream_options"] == {"include_usage": True}

    (generation,) = sink.generations(1)
    assert_exact(generation, sink, persona="backend-engineer")
    attributes = generation.attributes
    assert attributes["langfuse.observation.output"] == TEXT
    assert attributes["hypertool.stream"] is True
    assert "hypertool.stream.abandoned" not in attributes
    first_token = completion_start_ns(generation)
    # Two events (20 ms) arrive before the first text: time to first token is not zero.
    assert generation.start_ns + 15_000_000 <= first_token <= generation.end_ns


async def test_async_stream_with_async_with(server: FakeProviderServer, memory: Sink) -> None:
    client = async_client_for(server, memory, persona="backend-engineer")
    stream = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    assert isinstance(stream, openai.AsyncStream)
    texts = []
    async with stream:
        async for chunk in stream:
            texts.append(chunk.choices[0].delta.content or "")
    assert "".join(texts) == TEXT

    (generation,) = memory.generations(1)
    assert_exact(generation, memory, persona="backend-engineer")
    assert generation.attributes["langfuse.observation.output"] == TEXT
    assert generation.start_ns <= completion_start_ns(generation) <= generation.end_ns


def test_callers_stream_options_are_respected(server: FakeProviderServer, memory: Sink) -> None:
    client = client_for(server, memory)
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[-1].choices == [] and chunks[-1].usage is not None  # asked for: shown

    unasked = client.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, stream=True, stream_options=None
    )
    list(unasked)
    assert not (server.requests[-1].body.get("stream_options") or {}).get("include_usage")

    exact, estimated = memory.generations(2)
    assert exact.usage == EXPECTED_USAGE
    assert estimated.attributes["hypertool.usage.estimated"] is True
    assert "langfuse.observation.usage_details" not in estimated.attributes
    assert estimated.attributes["hypertool.usage.output_tokens"] > 0


def test_stream_helper_is_recorded(server: FakeProviderServer, memory: Sink) -> None:
    client = client_for(server, memory, persona="backend-engineer")
    with client.chat.completions.stream(model="gpt-4o", messages=MESSAGES) as stream:
        for _ in stream:
            pass
        final = stream.get_final_completion()
    assert final.choices[0].message.content == TEXT
    (generation,) = memory.generations(1)
    assert_exact(generation, memory, persona="backend-engineer")


def test_parse_is_recorded(server: FakeProviderServer, memory: Sink) -> None:
    client = client_for(server, memory, persona="backend-engineer")
    parsed = client.chat.completions.parse(model="gpt-4o", messages=MESSAGES)
    assert parsed.choices[0].message.content == TEXT
    (generation,) = memory.generations(1)
    assert_exact(generation, memory, persona="backend-engineer")


@pytest.mark.parametrize("how", ["close", "break", "with"])
def test_stream_closed_early_is_recorded_as_abandoned(
    server: FakeProviderServer, sink: Sink, how: str
) -> None:
    client = client_for(server, sink, persona="backend-engineer")
    server.enqueue(openai_stream(tuple(f"w{i} " for i in range(40)), delay_s=0.002))
    stream = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    if how == "close":
        next(stream), next(stream), next(stream)
        stream.close()
    elif how == "break":
        for index, _ in enumerate(stream):
            if index == 2:
                break
        del stream
        gc.collect()
    else:
        with stream:
            next(stream), next(stream), next(stream)

    (generation,) = sink.generations(1)
    attributes = generation.attributes
    assert attributes["hypertool.stream.abandoned"] is True
    assert attributes["langfuse.observation.level"] == "WARNING"
    assert "before its end" in attributes["langfuse.observation.status_message"]
    assert attributes["langfuse.observation.output"] == "w0 w1 "
    # No final chunk was read: tokens are estimated, say so, and are not sent as usage.
    assert attributes["hypertool.usage.estimated"] is True
    assert "langfuse.observation.usage_details" not in attributes
    assert "langfuse.observation.cost_details" not in attributes
    assert not generation.error


async def test_async_stream_closed_early_is_recorded_as_abandoned(
    server: FakeProviderServer, memory: Sink
) -> None:
    client = async_client_for(server, memory, persona="backend-engineer")
    server.enqueue(openai_stream(tuple(f"w{i} " for i in range(40)), delay_s=0.002))
    stream = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    await stream.__anext__()
    await stream.__anext__()
    await stream.close()
    (generation,) = memory.generations(1)
    assert generation.attributes["hypertool.stream.abandoned"] is True
    assert generation.attributes["langfuse.observation.output"] == "w0 "


def test_a_spent_budget_under_policy_block_stops_the_call_before_the_request(
    server: FakeProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HYPERTOOL_BUDGET_POLICY", "block")
    sink = Sink("memory")
    try:
        client = client_for(server, sink, persona="backend-engineer")  # 5,000 tokens
        for _ in range(4):  # 4 x 1,540 tokens, as the server reports
            client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        with pytest.raises(BudgetExceededError):
            client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        assert len(server.requests) == 4
    finally:
        sink.close()


# -- persona, chatmode and parent from the enclosing trace or stage ---------------------------
def test_persona_and_chatmode_come_from_call_then_stage_then_default_then_trace(
    server: FakeProviderServer, memory: Sink
) -> None:
    langfuse = memory.integration
    client = client_for(server, memory, persona="frontend-engineer", chatmode="debugging")
    client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    with langfuse.start_trace("release", persona="backend-engineer", chatmode="package-release"):
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        with langfuse.start_trace("nested-check", persona="devops-engineer") as inner:
            inner_id = inner.trace_id
            with langfuse.start_span(inner, "qa", persona="testing-specialist") as stage:
                client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
                client.chat.completions.create(
                    model="gpt-4o", messages=MESSAGES, hypertool_persona="data-scientist"
                )

    default, in_trace, in_stage, per_call = memory.generations(4)
    assert (default.attributes["hypertool.persona"], default.attributes["hypertool.chatmode"]) == (
        "frontend-engineer",
        "debugging",
    )
    assert default.attributes["user.id"] == "frontend-engineer"  # a trace of its own
    assert not default.parent_span_id
    # The client's own default is more specific than the trace's persona (one precedence for
    # every instrumented call: capture/resolution.py).
    assert in_trace.attributes["hypertool.persona"] == "frontend-engineer"
    assert in_trace.attributes["hypertool.chatmode"] == "debugging"
    assert in_trace.parent_span_id  # a child of the trace's root span
    assert in_stage.attributes["hypertool.persona"] == "testing-specialist"
    assert in_stage.parent_span_id == stage.span_id
    assert in_stage.attributes["hypertool.chatmode"] == "debugging"
    assert per_call.attributes["hypertool.persona"] == "data-scientist"
    assert per_call.parent_span_id == stage.span_id
    # Langfuse's user is the persona owning the (Langfuse) trace the call is in: one per trace.
    assert in_trace.attributes["user.id"] == "backend-engineer"
    assert in_stage.attributes["user.id"] == per_call.attributes["user.id"] == "testing-specialist"
    assert inner_id


# -- metrics, store, and the wire together ---------------------------------------------------
def test_metrics_get_the_servers_token_counts(server: FakeProviderServer, memory: Sink) -> None:
    registry = CollectorRegistry()
    PersonaMetricsCollector(registry=registry).attach(memory.integration)
    client = client_for(server, memory, persona="backend-engineer", chatmode="debugging")
    list(client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
    client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    memory.generations(2)

    labels = {"persona": "backend-engineer", "chatmode": "debugging", "model": OPENAI_MODEL}
    assert registry.get_sample_value("hypertool_persona_tokens_used_total", labels) == 2 * 1540
    cost = registry.get_sample_value("hypertool_llm_cost_usd_total", labels)
    assert cost == pytest.approx(2 * expected_cost(memory)["total"])


def test_streamed_completion_reaches_langfuse_the_store_and_the_metrics(
    server: FakeProviderServer, tmp_path: Path
) -> None:
    store_path = tmp_path / "traces.db"
    sink = Sink("wire", exporters={"store": StoreExporter(store_path)})
    try:
        registry = CollectorRegistry()
        PersonaMetricsCollector(registry=registry).attach(sink.integration)
        client = client_for(server, sink)
        server.enqueue(openai_stream(delay_s=0.005))
        stream = client.chat.completions.create(
            model="gpt-4o", messages=MESSAGES, stream=True, hypertool_persona="backend-engineer"
        )
        assert "".join(c.choices[0].delta.content or "" for c in stream) == TEXT

        (generation,) = sink.generations(1)
        assert_exact(generation, sink, persona="backend-engineer")
        assert generation.start_ns < completion_start_ns(generation) <= generation.end_ns

        with TraceStore(store_path) as store:
            (row,) = [r for r in store.report(by="persona") if r["group"] == "backend-engineer"]
        assert (row["input_tokens"], row["output_tokens"]) == (1200, 340)
        assert row["cost_usd"] == pytest.approx(expected_cost(sink)["total"])

        labels = {"persona": "backend-engineer", "chatmode": "", "model": OPENAI_MODEL}
        assert registry.get_sample_value("hypertool_persona_tokens_used_total", labels) == 1540
    finally:
        sink.close()


# -- setup -----------------------------------------------------------------------------------
def test_missing_sdk_names_the_pip_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "openai", None)
    with pytest.raises(ImportError) as raised:
        instrument(object())
    assert "pip install 'hypertool-instrumentation[openai]'" in str(raised.value)


def test_instrument_returns_the_same_client_and_is_idempotent(
    server: FakeProviderServer, memory: Sink
) -> None:
    raw = openai.OpenAI(api_key="sk-test-key", base_url=server.openai_url, max_retries=0)
    assert instrument(raw, langfuse=memory.integration) is raw
    assert instrument(raw, langfuse=memory.integration, persona="data-scientist") is raw
    raw.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    (generation,) = memory.generations(1)
    assert generation.attributes["user.id"] == "data-scientist"
    assert len(memory.exporter.get_finished_spans()) == 1  # type: ignore[union-attr]
    untouched = openai.OpenAI(api_key="sk-test-key", base_url=server.openai_url)
    assert "create" not in vars(untouched.chat.completions)


def test_a_client_of_another_kind_is_refused() -> None:
    with pytest.raises(TypeError, match=r"openai\.OpenAI"):
        instrument(object())
