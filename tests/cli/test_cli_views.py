"""The CLI's filters, sorting and paging, ``analytics``, ``personas`` activity, and ``ui``.

Each answers from the same query functions as the web UI; the UI tests compare its pages with
these documents.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from hypertool.instrumentation.cli import main
from hypertool.instrumentation.store import HYPERTOOL_STORE
from support.store_seed import Seeded, seed_store


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "250")


@pytest.fixture
def seeded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Seeded:
    seeded = seed_store(tmp_path / "store" / "traces.db")
    monkeypatch.setenv(HYPERTOOL_STORE, str(seeded.path))
    return seeded


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    code = main([*argv, "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)


def test_traces_filters_sort_and_pages(seeded: Seeded, capsys: pytest.CaptureFixture[str]) -> None:
    document = run_json(capsys, "traces", "--chatmode", "debugging")
    assert document["total"] == 1 and document["filters"] == {"chatmode": "debugging"}
    assert [row["trace_id"] for row in document["traces"]] == [seeded.trace_ids["debug"]]
    by_cost = run_json(capsys, "traces", "--sort", "cost", "--limit", "1")["traces"]
    assert by_cost[0]["trace_id"] == seeded.trace_ids["old"]  # the most expensive
    everything = run_json(capsys, "traces", "--sort", "duration", "--order", "asc")
    second_page = run_json(
        capsys, "traces", "--sort", "duration", "--order", "asc", "--limit", "2", "--offset", "2"
    )
    assert second_page["traces"] == everything["traces"][2:4]
    assert second_page["total"] == everything["total"] == len(seeded.trace_ids)
    until = run_json(capsys, "traces", "--until", "2d")["traces"]
    assert [row["trace_id"] for row in until] == [seeded.trace_ids["old"]]


def test_generations_by_model_and_workflow(
    seeded: Seeded, capsys: pytest.CaptureFixture[str]
) -> None:
    document = run_json(capsys, "generations", "--model", "gpt-4o-mini", "--failed")
    failed = [g for g in seeded.gens(model="gpt-4o-mini") if g.error]
    assert document["total"] == len(failed) == len(document["generations"])
    in_workflow = run_json(capsys, "generations", "--workflow", "package-release-workflow")
    assert in_workflow["total"] == len(seeded.gens(trace="release"))


def test_report_with_filters(seeded: Seeded, capsys: pytest.CaptureFixture[str]) -> None:
    document = run_json(capsys, "report", "--by", "model", "--persona", "devops-engineer")
    assert document["filters"] == {"persona": "devops-engineer"}
    assert sum(row["generations"] for row in document["rows"]) == len(
        seeded.gens(persona="devops-engineer")
    )


def test_analytics_json_and_table(seeded: Seeded, capsys: pytest.CaptureFixture[str]) -> None:
    document = run_json(capsys, "analytics", "--since", "1h", "--bucket", "10m")
    recent = [g for g in seeded.generations if g.ago_min < 60]
    assert document["bucket_seconds"] == 600
    assert sum(row["generations"] for row in document["timeline"]) == len(recent)
    assert set(document) >= {"series", "timeline", "latency_histogram", "time_to_first_token"}
    code = main(["analytics", "--since", "1h"])
    out = capsys.readouterr().out
    assert code == 0 and "Error rate" in out and "Time to first token" in out


@pytest.mark.parametrize("bucket", ["0s", "soon", "5"])
def test_analytics_bad_bucket(
    seeded: Seeded, capsys: pytest.CaptureFixture[str], bucket: str
) -> None:
    with pytest.raises(SystemExit):
        main(["analytics", "--bucket", bucket])
    assert "duration" in capsys.readouterr().err


def test_personas_activity_follows_since(
    seeded: Seeded, capsys: pytest.CaptureFixture[str]
) -> None:
    everything = {row["persona"]: row for row in run_json(capsys, "personas")["personas"]}
    recent = {
        row["persona"]: row for row in run_json(capsys, "personas", "--since", "1h")["personas"]
    }
    tester = "testing-specialist"
    assert everything[tester]["activity"]["generations"] == len(seeded.gens(persona=tester))
    assert recent[tester]["activity"]["generations"] == len(
        [g for g in seeded.gens(persona=tester) if g.ago_min < 60]
    )
    # The budget columns are this period's whatever the range.
    assert recent[tester]["used_tokens"] == everything[tester]["used_tokens"]


def test_ui_without_its_extra_names_the_pip_install(
    seeded: Seeded, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "starlette", None)  # as if not installed
    code = main(["ui", "--store", str(seeded.path)])
    err = capsys.readouterr().err
    assert code == 1
    assert "pip install 'hypertool-instrumentation[ui]'" in err and "starlette" in err


def test_ui_with_no_store_is_a_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "none.db"
    code = main(["ui", "--store", str(missing)])
    err = capsys.readouterr().err
    assert code == 1 and str(missing) in err and "Traceback" not in err
    assert not missing.exists()
