"""The real ``anthropic`` SDK, instrumented, against a loopback server speaking Anthropic's wire
format: ``messages.create`` (plain and ``stream=True``) and the ``messages.stream()`` helper,
sync and async. Every usage number asserted is one the fake server sent.
"""

from __future__ import annotations

import gc
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import anthropic
import pytest
from prometheus_client import CollectorRegistry

from hypertool.instrumentation import PersonaMetricsCollector
from hypertool.instrumentation.anthropic import instrument
from hypertool.instrumentation.model.usage import usage_from_mapping
from hypertool.instrumentation.store import StoreExporter, TraceStore
from support.fake_servers import (
    ANTHROPIC_MODEL,
    ANTHROPIC_USAGE,
    PIECES,
    WEATHER_TOOL,
    FakeProviderServer,
    Recorded,
    Reply,
    Sink,
    anthropic_error,
    anthropic_message,
    anthropic_stream,
)

MODEL = "claude-sonnet-4-0"
MESSAGES = [{"role": "user", "content": "What is the answer?"}]
SYSTEM = "You answer briefly."
# Anthropic counts cache reads and writes outside input_tokens, as Langfuse's usage convention
# does: `input` is the uncached part, the buckets sit beside it, `total` is every token once.
EXPECTED_USAGE = {
    "input": 95,
    "output": 503,
    "total": 95 + 1800 + 248 + 503,
    "input_cache_read": 1800,
    "input_cache_creation": 248,
}
ALL_INPUT = 95 + 1800 + 248  # what the store, budgets and metrics count as input
TEXT = "".join(PIECES)


def client_for(server: FakeProviderServer, sink: Sink, **kwargs: Any) -> anthropic.Anthropic:
    raw = anthropic.Anthropic(api_key="sk-ant-test", base_url=server.url, max_retries=0)
    return instrument(raw, langfuse=sink.integration, **kwargs)


def async_client_for(
    server: FakeProviderServer, sink: Sink, **kwargs: Any
) -> anthropic.AsyncAnthropic:
    raw = anthropic.AsyncAnthropic(api_key="sk-ant-test", base_url=server.url, max_retries=0)
    return instrument(raw, langfuse=sink.integration, **kwargs)


def expected_cost(sink: Sink) -> dict[str, float]:
    usage = usage_from_mapping(ANTHROPIC_USAGE)
    assert usage is not None
    cost = sink.integration.prices.cost(ANTHROPIC_MODEL, usage)
    assert cost is not None
    return cost.as_langfuse()


def assert_exact(generation: Recorded, sink: Sink, *, persona: str) -> None:
    attributes = generation.attributes
    assert generation.name == "anthropic.messages"
    assert attributes["user.id"] == persona
    assert attributes["langfuse.observation.model.name"] == ANTHROPIC_MODEL
    assert attributes["gen_ai.request.model"] == MODEL
    assert attributes["gen_ai.system"] == "anthropic"
    assert generation.usage == EXPECTED_USAGE
    assert attributes["hypertool.usage.estimated"] is False
    assert generation.cost == pytest.approx(expected_cost(sink))
    assert not generation.error


def completion_start_ns(generation: Recorded) -> int:
    raw = generation.attributes["langfuse.observation.completion_start_time"]
    moment = datetime.fromisoformat(json.loads(raw).replace("Z", "+00:00"))
    return int(moment.timestamp() * 1_000_000) * 1000


def assert_streamed(generation: Recorded, sink: Sink, *, persona: str) -> None:
    assert_exact(generation, sink, persona=persona)
    attributes = generation.attributes
    assert attributes["langfuse.observation.output"] == TEXT
    assert attributes["hypertool.stream"] is True
    assert "hypertool.stream.abandoned" not in attributes
    assert generation.start_ns <= completion_start_ns(generation) <= generation.end_ns


# -- plain calls -----------------------------------------------------------------------------
def test_create_records_parameters_system_and_messages_output_cache_usage_and_cost(
    server: FakeProviderServer, sink: Sink
) -> None:
    client = client_for(server, sink, persona="frontend-engineer")
    message = client.messages.create(
        model=MODEL,
        max_tokens=256,
        stop_sequences=["END"],
        system=SYSTEM,
        messages=MESSAGES,
        hypertool_persona="backend-engineer",
        hypertool_chatmode="debugging",
    )
    assert type(message).__name__ == "Message"
    assert message.content[0].text == TEXT  # type: ignore[union-attr]
    sent = server.requests[-1].body
    assert not any(key.startswith("hypertool") for key in sent), sent

    (generation,) = sink.generations(1)
    assert_exact(generation, sink, persona="backend-engineer")
    attributes = generation.attributes
    assert attributes["hypertool.chatmode"] == "debugging"
    assert json.loads(attributes["langfuse.observation.model.parameters"]) == {
        "max_tokens": 256,
        "stop_sequences": ["END"],
    }
    assert json.loads(attributes["langfuse.observation.input"]) == [
        {"role": "system", "content": SYSTEM},
        *MESSAGES,
    ]
    assert attributes["langfuse.observation.output"] == TEXT
    assert attributes["gen_ai.response.finish_reasons"] == ["end_turn"]
    assert "langfuse.observation.completion_start_time" not in attributes


async def test_async_create_records_the_same(server: FakeProviderServer, memory: Sink) -> None:
    client = async_client_for(server, memory, persona="data-scientist")
    message = await client.messages.create(model=MODEL, max_tokens=256, messages=MESSAGES)
    assert message.usage.cache_read_input_tokens == 1800
    (generation,) = memory.generations(1)
    assert_exact(generation, memory, persona="data-scientist")


def test_tool_use_is_in_the_output(server: FakeProviderServer, memory: Sink) -> None:
    tools = [{"name": "get_weather", "description": "Weather", "input_schema": {"type": "object"}}]
    client = client_for(server, memory)
    server.enqueue(anthropic_message(tool=WEATHER_TOOL), anthropic_stream(tool=WEATHER_TOOL))
    client.messages.create(model=MODEL, max_tokens=256, messages=MESSAGES, tools=tools)
    with client.messages.stream(
        model=MODEL, max_tokens=256, messages=MESSAGES, tools=tools
    ) as stream:
        final = stream.get_final_message()
    assert final.content[1].input == WEATHER_TOOL["arguments"]  # type: ignore[union-attr]

    for generation in memory.generations(2):
        output = json.loads(generation.attributes["langfuse.observation.output"])
        assert output["content"] == TEXT
        (call,) = output["tool_calls"]
        assert (call["name"], call["input"]) == ("get_weather", WEATHER_TOOL["arguments"])
        assert json.loads(generation.attributes["langfuse.observation.input"])["tools"] == tools
        assert generation.attributes["gen_ai.response.finish_reasons"] == ["tool_use"]
        assert generation.usage == EXPECTED_USAGE


@pytest.mark.parametrize(
    ("status", "error_class", "kind"),
    [
        (429, anthropic.RateLimitError, "rate_limit_error"),
        (500, anthropic.InternalServerError, "api_error"),
    ],
)
def test_errors_are_recorded_with_status_code_and_re_raised_unchanged(
    server: FakeProviderServer,
    sink: Sink,
    status: int,
    error_class: type[anthropic.APIStatusError],
    kind: str,
) -> None:
    client = client_for(server, sink, persona="devops-engineer")
    server.enqueue(anthropic_error(status, f"fake {kind} happened", kind))
    with pytest.raises(anthropic.APIStatusError) as raised:
        client.messages.create(model=MODEL, max_tokens=256, messages=MESSAGES)
    assert type(raised.value) is error_class
    assert raised.value.status_code == status

    (generation,) = sink.generations(1)
    attributes = generation.attributes
    assert generation.error
    assert attributes["langfuse.observation.level"] == "ERROR"
    assert str(status) in attributes["langfuse.observation.status_message"]
    assert f"fake {kind} happened" in attributes["langfuse.observation.status_message"]
    assert attributes["http.response.status_code"] == status
    assert attributes["user.id"] == "devops-engineer"


def test_stream_helper_error_on_enter_is_recorded(server: FakeProviderServer, memory: Sink) -> None:
    client = client_for(server, memory)
    server.enqueue(anthropic_error(429, "slow down", "rate_limit_error"))
    with (
        pytest.raises(anthropic.RateLimitError),
        client.messages.stream(model=MODEL, max_tokens=256, messages=MESSAGES),
    ):
        pass
    (generation,) = memory.generations(1)
    assert generation.attributes["http.response.status_code"] == 429


def test_error_event_in_the_middle_of_a_stream(server: FakeProviderServer, memory: Sink) -> None:
    reply = anthropic_stream()
    assert reply.events is not None
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    server.enqueue(Reply(events=[*reply.events[:5], ("error", json.dumps(error))]))
    client = client_for(server, memory)
    received = []
    with pytest.raises(anthropic.APIStatusError, match="Overloaded"):
        for event in client.messages.create(
            model=MODEL, max_tokens=256, messages=MESSAGES, stream=True
        ):
            received.append(event.type)
    assert received[-1] == "content_block_delta"

    (generation,) = memory.generations(1)
    attributes = generation.attributes
    assert generation.error
    assert "Overloaded" in attributes["langfuse.observation.status_message"]
    assert attributes["langfuse.observation.output"] == "".join(PIECES[:2])
    assert "hypertool.stream.abandoned" not in attributes


# -- streams ---------------------------------------------------------------------------------
def test_create_stream_yields_the_same_events_and_records_usage_and_ttft(
    server: FakeProviderServer, sink: Sink
) -> None:
    client = client_for(server, sink, persona="backend-engineer")
    server.enqueue(anthropic_stream(delay_s=0.01))
    stream = client.messages.create(model=MODEL, max_tokens=256, messages=MESSAGES, stream=True)
    assert isinstance(stream, anthropic.Stream)
    types = [event.type for event in stream]
    assert types[0] == "message_start" and types[-2:] == ["message_delta", "message_stop"]
    assert types.count("content_block_delta") == len(PIECES)

    (generation,) = sink.generations(1)
    assert_streamed(generation, sink, persona="backend-engineer")
    # message_start, content_block_start and ping (30 ms) come before the first text.
    assert completion_start_ns(generation) >= generation.start_ns + 25_000_000


def test_stream_helper_text_stream_and_final_message(
    server: FakeProviderServer, sink: Sink
) -> None:
    client = client_for(server, sink, persona="backend-engineer")
    with client.messages.stream(model=MODEL, max_tokens=256, messages=MESSAGES) as stream:
        assert "".join(stream.text_stream) == TEXT
        final = stream.get_final_message()
    assert final.usage.output_tokens == 503

    (generation,) = sink.generations(1)
    assert_streamed(generation, sink, persona="backend-engineer")


async def test_async_stream_helper(server: FakeProviderServer, memory: Sink) -> None:
    client = async_client_for(server, memory, persona="backend-engineer")
    async with client.messages.stream(model=MODEL, max_tokens=256, messages=MESSAGES) as stream:
        texts = [text async for text in stream.text_stream]
        final = await stream.get_final_message()
    assert "".join(texts) == TEXT
    assert final.usage.input_tokens == 95

    (generation,) = memory.generations(1)
    assert_streamed(generation, memory, persona="backend-engineer")


async def test_async_create_stream(server: FakeProviderServer, memory: Sink) -> None:
    client = async_client_for(server, memory, persona="backend-engineer")
    stream = await client.messages.create(
        model=MODEL, max_tokens=256, messages=MESSAGES, stream=True
    )
    assert isinstance(stream, anthropic.AsyncStream)
    types = [event.type async for event in stream]
    assert types[-1] == "message_stop"

    (generation,) = memory.generations(1)
    assert_streamed(generation, memory, persona="backend-engineer")


@pytest.mark.parametrize("how", ["helper-exit", "close", "break"])
def test_stream_closed_early_is_recorded_as_abandoned(
    server: FakeProviderServer, sink: Sink, how: str
) -> None:
    client = client_for(server, sink, persona="backend-engineer")
    server.enqueue(anthropic_stream(tuple(f"w{i} " for i in range(40)), delay_s=0.002))
    if how == "helper-exit":
        with client.messages.stream(model=MODEL, max_tokens=256, messages=MESSAGES) as helper:
            for index, _ in enumerate(helper.text_stream):
                if index == 1:
                    break
    else:
        stream = client.messages.create(model=MODEL, max_tokens=256, messages=MESSAGES, stream=True)
        for event in stream:
            if event.type == "content_block_delta" and event.delta.text == "w1 ":  # type: ignore[union-attr]
                break
        if how == "close":
            stream.close()
        else:
            del stream
            gc.collect()

    (generation,) = sink.generations(1)
    attributes = generation.attributes
    assert attributes["hypertool.stream.abandoned"] is True
    assert attributes["langfuse.observation.level"] == "WARNING"
    assert attributes["langfuse.observation.output"] == "w0 w1 "
    # Output tokens are estimated: the usage is marked so and kept for the store only, never
    # sent as usage or cost (Langfuse counts the tokens itself).
    assert attributes["hypertool.usage.estimated"] is True
    assert "langfuse.observation.usage_details" not in attributes
    assert "langfuse.observation.cost_details" not in attributes
    assert not any(key.startswith("gen_ai.usage.") for key in attributes)
    assert attributes["hypertool.usage.input_tokens"] == ALL_INPUT  # exact, from message_start
    assert attributes["hypertool.usage.output_tokens"] > 0
    assert not generation.error


def test_persona_from_the_enclosing_stage(server: FakeProviderServer, memory: Sink) -> None:
    langfuse = memory.integration
    client = client_for(server, memory, persona="frontend-engineer")
    trace = langfuse.start_trace("release", persona="backend-engineer", chatmode="package-release")
    with (
        trace,
        langfuse.start_span(trace, "qa", persona="testing-specialist") as stage,
        client.messages.stream(model=MODEL, max_tokens=256, messages=MESSAGES) as stream,
    ):
        stream.until_done()
    (generation,) = memory.generations(1)
    assert generation.attributes["user.id"] == "testing-specialist"
    assert generation.attributes["hypertool.chatmode"] == "package-release"
    assert generation.parent_span_id == stage.span_id


# -- metrics, store, and the wire together ---------------------------------------------------
def test_streamed_message_reaches_langfuse_the_store_and_the_metrics(
    server: FakeProviderServer, tmp_path: Path
) -> None:
    store_path = tmp_path / "traces.db"
    sink = Sink("wire", exporters={"store": StoreExporter(store_path)})
    try:
        registry = CollectorRegistry()
        PersonaMetricsCollector(registry=registry).attach(sink.integration)
        client = client_for(server, sink, chatmode="feature-implementation")
        server.enqueue(anthropic_stream(delay_s=0.005))
        with client.messages.stream(
            model=MODEL, max_tokens=256, messages=MESSAGES, hypertool_persona="backend-engineer"
        ) as stream:
            assert "".join(stream.text_stream) == TEXT

        (generation,) = sink.generations(1)
        assert_streamed(generation, sink, persona="backend-engineer")
        assert generation.start_ns < completion_start_ns(generation)

        with TraceStore(store_path) as store:
            (row,) = [r for r in store.report(by="persona") if r["group"] == "backend-engineer"]
        assert (row["input_tokens"], row["output_tokens"]) == (ALL_INPUT, 503)
        assert row["cost_usd"] == pytest.approx(expected_cost(sink)["total"])

        labels = {
            "persona": "backend-engineer",
            "chatmode": "feature-implementation",
            "model": ANTHROPIC_MODEL,
        }
        tokens = registry.get_sample_value("hypertool_persona_tokens_used_total", labels)
        assert tokens == EXPECTED_USAGE["total"]
        cost = registry.get_sample_value("hypertool_llm_cost_usd_total", labels)
        assert cost == pytest.approx(expected_cost(sink)["total"])
    finally:
        sink.close()


# -- setup -----------------------------------------------------------------------------------
def test_missing_sdk_names_the_pip_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "anthropic", None)
    with pytest.raises(ImportError) as raised:
        instrument(object())
    assert "pip install 'hypertool-instrumentation[anthropic]'" in str(raised.value)


def test_instrument_returns_the_same_client(server: FakeProviderServer, memory: Sink) -> None:
    raw = anthropic.Anthropic(api_key="sk-ant-test", base_url=server.url, max_retries=0)
    assert instrument(raw, langfuse=memory.integration) is raw
    assert instrument(raw, langfuse=memory.integration) is raw
    raw.messages.create(model=MODEL, max_tokens=256, messages=MESSAGES)
    memory.generations(1)
    assert len(memory.exporter.get_finished_spans()) == 1  # type: ignore[union-attr]
