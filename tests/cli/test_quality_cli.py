"""``hypertool prompts``, ``prompts push``, ``scores``, and scores in ``report`` and ``trace``,
over a store the release workflow wrote.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from hypertool.instrumentation import LangfuseIntegration
from hypertool.instrumentation.cli import main
from hypertool.instrumentation.prompts import BUILTIN_DIR
from hypertool.instrumentation.prompts.files import scan
from hypertool.instrumentation.test_instrumented_workflow import (
    WorkflowResult,
    release_stages,
    run_release_workflow,
)
from support.loopback import LoopbackOTLP, ReceivedRequest


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "250")


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "traces.db"
    monkeypatch.setenv("HYPERTOOL_STORE", str(path))
    return path


@pytest.fixture
async def runs(store: Path) -> list[WorkflowResult]:
    langfuse = LangfuseIntegration()
    try:
        results = [
            await run_release_workflow(langfuse, out=lambda line: None, provoke_failure=failure)
            for failure in (True, False)
        ]
        assert langfuse.flush(timeout=10)
    finally:
        langfuse.shutdown(5)
    return results


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    code = main(list(argv))
    out = capsys.readouterr().out
    assert code == 0, out
    return json.loads(out)


def test_prompts_json_per_prompt_version_and_persona(
    runs: list[WorkflowResult], capsys: pytest.CaptureFixture[str]
) -> None:
    document = run_json(capsys, "prompts", "--json")
    assert document["score"] == "quality_gate" and document["since"] is None
    stages = release_stages("1.2.0")
    rows = {(row["prompt"], row["version"], row["persona"]): row for row in document["rows"]}
    assert set(rows) == {(stage.prompt_name, 1, stage.persona) for stage in stages}
    for stage in stages:
        row = rows[(stage.prompt_name, 1, stage.persona)]
        failed = 1 if stage is stages[-1] else 0  # the provoked 429, once in two runs
        assert row["generations"] == 2 + failed and row["errors"] == failed
        assert row["scores"]["quality_gate"] == {"mean": 1.0, "n": 2 + failed}
        assert row["scores"]["on_topic"] == {"mean": 1.0, "n": 2}
    assert {b["verdict"] for b in document["best"]} == {
        "too few samples (each version needs 20 scored)"
    }
    narrowed = run_json(capsys, "prompts", "--persona", "devops-engineer", "--json")
    assert [row["persona"] for row in narrowed["rows"]] == ["devops-engineer"]
    one = stages[0].prompt_name
    only = run_json(capsys, "prompts", "--prompt", one, "--json")
    assert only["rows"] == [row for row in document["rows"] if row["prompt"] == one]
    assert [b["prompt"] for b in only["best"]] == [one]
    assert (
        run_json(capsys, "prompts", "--min-samples", "2", "--score", "on_topic", "--json")["best"][
            0
        ]["verdict"]
        == "only version"
    )


def test_prompts_human_output_says_why_no_version_is_best(
    runs: list[WorkflowResult], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["prompts"]) == 0
    out = capsys.readouterr().out
    for stage in release_stages("1.2.0"):
        assert stage.prompt_name in out
        assert f"{stage.prompt_name} · {stage.persona}: too few samples" in out
    assert main(["prompts", "--min-samples", "1"]) == 0
    assert "★ 1" in capsys.readouterr().out


def test_scores_json(runs: list[WorkflowResult], capsys: pytest.CaptureFixture[str]) -> None:
    gates = run_json(capsys, "scores", "--name", "quality_gate", "--json")["scores"]
    assert len(gates) == 6
    assert {(g["persona"], g["value"], g["data_type"]) for g in gates} == {
        (stage.persona, True, "BOOLEAN") for stage in release_stages("1.2.0")
    }
    mine = run_json(capsys, "scores", "--persona", "Backend Engineer", "--json")["scores"]
    assert {row["name"] for row in mine} == {"quality_gate", "on_topic"}
    assert all(row["persona"] == "backend-engineer" for row in mine)
    every = run_json(capsys, "scores", "--json")["scores"]
    assert run_json(capsys, "scores", "--limit", "3", "--json")["scores"] == every[:3]
    assert (
        run_json(capsys, "scores", "--limit", "3", "--offset", "2", "--json")["scores"]
        == (every[2:5])
    )
    assert main(["scores"]) == 0
    assert "quality_gate" in capsys.readouterr().out


@pytest.fixture
async def deployed(store: Path) -> dict[str, WorkflowResult]:
    """The release workflow run in production (its last stage failing once) and in staging."""
    results = {}
    for environment, release, failure in (("production", "v1", True), ("staging", "v2", False)):
        langfuse = LangfuseIntegration(environment=environment, release=release)
        try:
            results[environment] = await run_release_workflow(
                langfuse, out=lambda line: None, provoke_failure=failure
            )
            assert langfuse.flush(timeout=10)
        finally:
            langfuse.shutdown(5)
    return results


def test_scores_and_prompts_by_environment_and_release(
    deployed: dict[str, WorkflowResult], capsys: pytest.CaptureFixture[str]
) -> None:
    every = run_json(capsys, "scores", "--limit", "1000", "--json")["scores"]
    for environment, release in (("production", "v1"), ("staging", "v2")):
        run = deployed[environment]
        mine = run_json(capsys, "scores", "--environment", environment, "--json")["scores"]
        assert mine == [row for row in every if row["trace_id"] == run.trace_id]
        assert len(mine) == len(run.scores)
        assert run_json(capsys, "scores", "--release", release, "--json")["scores"] == mine
    wrong = run_json(capsys, "scores", "--environment", "staging", "--release", "v1", "--json")
    assert wrong["scores"] == []
    assert main(["scores", "--environment", "qa"]) == 0
    assert capsys.readouterr().out.strip() == "No scores match."

    stages = release_stages("1.2.0")
    for environment, failed in (("production", 1), ("staging", 0)):
        document = run_json(capsys, "prompts", "--environment", environment, "--json")
        rows = {(row["prompt"], row["persona"]): row for row in document["rows"]}
        assert set(rows) == {(stage.prompt_name, stage.persona) for stage in stages}
        last = rows[(stages[-1].prompt_name, stages[-1].persona)]
        assert (last["generations"], last["errors"]) == (1 + failed, failed)
        assert last["scores"]["quality_gate"] == {"mean": 1.0, "n": 1 + failed}
    staging = run_json(capsys, "prompts", "--release", "v2", "--json")["rows"]
    assert sum(row["generations"] for row in staging) == len(stages)
    assert run_json(capsys, "prompts", "--environment", "qa", "--json")["rows"] == []


def test_report_json_has_gate_pass_rate_and_score_means(
    runs: list[WorkflowResult], capsys: pytest.CaptureFixture[str]
) -> None:
    for by in ("persona", "chatmode", "workflow", "model"):
        rows = run_json(capsys, "report", "--by", by, "--json")["rows"]
        scored = [row for row in rows if row["scores"]]
        assert scored, by
    rows = {r["group"]: r for r in run_json(capsys, "report", "--by", "persona", "--json")["rows"]}
    for stage in release_stages("1.2.0"):
        assert rows[stage.persona]["gate_pass_rate"] == 1.0
        assert rows[stage.persona]["scores"]["on_topic"] == {"mean": 1.0, "n": 2}
    workflow = run_json(capsys, "report", "--by", "workflow", "--json")["rows"]
    assert [(r["group"], r["gate_pass_rate"]) for r in workflow] == [
        ("package-release-workflow", 1.0)
    ]
    assert main(["report", "--by", "persona"]) == 0
    assert "Gates" in capsys.readouterr().out


def test_trace_shows_scores_on_their_observations(
    runs: list[WorkflowResult], capsys: pytest.CaptureFixture[str]
) -> None:
    tree = run_json(capsys, "trace", runs[1].trace_id, "--json")
    stages = tree["children"][0]["children"]
    for stage in stages:
        assert [(s["name"], s["value"]) for s in stage["scores"]] == [("quality_gate", True)]
        for generation in stage["children"]:
            assert [(s["name"], s["value"]) for s in generation["scores"]] == [("on_topic", True)]
            assert generation["prompt_name"].startswith("release/")
    assert main(["trace", runs[1].trace_id]) == 0
    out = capsys.readouterr().out
    assert "score quality_gate = true" in out and "prompt release/publish v1" in out


# -- prompts push ----------------------------------------------------------------------------
@pytest.fixture
def langfuse_host(monkeypatch: pytest.MonkeyPatch) -> Iterator[LoopbackOTLP]:
    with LoopbackOTLP() as receiver:
        monkeypatch.setenv("LANGFUSE_PUBLIC_KEY", "pk-lf-push")
        monkeypatch.setenv("LANGFUSE_SECRET_KEY", "sk-lf-push")
        monkeypatch.setenv("LANGFUSE_HOST", receiver.url)
        yield receiver


def test_push_creates_a_version_of_each_changed_or_new_prompt(
    langfuse_host: LoopbackOTLP,
    store: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = tmp_path / "prompts"
    (folder / "support").mkdir(parents=True)
    (folder / "support" / "answer.json").write_text(
        json.dumps({"prompt": "Answer {{q}}", "config": {"temperature": 0}})
    )
    monkeypatch.setenv("HYPERTOOL_PROMPTS_DIR", str(folder))
    shipped = {p.name: p for p in scan([BUILTIN_DIR])[0]}

    def latest(request: ReceivedRequest) -> tuple[int, Any]:
        name = unquote(urlsplit(request.path).path.rsplit("/", 1)[-1])
        assert parse_qs(urlsplit(request.path).query) == {"label": ["latest"]}
        if name == "release/version-bump":  # already there, same content
            local = shipped[name]
            return 200, {
                "name": name, "version": 3, "type": "text", "prompt": local.prompt,
                "config": local.config, "labels": ["latest"], "tags": [],
            }  # fmt: skip
        if name == "release/publish":  # there, but an older text
            return 200, {
                "name": name, "version": 1, "type": "text", "prompt": "old",
                "config": {}, "labels": ["latest"], "tags": [],
            }  # fmt: skip
        return 404, {"message": "Prompt not found"}

    def create(request: ReceivedRequest) -> tuple[int, Any]:
        body = json.loads(request.body)
        return 201, {**body, "version": 7, "labels": [*body["labels"], "latest"]}

    langfuse_host.route("GET", "/api/public/v2/prompts/", latest)
    langfuse_host.route("POST", "/api/public/v2/prompts", create)
    document = run_json(capsys, "prompts", "push", "--label", "staging", "--json")
    actions = {row["name"]: (row["action"], row["langfuse_version"]) for row in document["prompts"]}
    assert actions == {
        "release/version-bump": ("unchanged", 3),
        "release/publish": ("created", 7),
        "release/quality-validation": ("created", 7),
        "support/answer": ("created", 7),
    }
    assert all(row["local_version"] == 1 for row in document["prompts"])
    created = {body["name"]: body for body in langfuse_host.json_requests("/api/public/v2/prompts")}
    assert set(created) == {"release/publish", "release/quality-validation", "support/answer"}
    assert created["support/answer"] == {
        "name": "support/answer",
        "prompt": "Answer {{q}}",
        "type": "text",
        "config": {"temperature": 0},
        "labels": ["staging"],
        "tags": [],
        "commitMessage": "hypertool prompts push",
    }


def test_push_reports_a_bad_file_and_fails(
    langfuse_host: LoopbackOTLP,
    store: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = tmp_path / "prompts"
    folder.mkdir()
    (folder / "broken.json").write_text("{nope")
    monkeypatch.setenv("HYPERTOOL_PROMPTS_DIR", str(folder))
    langfuse_host.route("GET", "/api/public/v2/prompts/", lambda r: (404, {}))
    langfuse_host.route("POST", "/api/public/v2/prompts", lambda r: (500, {"message": "down"}))
    assert main(["prompts", "push", "--json"]) == 1
    rows = json.loads(capsys.readouterr().out)["prompts"]
    assert any(row["name"] is None and "broken.json" in row["error"] for row in rows)
    assert all(row["action"] == "failed" for row in rows)
    assert any("HTTP 500" in (row["error"] or "") for row in rows)


def test_push_without_keys_is_a_one_line_error(
    store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["prompts", "push"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("hypertool: error: set LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY")
