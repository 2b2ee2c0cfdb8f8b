"""Grafana dashboards for the metrics of :class:`PersonaMetricsCollector`, built from code.

``python -m hypertool.instrumentation.dashboards DIR`` writes them as JSON (the copies in
``deploy/grafana/`` are generated this way; a test keeps them in step).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


@dataclass(frozen=True)
class Panel:
    """One time-series or stat panel with one PromQL query."""

    title: str
    expr: str
    legend: str = ""
    unit: str = "short"
    kind: str = "timeseries"


@dataclass(frozen=True)
class Dashboard:
    """A dashboard: a title, a uid and panels laid out two per row."""

    uid: str
    title: str
    description: str
    panels: tuple[Panel, ...]

    def to_json(self) -> dict[str, Any]:
        """The Grafana dashboard JSON model."""
        panels = []
        for index, panel in enumerate(self.panels):
            panels.append(
                {
                    "id": index + 1,
                    "type": panel.kind,
                    "title": panel.title,
                    "datasource": DATASOURCE,
                    "gridPos": {"h": 8, "w": 12, "x": (index % 2) * 12, "y": (index // 2) * 8},
                    "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
                    "options": {},
                    "targets": [
                        {
                            "refId": "A",
                            "datasource": DATASOURCE,
                            "expr": panel.expr,
                            "legendFormat": panel.legend,
                        }
                    ],
                }
            )
        return {
            "uid": self.uid,
            "title": self.title,
            "description": self.description,
            "tags": ["hypertool", "llm", "personas"],
            "schemaVersion": 39,
            "version": 1,
            "editable": True,
            "refresh": "30s",
            "time": {"from": "now-6h", "to": "now"},
            "templating": {
                "list": [
                    {
                        "name": "datasource",
                        "label": "Prometheus",
                        "type": "datasource",
                        "query": "prometheus",
                    }
                ]
            },
            "panels": panels,
        }


def _ratio(metric: str, by: str, bad: str) -> str:
    # "or … * 0" keeps groups with no bad sample at 0 instead of dropping them.
    total = f"sum by ({by}) ({metric})"
    failed = f"sum by ({by}) ({metric}{{{bad}}})"
    return f"({failed} or {total} * 0) / {total}"


PERSONA_OVERVIEW = Dashboard(
    uid="hypertool-personas",
    title="Hypertool — Persona overview",
    description="Tokens, budgets, switches and quality per persona.",
    panels=(
        Panel(
            "Tokens used by persona",
            "sum by (persona) (hypertool_persona_tokens_used_total)",
            "{{persona}}",
            kind="stat",
        ),
        Panel(
            "Token rate by persona",
            "sum by (persona) (rate(hypertool_persona_tokens_used_total[$__rate_interval]))",
            "{{persona}}",
        ),
        Panel(
            "Budget remaining (negative = overrun)",
            "hypertool_persona_token_budget_remaining",
            "{{persona}}",
        ),
        Panel(
            "Budget used",
            "1 - hypertool_persona_token_budget_remaining / hypertool_persona_token_budget_limit",
            "{{persona}}",
            unit="percentunit",
        ),
        Panel(
            "Persona switches",
            "sum by (from_persona, to_persona) (hypertool_persona_switches_total)",
            "{{from_persona}} → {{to_persona}}",
        ),
        Panel(
            "Time spent per persona",
            "sum by (persona) (hypertool_persona_duration_seconds_sum)",
            "{{persona}}",
            unit="s",
        ),
        Panel(
            "Quality by persona and chatmode (mean score)",
            "sum by (persona, chatmode, name) (hypertool_quality_score_sum)"
            " / sum by (persona, chatmode, name) (hypertool_quality_score_count)",
            "{{persona}} {{chatmode}} {{name}}",
        ),
    ),
)

WORKFLOW_PERFORMANCE = Dashboard(
    uid="hypertool-workflows",
    title="Hypertool — Workflow performance",
    description="Stage durations and quality gates per workflow.",
    panels=(
        Panel(
            "Stage duration p95",
            "histogram_quantile(0.95, sum by (workflow, stage, le) "
            "(rate(hypertool_workflow_stage_duration_seconds_bucket[$__rate_interval])))",
            "{{workflow}}/{{stage}}",
            unit="s",
        ),
        Panel(
            "Stage duration (mean)",
            "sum by (workflow, stage) (hypertool_workflow_stage_duration_seconds_sum)"
            " / sum by (workflow, stage) (hypertool_workflow_stage_duration_seconds_count)",
            "{{workflow}}/{{stage}}",
            unit="s",
        ),
        Panel(
            "Stages run",
            "sum by (workflow, stage) (hypertool_workflow_stage_duration_seconds_count)",
            "{{workflow}}/{{stage}}",
        ),
        Panel(
            "Quality gates",
            "sum by (workflow, stage, result) (hypertool_workflow_quality_gate_total)",
            "{{stage}} {{result}}",
        ),
        Panel(
            "Quality gate failure ratio",
            _ratio("hypertool_workflow_quality_gate_total", "workflow, stage", 'result="failed"'),
            "{{workflow}}/{{stage}}",
            unit="percentunit",
        ),
    ),
)

LLM_COST_LATENCY = Dashboard(
    uid="hypertool-llm",
    title="Hypertool — LLM cost and latency",
    description="LLM calls, errors, latency, tokens and cost per persona and model.",
    panels=(
        Panel(
            "LLM calls",
            "sum by (persona, model, status) (hypertool_llm_requests_total)",
            "{{persona}} {{model}} {{status}}",
        ),
        Panel(
            "LLM error ratio",
            _ratio("hypertool_llm_requests_total", "persona, model", 'status="error"'),
            "{{persona}} {{model}}",
            unit="percentunit",
        ),
        Panel(
            "LLM latency p95",
            "histogram_quantile(0.95, sum by (persona, model, le) "
            "(rate(hypertool_llm_request_duration_seconds_bucket[$__rate_interval])))",
            "{{persona}} {{model}}",
            unit="s",
        ),
        Panel(
            "LLM latency (mean)",
            "sum by (persona, model) (hypertool_llm_request_duration_seconds_sum)"
            " / sum by (persona, model) (hypertool_llm_request_duration_seconds_count)",
            "{{persona}} {{model}}",
            unit="s",
        ),
        Panel(
            "Tokens by model",
            "sum by (model) (hypertool_persona_tokens_used_total)",
            "{{model}}",
        ),
        Panel(
            "Spans dropped by sink",
            "sum by (sink) (hypertool_export_dropped_spans_total) or vector(0)",
            "{{sink}}",
        ),
    ),
)

DASHBOARDS = (PERSONA_OVERVIEW, WORKFLOW_PERFORMANCE, LLM_COST_LATENCY)


def write_dashboards(directory: Path) -> list[Path]:
    """Write every dashboard as ``<uid>.json`` in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for dashboard in DASHBOARDS:
        path = directory / f"{dashboard.uid}.json"
        path.write_text(json.dumps(dashboard.to_json(), indent=2, ensure_ascii=False) + "\n")
        paths.append(path)
    return paths


if __name__ == "__main__":
    for written in write_dashboards(Path(sys.argv[1] if len(sys.argv) > 1 else "deploy/grafana")):
        print(written)
