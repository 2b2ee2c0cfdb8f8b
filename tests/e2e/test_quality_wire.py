"""End to end: prompt links on generations through every front door, scores as langfuse 5.0.4
sends them, and the release workflow's prompts and quality gates reaching a loopback Langfuse
and the store.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from hypertool.instrumentation import (
    LangfuseIntegration,
    ObservableLLM,
    last_generation,
    observe_llm,
)
from hypertool.instrumentation.anthropic import instrument as instrument_anthropic
from hypertool.instrumentation.model.prompts import ManagedPrompt
from hypertool.instrumentation.openai import instrument as instrument_openai
from hypertool.instrumentation.store import TraceStore
from hypertool.instrumentation.test_instrumented_workflow import (
    release_stages,
    run_release_workflow,
)
from support.fake_servers import FakeProviderServer
from support.loopback import LoopbackOTLP, ReceivedRequest, SpanRecord

PROMPT_NAME = "langfuse.observation.prompt.name"
PROMPT_VERSION = "langfuse.observation.prompt.version"
SCORES = "/api/public/scores"
PROMPTS = "/api/public/v2/prompts/"


@pytest.fixture
def receiver() -> Iterator[LoopbackOTLP]:
    with LoopbackOTLP() as loopback:
        loopback.route("POST", SCORES, lambda request: (202, {"message": "Accepted"}))
        yield loopback


@pytest.fixture
def store_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "traces.db"
    monkeypatch.setenv("HYPERTOOL_STORE", str(path))
    return path


@pytest.fixture
def langfuse(receiver: LoopbackOTLP, store_path: Path) -> Iterator[LangfuseIntegration]:
    token = uuid.uuid4().hex[:8]
    integration = LangfuseIntegration(f"pk-lf-{token}", f"sk-lf-{token}", host=receiver.url)
    yield integration
    integration.shutdown(0)


def generations(receiver: LoopbackOTLP, n: int) -> list[SpanRecord]:
    spans = receiver.wait_for_spans(
        n, where=lambda s: s.attributes.get("langfuse.observation.type") == "generation"
    )
    return sorted(spans, key=lambda s: s.start_ns)


def scores(receiver: LoopbackOTLP) -> list[dict[str, Any]]:
    return [item for body in receiver.json_requests(SCORES) for item in body]


MANAGED = ManagedPrompt("support/answer", 4, "text", "Answer {{q}}")
CHAT = ManagedPrompt(
    "support/chat",
    2,
    "chat",
    ({"role": "system", "content": "Be brief"}, {"role": "user", "content": "{{q}}"}),
)


async def test_every_front_door_links_generations_to_the_prompt_version(
    receiver: LoopbackOTLP, langfuse: LangfuseIntegration, store_path: Path
) -> None:
    async def answer(prompt: Any) -> str:
        return "42"

    observable = ObservableLLM(answer, model="gpt-4", langfuse=langfuse, name="observable")

    @observe_llm(model="gpt-4", langfuse=langfuse, name="decorated")
    def decorated(prompt: Any) -> str:
        return "42"

    await observable(MANAGED.compile(q="one"))
    decorated(MANAGED.compile(q="two"))
    trace = langfuse.start_trace("explicit", "backend-engineer")
    langfuse.create_generation(trace, "explicit", "gpt-4", MANAGED.compile(q="three"), "42")
    langfuse.end_trace(trace)
    with CHAT.linked():
        await observable("a plain string, linked by the block")
    await observable([{"role": "user", "content": MANAGED.compile(q="inside a message")}])
    fallback = ManagedPrompt("support/answer", 0, "text", "Answer {{q}}", source="fallback")
    await observable(fallback.compile(q="never linked"))
    await observable("not from a managed prompt")
    assert langfuse.flush(timeout=10)
    links = [
        (s.name, s.attributes.get(PROMPT_NAME), s.attributes.get(PROMPT_VERSION))
        for s in generations(receiver, 7)
    ]
    assert links == [
        ("observable", "support/answer", 4),
        ("decorated", "support/answer", 4),
        ("explicit", "support/answer", 4),
        ("observable", "support/chat", 2),
        ("observable", "support/answer", 4),
        ("observable", None, None),
        ("observable", None, None),
    ]
    # Langfuse links generations only: the trace's span carries no prompt.
    assert not [
        s
        for s in receiver.spans()
        if s.name == "explicit" and s.is_root and PROMPT_NAME in s.attributes
    ]
    # The store keeps both.
    with TraceStore(store_path, create=False) as store:
        stored = store.generations(limit=20)
    assert sorted(
        (row["prompt_name"], row["prompt_version"]) for row in stored if row["prompt_name"]
    ) == [("support/answer", 4)] * 4 + [("support/chat", 2)]


def test_provider_clients_link_their_generations(
    receiver: LoopbackOTLP, langfuse: LangfuseIntegration
) -> None:
    with FakeProviderServer() as server:
        gpt = instrument_openai(
            openai.OpenAI(api_key="sk-test", base_url=server.openai_url, max_retries=0),
            langfuse=langfuse,
        )
        claude = instrument_anthropic(
            anthropic.Anthropic(api_key="sk-ant-test", base_url=server.url, max_retries=0),
            langfuse=langfuse,
        )
        messages = CHAT.compile(q="What is 6 x 7?")
        response = gpt.chat.completions.create(model="gpt-4o", messages=messages)
        assert response.choices[0].message.content  # the SDK's own object, unchanged
        sent = server.requests[-1].body["messages"]
        assert sent == [
            {"role": "system", "content": "Be brief"},
            {"role": "user", "content": "What is 6 x 7?"},
        ]
        claude.messages.create(
            model="claude-sonnet-4-0",
            max_tokens=64,
            system=MANAGED.compile(q="the system prompt"),
            messages=[{"role": "user", "content": "hi"}],
        )
    assert langfuse.flush(timeout=10)
    links = [
        (s.attributes.get(PROMPT_NAME), s.attributes.get(PROMPT_VERSION))
        for s in generations(receiver, 2)
    ]
    assert links == [("support/chat", 2), ("support/answer", 4)]


async def test_last_generation_scores_what_the_call_just_made(
    receiver: LoopbackOTLP, langfuse: LangfuseIntegration
) -> None:
    async def answer(prompt: str) -> dict[str, Any]:
        return {"text": "fine", "usage": {"input": 3, "output": 1}}

    observable = ObservableLLM(answer, model="gpt-4", langfuse=langfuse, persona="backend-engineer")
    result = await observable("How are you?", chatmode="debugging")
    assert result == {"text": "fine", "usage": {"input": 3, "output": 1}}  # unchanged
    score_id = langfuse.score(last_generation(), "relevance", 0.9, comment="on point")
    assert langfuse.flush(timeout=10)
    [generation] = generations(receiver, 1)
    [item] = scores(receiver)
    assert item["id"] == score_id
    assert item["traceId"] == generation.trace_id
    assert item["observationId"] == generation.span_id
    assert (item["name"], item["value"], item["dataType"]) == ("relevance", 0.9, "NUMERIC")


def test_our_score_items_have_the_fields_and_types_langfuses_sdk_sends(
    receiver: LoopbackOTLP, langfuse: LangfuseIntegration
) -> None:
    from langfuse import Langfuse

    trace_id, observation_id = "0123456789abcdef0123456789abcdef", "0123456789abcdef"
    calls: list[dict[str, Any]] = [
        {
            "name": "gate",
            "value": True,
            "data_type": "BOOLEAN",
            "comment": "ok",
            "metadata": {"a": 1},
        },
        {"name": "tone", "value": "friendly", "data_type": "CATEGORICAL", "config_id": "cfg"},
        {"name": "rating", "value": 4, "data_type": "NUMERIC"},
        {"name": "note", "value": "free text", "data_type": "TEXT"},
    ]
    token = uuid.uuid4().hex[:8]
    sdk = Langfuse(
        public_key=f"pk-lf-sdk-{token}", secret_key=f"sk-lf-sdk-{token}", host=receiver.url
    )
    try:
        for call in calls:
            sdk.create_score(trace_id=trace_id, observation_id=observation_id, **call)
        sdk.flush()
    finally:
        sdk.shutdown()
    theirs = scores(receiver)
    receiver.clear()
    for call in calls:
        langfuse.score(trace_id, observation_id=observation_id, **call)
    assert langfuse.flush(timeout=10)
    ours = scores(receiver)
    assert len(ours) == len(theirs) == len(calls)
    for mine, sdks in zip(ours, theirs, strict=True):
        assert set(mine) == set(sdks)
        for key in (
            "traceId",
            "observationId",
            "name",
            "value",
            "dataType",
            "comment",
            "metadata",
            "configId",
        ):
            assert mine.get(key) == sdks.get(key)
            assert type(mine.get(key)) is type(sdks.get(key))
        assert len(mine["id"]) == len(sdks["id"]) == 16
        assert mine["timestamp"].endswith("Z") and sdks["timestamp"].endswith("Z")


def _prompt_answers(version: int) -> Any:
    stages = {stage.prompt_name: stage.template for stage in release_stages("1.2.0")}

    def answer(request: ReceivedRequest) -> tuple[int, Any]:
        from urllib.parse import unquote, urlsplit

        name = unquote(urlsplit(request.path).path.removeprefix(PROMPTS))
        return 200, {
            "name": name,
            "version": version,
            "type": "text",
            "prompt": stages[name],
            "config": {},
            "labels": ["production"],
            "tags": [],
        }

    return answer


@pytest.mark.parametrize("served_by_langfuse", [True, False])
async def test_release_workflow_sends_prompt_links_and_quality_gates(
    receiver: LoopbackOTLP,
    langfuse: LangfuseIntegration,
    store_path: Path,
    served_by_langfuse: bool,
) -> None:
    if served_by_langfuse:
        receiver.route("GET", PROMPTS, _prompt_answers(12))
    else:  # not pushed yet: the copies shipped with the package answer
        receiver.route("GET", PROMPTS, lambda request: (404, {"message": "Prompt not found"}))
    lines: list[str] = []
    result = await run_release_workflow(langfuse, out=lines.append, provoke_failure=False)
    assert langfuse.flush(timeout=10)
    expected_version = 12 if served_by_langfuse else 1
    stages = release_stages("1.2.0")
    wire = generations(receiver, 3)
    assert [(g.attributes[PROMPT_NAME], g.attributes[PROMPT_VERSION]) for g in wire] == [
        (stage.prompt_name, expected_version) for stage in stages
    ]
    stage_spans = {s.name: s for s in receiver.spans() if s.name in {st.key for st in stages}}
    gates = [item for item in scores(receiver) if item["name"] == "quality_gate"]
    assert sorted((g["observationId"], g["value"], g["dataType"]) for g in gates) == sorted(
        (stage_spans[stage.key].span_id, 1.0, "BOOLEAN") for stage in stages
    )
    # Each stage is a Langfuse trace of its own: its gate goes to that trace, as Langfuse got it.
    by_span = {s.span_id: s for s in receiver.spans()}
    assert all(g["traceId"] == by_span[g["observationId"]].trace_id for g in gates)
    assert result.trace_id not in {g["traceId"] for g in gates}
    on_topic = [item for item in scores(receiver) if item["name"] == "on_topic"]
    assert sorted(item["observationId"] for item in on_topic) == sorted(g.span_id for g in wire)
    assert all(item["traceId"] == by_span[item["observationId"]].trace_id for item in on_topic)
    # The same scores, with their personas, in the store.
    with TraceStore(store_path, create=False) as store:
        stored = store.scores(name="quality_gate")
    assert sorted((row["persona"], row["value"]) for row in stored) == sorted(
        (stage.persona, True) for stage in stages
    )
    assert json.loads(json.dumps(lines))  # printable
