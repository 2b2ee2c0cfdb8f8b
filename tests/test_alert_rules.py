"""Alert rules and dashboards reference only what the code emits, and promtool accepts them."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from hypertool.instrumentation import metrics as metrics_module
from hypertool.instrumentation.dashboards import DASHBOARDS, write_dashboards
from hypertool.instrumentation.metrics import PersonaMetricsCollector
from support.prometheus_server import require

ROOT = Path(__file__).resolve().parents[1]
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
ALERT_TESTS = ROOT / "deploy" / "prometheus" / "tests" / "alerts_test.yml"
RUNBOOK = ROOT / "deploy" / "RUNBOOK.md"
METRIC = re.compile(r"\bhypertool_[a-z_]+")
MATCHER = re.compile(r'(\w+)="([^"]*)"')


def emitted_series_names() -> set[str]:
    registry = CollectorRegistry()
    PersonaMetricsCollector(registry=registry)
    names: set[str] = set()
    for family in registry.collect():
        kind = family.type
        names.add(family.name)
        if kind == "counter":
            names.add(f"{family.name}_total")
        if kind == "histogram":
            names.update(f"{family.name}_{suffix}" for suffix in ("bucket", "sum", "count"))
    return names


def all_queries() -> list[str]:
    text = ALERTS.read_text()
    exprs = [p.expr for d in DASHBOARDS for p in d.panels]
    return [text, *exprs]


def test_alerts_and_dashboards_use_only_emitted_metric_names() -> None:
    emitted = emitted_series_names()
    used = {name for query in all_queries() for name in METRIC.findall(query)}
    assert used, "no metric referenced"
    assert used - emitted == set()


def test_label_values_in_matchers_are_values_the_code_writes() -> None:
    allowed = {
        "result": {metrics_module.QUALITY_PASSED, metrics_module.QUALITY_FAILED},
        "status": {"success", "error"},
    }
    seen = set()
    for query in all_queries():
        for label, value in MATCHER.findall(query):
            if label in allowed:
                seen.add(label)
                assert value in allowed[label], f'{label}="{value}" is never written by the code'
    assert seen == {"result", "status"}


def test_quality_gate_and_status_values_are_what_the_collector_writes() -> None:
    registry = CollectorRegistry()
    collector = PersonaMetricsCollector(registry=registry)
    with pytest.raises(RuntimeError), collector.track_stage("wf", "build", "backend-engineer"):
        raise RuntimeError("boom")
    with collector.track_stage("wf", "build", "backend-engineer"):
        pass
    get = registry.get_sample_value
    labels = {"workflow": "wf", "stage": "build"}
    assert get("hypertool_workflow_quality_gate_total", {**labels, "result": "failed"}) == 1
    assert get("hypertool_workflow_quality_gate_total", {**labels, "result": "passed"}) == 1


def test_every_alert_links_to_a_runbook_section() -> None:
    runbook = RUNBOOK.read_text()
    anchors = {
        re.sub(r"[^a-z0-9-]", "", line[3:].strip().lower().replace(" ", "-"))
        for line in runbook.splitlines()
        if line.startswith("## ")
    }
    alerts = re.findall(r"- alert: (\w+)", ALERTS.read_text())
    links = re.findall(r'runbook_url: "RUNBOOK\.md#([a-z0-9-]+)"', ALERTS.read_text())
    assert len(alerts) >= 6
    assert links == [name.lower() for name in alerts]
    assert set(links) <= anchors


def test_promtool_check_rules() -> None:
    promtool = require("promtool")
    result = subprocess.run(
        [promtool, "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_rule_unit_tests_fire_and_stay_silent() -> None:
    promtool = require("promtool")
    result = subprocess.run(
        [promtool, "test", "rules", str(ALERT_TESTS)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ALERT_TESTS.parent,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_committed_dashboards_are_the_generated_ones(tmp_path: Path) -> None:
    for path in write_dashboards(tmp_path):
        committed = ROOT / "deploy" / "grafana" / path.name
        assert committed.exists(), (
            f"{committed} missing: run python -m hypertool.instrumentation.dashboards"
        )
        assert json.loads(committed.read_text()) == json.loads(path.read_text())


def test_dashboards_are_valid_grafana_models() -> None:
    for dashboard in DASHBOARDS:
        model = dashboard.to_json()
        assert model["uid"] and model["title"] and model["panels"]
        ids = [panel["id"] for panel in model["panels"]]
        assert len(ids) == len(set(ids))
        for panel in model["panels"]:
            assert panel["targets"][0]["expr"].strip()
            assert panel["datasource"]["uid"] == "${datasource}"
