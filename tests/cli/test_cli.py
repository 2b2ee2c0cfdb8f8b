"""The ``hypertool`` command line on a seeded store: human output and ``--json`` values."""

from __future__ import annotations

import argparse
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from hypertool.instrumentation import LangfuseIntegration, WorkflowTracer, builtin_personas
from hypertool.instrumentation.budget import period_start_ns
from hypertool.instrumentation.cli import main
from hypertool.instrumentation.cli.arguments import parse_since
from hypertool.instrumentation.store import HYPERTOOL_STORE
from support.store_seed import Gen, Seeded, TraceSpec, seed_store

SECRET = "sk-lf-0123456789abcdefSECRETTAIL"
PUBLIC = "pk-lf-public-1234"


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "250")  # rich tables: no truncated cells in assertions


@pytest.fixture
def seeded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Seeded:
    seeded = seed_store(tmp_path / "store" / "traces.db")
    monkeypatch.setenv(HYPERTOOL_STORE, str(seeded.path))
    return seeded


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    code, out, err = run(capsys, *argv, "--json")
    assert code == 0, err
    return json.loads(out)  # nothing but the document on stdout


# -- report ------------------------------------------------------------------------------


def test_report_json_by_persona(seeded: Seeded, capsys: pytest.CaptureFixture[str]) -> None:
    document = run_json(capsys, "report", "--by", "persona")
    assert document["by"] == "persona" and document["since"] is None
    rows = {row["group"]: row for row in document["rows"]}
    assert set(rows) == {g.persona for g in seeded.generations}
    for persona, row in rows.items():
        gens = seeded.gens(persona=persona)
        known = [g.cost for g in gens if g.cost is not None]
        assert row["generations"] == len(gens)
        assert row["total_tokens"] == sum(g.total for g in gens)
        assert row["input_tokens"] == sum(g.tokens_in for g in gens)
        assert row["cost_unknown"] == len(gens) - len(known)
        assert row["errors"] == sum(1 for g in gens if g.error)
        assert row["cost_usd"] == (pytest.approx(sum(known)) if known else None)
    assert set(rows["backend-engineer"]) == {
        "group", "traces", "generations", "input_tokens", "output_tokens", "total_tokens",
        "cost_usd", "cost_unknown", "errors", "p50_ms", "p95_ms", "scores", "gate_pass_rate",
    }  # fmt: skip


@pytest.mark.parametrize("by", ["model", "chatmode", "workflow"])
def test_report_json_other_groupings(
    seeded: Seeded, capsys: pytest.CaptureFixture[str], by: str
) -> None:
    rows = run_json(capsys, "report", "--by", by)["rows"]
    assert sum(row["generations"] for row in rows) == len(seeded.generations)
    assert sum(row["total_tokens"] for row in rows) == sum(g.total for g in seeded.generations)
    if by != "workflow":
        assert {row["group"] for row in rows} == {getattr(g, by) for g in seeded.generations}


def test_report_since(seeded: Seeded, capsys: pytest.CaptureFixture[str]) -> None:
    recent = [g for g in seeded.generations if g.ago_min < 24 * 60]
    rows = run_json(capsys, "report", "--since", "24h")["rows"]
    assert sum(row["total_tokens"] for row in rows) == sum(g.total for g in recent)
    iso_rows = run_json(capsys, "report", "--since", "2000-01-01")["rows"]
    assert sum(row["generations"] for row in iso_rows) == len(seeded.generations)
    with pytest.raises(SystemExit) as exited:
        main(["report", "--since", "yesterday-ish"])
    assert exited.value.code == 2 and "24h" in capsys.readouterr().err


def test_parse_since() -> None:
    now = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
    ns = int(now.timestamp()) * 10**9
    assert parse_since("24h", now) == ns - 24 * 3600 * 10**9
    assert parse_since("7d", now) == ns - 7 * 86400 * 10**9
    assert parse_since("30m", now) == ns - 1800 * 10**9
    assert parse_since("2w", now) == ns - 14 * 86400 * 10**9
    assert parse_since("2025-03-01T00:00:00Z", now) == int(
        datetime(2025, 3, 1, tzinfo=UTC).timestamp() * 1e9
    )
    local = datetime(2025, 3, 1).astimezone()  # a date without a zone is local time
    assert parse_since("2025-03-01", now) == int(local.timestamp() * 1e9)
    for bad in ("yesterday", "5y", "99999999999d"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_since(bad, now)


@pytest.mark.parametrize(
    "argv",
    [
        ("traces", "--limit", "99999999999999999999"),
        ("generations", "--limit", "9223372036854775808"),
        ("generations", "--slowest", "9223372036854775808"),
        ("report", "--since", "9999-12-31T23:59:59+14:00"),
        ("report", "--since", "0001-01-01T00:00:00-14:00"),
        ("traces", "--since", "1600-01-01"),
        ("generations", "--since", "99999999999d"),
    ],
)
def test_out_of_range_numbers_and_dates_are_usage_errors(
    seeded: Seeded, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(list(argv))
    err = capsys.readouterr().err
    assert exited.value.code == 2
    *usage, error = err.splitlines()  # argparse's usage, then one line of error
    assert error.startswith(f"hypertool {argv[0]}: error: argument {argv[1]}: ")
    assert "out of range" in error and argv[-1] in error
    assert usage[0].startswith("usage: ") and "Traceback" not in err


@pytest.mark.parametrize(
    "argv",
    [
        ("traces", "--limit", "9223372036854775807"),
        ("generations", "--slowest", "9223372036854775807"),
        ("report", "--since", "2262-04-11T00:00:00Z"),
        ("report", "--since", "1677-09-22T00:00:00Z"),
    ],
)
def test_the_largest_numbers_and_dates_in_range_work(
    seeded: Seeded, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...]
) -> None:
    assert run_json(capsys, *argv) is not None


def test_report_human(seeded: Seeded, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "report")
    assert code == 0
    assert "Generations by persona" in out
    for persona in {g.persona for g in seeded.generations}:
        line = next(line for line in out.splitlines() if f" {persona} " in line)
        assert f"{sum(g.total for g in seeded.gens(persona=persona)):,}" in line
    devops = next(line for line in out.splitlines() if " devops-engineer " in line)
    unknown = sum(1 for g in seeded.gens(persona="devops-engineer") if g.cost is None)
    assert f"+{unknown}?" in devops and "without a known price" in out
    assert f"{sum(g.total for g in seeded.generations):,}" in out  # the total row


def test_narrow_terminal_never_cuts_names_or_numbers(
    seeded: Seeded, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COLUMNS", "60")
    code, out, _ = run(capsys, "report")
    assert code == 0
    for persona in {g.persona for g in seeded.generations}:
        total = sum(g.total for g in seeded.gens(persona=persona))
        assert any(persona in line and f"{total:,}" in line for line in out.splitlines())


# -- traces and trace --------------------------------------------------------------------


def test_traces_json_and_filters(seeded: Seeded, capsys: pytest.CaptureFixture[str]) -> None:
    traces = run_json(capsys, "traces")["traces"]
    assert {t["trace_id"] for t in traces} == set(seeded.trace_ids.values())
    failed = run_json(capsys, "traces", "--status", "error")["traces"]
    assert [t["trace_id"] for t in failed] == [seeded.trace_ids["debug"]]
    assert failed[0]["error"] == "deploy failed"
    scientist = run_json(capsys, "traces", "--persona", "data-scientist")["traces"]
    assert [t["trace_id"] for t in scientist] == [seeded.trace_ids["gen-6"]]
    assert len(run_json(capsys, "traces", "--limit", "2")["traces"]) == 2
    recent = run_json(capsys, "traces", "--since", "1h")["traces"]
    assert seeded.trace_ids["old"] not in {t["trace_id"] for t in recent}


def test_traces_human(seeded: Seeded, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "traces")
    assert code == 0
    assert seeded.trace_ids["release"][:12] in out
    assert "package-release-workflow" in out and "deploy failed" in out


def test_trace_tree_human(seeded: Seeded, capsys: pytest.CaptureFixture[str]) -> None:
    trace_id = seeded.trace_ids["release"]
    code, out, _ = run(capsys, "trace", trace_id[:10])
    assert code == 0
    assert trace_id in out
    for gen in seeded.gens(trace="release"):
        assert gen.prompt in out  # brackets in a prompt are printed, not taken as markup
        assert gen.completion in out
        assert gen.persona in out and gen.model in out
        assert f"{gen.total:,} tokens" in out
    assert "unknown" in out  # the local model has no price


def test_trace_json(seeded: Seeded, capsys: pytest.CaptureFixture[str]) -> None:
    tree = run_json(capsys, "trace", seeded.trace_ids["debug"])
    gens = seeded.gens(trace="debug")
    assert tree["status"] == "error"
    assert tree["total_tokens"] == sum(g.total for g in gens)
    (root,) = tree["children"]
    failed = [c for c in root["children"] if c["status"] == "error"]
    assert [c["error"] for c in failed] == [g.error for g in gens if g.error]
    assert failed[0]["usage_estimated"] is True


def test_trace_unknown_or_malformed(seeded: Seeded, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "trace", "0" * 32)
    assert (code, out) == (1, "")
    assert "no trace" in err and "Traceback" not in err
    code, _, err = run(capsys, "trace", "abc")
    assert code == 1 and "8 hex" in err


# -- environments, releases, and workflow stages as Langfuse shows them ---------------------
@pytest.fixture
def deployments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A store written by two deployments, each running a two-stage workflow."""
    store = tmp_path / "deployments.db"
    monkeypatch.setenv(HYPERTOOL_STORE, str(store))
    runs: dict[str, Any] = {}
    for environment, release in (("production", "v1"), ("staging", "v2")):
        integration = LangfuseIntegration(environment=environment, release=release)
        workflow = WorkflowTracer(f"wf-{environment}", langfuse=integration)
        with workflow:
            for stage, persona, tokens in (
                ("plan", "backend-engineer", 10),
                ("ship", "devops-engineer", 20),
            ):
                with workflow.stage(stage, persona) as running:
                    assert workflow.trace is not None and running.span is not None
                    integration.create_generation(
                        workflow.trace, f"{stage}-llm", "gpt-4", "p", "c",
                        usage={"input": tokens, "output": 1}, parent=running.span,
                    )  # fmt: skip
                    runs[f"{environment}/{stage}"] = running.span.langfuse_trace_id
        assert workflow.trace is not None
        runs[environment] = workflow.trace.trace_id
        assert integration.flush(5)
        integration.shutdown(1)
    return runs


def test_filters_by_environment_and_release(
    deployments: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    traces = run_json(capsys, "traces", "--environment", "Staging")["traces"]  # as stored: lower
    assert [(t["trace_id"], t["release"]) for t in traces] == [(deployments["staging"], "v2")]
    assert run_json(capsys, "traces", "--release", "v1")["traces"][0]["environment"] == "production"
    report = run_json(capsys, "report", "--environment", "production")
    assert report["filters"] == {"environment": "production"}
    assert {r["group"]: r["total_tokens"] for r in report["rows"]} == {
        "backend-engineer": 11,
        "devops-engineer": 21,
    }
    # Scores are of their trace's deployment: each persona's one production gate.
    assert {r["group"]: r["scores"]["quality_gate"]["n"] for r in report["rows"]} == {
        "backend-engineer": 1,
        "devops-engineer": 1,
    }
    gens = run_json(capsys, "generations", "--environment", "staging", "--release", "v2")
    assert {g["trace_id"] for g in gens["generations"]} == {deployments["staging"]}
    code, out, _ = run(capsys, "report", "--environment", "qa")
    assert (code, out.strip()) == (0, "No generations recorded that match.")
    with pytest.raises(SystemExit) as usage:
        main(["report", "--environment", "langfuse-internal"])
    assert usage.value.code == 2
    assert "must be 1-40 characters" in capsys.readouterr().err


def test_trace_by_a_stages_langfuse_id(
    deployments: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """What Langfuse shows as a stage's trace id finds that stage; the workflow's id finds the
    workflow, one tree, as before.
    """
    stage_id = deployments["staging/ship"]
    tree = run_json(capsys, "trace", stage_id)
    assert (tree["trace_id"], tree["langfuse_trace_id"]) == (deployments["staging"], stage_id)
    assert (tree["name"], tree["persona"], tree["total_tokens"]) == ("ship", "devops-engineer", 21)
    code, out, _ = run(capsys, "trace", stage_id)
    assert code == 0 and f"stage with Langfuse trace {stage_id}" in out
    assert "environment staging · release v2" in out
    whole = run_json(capsys, "trace", deployments["staging"])
    assert (whole["name"], whole["total_tokens"], whole["generations"]) == ("wf-staging", 32, 2)
    assert whole["langfuse_trace_id"] == deployments["staging"]
    # Each stage's quality gate is on its node; a stage shows its own scores only.
    (stage,) = tree["children"]
    assert [(s["name"], s["persona"]) for s in stage["scores"]] == [
        ("quality_gate", "devops-engineer")
    ]
    assert tree["scores"] == []
    (root,) = whole["children"]
    assert {node["name"]: [s["name"] for s in node["scores"]] for node in root["children"]} == {
        "plan": ["quality_gate"],
        "ship": ["quality_gate"],
    }


# -- generations -------------------------------------------------------------------------


def test_generations_slowest(seeded: Seeded, capsys: pytest.CaptureFixture[str]) -> None:
    rows = run_json(capsys, "generations", "--slowest", "2")["generations"]
    expected = sorted(seeded.generations, key=lambda g: -g.latency_ms)[:2]
    assert [r["latency_ms"] for r in rows] == [g.latency_ms for g in expected]
    assert [r["persona"] for r in rows] == [g.persona for g in expected]
    code, out, _ = run(capsys, "generations", "--slowest", "2")
    assert code == 0 and "Slowest 2 generations" in out
    assert "2.50 s" in out  # the 2,500 ms call


def test_generations_failed(seeded: Seeded, capsys: pytest.CaptureFixture[str]) -> None:
    rows = run_json(capsys, "generations", "--failed")["generations"]
    failed = [g for g in seeded.generations if g.error]
    assert [(r["error"], r["model"], r["status"]) for r in rows] == [
        (g.error, g.model, "error") for g in failed
    ]
    code, out, _ = run(capsys, "generations", "--failed")
    assert code == 0 and "rate limited by provider" in out


# -- personas ----------------------------------------------------------------------------


def test_personas_budget_used_remaining(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    registry = builtin_personas()
    budget = registry.budget("devops-engineer")
    assert budget
    over = Gen("spend", "devops-engineer", "gpt-4o", budget, 500, 0.5, 5, 10)
    seeded = seed_store(
        tmp_path / "traces.db",
        traces=[TraceSpec("spend", "big", "devops-engineer", "debugging", "", 5)],
        generations=[over, Gen("", "backend-engineer", "gpt-4o", 10, 5, None, 4, 10)],
    )
    document = run_json(capsys, "--store", str(seeded.path), "personas")
    rows = {row["persona"]: row for row in document["personas"]}
    assert set(rows) == set(registry)
    since = period_start_ns("month")
    for name, row in rows.items():
        used = sum(
            g.total for g in seeded.gens(persona=name) if seeded.start_ns(g.ago_min) >= since
        )
        assert row["budget_period"] == "month"
        assert row["budget_tokens"] == registry.budget(name)
        assert row["used_tokens"] == used
        assert row["remaining_tokens"] == registry.budget(name) - used  # type: ignore[operator]
    assert rows["devops-engineer"]["remaining_tokens"] < 0  # overrun shows, never clamped
    assert rows["devops-engineer"]["cost_usd"] == pytest.approx(0.5)
    code, out, _ = run(capsys, "--store", str(seeded.path), "personas")
    assert code == 0
    devops = next(line for line in out.splitlines() if "devops-engineer" in line)
    assert f"-{over.total - budget:,}" in devops


def test_personas_from_a_directory_with_periods(
    seeded: Seeded,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = tmp_path / "personas"
    folder.mkdir()
    persona = {"name": "testing-specialist", "tokenBudget": 100, "budgetPeriod": "session"}
    (folder / "tester.json").write_text(json.dumps(persona))
    monkeypatch.setenv("HYPERTOOL_PERSONAS_DIR", str(folder))
    rows = {row["persona"]: row for row in run_json(capsys, "personas")["personas"]}
    tester = rows["testing-specialist"]
    used = sum(g.total for g in seeded.gens(persona="testing-specialist"))  # the old one too
    assert (tester["budget_period"], tester["since"]) == ("session", None)
    assert (tester["used_tokens"], tester["remaining_tokens"]) == (used, 100 - used)


def test_personas_directory_errors_are_one_line(
    seeded: Seeded,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = tmp_path / "personas"
    folder.mkdir()
    (folder / "broken.json").write_text("{not json")
    monkeypatch.setenv("HYPERTOOL_PERSONAS_DIR", str(folder))
    code, out, err = run(capsys, "personas")
    assert (code, out) == (1, "")
    assert "broken.json" in err and "Traceback" not in err


# -- store selection and errors ----------------------------------------------------------


@pytest.mark.parametrize("command", ["report", "traces", "personas", "generations"])
def test_missing_store_is_a_message_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    missing = tmp_path / "nowhere.db"
    code, out, err = run(capsys, "--store", str(missing), command)
    assert (code, out) == (1, "")
    assert str(missing) in err and "Traceback" not in err
    assert not missing.exists()


def test_store_off(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(HYPERTOOL_STORE, "off")
    code, _, err = run(capsys, "report")
    assert code == 1 and "off" in err


def test_store_option_overrides_the_environment(
    seeded: Seeded, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lone = Gen("", "backend-engineer", "gpt-4o", 1, 2, None, 1, 1)
    other = seed_store(tmp_path / "other.db", traces=[], generations=[lone])
    rows = run_json(capsys, "report", "--store", str(other.path))["rows"]
    assert [row["generations"] for row in rows] == [1]
    rows = run_json(capsys, "--store", str(other.path), "report")["rows"]
    assert [row["generations"] for row in rows] == [1]


def test_corrupt_store_names_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    corrupt = tmp_path / "bad.db"
    corrupt.write_bytes(b"garbage" * 1000)
    code, out, err = run(capsys, "--store", str(corrupt), "traces")
    assert (code, out) == (1, "")
    assert str(corrupt) in err and "Traceback" not in err


# -- doctor ------------------------------------------------------------------------------


class _Projects(BaseHTTPRequestHandler):
    accepted = f"Basic {__import__('base64').b64encode(f'{PUBLIC}:{SECRET}'.encode()).decode()}"

    def do_GET(self) -> None:
        ok = self.path == "/api/public/projects" and (
            self.headers.get("Authorization") == self.accepted
        )
        self.send_response(200 if ok else 401)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"data": []}' if ok else b'{"message": "Invalid credentials"}')

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def langfuse_host() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Projects)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_doctor_reports_sinks_without_the_secret(
    seeded: Seeded, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LANGFUSE_PUBLIC_KEY", PUBLIC)
    monkeypatch.setenv("LANGFUSE_SECRET_KEY", SECRET)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    monkeypatch.setenv("HYPERTOOL_CONSOLE", "true")
    monkeypatch.setenv("LANGFUSE_TRACING_ENVIRONMENT", "staging")
    monkeypatch.setenv("LANGFUSE_RELEASE", "v9")
    code, out, _ = run(capsys, "doctor")
    assert code == 0
    assert "environment staging, release v9" in out
    assert SECRET not in out and SECRET[8:] not in out
    assert PUBLIC in out and SECRET[:8] in out
    assert str(seeded.path) in out and "http://127.0.0.1:4318/v1/traces" in out
    assert "--metrics-port" in out
    document = run_json(capsys, "doctor")
    assert SECRET not in json.dumps(document)
    sinks = document["sinks"]
    assert {name: sink["enabled"] for name, sink in sinks.items()} == {
        "langfuse": True,
        "store": True,
        "otlp": True,
        "console": True,
    }
    assert (sinks["langfuse"]["environment"], sinks["langfuse"]["release"]) == ("staging", "v9")
    assert sinks["store"]["path"] == str(seeded.path)
    assert sinks["store"]["traces"] == len(seeded.trace_ids)
    assert sinks["store"]["size_bytes"] > 0
    assert document["online"] is None


def test_doctor_never_shows_a_short_secret_whole(
    seeded: Seeded, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LANGFUSE_PUBLIC_KEY", PUBLIC)
    monkeypatch.setenv("LANGFUSE_SECRET_KEY", "s3cr3t")
    code, out, _ = run(capsys, "doctor")
    assert code == 0 and "s3cr3t" not in out and "s3c…" in out


def test_doctor_without_configuration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(HYPERTOOL_STORE, str(tmp_path / "not-yet.db"))
    document = run_json(capsys, "doctor")
    assert not document["sinks"]["langfuse"]["enabled"]
    assert document["sinks"]["store"] == {
        "enabled": True,
        "path": str(tmp_path / "not-yet.db"),
        "source": HYPERTOOL_STORE,
        "exists": False,
        "detail": "created on first use",
    }
    assert not document["sinks"]["otlp"]["enabled"]
    assert not (tmp_path / "not-yet.db").exists()  # doctor looks, never creates
    code, out, _ = run(capsys, "doctor", "--online")
    assert code == 0 and "skipped" in out


@pytest.mark.parametrize(
    ("secret", "result", "code"),
    [(SECRET, "accepted", 0), ("sk-lf-wrong-secret-xyz", "rejected", 1)],
)
def test_doctor_online(
    langfuse_host: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    secret: str,
    result: str,
    code: int,
) -> None:
    monkeypatch.setenv("LANGFUSE_PUBLIC_KEY", PUBLIC)
    monkeypatch.setenv("LANGFUSE_SECRET_KEY", secret)
    monkeypatch.setenv("LANGFUSE_HOST", langfuse_host)
    exit_code, out, _ = run(capsys, "doctor", "--online", "--json")
    online = json.loads(out)["online"]
    assert (exit_code, online["result"]) == (code, result)
    assert online["http_status"] == (200 if result == "accepted" else 401)
    assert secret not in out
    exit_code, out, _ = run(capsys, "doctor", "--online")
    assert exit_code == code and result in out and secret not in out


def test_doctor_online_unreachable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    monkeypatch.setenv("LANGFUSE_PUBLIC_KEY", PUBLIC)
    monkeypatch.setenv("LANGFUSE_SECRET_KEY", SECRET)
    monkeypatch.setenv("LANGFUSE_HOST", f"http://127.0.0.1:{port}")
    code, out, _ = run(capsys, "doctor", "--online", "--json")
    assert code == 1 and json.loads(out)["online"]["result"] == "unreachable"
    assert SECRET not in out
