"""The guide's instrumented package-release workflow (run it as a module to validate setup).

``python -m hypertool.instrumentation.test_instrumented_workflow`` runs three stages —
backend-engineer, testing-specialist, devops-engineer — each calling a deterministic mock LLM
through :class:`ObservableLLM` with a managed prompt (``release/…``: from Langfuse when it has
them, else the copies shipped with the package), and prints what was recorded. Each stage's
quality gate is a score; so is each answer's ``on_topic`` check.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from hypertool.instrumentation.integration import (
    LangfuseIntegration,
    get_langfuse_integration,
)
from hypertool.instrumentation.metrics import PersonaMetricsCollector
from hypertool.instrumentation.mock_llm import MockRateLimitError, mock_llm
from hypertool.instrumentation.model.prompts import compile_template
from hypertool.instrumentation.model.scores import QUALITY_GATE, Score
from hypertool.instrumentation.observable import ObservableLLM
from hypertool.instrumentation.workflow import WorkflowTracer

CHATMODE = "package-release"
WORKFLOW = "package-release-workflow"


@dataclass(frozen=True)
class Stage:
    """One stage of the release workflow: its managed prompt, and the template it falls back
    to (the same text as the copy shipped with the package).
    """

    key: str
    title: str
    persona: str
    prompt_name: str
    template: str
    version: str

    @property
    def prompt(self) -> str:
        """The prompt sent, for this release version."""
        return compile_template(self.template, {"version": self.version})


def release_stages(version: str) -> list[Stage]:
    """The package-release stages for ``version``."""
    return [
        Stage(
            "version-bump",
            "Version Bump",
            "backend-engineer",
            "release/version-bump",
            "Implement backend for: Update version to {{version}}",
            version,
        ),
        Stage(
            "quality-validation",
            "Quality Validation",
            "testing-specialist",
            "release/quality-validation",
            "Write tests for: Validate release {{version}}",
            version,
        ),
        Stage(
            "publish",
            "Publish",
            "devops-engineer",
            "release/publish",
            "Deploy: Publish package {{version}} to PyPI",
            version,
        ),
    ]


@dataclass
class StageResult:
    """What one stage recorded."""

    stage: Stage
    response: str
    tokens: int
    budget_remaining: int | None


@dataclass
class WorkflowResult:
    """What the workflow recorded."""

    trace_id: str
    trace_url: str | None
    stages: list[StageResult] = field(default_factory=list)
    scores: list[Score] = field(default_factory=list)

    @property
    def tokens_by_persona(self) -> dict[str, int]:
        """Tokens used per persona in this run."""
        totals: dict[str, int] = {}
        for result in self.stages:
            totals[result.stage.persona] = totals.get(result.stage.persona, 0) + result.tokens
        return totals

    def quality_line(self, persona: str) -> str:
        """The summary's line of quality for ``persona``: gates passed, mean of other scores."""
        mine = [score for score in self.scores if score.persona == persona]
        gates = [score.numeric for score in mine if score.name == QUALITY_GATE]
        parts = [f"{int(sum(g or 0 for g in gates))}/{len(gates)} quality gates passed"]
        for name in sorted({score.name for score in mine} - {QUALITY_GATE}):
            values = [s.numeric for s in mine if s.name == name and s.numeric is not None]
            if values:
                parts.append(f"{name} {sum(values) / len(values):.2f} (n={len(values)})")
        return f"   {persona} quality: {', '.join(parts)}"


def on_topic(prompt: object, completion: str) -> bool:
    """A scorer: the answer names the release version the prompt asked about."""
    words = str(prompt).split()
    return bool(words) and any(word in completion for word in words if word[:1].isdigit())


async def run_release_workflow(
    langfuse: LangfuseIntegration | None = None,
    *,
    version: str = "1.2.0",
    metrics: PersonaMetricsCollector | None = None,
    out: Callable[[str], None] = print,
    provoke_failure: bool = False,
) -> WorkflowResult:
    """Run the package-release workflow, printing each stage like the guide's expected output.

    The workflow is one trace (a :class:`WorkflowTracer`); each stage is a span with its persona
    and one generation through :class:`ObservableLLM`. Tokens and budgets printed are read back
    from what was recorded. ``metrics``, when given, is fed by the same generations. With
    ``provoke_failure`` the last stage's first call fails (a mock 429) and is retried, so the
    failure can be found afterwards (``hypertool generations --failed``). Prompts are the
    managed ``release/…`` prompts; quality gates and ``on_topic`` are scores, summed up per
    persona at the end.
    """
    langfuse = langfuse or get_langfuse_integration()
    if metrics is not None:
        metrics.attach(langfuse)
    scores: list[Score] = []
    langfuse.add_score_listener(scores.append)

    async def call_llm(prompt: str, persona: str, fail: bool = False) -> dict[str, object]:
        return await mock_llm(prompt, persona=persona, fail=fail)

    llm = ObservableLLM(
        llm_function=call_llm,
        model="gpt-4",
        langfuse=langfuse,
        name="release-llm",
        scorers=[on_topic],
    )
    out("🚀 Starting Package Release Workflow")
    out("=" * 60)
    workflow = WorkflowTracer(
        WORKFLOW,
        {"version": version},
        langfuse=langfuse,
        metrics=metrics,
        chatmode=CHATMODE,
        persona="backend-engineer",
    )
    async with workflow:
        assert workflow.trace is not None
        trace = workflow.trace
        result = WorkflowResult(trace_id=trace.trace_id, trace_url=trace.url)
        stages = release_stages(version)
        for number, stage in enumerate(stages, start=1):
            out("")
            out(f"📝 Stage {number}: {stage.title}")
            out(f"   Persona: {stage.persona}")
            used_before = langfuse.budgets.used(stage.persona)
            managed = langfuse.get_prompt(stage.prompt_name, fallback=stage.template)
            prompt = managed.compile(version=version)  # links each generation to its version
            async with workflow.stage(stage.key, stage.persona):
                if provoke_failure and stage is stages[-1]:
                    # One failed call on purpose, retried: it shows up as a failed generation.
                    try:
                        await llm(prompt, stage.persona, True, persona=stage.persona)
                    except MockRateLimitError as exc:
                        out(f"   ⚠️  Attempt 1 failed ({exc}); retrying")
                response = await llm(prompt, stage.persona, persona=stage.persona)
            text = str(response["choices"][0]["message"]["content"])
            tokens = langfuse.budgets.used(stage.persona) - used_before
            remaining = langfuse.budgets.remaining(stage.persona)
            result.stages.append(StageResult(stage, text, tokens, remaining))
            out(f"   ✅ {text}")
            out(f"   📊 Tokens: {tokens}")
            out(f"   💰 Budget remaining: {remaining if remaining is not None else 'no budget'}")
    langfuse.flush(timeout=5.0)  # records what is pending: every score is in ``scores`` now
    langfuse.remove_score_listener(scores.append)
    result.scores = scores

    out("")
    out("=" * 60)
    out("📈 Summary")
    for persona, tokens in result.tokens_by_persona.items():
        remaining = langfuse.budgets.remaining(persona)
        budget = langfuse.budgets.budget(persona)
        out(f"   {persona}: {tokens} tokens (budget {budget}, remaining {remaining})")
    out(f"   Total tokens: {sum(result.tokens_by_persona.values())}")
    for persona in result.tokens_by_persona:
        out(result.quality_line(persona))
    out(f"   Trace: {trace.trace_id}")
    if "store" in langfuse.sinks:
        out(
            "   Local store: browse it with `.venv/bin/hypertool ui` "
            "(or `hypertool report --by persona`, `hypertool trace ID`)"
        )
    out("")
    out("✅ Package Release Workflow Complete!")
    out("")
    if langfuse.enabled:
        out("🔍 Langfuse tracing enabled!")
        out(f"   Host: {langfuse.host}")
        if trace.url:
            out(f"   Trace: {trace.url}")
        out(f"   Session: {workflow.langfuse_session_id} (the workflow's trace and one per stage,")
        out("            each with the stage's persona as its user)")
        out("   Check Langfuse UI for LLM traces with persona context")
    else:
        out("⚠️  Langfuse not configured")
        out("   Set LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY to send traces to Langfuse")
    return result


def main() -> None:
    """Run the workflow with the default integration."""
    asyncio.run(run_release_workflow())


if __name__ == "__main__":
    main()
