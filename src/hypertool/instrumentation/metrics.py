"""Prometheus metrics per persona, fed in-process from the same events as the traces."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.registry import REGISTRY

from hypertool.instrumentation._fork import reset_in_child
from hypertool.instrumentation.budget import BudgetLedger
from hypertool.instrumentation.export.drops import (
    dropped_scores_counter,
    dropped_spans_counter,
    start_at_zero,
)
from hypertool.instrumentation.model.records import GenerationRecord
from hypertool.instrumentation.model.scores import Score
from hypertool.instrumentation.personas import PersonaRegistry, builtin_personas, canonical_name

if TYPE_CHECKING:
    from hypertool.instrumentation.integration import LangfuseIntegration

QUALITY_PASSED = "passed"
QUALITY_FAILED = "failed"
OTHER = "other"
DEFAULT_MAX_LABEL_VALUES = 200
_STAGE_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
_LLM_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
# Scores are mostly 0–1 (BOOLEAN gates, normalised evaluators); some are 1–5 or 1–10 ratings.
_SCORE_BUCKETS = (0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1, 2, 3, 4, 5, 10)


class _BoundedLabel:
    """Past ``limit`` distinct values, new ones are reported as ``other`` (never in traces)."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._seen: set[str] = set()
        self._lock = threading.Lock()
        reset_in_child(self, _BoundedLabel._after_fork)

    def _after_fork(self) -> None:
        self._lock = threading.Lock()

    def __call__(self, value: str) -> str:
        if value in self._seen:
            return value
        with self._lock:
            if len(self._seen) >= self._limit:
                return OTHER
            self._seen.add(value)
        return value


class PersonaMetricsCollector:
    """The persona, workflow and LLM metrics of Hypertool on ``prometheus_client``.

    Args:
        registry: Registry to register in; the default registry when None.
        personas: Persona definitions whose ``tokenBudget`` are the budgets (until
            :meth:`attach`, which uses the integration's).
        max_label_values: Distinct personas/models/workflows/stages kept per label; further
            values are reported as ``other`` so a bug cannot explode Prometheus.
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        personas: PersonaRegistry | None = None,
        *,
        max_label_values: int = DEFAULT_MAX_LABEL_VALUES,
    ) -> None:
        self.registry = registry if registry is not None else REGISTRY
        self.personas = personas if personas is not None else builtin_personas()
        # One ledger: this one only until attach() hands over the integration's, so the
        # remaining-budget gauge follows its period, policy and store history.
        self.budgets = BudgetLedger(self.personas)
        self._attached: set[int] = set()
        self._persona = _BoundedLabel(max_label_values)
        self._model = _BoundedLabel(max_label_values)
        self._name = _BoundedLabel(max_label_values)
        reg = self.registry
        self.persona_switches = Counter(
            "hypertool_persona_switches_total",
            "Persona switches between workflow stages",
            ["from_persona", "to_persona", "chatmode"],
            registry=reg,
        )
        self.persona_duration = Histogram(
            "hypertool_persona_duration_seconds",
            "Time spent working as a persona (per stage)",
            ["persona", "chatmode"],
            buckets=_STAGE_BUCKETS,
            registry=reg,
        )
        self.tokens_used = Counter(
            "hypertool_persona_tokens_used_total",
            "Tokens used per persona (input + output)",
            ["persona", "chatmode", "model"],
            registry=reg,
        )
        # Under prometheus_client's multiprocess mode (pre-fork servers) each worker publishes
        # the remaining budget its ledger sees, which never counts the other workers' latest
        # calls: the lowest of the live workers' values is the tightest bound (and the first to
        # cross 0). Every worker has the same limit. Dead workers' values are dropped
        # (``mark_process_dead``). Counters and histograms are summed over all workers.
        self.budget_remaining = Gauge(
            "hypertool_persona_token_budget_remaining",
            "Token budget left per persona; negative when overrun",
            ["persona"],
            registry=reg,
            multiprocess_mode="livemin",
        )
        self.budget_limit = Gauge(
            "hypertool_persona_token_budget_limit",
            "Token budget per persona",
            ["persona"],
            registry=reg,
            multiprocess_mode="livemax",
        )
        self.stage_duration = Histogram(
            "hypertool_workflow_stage_duration_seconds",
            "Duration of workflow stages",
            ["workflow", "stage", "persona"],
            buckets=_STAGE_BUCKETS,
            registry=reg,
        )
        self.quality_gate = Counter(
            "hypertool_workflow_quality_gate_total",
            "Quality gate results of workflow stages (result: passed|failed)",
            ["workflow", "stage", "result"],
            registry=reg,
        )
        self.llm_requests = Counter(
            "hypertool_llm_requests_total",
            "LLM calls per persona and model (status: success|error)",
            ["persona", "model", "status"],
            registry=reg,
        )
        self.llm_duration = Histogram(
            "hypertool_llm_request_duration_seconds",
            "LLM call latency",
            ["persona", "model"],
            buckets=_LLM_BUCKETS,
            registry=reg,
        )
        self.llm_cost = Counter(
            "hypertool_llm_cost_usd_total",
            "LLM cost in USD (calls with a known price)",
            ["persona", "chatmode", "model"],
            registry=reg,
        )
        self.quality_score = Histogram(
            "hypertool_quality_score",
            "NUMERIC and BOOLEAN (1/0) scores given to the work of a persona and chatmode",
            ["persona", "chatmode", "name"],
            buckets=_SCORE_BUCKETS,
            registry=reg,
        )
        self.dropped_spans = dropped_spans_counter(reg)
        self.dropped_scores = dropped_scores_counter(reg)
        for name in self.personas:
            self._publish_budget(name, sync=False)

    # -- wiring ----------------------------------------------------------------------------
    def attach(self, integration: LangfuseIntegration) -> PersonaMetricsCollector:
        """Feed these metrics from every generation and dropped span of ``integration``, and
        read budgets from its ledger.

        Attaching twice to the same integration counts each generation once.
        """
        if id(integration) in self._attached:
            return self
        self._attached.add(id(integration))
        self.budgets = integration.budgets
        self.personas = integration.budgets.personas
        integration.add_listener(self.record_generation)
        integration.add_score_listener(self.record_score)
        # The integration already counts its drops in its registry; count here only if ours
        # is another one, so no span is counted twice.
        if integration.metrics_registry is not self.registry:
            if integration.pipeline is not None:
                start_at_zero(self.registry, integration.sinks)
                for processor in integration.pipeline.processors:
                    processor.add_drop_listener(self.record_dropped_spans)
            if integration.quality.delivery is not None:
                for processor in integration.quality.delivery.processors:
                    processor.add_drop_listener(self.record_dropped_scores)
                    self.dropped_scores.labels(processor.sink)  # starts at 0
        for name in self.personas:
            self._publish_budget(name, sync=False)
        return self

    def record_generation(self, record: GenerationRecord) -> None:
        """Count one generation: request, latency, tokens, cost; publish its persona's budget.

        The ledger already holds the generation (the integration recorded it there first).
        """
        persona = self._persona(record.persona)
        model = self._model(record.model or "unknown")
        self.llm_requests.labels(persona, model, record.status).inc()
        self.llm_duration.labels(persona, model).observe(max(record.duration_s, 0.0))
        self._count_tokens(record.persona, record.usage.total, record.chatmode, record.model)
        if record.cost_usd is not None:
            self.record_cost(record.persona, record.cost_usd, record.chatmode, record.model)
        # On the recorder thread: read the ledger as it is, without waiting for the backlog.
        self._publish_budget(record.persona, sync=False)

    def record_dropped_spans(self, sink: str, count: int) -> None:
        """Count spans the ``sink`` could not deliver."""
        self.dropped_spans.labels(sink).inc(count)

    def record_dropped_scores(self, sink: str, count: int) -> None:
        """Count scores the ``sink`` could not deliver."""
        self.dropped_scores.labels(sink).inc(count)

    def record_score(self, score: Score) -> None:
        """Observe a NUMERIC or BOOLEAN score in ``hypertool_quality_score`` (CATEGORICAL and
        TEXT scores have no number to observe).
        """
        value = score.numeric
        if value is None:
            return
        self.quality_score.labels(
            self._persona(score.persona or "unknown"),
            score.chatmode,
            self._name(score.name),
        ).observe(value)

    # -- the original collector's API ------------------------------------------------------
    def switch_persona(self, from_persona: str, to_persona: str, chatmode: str = "") -> None:
        """Count a switch from one persona to another."""
        self.persona_switches.labels(
            self._persona(canonical_name(from_persona)),
            self._persona(canonical_name(to_persona)),
            chatmode,
        ).inc()

    def record_token_usage(
        self, persona: str, tokens: int, chatmode: str = "", model: str = "unknown"
    ) -> None:
        """Count ``tokens`` used by ``persona`` (recorded in the ledger) and update its
        remaining budget.
        """
        name = canonical_name(persona)
        self._count_tokens(name, tokens, chatmode, model)
        self.budgets.record(name, tokens)
        self._publish_budget(name)

    def _count_tokens(self, persona: str, tokens: int, chatmode: str, model: str) -> None:
        if tokens > 0:
            self.tokens_used.labels(
                self._persona(persona), chatmode, self._model(model or "unknown")
            ).inc(tokens)

    def record_cost(
        self, persona: str, cost_usd: float, chatmode: str = "", model: str = ""
    ) -> None:
        """Count ``cost_usd`` spent by ``persona``."""
        if cost_usd > 0:
            self.llm_cost.labels(
                self._persona(canonical_name(persona)), chatmode, self._model(model or "unknown")
            ).inc(cost_usd)

    def record_workflow_stage(
        self,
        workflow: str,
        stage: str,
        persona: str,
        duration_s: float,
        *,
        passed: bool = True,
        chatmode: str = "",
    ) -> None:
        """Record a finished stage: its duration, the persona's time, its quality gate."""
        name = self._persona(canonical_name(persona))
        workflow, stage = self._name(workflow), self._name(stage)
        self.stage_duration.labels(workflow, stage, name).observe(max(duration_s, 0.0))
        self.persona_duration.labels(name, chatmode).observe(max(duration_s, 0.0))
        result = QUALITY_PASSED if passed else QUALITY_FAILED
        self.quality_gate.labels(workflow, stage, result).inc()

    @contextmanager
    def track_stage(
        self, workflow: str, stage: str, persona: str, chatmode: str = ""
    ) -> Iterator[None]:
        """Time a stage; an exception counts its quality gate as failed and propagates."""
        start = time.perf_counter()
        passed = False
        try:
            yield
            passed = True
        finally:
            self.record_workflow_stage(
                workflow,
                stage,
                persona,
                time.perf_counter() - start,
                passed=passed,
                chatmode=chatmode,
            )

    @asynccontextmanager
    async def track_stage_async(
        self, workflow: str, stage: str, persona: str, chatmode: str = ""
    ) -> AsyncIterator[None]:
        """:meth:`track_stage` for ``async with``."""
        with self.track_stage(workflow, stage, persona, chatmode):
            yield

    def get_remaining_budget(self, persona: str) -> int | None:
        """Budget minus used (negative when overrun); None for a persona without budget."""
        return self.budgets.remaining(persona)

    def reset_budget(self, persona: str) -> None:
        """Restore ``persona``'s full budget."""
        self.budgets.reset(persona)
        self._publish_budget(canonical_name(persona))

    def _publish_budget(self, persona: str, *, sync: bool = True) -> None:
        budget = self.budgets.budget(persona)
        if budget is None:
            return
        label = self._persona(persona)
        self.budget_limit.labels(label).set(budget)
        self.budget_remaining.labels(label).set(budget - self.budgets.used(persona, sync=sync))


def start_metrics_server(
    port: int, addr: str = "127.0.0.1", registry: CollectorRegistry | None = None
) -> Any:
    """Serve ``/metrics`` on ``addr:port`` (loopback unless told otherwise) from a thread.

    Returns:
        The HTTP server; call ``shutdown()`` on it to stop serving.
    """
    server, _thread = start_http_server(port, addr=addr, registry=registry or REGISTRY)
    return server
