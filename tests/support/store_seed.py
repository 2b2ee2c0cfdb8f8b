"""Seed a trace store with real OpenTelemetry spans, and keep what was seeded for assertions.

Spans are made by an SDK ``TracerProvider`` with a ``SimpleSpanProcessor(StoreExporter)``, with
the attribute keys the integration writes, so the store sees exactly what the pipeline delivers.
Expected values in tests are computed from :class:`Seeded`, never typed in separately.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentelemetry import trace as trace_api
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanContext, Status, StatusCode, TraceFlags

from hypertool.instrumentation import semconv as attr
from hypertool.instrumentation.recording.spans import iso_time
from hypertool.instrumentation.store import StoreExporter

MS = 1_000_000
MINUTE = 60 * 1_000_000_000
DAY = 24 * 60 * MINUTE


@dataclass(frozen=True)
class Gen:
    """One seeded generation."""

    trace: str
    persona: str
    model: str
    tokens_in: int
    tokens_out: int
    cost: float | None
    ago_min: float
    latency_ms: float
    chatmode: str = ""
    workflow: str = ""
    stage: str = ""
    error: str | None = None
    estimated: bool = False
    prompt: str = "prompt"
    completion: str = "completion"
    first_token_ms: float | None = None  # streamed: the first token this long after the start
    prompt_name: str | None = None  # made from this managed prompt…
    prompt_version: int | None = None  # …at this version

    @property
    def total(self) -> int:
        return self.tokens_in + self.tokens_out


@dataclass(frozen=True)
class TraceSpec:
    """One seeded trace (its root span)."""

    key: str
    name: str
    persona: str
    chatmode: str
    workflow: str
    ago_min: float
    error: str | None = None


@dataclass
class Seeded:
    """What was written, with ids as the store will show them."""

    path: Path
    now_ns: int
    traces: list[TraceSpec]
    generations: list[Gen]
    trace_ids: dict[str, str] = field(default_factory=dict)
    span_ids: dict[int, str] = field(default_factory=dict)  # index in generations → span id
    stage_ids: dict[str, str] = field(default_factory=dict)  # "trace key/stage" → span id

    def start_ns(self, ago_min: float) -> int:
        return self.now_ns - int(ago_min * MINUTE)

    def gens(self, **match: Any) -> list[Gen]:
        return [g for g in self.generations if all(getattr(g, k) == v for k, v in match.items())]


TRACES = [
    TraceSpec(
        "release",
        "package-release-workflow",
        "backend-engineer",
        "package-release",
        "package-release-workflow",
        ago_min=30,
    ),
    TraceSpec(
        "debug",
        "debug-session",
        "devops-engineer",
        "debugging",
        "",
        ago_min=20,
        error="deploy failed",
    ),
    TraceSpec("old", "old-review", "testing-specialist", "code-review", "", ago_min=3 * 24 * 60),
]

GENERATIONS = [
    Gen(
        "release",
        "backend-engineer",
        "gpt-4o",
        100,
        50,
        0.00075,
        29.9,
        120.0,
        "package-release",
        "package-release-workflow",
        "version-bump",
        prompt="Implement backend for: Update version to [1.2.0]",
        completion="Bumped the version in pyproject.toml",
    ),
    Gen(
        "release",
        "testing-specialist",
        "gpt-4o",
        200,
        80,
        0.0013,
        29.5,
        450.0,
        "package-release",
        "package-release-workflow",
        "quality-validation",
        prompt="Write tests for: Validate release",
        completion="Added 12 tests",
    ),
    Gen(
        "release",
        "devops-engineer",
        "my-local-model",
        30,
        20,
        None,
        29.0,
        80.0,
        "package-release",
        "package-release-workflow",
        "publish",
        prompt="Deploy: Publish package",
        completion="Published",
    ),
    Gen(
        "release",
        "backend-engineer",
        "gpt-4o",
        60,
        40,
        0.00055,
        28.5,
        200.0,
        "package-release",
        "package-release-workflow",
        "",
        prompt="Summarise the release",
        completion="Release 1.2.0 is out",
    ),
    Gen(
        "debug",
        "devops-engineer",
        "gpt-4o-mini",
        3000,
        1500,
        0.00135,
        19.0,
        2500.0,
        "debugging",
        error="rate limited by provider",
        estimated=True,
        prompt="Why does the deploy fail?",
        completion="",
    ),
    Gen(
        "debug",
        "devops-engineer",
        "gpt-4o-mini",
        400,
        100,
        0.00012,
        18.0,
        300.0,
        "debugging",
        prompt="Check the logs",
        completion="Disk full on runner",
    ),
    Gen(
        "",
        "data-scientist",
        "claude-sonnet-4",
        500,
        250,
        0.00525,
        10.0,
        900.0,
        "analysis",
        prompt="Explain the churn model",
        completion="It is a gradient boosted tree",
    ),
    Gen(
        "old",
        "testing-specialist",
        "gpt-4o",
        1000,
        1000,
        0.0125,
        3 * 24 * 60 - 1,
        1000.0,
        "code-review",
        prompt="Review this diff",
        completion="Looks good",
    ),
]


def _json(value: dict[str, Any]) -> str:
    return json.dumps(value)


def generation_attributes(gen: Gen, trace_name: str, start_ns: int = 0) -> dict[str, Any]:
    """The attributes the integration puts on a generation span."""
    attributes: dict[str, Any] = {
        attr.TRACE_NAME: trace_name,
        attr.USER_ID: gen.persona,
        attr.PERSONA: gen.persona,
        attr.CHATMODE: gen.chatmode,
        attr.OBSERVATION_TYPE: attr.TYPE_GENERATION,
        attr.MODEL: gen.model,
        attr.INPUT: gen.prompt,
        attr.OUTPUT: gen.completion,
        attr.USAGE_DETAILS: _json(
            {"input": gen.tokens_in, "output": gen.tokens_out, "total": gen.total}
        ),
        attr.GEN_AI_INPUT_TOKENS: gen.tokens_in,
        attr.GEN_AI_OUTPUT_TOKENS: gen.tokens_out,
        attr.USAGE_ESTIMATED: gen.estimated,
        attr.COST_KNOWN: gen.cost is not None,
    }
    if gen.cost is not None:
        attributes[attr.COST_DETAILS] = _json(
            {"input": gen.cost * 0.4, "output": gen.cost * 0.6, "total": gen.cost}
        )
    if gen.workflow:
        attributes[attr.WORKFLOW] = gen.workflow
    if gen.stage:
        attributes[attr.STAGE] = gen.stage
    if gen.error:
        attributes[attr.LEVEL] = attr.LEVEL_ERROR
        attributes[attr.STATUS_MESSAGE] = gen.error
    if gen.first_token_ms is not None:
        attributes[attr.COMPLETION_START_TIME] = iso_time(start_ns + int(gen.first_token_ms * MS))
    if gen.prompt_name is not None:
        attributes[attr.PROMPT_NAME] = gen.prompt_name
        attributes[attr.PROMPT_VERSION] = gen.prompt_version
    return attributes


def _end(span: trace_api.Span, error: str | None, end_ns: int) -> None:
    if error:
        span.set_status(Status(StatusCode.ERROR, error))
    span.end(end_time=end_ns)


def seed_store(
    path: Path,
    traces: list[TraceSpec] | None = None,
    generations: list[Gen] | None = None,
    now_ns: int | None = None,
) -> Seeded:
    """Write the traces and generations to the store at ``path`` through real spans."""
    seeded = Seeded(
        path,
        now_ns or time.time_ns(),
        list(TRACES if traces is None else traces),
        list(GENERATIONS if generations is None else generations),
    )
    provider = TracerProvider(resource=Resource.create({"service.name": "test"}))
    exporter = StoreExporter(path, retention_days=30)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("hypertool.instrumentation")
    for spec in seeded.traces:
        start = seeded.start_ns(spec.ago_min)
        root_attrs: dict[str, Any] = {
            attr.TRACE_NAME: spec.name,
            attr.USER_ID: spec.persona,
            attr.PERSONA: spec.persona,
            attr.CHATMODE: spec.chatmode,
            attr.OBSERVATION_TYPE: attr.TYPE_SPAN,
        }
        if spec.workflow:
            root_attrs[attr.WORKFLOW] = spec.workflow
        if spec.error:
            root_attrs[attr.LEVEL] = attr.LEVEL_ERROR
            root_attrs[attr.STATUS_MESSAGE] = spec.error
        root = tracer.start_span(
            spec.name, context=Context(), attributes=root_attrs, start_time=start
        )
        seeded.trace_ids[spec.key] = format(root.get_span_context().trace_id, "032x")
        stages: dict[str, trace_api.Span] = {}
        last_end = start
        for index, gen in enumerate(seeded.generations):
            if gen.trace != spec.key:
                continue
            parent = root
            if gen.stage:
                if gen.stage not in stages:
                    stages[gen.stage] = tracer.start_span(
                        gen.stage,
                        context=trace_api.set_span_in_context(root),
                        attributes={
                            attr.TRACE_NAME: spec.name,
                            attr.USER_ID: gen.persona,
                            attr.PERSONA: gen.persona,
                            attr.CHATMODE: gen.chatmode,
                            attr.OBSERVATION_TYPE: attr.TYPE_SPAN,
                            attr.WORKFLOW: gen.workflow,
                            attr.STAGE: gen.stage,
                        },
                        start_time=seeded.start_ns(gen.ago_min) - MS,
                    )
                    stage_id = stages[gen.stage].get_span_context().span_id
                    seeded.stage_ids[f"{spec.key}/{gen.stage}"] = format(stage_id, "016x")
                parent = stages[gen.stage]
            begin = seeded.start_ns(gen.ago_min)
            span = tracer.start_span(
                "llm",
                context=trace_api.set_span_in_context(parent),
                attributes=generation_attributes(gen, spec.name, begin),
                start_time=begin,
            )
            seeded.span_ids[index] = format(span.get_span_context().span_id, "016x")
            end = begin + int(gen.latency_ms * MS)
            _end(span, gen.error, end)
            last_end = max(last_end, end)
        for stage in stages.values():
            stage.end(end_time=last_end)
        _end(root, spec.error, last_end + MS)
    for index, gen in enumerate(seeded.generations):
        if gen.trace:
            continue
        begin = seeded.start_ns(gen.ago_min)
        span = tracer.start_span(
            "llm",
            context=Context(),
            attributes=generation_attributes(gen, "standalone", begin),
            start_time=begin,
        )
        seeded.span_ids[index] = format(span.get_span_context().span_id, "016x")
        seeded.trace_ids[f"gen-{index}"] = format(span.get_span_context().trace_id, "032x")
        _end(span, gen.error, begin + int(gen.latency_ms * MS))
    provider.shutdown()
    return seeded


def readable_span(
    trace_id: int,
    span_id: int,
    *,
    parent: int | None = None,
    name: str = "llm",
    attributes: dict[str, Any] | None = None,
    start_ns: int | None = None,
    latency_ns: int = 5 * MS,
) -> ReadableSpan:
    """A finished span built directly (fast, for bulk and concurrency tests)."""
    start = start_ns if start_ns is not None else time.time_ns()
    return ReadableSpan(
        name=name,
        context=SpanContext(trace_id, span_id, False, TraceFlags(1)),
        parent=None if parent is None else SpanContext(trace_id, parent, False, TraceFlags(1)),
        resource=_RESOURCE,
        attributes=attributes or {},
        start_time=start,
        end_time=start + latency_ns,
    )


_RESOURCE = Resource.create({"service.name": "test"})
