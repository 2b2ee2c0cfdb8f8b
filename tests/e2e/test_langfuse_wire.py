"""End to end: the guide's snippets against a loopback Langfuse OTLP endpoint.

Every test starts a real HTTP receiver on 127.0.0.1 (``tests/loopback.py``), points the
integration at it as the Langfuse host, and decodes what actually arrives on the wire: path,
headers, gzip'd protobuf, span tree and Langfuse attributes. The real ``langfuse`` SDK is run
against the same receiver to check that we speak the same contract.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from langfuse._client.attributes import LangfuseOtelSpanAttributes

from hypertool.instrumentation import (
    LangfuseIntegration,
    ObservableLLM,
    WorkflowTracer,
    get_langfuse_integration,
    observe_llm,
)
from hypertool.instrumentation.store import StoreExporter, TraceStore
from hypertool.instrumentation.store.filters import Filters
from support.loopback import STATUS_ERROR, LoopbackOTLP, ReceivedRequest, SpanRecord

TRACES_PATH = "/api/public/otel/v1/traces"
LOGGER = "hypertool.instrumentation"

USER_ID = "user.id"
OBS_TYPE = "langfuse.observation.type"
MODEL = "langfuse.observation.model.name"
INPUT = "langfuse.observation.input"
OUTPUT = "langfuse.observation.output"
USAGE = "langfuse.observation.usage_details"
LEVEL = "langfuse.observation.level"
STATUS_MESSAGE = "langfuse.observation.status_message"
TRACE_NAME = "langfuse.trace.name"
TRACE_TAGS = "langfuse.trace.tags"
TRACE_METADATA = "langfuse.trace.metadata"
OBS_METADATA = "langfuse.observation.metadata"
SESSION_ID = "session.id"
COST = "langfuse.observation.cost_details"
ENVIRONMENT = "langfuse.environment"
RELEASE = "langfuse.release"
# Langfuse copies every attribute of a span whose scope does not start with "langfuse-sdk" into
# its metadata (OtelIngestionProcessor.ts: isLangfuseSDKSpans); the exact name "langfuse-sdk"
# also turns on a fix-up for old Python SDKs (ObservationTypeMapper.ts).
LANGFUSE_SCOPE = "langfuse-sdk.hypertool-instrumentation"


# -- helpers ---------------------------------------------------------------------------------
def unique_keys() -> tuple[str, str]:
    """A fresh key pair: langfuse reuses a client's settings per public key."""
    token = uuid.uuid4().hex[:12]
    return f"pk-lf-e2e-{token}", f"sk-lf-e2e-{token}"


def openai_response(content: str, prompt_tokens: int, completion_tokens: int) -> Any:
    """An object shaped like openai's ChatCompletion (attribute access, as the SDK returns)."""
    return SimpleNamespace(
        id="chatcmpl-loopback",
        object="chat.completion",
        model="gpt-4",
        choices=[
            SimpleNamespace(
                index=0,
                message=SimpleNamespace(role="assistant", content=content),
                finish_reason="stop",
            )
        ],
        usage=SimpleNamespace(
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            total_tokens=prompt_tokens + completion_tokens,
        ),
    )


def generations(spans: list[SpanRecord]) -> list[SpanRecord]:
    return sorted(
        (s for s in spans if s.attributes.get(OBS_TYPE) == "generation"),
        key=lambda s: s.start_ns,
    )


def by_name(spans: list[SpanRecord], name: str) -> SpanRecord:
    matches = [s for s in spans if s.name == name]
    assert len(matches) == 1, f"expected one span named {name!r}, got {[s.name for s in spans]}"
    return matches[0]


def usage_of(span: SpanRecord) -> dict[str, int]:
    raw = span.attributes[USAGE]
    assert isinstance(raw, str), f"usage_details must be a JSON string, got {raw!r}"
    usage = json.loads(raw)
    assert isinstance(usage, dict)
    return usage


def assert_langfuse_wire(request: ReceivedRequest, public_key: str, secret_key: str) -> None:
    """Path, auth, ingestion version and gzip'd protobuf, as Langfuse's endpoint expects."""
    assert request.method == "POST"
    assert request.path == TRACES_PATH
    auth = request.header("Authorization") or ""
    scheme, _, token = auth.partition(" ")
    assert scheme == "Basic"
    assert base64.b64decode(token).decode() == f"{public_key}:{secret_key}"
    assert request.header("x-langfuse-ingestion-version") == "4"
    assert request.header("Content-Encoding") == "gzip"
    assert request.body[:2] == b"\x1f\x8b", "body is not gzip"
    assert request.header("Content-Type") == "application/x-protobuf"
    assert request.export_request().resource_spans, "empty export request"


def assert_generation(
    span: SpanRecord,
    *,
    persona: str,
    model: str,
    prompt: str,
    completion: str,
    prompt_tokens: int,
    completion_tokens: int,
    user: str | None = None,
) -> None:
    """A generation as Langfuse gets it; ``user`` is its Langfuse trace's user (``persona``
    unless given).
    """
    attributes = span.attributes
    assert attributes[OBS_TYPE] == "generation"
    assert attributes[USER_ID] == (user or persona)
    assert attributes["hypertool.persona"] == persona
    assert attributes[f"{OBS_METADATA}.persona"] == persona
    assert attributes[MODEL] == model
    assert attributes[INPUT] == prompt
    assert attributes[OUTPUT] == completion
    usage = usage_of(span)
    assert usage["input"] == prompt_tokens
    assert usage["output"] == completion_tokens
    assert usage["total"] == prompt_tokens + completion_tokens
    assert attributes.get("hypertool.usage.estimated") is False
    assert LEVEL not in attributes
    assert span.status_code != STATUS_ERROR
    assert span.scope == LANGFUSE_SCOPE


def one_user_per_trace(spans: list[SpanRecord]) -> dict[str, str]:
    """Each Langfuse trace's one user (asserting every span of it carries the same)."""
    users: dict[str, set[str]] = {}
    for span in spans:
        users.setdefault(span.trace_id, set()).add(span.attributes[USER_ID])
    assert all(len(found) == 1 for found in users.values()), users
    return {trace_id: found.pop() for trace_id, found in users.items()}


def users_view(spans: list[SpanRecord]) -> tuple[dict[str, int], dict[str, int]]:
    """Tokens per user as Langfuse's two Users views sum them: under each observation's
    trace's user (repositories/traces.ts, getUserMetrics: the trace's user is its root span's
    ``user.id``) and under each observation's own ``user.id`` (repositories/events.ts); both
    count every ``input*`` and ``output*`` usage key.
    """
    roots = {s.trace_id: s.attributes[USER_ID] for s in spans if s.is_root}
    by_trace: dict[str, int] = {}
    by_observation: dict[str, int] = {}
    for span in generations(spans):
        if USAGE not in span.attributes:
            continue
        tokens = sum(v for k, v in usage_of(span).items() if "input" in k or "output" in k)
        user = roots[span.trace_id]
        by_trace[user] = by_trace.get(user, 0) + tokens
        own = span.attributes[USER_ID]
        by_observation[own] = by_observation.get(own, 0) + tokens
    return by_trace, by_observation


def hypertool_errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith(LOGGER) and r.levelno >= logging.ERROR]


# -- fixtures --------------------------------------------------------------------------------
@pytest.fixture
def receiver() -> Iterator[LoopbackOTLP]:
    with LoopbackOTLP() as server:
        yield server


@pytest.fixture
def make_integration() -> Iterator[Callable[..., LangfuseIntegration]]:
    """Build integrations that are shut down (without waiting) when the test ends."""
    made: list[LangfuseIntegration] = []

    def make(**kwargs: Any) -> LangfuseIntegration:
        integration = LangfuseIntegration(**kwargs)
        made.append(integration)
        return integration

    yield make
    for integration in made:
        integration.shutdown(0.0)


@pytest.fixture
def langfuse_env(
    receiver: LoopbackOTLP, monkeypatch: pytest.MonkeyPatch
) -> tuple[str, str, LoopbackOTLP]:
    """Step 3 of the guide: keys and host in the environment (host = the receiver)."""
    public_key, secret_key = unique_keys()
    monkeypatch.setenv("LANGFUSE_PUBLIC_KEY", public_key)
    monkeypatch.setenv("LANGFUSE_SECRET_KEY", secret_key)
    monkeypatch.setenv("LANGFUSE_HOST", receiver.url)
    return public_key, secret_key, receiver


# -- Quick start -----------------------------------------------------------------------------
async def test_step4_observable_llm_with_dotenv_keys(
    receiver: LoopbackOTLP, tmp_path: Path
) -> None:
    """Steps 3 and 4: keys in a .env file, get_langfuse_integration(), ObservableLLM."""
    public_key, secret_key = unique_keys()
    (tmp_path / ".env").write_text(
        f'LANGFUSE_PUBLIC_KEY="{public_key}"\n'
        f'LANGFUSE_SECRET_KEY="{secret_key}"\n'
        f'LANGFUSE_HOST="{receiver.url}"  # Or your self-hosted URL\n'
    )
    langfuse = get_langfuse_integration()
    assert langfuse.enabled
    assert langfuse.host == receiver.url

    async def my_llm_call(prompt: str) -> Any:
        return openai_response(f"API for: {prompt}", prompt_tokens=37, completion_tokens=412)

    observable_llm = ObservableLLM(llm_function=my_llm_call, model="gpt-4", langfuse=langfuse)
    response = await observable_llm(
        "Design a REST API for user profiles",
        persona="backend-engineer",
        chatmode="feature-implementation",
    )
    assert response.choices[0].message.content == "API for: Design a REST API for user profiles"
    assert langfuse.flush(timeout=5)

    spans = receiver.wait_for_spans(1, timeout=5)
    assert len(spans) == 1
    (generation,) = spans
    assert_generation(
        generation,
        persona="backend-engineer",
        model="gpt-4",
        prompt="Design a REST API for user profiles",
        completion="API for: Design a REST API for user profiles",
        prompt_tokens=37,
        completion_tokens=412,
    )
    # A call outside any trace is the root of a trace of its own, still with its persona.
    assert generation.is_root
    assert generation.attributes[TRACE_NAME] == "my_llm_call"
    assert generation.attributes[TRACE_TAGS] == ["feature-implementation"]
    assert generation.attributes["hypertool.chatmode"] == "feature-implementation"
    for request in receiver.trace_requests():
        assert_langfuse_wire(request, public_key, secret_key)


# -- Core concepts: traces, spans, generations -----------------------------------------------
async def test_core_concepts_trace_span_generation(
    receiver: LoopbackOTLP, make_integration: Callable[..., LangfuseIntegration]
) -> None:
    public_key, secret_key = unique_keys()
    langfuse = make_integration(public_key=public_key, secret_key=secret_key, host=receiver.url)

    trace = langfuse.start_trace(
        name="package-release-workflow",
        persona="backend-engineer",
        chatmode="package-release",
        metadata={"version": "1.2.0"},
    )
    span = langfuse.start_span(trace=trace, name="api-design-stage", metadata={"stage": "design"})
    generation = langfuse.create_generation(
        trace=trace,
        name="design-api",
        model="gpt-4",
        prompt="Design REST API for user profiles",
        completion="Here's the API design...",
        usage={"prompt_tokens": 150, "completion_tokens": 800, "total_tokens": 950},
        parent=span,
    )
    top_level = langfuse.create_generation(
        trace=trace,
        name="summarise",
        model="gpt-4",
        prompt="Summarise",
        completion="Summary",
        usage={"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17},
    )
    span.end()
    langfuse.end_trace(trace, status="success")
    langfuse.flush()  # the troubleshooting snippet: no arguments

    spans = receiver.wait_for_spans(4, timeout=5)
    assert len(spans) == 4
    root = by_name(spans, "package-release-workflow")
    stage = by_name(spans, "api-design-stage")
    design = by_name(spans, "design-api")
    summary = by_name(spans, "summarise")

    # One trace, the id the handle reported, nested as created.
    assert {s.trace_id for s in spans} == {trace.trace_id}
    assert root.is_root
    assert stage.parent_span_id == root.span_id
    assert design.parent_span_id == stage.span_id
    assert summary.parent_span_id == root.span_id
    assert stage.span_id == span.span_id
    assert design.span_id == generation.generation_id
    assert generation.trace_id == trace.trace_id
    assert top_level.trace_id == trace.trace_id

    # Persona-as-user on the root and on every observation; trace-level attributes.
    assert root.attributes[USER_ID] == "backend-engineer"
    assert root.attributes[OBS_TYPE] == "span"
    assert root.attributes[TRACE_NAME] == "package-release-workflow"
    assert "package-release" in root.attributes[TRACE_TAGS]
    assert root.attributes[f"{TRACE_METADATA}.version"] == "1.2.0"
    assert root.attributes["hypertool.chatmode"] == "package-release"
    assert root.status_code != STATUS_ERROR
    assert stage.attributes[OBS_TYPE] == "span"
    assert stage.attributes[USER_ID] == "backend-engineer"
    assert stage.attributes[f"{OBS_METADATA}.stage"] == "design"
    assert_generation(
        design,
        persona="backend-engineer",
        model="gpt-4",
        prompt="Design REST API for user profiles",
        completion="Here's the API design...",
        prompt_tokens=150,
        completion_tokens=800,
    )
    assert_generation(
        summary,
        persona="backend-engineer",
        model="gpt-4",
        prompt="Summarise",
        completion="Summary",
        prompt_tokens=12,
        completion_tokens=5,
    )
    # Children lie within their parents in time.
    assert root.start_ns <= stage.start_ns <= design.start_ns <= design.end_ns <= stage.end_ns
    assert stage.end_ns <= root.end_ns
    for request in receiver.trace_requests():
        assert_langfuse_wire(request, public_key, secret_key)


async def test_persona_as_user_is_canonical(
    receiver: LoopbackOTLP, make_integration: Callable[..., LangfuseIntegration]
) -> None:
    """The best-practice 'BAD' spelling still lands on the same Langfuse user."""
    public_key, secret_key = unique_keys()
    langfuse = make_integration(public_key=public_key, secret_key=secret_key, host=receiver.url)
    good = langfuse.start_trace(
        name="feature-implementation",
        persona="backend-engineer",
        chatmode="feature-implementation",
    )
    bad = langfuse.start_trace(
        name="feature-implementation",
        persona="Backend Engineer",
        chatmode="feature-implementation",
    )
    langfuse.end_trace(good)
    langfuse.end_trace(bad)
    assert langfuse.flush(timeout=5)
    spans = receiver.wait_for_spans(2, timeout=5)
    assert {s.trace_id for s in spans} == {good.trace_id, bad.trace_id}
    assert [s.attributes[USER_ID] for s in spans] == ["backend-engineer", "backend-engineer"]


# -- ObservableLLM -----------------------------------------------------------------------------
async def test_basic_usage_observable_llm_default_integration(
    langfuse_env: tuple[str, str, LoopbackOTLP],
) -> None:
    """'Basic Usage': no langfuse= argument, the default integration from the environment."""
    public_key, secret_key, receiver = langfuse_env

    async def call_openai(prompt: str) -> str:
        response = openai_response(f"Endpoint for: {prompt}", 20, 30)
        return str(response.choices[0].message.content)

    observable_llm = ObservableLLM(llm_function=call_openai, model="gpt-4")
    response = await observable_llm(
        prompt="Write a FastAPI endpoint", persona="backend-engineer", chatmode="coding"
    )
    assert response == "Endpoint for: Write a FastAPI endpoint"
    assert get_langfuse_integration().flush(timeout=5)

    (generation,) = receiver.wait_for_spans(1, timeout=5)
    attributes = generation.attributes
    assert attributes[OBS_TYPE] == "generation"
    assert attributes[USER_ID] == "backend-engineer"
    assert attributes[MODEL] == "gpt-4"
    assert attributes[INPUT] == "Write a FastAPI endpoint"
    assert attributes[OUTPUT] == response
    # A plain string carries no provider usage: the estimate is not sent as usage or cost
    # (Langfuse counts the tokens and prices them itself), and the observation says so.
    assert attributes["hypertool.usage.estimated"] is True
    assert f"{OBS_METADATA}.usage_estimated" in attributes
    assert USAGE not in attributes and COST not in attributes
    assert not any(key.startswith("gen_ai.usage.") for key in attributes)
    assert_langfuse_wire(receiver.trace_requests()[0], public_key, secret_key)


async def test_observable_llm_existing_trace_multi_persona(
    receiver: LoopbackOTLP, make_integration: Callable[..., LangfuseIntegration]
) -> None:
    """'Advanced: Using with Existing Trace': each generation carries its own persona."""
    public_key, secret_key = unique_keys()
    langfuse = make_integration(public_key=public_key, secret_key=secret_key, host=receiver.url)
    returned = {
        "Design API models": openai_response("models", 111, 222),
        "Create React components": openai_response("components", 333, 444),
    }

    async def call_llm(prompt: str) -> Any:
        return returned[prompt]

    observable_llm = ObservableLLM(llm_function=call_llm, model="gpt-4", langfuse=langfuse)
    workflow_trace = langfuse.start_trace(
        name="multi-stage-workflow",
        persona="multi-persona",
        chatmode="feature-implementation",
    )
    await observable_llm(
        prompt="Design API models",
        persona="backend-engineer",
        chatmode="feature-implementation",
        trace=workflow_trace,
    )
    await observable_llm(
        prompt="Create React components",
        persona="frontend-engineer",
        chatmode="feature-implementation",
        trace=workflow_trace,
    )
    langfuse.end_trace(workflow_trace, status="success")
    assert langfuse.flush(timeout=5)

    spans = receiver.wait_for_spans(3, timeout=5)
    assert len(spans) == 3
    root = by_name(spans, "multi-stage-workflow")
    backend, frontend = generations(spans)
    # The guide's meaning, deterministically: one trace ("Same trace"), and a trace has one
    # Langfuse user, the trace's persona; who made each call is the observation's metadata.
    assert {s.trace_id for s in spans} == {workflow_trace.trace_id}
    assert one_user_per_trace(spans) == {workflow_trace.trace_id: "multi-persona"}
    assert root.is_root
    assert backend.parent_span_id == root.span_id
    assert frontend.parent_span_id == root.span_id
    assert_generation(
        backend,
        persona="backend-engineer",
        user="multi-persona",
        model="gpt-4",
        prompt="Design API models",
        completion="models",
        prompt_tokens=111,
        completion_tokens=222,
    )
    assert_generation(
        frontend,
        persona="frontend-engineer",
        user="multi-persona",
        model="gpt-4",
        prompt="Create React components",
        completion="components",
        prompt_tokens=333,
        completion_tokens=444,
    )
    for generation in (backend, frontend):
        assert generation.attributes[TRACE_NAME] == "multi-stage-workflow"
        assert generation.attributes["hypertool.chatmode"] == "feature-implementation"
        assert generation.attributes[f"{OBS_METADATA}.chatmode"] == "feature-implementation"
    # Both Users views agree: the trace's user has all of it.
    assert users_view(spans) == ({"multi-persona": 1110}, {"multi-persona": 1110})
    # Budgets (and the store, and metrics) follow the persona that made each call.
    assert langfuse.budgets.used("backend-engineer") == 333
    assert langfuse.budgets.used("frontend-engineer") == 777


async def test_observable_llm_inside_entered_span_nests(
    receiver: LoopbackOTLP, make_integration: Callable[..., LangfuseIntegration]
) -> None:
    public_key, secret_key = unique_keys()
    langfuse = make_integration(public_key=public_key, secret_key=secret_key, host=receiver.url)

    async def call_llm(prompt: str) -> Any:
        return openai_response("ok", 5, 6)

    observable_llm = ObservableLLM(llm_function=call_llm, model="gpt-4o", langfuse=langfuse)
    with (
        langfuse.start_trace(name="wf", persona="devops-engineer", chatmode="ops") as trace,
        langfuse.start_span(trace, "deploy-stage", persona="devops-engineer") as stage,
    ):
        await observable_llm("Deploy it")
    assert trace.status == "success"
    assert langfuse.flush(timeout=5)
    spans = receiver.wait_for_spans(3, timeout=5)
    root = by_name(spans, "wf")
    stage_span = by_name(spans, "deploy-stage")
    (generation,) = generations(spans)
    assert stage_span.span_id == stage.span_id
    assert generation.parent_span_id == stage_span.span_id
    # A span with a persona of its own is a Langfuse trace of its own: its root, named after
    # the trace, in the trace's session (the OpenTelemetry trace keeps one tree).
    assert root.trace_id == trace.trace_id
    assert stage_span.is_root
    assert stage_span.trace_id == generation.trace_id == stage.langfuse_trace_id
    assert stage_span.attributes[TRACE_NAME] == "wf/deploy-stage"
    assert {s.attributes[SESSION_ID] for s in spans} == {trace.trace_id}
    assert_generation(
        generation,
        persona="devops-engineer",
        model="gpt-4o",
        prompt="Deploy it",
        completion="ok",
        prompt_tokens=5,
        completion_tokens=6,
    )


async def test_observe_llm_decorator(langfuse_env: tuple[str, str, LoopbackOTLP]) -> None:
    """'Decorator Pattern'."""
    public_key, secret_key, receiver = langfuse_env

    @observe_llm(model="gpt-4", persona="backend-engineer")
    async def design_api(requirements: str) -> Any:
        return openai_response(f"Design for {requirements}", 64, 256)

    result = await design_api("User authentication system")
    assert result.choices[0].message.content == "Design for User authentication system"
    assert design_api.__name__ == "design_api"
    assert get_langfuse_integration().flush(timeout=5)

    (generation,) = receiver.wait_for_spans(1, timeout=5)
    assert_generation(
        generation,
        persona="backend-engineer",
        model="gpt-4",
        prompt="User authentication system",
        completion="Design for User authentication system",
        prompt_tokens=64,
        completion_tokens=256,
    )
    assert generation.name == "design_api"
    assert generation.attributes[TRACE_NAME] == "design_api"
    assert_langfuse_wire(receiver.trace_requests()[0], public_key, secret_key)


# -- Configuration -----------------------------------------------------------------------------
async def test_programmatic_configuration(
    receiver: LoopbackOTLP, make_integration: Callable[..., LangfuseIntegration]
) -> None:
    """'Programmatic Configuration' with host= pointing at the receiver (trailing slash)."""
    public_key, secret_key = unique_keys()
    langfuse = make_integration(
        public_key=public_key, secret_key=secret_key, host=f"{receiver.url}/"
    )
    assert langfuse.enabled
    assert secret_key not in repr(langfuse)
    trace = langfuse.start_trace(name="configured", persona="data-scientist")
    langfuse.end_trace(trace)
    assert langfuse.flush(timeout=5)
    (root,) = receiver.wait_for_spans(1, timeout=5)
    assert root.trace_id == trace.trace_id
    assert root.attributes[USER_ID] == "data-scientist"
    (request,) = receiver.trace_requests()
    assert_langfuse_wire(request, public_key, secret_key)
    assert request.header("x-langfuse-public-key") == public_key


async def test_graceful_degradation_sends_nothing(
    receiver: LoopbackOTLP,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """'Graceful Degradation': host set but no keys: calls work, nothing reaches the wire."""
    monkeypatch.setenv("LANGFUSE_HOST", receiver.url)
    caplog.set_level(logging.WARNING, logger=LOGGER)

    async def call_llm(prompt: str) -> str:
        return f"echo {prompt}"

    observable_llm = ObservableLLM(llm_function=call_llm, model="gpt-4")
    for _ in range(3):
        assert await observable_llm("hi", persona="backend-engineer") == "echo hi"
    langfuse = get_langfuse_integration()
    trace = langfuse.start_trace(name="t", persona="backend-engineer")
    langfuse.end_trace(trace)
    assert not langfuse.enabled
    assert langfuse.flush(timeout=1)
    time.sleep(0.2)
    assert receiver.requests == []
    warnings = [
        r for r in caplog.records if r.name == LOGGER and "not configured" in r.getMessage()
    ]
    assert len(warnings) == 1


# -- Best practice: always end traces ----------------------------------------------------------
async def test_end_trace_error_in_try_except(
    receiver: LoopbackOTLP, make_integration: Callable[..., LangfuseIntegration]
) -> None:
    public_key, secret_key = unique_keys()
    langfuse = make_integration(public_key=public_key, secret_key=secret_key, host=receiver.url)

    async def call_gpt4(prompt: str) -> Any:
        raise RuntimeError("provider down: 503")

    observable_llm = ObservableLLM(llm_function=call_gpt4, model="gpt-4", langfuse=langfuse)

    async def execute_workflow(trace: Any) -> Any:
        return await observable_llm("Fix BUG-1234", persona="backend-engineer", trace=trace)

    trace = None
    with pytest.raises(RuntimeError, match="provider down"):
        try:
            trace = langfuse.start_trace(
                name="bug-fix",
                persona="backend-engineer",
                chatmode="debugging",
                metadata={
                    "issue_id": "BUG-1234",
                    "priority": "high",
                    "repository": "tta-dev-primitives",
                    "estimated_complexity": "medium",
                },
            )
            await execute_workflow(trace)
            langfuse.end_trace(trace, status="success")
        except Exception:
            langfuse.end_trace(trace, status="error")
            raise
    assert trace is not None
    assert trace.status == "error"
    assert langfuse.flush(timeout=5)

    spans = receiver.wait_for_spans(2, timeout=5)
    root = by_name(spans, "bug-fix")
    (generation,) = generations(spans)
    assert root.trace_id == trace.trace_id == generation.trace_id
    assert generation.parent_span_id == root.span_id
    assert root.attributes[LEVEL] == "ERROR"
    assert root.attributes[STATUS_MESSAGE]
    assert root.status_code == STATUS_ERROR
    assert root.attributes["hypertool.trace.status"] == "error"
    assert root.attributes[f"{TRACE_METADATA}.issue_id"] == "BUG-1234"
    assert root.attributes[f"{TRACE_METADATA}.priority"] == "high"
    assert generation.attributes[LEVEL] == "ERROR"
    assert "provider down: 503" in generation.attributes[STATUS_MESSAGE]
    assert generation.status_code == STATUS_ERROR
    assert generation.attributes[USER_ID] == "backend-engineer"
    assert generation.attributes[INPUT] == "Fix BUG-1234"


# -- The caller never waits on the network -----------------------------------------------------
async def test_hanging_endpoint_does_not_block_callers(
    make_integration: Callable[..., LangfuseIntegration],
) -> None:
    with LoopbackOTLP(mode="hang", hang_max=30) as receiver:
        public_key, secret_key = unique_keys()
        langfuse = make_integration(public_key=public_key, secret_key=secret_key, host=receiver.url)

        async def call_llm(prompt: str) -> Any:
            return openai_response("ok", 10, 20)

        observable_llm = ObservableLLM(llm_function=call_llm, model="gpt-4", langfuse=langfuse)
        # Get the exporter stuck in a request the receiver never answers.
        first = langfuse.start_trace(name="first", persona="backend-engineer")
        await observable_llm("first", trace=first)
        langfuse.end_trace(first)
        langfuse.flush(timeout=0.1)
        receiver.wait_for_requests(1, timeout=5)

        started = time.perf_counter()
        for i in range(200):
            trace = langfuse.start_trace(name=f"t{i}", persona="backend-engineer", chatmode="x")
            await observable_llm(f"prompt {i}", persona="frontend-engineer", trace=trace)
            langfuse.end_trace(trace, status="success")
        elapsed = time.perf_counter() - started
        assert elapsed < 1.0, f"200 instrumented calls took {elapsed:.3f} s"

        started = time.perf_counter()
        flushed = langfuse.flush(timeout=1)
        elapsed = time.perf_counter() - started
        assert elapsed < 1.5, f"flush(timeout=1) took {elapsed:.3f} s"
        assert flushed is False  # nothing could be delivered, and it says so

        started = time.perf_counter()
        langfuse.shutdown(timeout=0.5)
        assert time.perf_counter() - started < 1.0


# -- Faults --------------------------------------------------------------------------------------
async def test_rejected_keys_logged_once(
    make_integration: Callable[..., LangfuseIntegration], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    with LoopbackOTLP(mode=401) as receiver:
        public_key, secret_key = unique_keys()
        langfuse = make_integration(public_key=public_key, secret_key=secret_key, host=receiver.url)
        batches = 4
        for i in range(batches):
            trace = langfuse.start_trace(name=f"batch-{i}", persona="backend-engineer")
            langfuse.create_generation(trace, "g", "gpt-4", "p", "c", usage={"input": 1})
            langfuse.end_trace(trace)
            langfuse.flush(timeout=5)
        requests = receiver.wait_for_requests(batches, timeout=5)
        assert len(requests) == batches  # 401 is not retried
        assert all(r.status == 401 for r in requests)
        for request in requests:
            assert_langfuse_wire(request, public_key, secret_key)

    errors = hypertool_errors(caplog)
    assert len(errors) == 1, [r.getMessage() for r in errors]
    assert "Langfuse rejected the keys" in errors[0].getMessage()
    assert secret_key not in errors[0].getMessage()
    # No silent loss: every span the endpoint refused is counted.
    assert langfuse.pipeline is not None
    (processor,) = langfuse.pipeline.processors
    assert processor.dropped == 2 * batches
    assert processor.exported == 0


async def test_server_error_drops_are_counted_without_key_error(
    make_integration: Callable[..., LangfuseIntegration], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    with LoopbackOTLP(mode=500) as receiver:
        public_key, secret_key = unique_keys()
        langfuse = make_integration(public_key=public_key, secret_key=secret_key, host=receiver.url)
        trace = langfuse.start_trace(name="t", persona="backend-engineer")
        langfuse.end_trace(trace)
        langfuse.flush(timeout=5)
        receiver.wait_for_requests(1, timeout=5)
        assert langfuse.pipeline is not None
        (processor,) = langfuse.pipeline.processors
        receiver.wait_for(lambda: processor.dropped == 1, timeout=5, what="drop counted")
        receiver.mode = 200
        trace = langfuse.start_trace(name="after-recovery", persona="backend-engineer")
        langfuse.end_trace(trace)
        assert langfuse.flush(timeout=5)
        spans = receiver.spans(accepted_only=True)
        assert [s.name for s in spans] == ["after-recovery"]
        assert processor.exported == 1
    assert not any("rejected the keys" in r.getMessage() for r in caplog.records)


# -- Same contract as the real langfuse SDK ----------------------------------------------------
def _normalise(key: str) -> str:
    for prefix in (TRACE_METADATA, OBS_METADATA):
        if key.startswith(f"{prefix}."):
            return f"{prefix}.*"
    return key


def _langfuse_keys(attributes: dict[str, Any]) -> set[str]:
    return {k for k in attributes if k.startswith("langfuse.") or k == USER_ID}


async def test_same_contract_as_langfuse_sdk(
    receiver: LoopbackOTLP, make_integration: Callable[..., LangfuseIntegration]
) -> None:
    from langfuse import Langfuse, propagate_attributes

    # The real SDK: a trace with a user, a generation and a failed generation.
    sdk_public, sdk_secret = unique_keys()
    client = Langfuse(
        public_key=sdk_public,
        secret_key=sdk_secret,
        base_url=receiver.url,
        environment="staging",
        release="v1.2.0",
    )
    try:
        with (
            propagate_attributes(
                user_id="backend-engineer",
                trace_name="sdk-workflow",
                tags=["package-release"],
                metadata={"chatmode": "package-release", "version": "1.2.0"},
            ),
            client.start_as_current_observation(name="sdk-workflow", as_type="span"),
        ):
            client.start_observation(
                as_type="generation",
                name="sdk-generation",
                model="gpt-4",
                input="Design REST API",
                output="Here it is",
                usage_details={"input": 150, "output": 800, "total": 950},
                metadata={"stage": "design"},
                model_parameters={"temperature": 0.2},
            ).end()
            client.start_observation(
                as_type="generation",
                name="sdk-failed-generation",
                model="gpt-4",
                input="Design REST API",
                level="ERROR",
                status_message="provider down",
            ).end()
        client.flush()
    finally:
        client.shutdown()
    sdk_spans = receiver.wait_for_spans(3, timeout=10, where=lambda s: s.scope == "langfuse-sdk")
    sdk_requests = [r for r in receiver.trace_requests() if r.spans()[0].scope == "langfuse-sdk"]

    # Ours: the same shapes.
    public_key, secret_key = unique_keys()
    langfuse = make_integration(
        public_key=public_key,
        secret_key=secret_key,
        host=receiver.url,
        environment="staging",
        release="v1.2.0",
    )
    trace = langfuse.start_trace(
        name="our-workflow",
        persona="backend-engineer",
        chatmode="package-release",
        metadata={"version": "1.2.0"},
        session_id="session-1",
    )
    langfuse.create_generation(
        trace,
        "our-generation",
        "gpt-4",
        "Design REST API",
        "Here it is",
        usage={"prompt_tokens": 150, "completion_tokens": 800, "total_tokens": 950},
        metadata={"stage": "design"},
        model_parameters={"temperature": 0.2},
    )
    langfuse.create_generation(
        trace, "our-failed-generation", "gpt-4", "Design REST API", None, error="provider down"
    )
    langfuse.end_trace(trace)
    assert langfuse.flush(timeout=5)
    our_spans = receiver.wait_for_spans(3, timeout=5, where=lambda s: s.scope == LANGFUSE_SCOPE)
    our_requests = [r for r in receiver.trace_requests() if r.spans()[0].scope == LANGFUSE_SCOPE]

    # Same endpoint, same headers that matter, both gzip'd protobuf with basic auth.
    assert sdk_requests and our_requests
    for request in sdk_requests:
        assert_langfuse_wire(request, sdk_public, sdk_secret)
    for request in our_requests:
        assert_langfuse_wire(request, public_key, secret_key)
    assert {r.path for r in our_requests} == {r.path for r in sdk_requests}
    assert {r.header("x-langfuse-ingestion-version") for r in our_requests} == {
        r.header("x-langfuse-ingestion-version") for r in sdk_requests
    }
    # Langfuse records who sent the spans from these two headers, as the SDK sends them.
    for requests, name in ((sdk_requests, "python"), (our_requests, "hypertool-instrumentation")):
        assert {r.header("x-langfuse-sdk-name") for r in requests} == {name}
        assert all(
            re.fullmatch(r"\d+\.\d+\.\d+\S*", r.header("x-langfuse-sdk-version") or "")
            for r in requests
        )
    # Environment and release on every observation, as the SDK puts them.
    for span in [*sdk_spans, *our_spans]:
        assert (span.attributes[ENVIRONMENT], span.attributes[RELEASE]) == ("staging", "v1.2.0")

    # Every Langfuse key we send on a generation is one the SDK sends or defines.
    known = {v for k, v in vars(LangfuseOtelSpanAttributes).items() if k.isupper()}
    sdk_generation_keys: set[str] = set()
    sdk_types: dict[str, type] = {}
    for span in generations(sdk_spans):
        for key in _langfuse_keys(span.attributes):
            sdk_generation_keys.add(_normalise(key))
            sdk_types[_normalise(key)] = type(span.attributes[key])
    our_generations = generations(our_spans)
    assert len(our_generations) == 2
    for span in our_generations:
        keys = {_normalise(k) for k in _langfuse_keys(span.attributes)}
        unknown = keys - sdk_generation_keys - known
        assert not unknown, f"{span.name} sends keys the langfuse SDK does not: {unknown}"
        for key in _langfuse_keys(span.attributes):
            expected = sdk_types.get(_normalise(key))
            if expected is not None:
                assert isinstance(span.attributes[key], expected), (key, span.attributes[key])
    # The keys the Users/Generations views need are sent by both.
    needed = {USER_ID, OBS_TYPE, MODEL, INPUT, TRACE_NAME}
    assert needed | {USAGE} <= sdk_generation_keys
    for span in our_generations:
        assert needed <= set(span.attributes)
    assert USAGE in by_name(our_spans, "our-generation").attributes
    # Errors are marked the same way, and a failed call sends no usage, cost or empty output.
    sdk_failed = by_name(sdk_spans, "sdk-failed-generation")
    our_failed = by_name(our_spans, "our-failed-generation")
    for failed in (sdk_failed, our_failed):
        assert failed.attributes[LEVEL] == "ERROR"
        assert failed.attributes[STATUS_MESSAGE] == "provider down"
        assert failed.status_code == STATUS_ERROR
        assert not {USAGE, COST, OUTPUT} & set(failed.attributes)
    # The trace's metadata is on every observation (our spans: one JSON attribute, which
    # Langfuse reads as it reads the SDK's flattened keys).
    sdk_generation = by_name(sdk_spans, "sdk-generation")
    assert json.loads(sdk_generation.attributes[f"{TRACE_METADATA}.version"]) == "1.2.0"
    for span in our_generations:
        assert json.loads(span.attributes[TRACE_METADATA])["version"] == "1.2.0"
        assert span.attributes[f"{OBS_METADATA}.chatmode"] == "package-release"
    # Same usage encoding.
    assert usage_of(by_name(sdk_spans, "sdk-generation")) == usage_of(
        by_name(our_spans, "our-generation")
    )


# -- What Langfuse shows must be what happened ---------------------------------------------------
def with_store(
    make_integration: Callable[..., LangfuseIntegration],
    receiver: LoopbackOTLP,
    store_path: Path,
    **kwargs: Any,
) -> LangfuseIntegration:
    """An integration sending to the receiver as Langfuse, and to a local store."""
    public_key, secret_key = unique_keys()
    return make_integration(
        public_key=public_key,
        secret_key=secret_key,
        host=receiver.url,
        exporters={"store": StoreExporter(store_path)},
        **kwargs,
    )


async def test_workflow_stages_are_langfuse_traces_with_one_user_each(
    receiver: LoopbackOTLP, make_integration: Callable[..., LangfuseIntegration], tmp_path: Path
) -> None:
    """Langfuse keeps one user per trace and its default Users view sums a trace's tokens
    under that user: each stage is a Langfuse trace of its own, in the workflow's session.
    """
    store_path = tmp_path / "traces.db"
    langfuse = with_store(make_integration, receiver, store_path)
    sizes = {"plan": (10, 5), "api": (100, 20), "ui": (200, 40), "review": (7, 3), "ops": (50, 9)}

    async def call_llm(prompt: str) -> Any:
        return openai_response(f"done: {prompt}", *sizes[prompt])

    llm = ObservableLLM(llm_function=call_llm, model="gpt-4", langfuse=langfuse)
    workflow = WorkflowTracer(
        "feature", {"ticket": "T-1"}, langfuse=langfuse, chatmode="feature-implementation"
    )
    async with workflow:
        assert workflow.trace is not None
        await llm("plan")  # workflow-level work: the workflow's own persona's
        async with workflow.stage("backend", "backend-engineer") as backend:
            await llm("api")
            # A span without a persona of its own stays in its parent's (Langfuse) trace.
            with langfuse.start_span(workflow.trace, "sub-step", parent=backend.span):
                await llm("review", persona="frontend-engineer")  # in backend's trace
        async with workflow.stage("frontend", "frontend-engineer"):
            await llm("ui")
        async with workflow.stage("deploy", "devops-engineer"):
            await llm("ops")
    assert langfuse.flush(timeout=5)
    trace = workflow.trace
    assert backend.span is not None

    spans = receiver.wait_for_spans(10, timeout=5)
    users = one_user_per_trace(spans)
    assert users == {
        trace.trace_id: "multi-persona",
        backend.span.langfuse_trace_id: "backend-engineer",
        **{s.trace_id: s.attributes[USER_ID] for s in spans if s.name in ("frontend", "deploy")},
    }
    assert sorted(users.values()) == [
        "backend-engineer",
        "devops-engineer",
        "frontend-engineer",
        "multi-persona",
    ]
    # Both Users views give each persona what was spent in its stage.
    expected = {
        "multi-persona": 15,
        "backend-engineer": 120 + 10,
        "frontend-engineer": 240,
        "devops-engineer": 59,
    }
    assert users_view(spans) == (expected, expected)
    # Each stage is the root of its Langfuse trace, named after the workflow, linked to it.
    for stage in (s for s in spans if s.name in ("backend", "frontend", "deploy")):
        assert stage.is_root
        assert stage.trace_id == trace.trace_id[:16] + stage.span_id
        assert stage.attributes[TRACE_NAME] == f"feature/{stage.name}"
        metadata = json.loads(stage.attributes[TRACE_METADATA])
        assert metadata == {
            "chatmode": "feature-implementation",
            "ticket": "T-1",
            "workflow_trace_id": trace.trace_id,
        }
    sub_step = by_name(spans, "sub-step")
    assert sub_step.trace_id == backend.span.langfuse_trace_id
    assert sub_step.parent_span_id == backend.span.span_id
    review = next(g for g in generations(spans) if g.attributes[INPUT] == "review")
    assert review.parent_span_id == sub_step.span_id
    assert review.attributes[f"{OBS_METADATA}.persona"] == "frontend-engineer"
    assert {s.attributes[SESSION_ID] for s in spans} == {trace.trace_id}
    assert workflow.langfuse_session_id == trace.trace_id

    # Locally the workflow stays one trace, each call under the persona that made it.
    with TraceStore(store_path) as store:
        (row,) = store.traces()
        assert row["trace_id"] == trace.trace_id and row["generations"] == 5
        report = {r["group"]: r["total_tokens"] for r in store.report(by="persona")}
        stage_tree = store.trace(backend.span.langfuse_trace_id)
    assert report == {
        "backend-engineer": 120,
        "devops-engineer": 59,
        "frontend-engineer": 250,
        "multi-persona": 15,
    }
    assert stage_tree is not None
    assert (stage_tree["trace_id"], stage_tree["name"]) == (trace.trace_id, "backend")
    assert stage_tree["langfuse_trace_id"] == backend.span.langfuse_trace_id
    assert stage_tree["total_tokens"] == 130


async def test_cache_and_reasoning_tokens_are_counted_once(
    receiver: LoopbackOTLP, make_integration: Callable[..., LangfuseIntegration]
) -> None:
    """Langfuse sums every ``input*`` key as input and every ``output*`` key as output."""
    public_key, secret_key = unique_keys()
    langfuse = make_integration(public_key=public_key, secret_key=secret_key, host=receiver.url)
    openai_usage = {
        "prompt_tokens": 1000,
        "completion_tokens": 500,
        "total_tokens": 1500,
        "prompt_tokens_details": {"cached_tokens": 800},
        "completion_tokens_details": {"reasoning_tokens": 300},
    }
    anthropic_message = SimpleNamespace(
        content=[SimpleNamespace(type="text", text="ok")],
        usage=SimpleNamespace(
            input_tokens=50,
            output_tokens=20,
            cache_read_input_tokens=900,
            cache_creation_input_tokens=100,
        ),
    )
    trace = langfuse.start_trace("cache", persona="backend-engineer")
    langfuse.create_generation(trace, "openai", "o3", "p", "c", usage=openai_usage)
    claude = ObservableLLM(
        lambda prompt: anthropic_message, model="claude-sonnet-4", langfuse=langfuse, name="claude"
    )
    claude("p", trace=trace)
    langfuse.end_trace(trace)
    assert langfuse.flush(timeout=5)
    spans = receiver.wait_for_spans(3, timeout=5)

    for name, all_in, all_out in (("openai", 1000, 500), ("claude", 1050, 20)):
        generation = by_name(spans, name)
        usage = usage_of(generation)
        counted_in = sum(v for k, v in usage.items() if "input" in k)
        counted_out = sum(v for k, v in usage.items() if "output" in k)
        assert (counted_in, counted_out) == (all_in, all_out), usage
        assert counted_in + counted_out == usage["total"]  # no "inclusive input" warning
        assert generation.attributes["gen_ai.usage.input_tokens"] == all_in
        cost = json.loads(generation.attributes[COST])
        assert set(cost) == set(usage), (cost, usage)  # each bucket priced, none twice
        assert sum(v for k, v in cost.items() if k != "total") == pytest.approx(cost["total"])
    assert usage_of(by_name(spans, "openai")) == {
        "input": 200,
        "output": 200,
        "total": 1500,
        "input_cached_tokens": 800,
        "output_reasoning_tokens": 300,
    }
    assert usage_of(by_name(spans, "claude"))["input"] == 50


async def test_estimates_and_failures_send_no_usage(
    receiver: LoopbackOTLP, make_integration: Callable[..., LangfuseIntegration], tmp_path: Path
) -> None:
    """An estimate is never shown to Langfuse as provider usage or cost: given none, Langfuse
    counts and prices the tokens itself. A failed call sends what the SDK sends: no usage, no
    cost, no empty output. The store, budgets and metrics keep the estimate, marked.
    """
    store_path = tmp_path / "traces.db"
    langfuse = with_store(make_integration, receiver, store_path)
    plain = ObservableLLM(lambda prompt: "a plain answer", model="gpt-4", langfuse=langfuse)

    def fail(prompt: str) -> str:
        raise RuntimeError("429 Too Many Requests")

    failing = ObservableLLM(fail, model="gpt-4", langfuse=langfuse, name="failing")
    plain("estimate me", persona="backend-engineer")
    with pytest.raises(RuntimeError):
        failing("p", persona="backend-engineer")
    used = langfuse.budgets.used("backend-engineer")
    assert used > 0  # the estimate counts toward the budget
    assert langfuse.flush(timeout=5)
    spans = receiver.wait_for_spans(2, timeout=5)
    estimated, failed = by_name(spans, "<lambda>"), by_name(spans, "failing")
    for span in (estimated, failed):
        assert USAGE not in span.attributes and COST not in span.attributes
        assert not any(key.startswith("gen_ai.usage.") for key in span.attributes)
    assert estimated.attributes[f"{OBS_METADATA}.usage_estimated"] == "true"
    assert estimated.attributes[OUTPUT] == "a plain answer"
    assert OUTPUT not in failed.attributes
    assert failed.attributes[LEVEL] == "ERROR"

    with TraceStore(store_path) as store:
        rows = {g["name"]: g for g in store.generations()}
    assert rows["<lambda>"]["usage_estimated"] is True
    assert rows["<lambda>"]["total_tokens"] == used
    assert rows["<lambda>"]["cost_usd"] > 0  # priced from the estimate, locally only
    assert (rows["failing"]["total_tokens"], rows["failing"]["cost_usd"]) == (0, 0.0)
    assert rows["failing"]["status"] == "error"


async def test_environment_release_and_sdk_on_every_observation(
    receiver: LoopbackOTLP,
    make_integration: Callable[..., LangfuseIntegration],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("LANGFUSE_TRACING_ENVIRONMENT", "Staging")  # Langfuse lower-cases it
    monkeypatch.setenv("LANGFUSE_RELEASE", "from-env")
    store_path = tmp_path / "traces.db"
    # The argument wins over the environment.
    langfuse = with_store(make_integration, receiver, store_path, release="v2.0.0")
    workflow = WorkflowTracer("release", langfuse=langfuse, persona="devops-engineer")
    with workflow, workflow.stage("build", "backend-engineer") as stage:
        langfuse.create_generation(
            workflow.trace,  # type: ignore[arg-type]
            "g",
            "gpt-4",
            "p",
            "c",
            usage={"input": 1, "output": 2},
        )
    ObservableLLM(lambda p: "x", model="gpt-4", langfuse=langfuse)("alone")
    assert langfuse.flush(timeout=5)
    spans = receiver.wait_for_spans(4, timeout=5)
    for span in spans:
        assert span.attributes[ENVIRONMENT] == "staging"
        assert span.attributes[RELEASE] == "v2.0.0"
    # Scores carry the environment too (langfuse's SDK sends it on each score).
    [gate] = [item for body in receiver.json_requests("/api/public/scores") for item in body]
    assert stage.span is not None
    assert (gate["name"], gate["environment"]) == ("quality_gate", "staging")
    assert gate["traceId"] == stage.span.langfuse_trace_id
    for request in receiver.trace_requests():
        assert request.header("x-langfuse-sdk-name") == "hypertool-instrumentation"
        assert request.header("x-langfuse-sdk-version") == request.spans()[0].scope_version
    with TraceStore(store_path) as store:
        assert {(t["environment"], t["release"]) for t in store.traces()} == {("staging", "v2.0.0")}
        deployed = Filters(environment="staging", release="v2.0.0")
        assert len(store.traces(filters=deployed)) == 2
        assert store.traces(filters=Filters(environment="production")) == []
        assert store.report(filters=Filters(environment="production")) == []


async def test_langfuse_reads_our_spans_as_its_own_contract(
    receiver: LoopbackOTLP, make_integration: Callable[..., LangfuseIntegration]
) -> None:
    """No raw attribute dump: the scope starts with ``langfuse-sdk``; what the dump carried
    that matters (who made the call, chatmode, workflow, stage) is observation metadata, and
    the trace's metadata is on every observation.
    """
    public_key, secret_key = unique_keys()
    langfuse = make_integration(public_key=public_key, secret_key=secret_key, host=receiver.url)
    workflow = WorkflowTracer(
        "wf", {"version": "1.2.0"}, langfuse=langfuse, chatmode="package-release"
    )
    with workflow, workflow.stage("qa", "testing-specialist") as stage:
        langfuse.create_generation(
            workflow.trace,  # type: ignore[arg-type]
            "check",
            "gpt-4",
            "p",
            "c",
            usage={"input": 3, "output": 4},
            metadata={"persona": "kept as given"},
            parent=stage.span,
        )
    assert langfuse.flush(timeout=5)
    spans = receiver.wait_for_spans(3, timeout=5)
    for span in spans:
        assert span.scope.startswith("langfuse-sdk") and span.scope != "langfuse-sdk"
        assert span.attributes[f"{OBS_METADATA}.chatmode"] == "package-release"
        assert f"{OBS_METADATA}.persona" in span.attributes
        if not span.is_root or span.name != "wf":
            assert json.loads(span.attributes[TRACE_METADATA])["version"] == "1.2.0"
    check = by_name(spans, "check")
    assert check.attributes[f"{OBS_METADATA}.persona"] == "kept as given"  # the caller's wins
    assert check.attributes[f"{OBS_METADATA}.workflow"] == "wf"
    assert check.attributes[f"{OBS_METADATA}.stage"] == "qa"
    assert by_name(spans, "wf").attributes[f"{TRACE_METADATA}.version"] == "1.2.0"


# -- The guide's test workflow, as a separate process ------------------------------------------
def test_instrumented_workflow_module(receiver: LoopbackOTLP, tmp_path: Path) -> None:
    public_key, secret_key = unique_keys()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("LANGFUSE_", "OTEL_"))},
        "LANGFUSE_PUBLIC_KEY": public_key,
        "LANGFUSE_SECRET_KEY": secret_key,
        "LANGFUSE_HOST": receiver.url,
        "PYTHONIOENCODING": "utf-8",
    }
    completed = subprocess.run(
        [sys.executable, "-m", "hypertool.instrumentation.test_instrumented_workflow"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    out = completed.stdout
    assert "🔍 Langfuse tracing enabled!" in out
    assert f"Host: {receiver.url}" in out
    assert "⚠️  Langfuse not configured" not in out
    tokens = [int(n) for n in re.findall(r"📊 Tokens: (\d+)", out)]
    assert len(tokens) == 3, out

    spans = receiver.wait_for_spans(7, timeout=5, where=lambda s: OBS_TYPE in s.attributes)
    trace_line = re.search(r"Trace: ([0-9a-f]{32})", out)
    assert trace_line is not None
    workflow_trace = trace_line.group(1)
    # Four Langfuse traces: the workflow's (its persona's) and one per stage, each with one
    # user, all in one session (the workflow's trace id).
    users = one_user_per_trace(spans)
    assert users.pop(workflow_trace) == "backend-engineer"
    assert sorted(users.values()) == ["backend-engineer", "devops-engineer", "testing-specialist"]
    assert {s.attributes[SESSION_ID] for s in spans} == {workflow_trace}
    assert f"Session: {workflow_trace}" in out
    stages = [s for s in spans if s.is_root and s.trace_id != workflow_trace]
    assert sorted(s.attributes[TRACE_NAME] for s in stages) == [
        "package-release-workflow/publish",
        "package-release-workflow/quality-validation",
        "package-release-workflow/version-bump",
    ]
    # Per persona, both Users views sum exactly the tokens the demo printed.
    printed = dict(
        zip(["backend-engineer", "testing-specialist", "devops-engineer"], tokens, strict=True)
    )
    assert users_view(spans) == (printed, printed)
    gens = generations(spans)
    assert len(gens) == 3
    for generation in gens:
        usage = usage_of(generation)
        # The mock's cached system prompt is a bucket of its own: every token counted once.
        assert usage["input_cached_tokens"] == 60
        assert usage["input"] + usage["input_cached_tokens"] + usage["output"] == usage["total"]
        assert generation.attributes["hypertool.usage.estimated"] is False
    for request in receiver.trace_requests():
        assert_langfuse_wire(request, public_key, secret_key)


# -- What a plain script (no logging configured) experiences ------------------------------------
_SCRIPT = r"""
import sys
from hypertool.instrumentation import LangfuseIntegration

langfuse = LangfuseIntegration(
    public_key=sys.argv[2], secret_key=sys.argv[3], host=sys.argv[1], exit_timeout=1.0
)
for i in range(int(sys.argv[4])):
    trace = langfuse.start_trace(name=f"t{i}", persona="backend-engineer")
    langfuse.create_generation(trace, "g", "gpt-4", "p", "c", usage={"input": 1, "output": 2})
    langfuse.end_trace(trace)
    if i == 0:
        langfuse.flush(timeout=0.3)  # the first batch goes out now
print("done", flush=True)
"""


def _run_script(
    receiver: LoopbackOTLP, tmp_path: Path, traces: int
) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Run _SCRIPT in a fresh interpreter; return seconds from 'done' to exit, and the result."""
    public_key, secret_key = unique_keys()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LANGFUSE_", "OTEL_"))}
    env["PYTHONIOENCODING"] = "utf-8"
    process = subprocess.Popen(
        [sys.executable, "-c", _SCRIPT, receiver.url, public_key, secret_key, str(traces)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # bounded: the script prints as it finishes
        done_at = time.perf_counter()
        stdout, stderr = process.communicate(timeout=30)
        exit_delay = time.perf_counter() - done_at
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=5)
    assert line == "done\n", stderr
    return exit_delay, subprocess.CompletedProcess(
        process.args, process.returncode, line + stdout, stderr
    )


def test_process_exit_is_bounded_when_endpoint_hangs(tmp_path: Path) -> None:
    """langfuse's own SDK blocks exit ~5 s per queued batch; ours waits exit_timeout (1 s)."""
    with LoopbackOTLP(mode="hang", hang_max=30) as receiver:
        exit_delay, completed = _run_script(receiver, tmp_path, traces=3000)
        assert receiver.trace_requests(), "the exporter never reached the receiver"
    assert completed.returncode == 0, completed.stderr
    assert exit_delay < 3.0, f"exit took {exit_delay:.2f} s with exit_timeout=1.0"


def test_rejected_keys_are_visible_to_a_script_without_logging_config(tmp_path: Path) -> None:
    """The one clear message about bad keys must reach stderr, not only a configured logger."""
    with LoopbackOTLP(mode=401) as receiver:
        _, completed = _run_script(receiver, tmp_path, traces=3000)
        assert len(receiver.trace_requests()) >= 2
    assert completed.returncode == 0, completed.stderr
    assert completed.stderr.count("Langfuse rejected the keys") == 1, completed.stderr[-2000:]
