"""The guide's package-release workflow, the `hypertool demo` command and the module entry point."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from hypertool.instrumentation import LangfuseIntegration, builtin_personas
from hypertool.instrumentation import metrics as metrics_module
from hypertool.instrumentation import semconv as attr
from hypertool.instrumentation.cli import main as cli_main
from hypertool.instrumentation.mock_llm import SYSTEM_PROMPT_TOKENS, mock_llm
from hypertool.instrumentation.test_instrumented_workflow import (
    WORKFLOW,
    WorkflowResult,
    release_stages,
    run_release_workflow,
)
from support.spans import attrs, parent_hex, span_hex

STAGE_HEADER = re.compile(r"^📝 Stage (\d+): (.+)$")
PERSONA_LINE = re.compile(r"^ {3}Persona: (\S+)$")
TOKENS_LINE = re.compile(r"^ {3}📊 Tokens: (-?\d+)$")
REMAINING_LINE = re.compile(r"^ {3}💰 Budget remaining: (-?\d+)$")


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def langfuse(exporter: InMemorySpanExporter) -> Iterator[LangfuseIntegration]:
    integration = LangfuseIntegration(exporters={"memory": exporter})
    yield integration
    integration.shutdown(0)


@pytest.fixture
async def run(
    langfuse: LangfuseIntegration, exporter: InMemorySpanExporter
) -> tuple[WorkflowResult, list[str], list[ReadableSpan]]:
    lines: list[str] = []
    result = await run_release_workflow(langfuse, out=lines.append)
    assert langfuse.flush(timeout=5.0)
    return result, lines, list(exporter.get_finished_spans())


def printed_stages(lines: list[str]) -> list[dict[str, Any]]:
    """Each printed stage: number, title, persona, tokens, remaining."""
    stages: list[dict[str, Any]] = []
    for line in lines:
        if match := STAGE_HEADER.match(line):
            stages.append({"number": int(match[1]), "title": match[2]})
        elif match := PERSONA_LINE.match(line):
            stages[-1]["persona"] = match[1]
        elif match := TOKENS_LINE.match(line):
            stages[-1]["tokens"] = int(match[1])
        elif match := REMAINING_LINE.match(line):
            stages[-1]["remaining"] = int(match[1])
    return stages


def generation_spans(spans: list[ReadableSpan]) -> list[ReadableSpan]:
    return [s for s in spans if attrs(s).get(attr.OBSERVATION_TYPE) == attr.TYPE_GENERATION]


# -- printed numbers are the recorded numbers --------------------------------------------


async def test_printed_tokens_equal_recorded_usage(
    run: tuple[WorkflowResult, list[str], list[ReadableSpan]],
) -> None:
    result, lines, spans = run
    stages = printed_stages(lines)
    expected_stages = release_stages("1.2.0")
    assert [s["number"] for s in stages] == [1, 2, 3]
    assert [s["title"] for s in stages] == [stage.title for stage in expected_stages]
    assert [s["persona"] for s in stages] == [stage.persona for stage in expected_stages]
    gens = generation_spans(spans)
    for printed, stage in zip(stages, expected_stages, strict=True):
        usage = [
            json.loads(attrs(g)[attr.USAGE_DETAILS])
            for g in gens
            if attrs(g)[attr.USER_ID] == stage.persona
        ]
        assert len(usage) == 1
        # Langfuse counts every input* and every output* key: the cached system prompt once.
        counted_in = sum(v for k, v in usage[0].items() if "input" in k)
        counted_out = sum(v for k, v in usage[0].items() if "output" in k)
        assert printed["tokens"] == counted_in + counted_out == usage[0]["total"]
        # and that is what the mock reported for this prompt and persona
        answer = await mock_llm(stage.prompt, persona=stage.persona)
        assert printed["tokens"] == answer["usage"]["total_tokens"]
        assert counted_in == answer["usage"]["prompt_tokens"]
        assert usage[0]["input_cached_tokens"] == SYSTEM_PROMPT_TOKENS
        assert counted_out == answer["usage"]["completion_tokens"]
    assert [r.tokens for r in result.stages] == [s["tokens"] for s in stages]


async def test_printed_budget_remaining_is_budget_minus_used(
    run: tuple[WorkflowResult, list[str], list[ReadableSpan]],
    langfuse: LangfuseIntegration,
) -> None:
    result, lines, _ = run
    budgets = builtin_personas()
    for printed in printed_stages(lines):
        budget = budgets.budget(printed["persona"])
        assert budget is not None
        assert printed["remaining"] == budget - printed["tokens"]
        assert langfuse.budgets.remaining(printed["persona"]) == printed["remaining"]
    assert [r.budget_remaining for r in result.stages] == [
        s["remaining"] for s in printed_stages(lines)
    ]


async def test_summary_lines(
    run: tuple[WorkflowResult, list[str], list[ReadableSpan]],
) -> None:
    result, lines, _ = run
    stages = printed_stages(lines)
    budgets = builtin_personas()
    for printed in stages:
        persona, tokens = printed["persona"], printed["tokens"]
        budget = budgets.budget(persona)
        assert budget is not None
        expected = f"   {persona}: {tokens} tokens (budget {budget}, remaining {budget - tokens})"
        assert expected in lines
    assert f"   Total tokens: {sum(s['tokens'] for s in stages)}" in lines
    assert f"   Trace: {result.trace_id}" in lines
    assert "✅ Package Release Workflow Complete!" in lines


async def test_summary_adds_one_line_of_quality_per_persona(
    run: tuple[WorkflowResult, list[str], list[ReadableSpan]],
) -> None:
    result, lines, _ = run
    summary = lines[lines.index("📈 Summary") :]
    quality = [line for line in summary if " quality: " in line]
    # Each stage passed its gate; each answer names the version asked about (on_topic).
    assert quality == [
        f"   {stage.persona} quality: 1/1 quality gates passed, on_topic 1.00 (n=1)"
        for stage in release_stages("1.2.0")
    ]
    gates = [s for s in result.scores if s.name == "quality_gate"]
    assert sorted((s.persona, s.value) for s in gates) == sorted(
        (stage.persona, 1.0) for stage in release_stages("1.2.0")
    )


async def test_generations_are_linked_to_the_shipped_prompts(
    run: tuple[WorkflowResult, list[str], list[ReadableSpan]],
) -> None:
    _, _, spans = run
    linked = sorted(
        (attrs(g)[attr.PROMPT_NAME], attrs(g)[attr.PROMPT_VERSION], attrs(g)[attr.INPUT])
        for g in generation_spans(spans)
    )
    # No Langfuse and no store: the package's own prompts, versioned in memory from 1.
    assert linked == sorted((st.prompt_name, 1, st.prompt) for st in release_stages("1.2.0"))


def test_shipped_prompts_are_the_stage_templates() -> None:
    from hypertool.instrumentation.prompts import BUILTIN_DIR
    from hypertool.instrumentation.prompts.files import find

    for stage in release_stages("1.2.0"):
        shipped = find([BUILTIN_DIR], stage.prompt_name)
        assert shipped is not None and shipped.prompt == stage.template


async def test_output_ends_with_not_configured_without_keys(
    run: tuple[WorkflowResult, list[str], list[ReadableSpan]],
) -> None:
    result, lines, _ = run
    assert lines[-2] == "⚠️  Langfuse not configured"
    assert "LANGFUSE_PUBLIC_KEY" in lines[-1] and "LANGFUSE_SECRET_KEY" in lines[-1]
    assert result.trace_url is None
    assert not any("Langfuse tracing enabled" in line for line in lines)


# -- the trace tree ----------------------------------------------------------------------


async def test_trace_tree(run: tuple[WorkflowResult, list[str], list[ReadableSpan]]) -> None:
    result, _, spans = run
    assert {format(s.context.trace_id, "032x") for s in spans if s.context} == {result.trace_id}
    roots = [s for s in spans if s.parent is None]
    assert len(roots) == 1
    root = roots[0]
    assert root.name == WORKFLOW
    assert attrs(root)[attr.TRACE_STATUS] == "success"
    stages = [s for s in spans if parent_hex(s) == span_hex(root)]
    expected = release_stages("1.2.0")
    assert len(stages) == len(expected) == 3
    stage_key = f"{attr.OBSERVATION_METADATA}.stage"
    assert sorted(attrs(s)[stage_key] for s in stages) == sorted(st.key for st in expected)
    gens = generation_spans(spans)
    assert len(spans) == 1 + len(stages) + len(gens)
    for stage in expected:
        stage_span = next(s for s in stages if attrs(s)[stage_key] == stage.key)
        assert attrs(stage_span)[attr.OBSERVATION_TYPE] == attr.TYPE_SPAN
        assert attrs(stage_span)[attr.USER_ID] == stage.persona
        children = [g for g in gens if parent_hex(g) == span_hex(stage_span)]
        assert len(children) == 1
        generation = attrs(children[0])
        assert generation[attr.USER_ID] == stage.persona
        assert generation[attr.MODEL] == "gpt-4"
        assert generation[attr.STAGE] == stage.key
        assert generation[attr.WORKFLOW] == WORKFLOW
        assert generation[attr.INPUT] == stage.prompt
        assert generation[attr.USAGE_ESTIMATED] is False
    assert all(parent_hex(g) != span_hex(root) for g in gens)


async def test_other_version_reaches_prompts_and_trace_metadata(
    langfuse: LangfuseIntegration, exporter: InMemorySpanExporter
) -> None:
    lines: list[str] = []
    await run_release_workflow(langfuse, version="9.8.7", out=lines.append)
    assert langfuse.flush(5.0)
    spans = list(exporter.get_finished_spans())
    root = next(s for s in spans if s.parent is None)
    assert attrs(root)[f"{attr.TRACE_METADATA}.version"] == "9.8.7"
    assert any("9.8.7" in line and "Mock LLM response" in line for line in lines)


async def test_second_run_accumulates_budget_use(
    langfuse: LangfuseIntegration,
) -> None:
    first_lines: list[str] = []
    second_lines: list[str] = []
    await run_release_workflow(langfuse, out=first_lines.append)
    await run_release_workflow(langfuse, out=second_lines.append)
    first, second = printed_stages(first_lines), printed_stages(second_lines)
    for a, b in zip(first, second, strict=True):
        assert b["tokens"] == a["tokens"]  # tokens of this stage, not cumulative
        assert b["remaining"] == a["remaining"] - b["tokens"]


# -- entry points ------------------------------------------------------------------------


@pytest.fixture
def fresh_prometheus_registry(monkeypatch: pytest.MonkeyPatch) -> CollectorRegistry:
    """The demo registers its metrics in prometheus_client's default registry; give each test
    its own so tests do not depend on each other."""
    registry = CollectorRegistry()
    monkeypatch.setattr(metrics_module, "REGISTRY", registry, raising=False)
    return registry


@pytest.mark.usefixtures("fresh_prometheus_registry")
def test_cli_demo(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "Package Release Workflow Complete" in out
    assert "Langfuse not configured" in out


@pytest.mark.usefixtures("fresh_prometheus_registry")
def test_cli_demo_release_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["demo", "--release-version", "3.1.4"]) == 0
    out = capsys.readouterr().out
    assert "Update version to 3.1.4" in out


@pytest.mark.usefixtures("fresh_prometheus_registry")
def test_cli_demo_runs_twice_in_one_process(capsys: pytest.CaptureFixture[str]) -> None:
    # main() is a plain function (the console script, but also callable from code and tests)
    assert cli_main(["demo"]) == 0
    assert cli_main(["demo"]) == 0
    assert capsys.readouterr().out.count("Package Release Workflow Complete") == 2


def test_cli_requires_a_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli_main([])
    assert info.value.code == 2


def test_module_runs_as_script(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "hypertool.instrumentation.test_instrumented_workflow"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert "Package Release Workflow Complete" in completed.stdout
    assert "Langfuse not configured" in completed.stdout
