"""The demo scraped by a real Prometheus: metrics, budgets, dashboards and alert rules."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hypertool.instrumentation.dashboards import DASHBOARDS
from hypertool.instrumentation.personas import builtin_personas
from support.prometheus_server import Prometheus, free_port, require

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
SUMMARY = re.compile(r"^\s+([a-z-]+): (\d+) tokens \(budget (\d+), remaining (-?\d+)\)$")


@dataclass
class Demo:
    process: subprocess.Popen[str]
    port: int
    output: list[str]

    @property
    def tokens(self) -> dict[str, int]:
        found = {}
        for line in self.output:
            match = SUMMARY.match(line)
            if match:
                found[match.group(1)] = int(match.group(2))
        return found


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    require("prometheus")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LANGFUSE_", "HYPERTOOL_"))}
    env["HYPERTOOL_STORE"] = str(tmp_path_factory.mktemp("store") / "traces.db")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hypertool.instrumentation.cli",
            "demo",
            "--metrics-port",
            str(port),
            "--serve-seconds",
            "60",
        ],
        cwd=tmp_path_factory.mktemp("demo"),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    output: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        output.append(line.rstrip("\n"))
        if "Serving metrics" in line:
            break
    assert any("Serving metrics" in line for line in output), output
    yield Demo(process, port, output)
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture(scope="module")
def prometheus(demo: Demo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    server = Prometheus(tmp_path_factory.mktemp("prometheus"), [f"127.0.0.1:{demo.port}"], [ALERTS])
    try:
        # Three scrapes, so rate() over the dashboards' window has points to work with.
        server.wait_until('count_over_time(up{job="hypertool"}[1m]) >= 3', timeout=60)
        yield server
    finally:
        server.stop()


def test_tokens_by_persona_equal_what_the_demo_recorded(demo: Demo, prometheus: Prometheus) -> None:
    expected = demo.tokens
    assert set(expected) == {"backend-engineer", "testing-specialist", "devops-engineer"}
    result = prometheus.query("sum by (persona) (hypertool_persona_tokens_used_total)")
    scraped = {sample["metric"]["persona"]: int(float(sample["value"][1])) for sample in result}
    assert scraped == expected


def test_budget_gauges_are_budget_minus_used(demo: Demo, prometheus: Prometheus) -> None:
    personas = builtin_personas()
    limits = {
        s["metric"]["persona"]: float(s["value"][1])
        for s in prometheus.query("hypertool_persona_token_budget_limit")
    }
    remaining = {
        s["metric"]["persona"]: float(s["value"][1])
        for s in prometheus.query("hypertool_persona_token_budget_remaining")
    }
    assert limits == {name: float(personas[name].token_budget) for name in personas}
    for name in personas:
        used = demo.tokens.get(name, 0)
        assert remaining[name] == personas[name].token_budget - used, name


def test_the_store_sink_drop_series_exists_at_zero(prometheus: Prometheus) -> None:
    # rate()/increase() see the first drop only if the series existed before it.
    result = prometheus.query("hypertool_export_dropped_spans_total")
    assert {s["metric"]["sink"]: float(s["value"][1]) for s in result} == {"store": 0.0}


def test_quality_gates_and_switches_are_scraped(prometheus: Prometheus) -> None:
    gates = prometheus.query("sum by (result) (hypertool_workflow_quality_gate_total)")
    assert {s["metric"]["result"]: float(s["value"][1]) for s in gates} == {"passed": 3.0}
    switches = prometheus.query(
        "sum by (from_persona, to_persona) (hypertool_persona_switches_total)"
    )
    pairs = {(s["metric"]["from_persona"], s["metric"]["to_persona"]) for s in switches}
    assert pairs == {
        ("backend-engineer", "testing-specialist"),
        ("testing-specialist", "devops-engineer"),
    }


def test_quality_scores_by_persona_are_the_demos(demo: Demo, prometheus: Prometheus) -> None:
    # Each stage's quality gate passed and is one BOOLEAN score of its persona; each answer's
    # on_topic check is another.
    result = prometheus.query("sum by (persona, name) (hypertool_quality_score_count)")
    counts = {(s["metric"]["persona"], s["metric"]["name"]): float(s["value"][1]) for s in result}
    assert counts == {
        (persona, name): 1.0 for persona in demo.tokens for name in ("quality_gate", "on_topic")
    }
    means = prometheus.query(
        'sum by (persona) (hypertool_quality_score_sum{name="quality_gate"})'
        ' / sum by (persona) (hypertool_quality_score_count{name="quality_gate"})'
    )
    assert {s["metric"]["persona"]: float(s["value"][1]) for s in means} == dict.fromkeys(
        demo.tokens, 1.0
    )


@pytest.mark.parametrize(
    "title,expr",
    [(f"{d.uid}: {p.title}", p.expr) for d in DASHBOARDS for p in d.panels],
)
def test_every_dashboard_query_returns_data(prometheus: Prometheus, title: str, expr: str) -> None:
    resolved = expr.replace("$__rate_interval", "1m").replace("$__range", "5m")
    assert prometheus.query(resolved), f"{title} returned no data: {resolved}"


def test_alert_rules_load_and_evaluate_without_error(prometheus: Prometheus) -> None:
    deadline = time.monotonic() + 30
    while True:
        groups = prometheus.get("/api/v1/rules")["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        evaluated = [r for r in rules if not r["lastEvaluation"].startswith("0001-")]
        if rules and len(evaluated) == len(rules):
            break
        assert time.monotonic() < deadline, "rules were not evaluated within 30 s"
        time.sleep(0.5)
    names = {rule["name"] for rule in rules}
    assert {
        "TokenBudgetExceeded",
        "TokenBudgetLow",
        "HighQualityGateFailureRate",
        "SlowWorkflowStage",
        "HighLLMErrorRate",
        "PersonaSwitchThrashing",
        "LowQualityScore",
        "ScoreExportDropping",
    } <= names
    assert [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"] == []
    # The demo stays within budget: the budget alerts evaluate and stay silent.
    firing = {r["name"] for r in rules if r.get("state") == "firing"}
    assert "TokenBudgetExceeded" not in firing
