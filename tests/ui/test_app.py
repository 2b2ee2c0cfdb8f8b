"""The web UI's server, without a browser: headers, escaping, exports equal to the CLI's JSON,
errors, and a store that is never written.
"""

from __future__ import annotations

import csv
import hashlib
import html
import io
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from hypertool.instrumentation import Score
from hypertool.instrumentation.personas import builtin_personas
from hypertool.instrumentation.store import StoreExporter, TraceStore
from hypertool.instrumentation.store.overview import Budgets
from hypertool.instrumentation.ui.app import CONTENT_SECURITY_POLICY, create_app
from support.store_seed import Seeded, readable_span
from ui.browser import cli_json
from ui.conftest import NOTES, SCRIPT_PROMPT

SINCE = "2020-01-01T00:00:00Z"
PAGES = [
    "/",
    "/personas/devops-engineer",
    "/traces",
    "/generations",
    "/analytics",
    "/prompts",
    "/prompts/release/notes",
    "/scores",
]


@pytest.fixture
def client(fresh_seeded: Seeded) -> Iterator[TestClient]:
    store = TraceStore(fresh_seeded.path, read_only=True)
    app = create_app(store, budgets=Budgets(builtin_personas(), "month"))
    with TestClient(app, base_url="http://127.0.0.1:8000") as test_client:
        yield test_client
    store.close()


def test_every_page_has_the_safety_headers(client: TestClient, fresh_seeded: Seeded) -> None:
    trace = f"/traces/{fresh_seeded.trace_ids['release']}"
    for path in [*PAGES, trace, "/traces?format=csv", "/api/version"]:
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["server-timing"].startswith("app;dur=")
    assert "script-src 'self'" in CONTENT_SECURITY_POLICY
    assert "unsafe-inline" not in CONTENT_SECURITY_POLICY


def test_host_header_must_name_this_machine(client: TestClient) -> None:
    """A page elsewhere cannot read the UI by pointing its own name at 127.0.0.1."""
    assert client.get("/", headers={"host": "attacker.example"}).status_code == 400
    assert client.get("/", headers={"host": "localhost:8000"}).status_code == 200


def test_a_script_in_a_prompt_is_shown_as_text(client: TestClient, fresh_seeded: Seeded) -> None:
    for path in [f"/traces/{fresh_seeded.trace_ids['hostile']}", "/generations?sort=recent"]:
        page = client.get(path).text
        assert "<script>window.__pwned" not in page
        assert "<img src=" not in page
        assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in page


def test_a_trace_prefix_leads_to_the_full_id(client: TestClient, fresh_seeded: Seeded) -> None:
    full = fresh_seeded.trace_ids["release"]
    response = client.get(f"/traces/{full[:10].upper()}?x=1", follow_redirects=False)
    assert response.status_code == 302
    assert response.headers["location"] == f"/traces/{full}?x=1"
    page = client.get(f"/traces/{full}").text
    assert f'data-version-url="/api/version?trace={full}"' in page


def test_long_completions_are_folded(client: TestClient, fresh_seeded: Seeded) -> None:
    page = client.get(f"/traces/{fresh_seeded.trace_ids['hostile']}").text
    assert '<details class="text"><summary>completion' in page


def exports(trace_id: str, until: str) -> list[tuple[str, list[str]]]:
    """(UI export URL, the CLI command that must print the same document)."""
    return [
        ("/?format=json", ["personas"]),
        ("/?format=json&since=2h", ["personas", "--since", "2h"]),
        (
            "/traces?format=json&persona=devops-engineer&status=error",
            ["traces", "--persona", "devops-engineer", "--status", "error"],
        ),
        (
            "/traces?format=json&sort=cost&order=asc&per=2&page=2",
            ["traces", "--sort", "cost", "--order", "asc", "--limit", "2", "--offset", "2"],
        ),
        ("/traces?format=json&chatmode=debugging", ["traces", "--chatmode", "debugging"]),
        ("/generations?format=json&table=generations", ["generations", "--slowest", "50"]),
        ("/generations?format=json&sort=recent&status=error", ["generations", "--failed"]),
        (
            "/generations?format=json&table=models&model=gpt-4o",
            ["report", "--by", "model", "--model", "gpt-4o"],
        ),
        (f"/traces/{trace_id}?format=json", ["trace", trace_id]),
        (
            "/personas/devops-engineer?format=json&table=traces",
            ["traces", "--persona", "devops-engineer"],
        ),
        (
            "/personas/devops-engineer?format=json&table=models",
            ["report", "--by", "model", "--persona", "devops-engineer"],
        ),
        (
            f"/analytics?format=json&since={SINCE}&until={until}&persona=devops-engineer",
            ["analytics", "--since", SINCE, "--until", until, "--persona", "devops-engineer"],
        ),
        ("/prompts?format=json", ["prompts"]),
        (
            "/prompts?format=json&table=best&persona=Backend Engineer&score=relevance&min=3",
            [
                "prompts",
                "--persona",
                "backend-engineer",
                "--score",
                "relevance",
                "--min-samples",
                "3",
            ],
        ),
        (f"/prompts?format=json&since={SINCE}", ["prompts", "--since", SINCE]),
        (
            f"/prompts/{NOTES}?format=json&min=3",
            ["prompts", "--prompt", NOTES, "--min-samples", "3"],
        ),
        ("/scores?format=json", ["scores"]),
        (
            "/scores?format=json&name=relevance&persona=backend-engineer&per=3&page=2",
            [
                "scores",
                "--name",
                "relevance",
                "--persona",
                "backend-engineer",
                "--limit",
                "3",
                "--offset",
                "3",
            ],
        ),
        (f"/scores?format=json&since={SINCE}&per=5", ["scores", "--since", SINCE, "--limit", "5"]),
    ]


def test_json_exports_equal_the_cli(
    client: TestClient, fresh_seeded: Seeded, capsys: pytest.CaptureFixture[str]
) -> None:
    until = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    for url, argv in exports(fresh_seeded.trace_ids["release"], until):
        response = client.get(url)
        assert response.status_code == 200, url
        assert response.headers["content-disposition"].startswith("attachment;")
        exported = response.json()
        printed = cli_json(capsys, fresh_seeded.path, *argv)
        if argv[0] in ("personas",) and "--since" in argv:
            # "2h" ago is computed when each is asked; the activity must still agree.
            for document in (exported, printed):
                document.pop("since")
        assert exported == printed, url


def test_csv_export_has_the_rows_of_the_table(client: TestClient) -> None:
    response = client.get("/traces?format=csv")
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    expected = client.get("/traces?format=json").json()["traces"]
    assert [row["trace_id"] for row in rows] == [row["trace_id"] for row in expected]
    assert [int(row["total_tokens"]) for row in rows] == [row["total_tokens"] for row in expected]
    personas = list(csv.DictReader(io.StringIO(client.get("/?format=csv").text)))
    assert "activity.p95_ms" in personas[0]  # nested numbers become columns


def test_csv_cells_never_start_a_formula(client: TestClient, tmp_path: Path) -> None:
    response = client.get("/generations?format=csv&sort=recent")
    for row in csv.reader(io.StringIO(response.text)):
        for cell in row:
            assert not cell.startswith(("=", "+", "@")), cell


@pytest.mark.parametrize(
    ("path", "status", "words"),
    [
        ("/traces/zzzz", 400, "not a trace id"),
        ("/traces/" + "0" * 32, 404, "No trace"),
        ("/traces?sort=bogus", 400, "sort='bogus'"),
        ("/traces?since=yesterday", 400, "since"),
        ("/traces?page=0", 400, "page"),
        ("/generations?format=xml", 400, "format"),
        ("/analytics?bucket=7", 400, "bucket"),
        ("/?format=json&table=nope", 400, "table"),
        ("/nowhere", 404, "no such page"),
        ("/personas/nobody-here", 404, "No persona 'nobody-here'"),
        ("/prompts/nobody/here", 404, "No prompt 'nobody/here'"),
        ("/prompts?until=1h", 400, "until: not a filter of this page (nor of hypertool prompts)"),
        ("/scores?model=gpt-4o", 400, "model: not a filter of this page (nor of hypertool scores)"),
        ("/prompts?min=0", 400, "min='0'"),
        (f"/prompts/{NOTES}?a=one", 400, "a='one' is not a whole number"),
        ("/scores?page=9", 400, "page=9: there are"),
    ],
)
def test_errors_are_pages_that_say_what_is_wrong(
    client: TestClient, path: str, status: int, words: str
) -> None:
    response = client.get(path)
    assert response.status_code == status
    assert words in html.unescape(response.text)
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY


def test_pages_never_write_the_store(fresh_seeded: Seeded) -> None:
    files = [p for p in fresh_seeded.path.parent.iterdir() if p.name.startswith("traces.db")]
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}
    store = TraceStore(fresh_seeded.path, read_only=True)
    with TestClient(create_app(store), base_url="http://127.0.0.1") as client:
        for path in [*PAGES, "/traces?format=csv", "/analytics?format=json"]:
            assert client.get(path).status_code == 200
    store.close()
    after = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}
    assert after == before


def test_version_changes_when_spans_arrive(client: TestClient, fresh_seeded: Seeded) -> None:
    trace_id = fresh_seeded.trace_ids["debug"]
    before = client.get("/api/version").json()["version"]
    before_trace = client.get(f"/api/version?trace={trace_id}").json()["version"]
    page = client.get("/traces").text
    assert f'data-version="{before}"' in page
    exporter = StoreExporter(fresh_seeded.path, retention_days=30)
    assert exporter.export([readable_span(0xABC, 0xDEF)]).name == "SUCCESS"
    exporter.shutdown()
    assert client.get("/api/version").json()["version"] != before
    # Another trace's span does not refresh this trace's page.
    assert client.get(f"/api/version?trace={trace_id}").json()["version"] == before_trace


def test_script_prompt_fixture_is_hostile() -> None:
    assert "<script>" in SCRIPT_PROMPT and "127.0.0.2" in SCRIPT_PROMPT


def test_a_script_in_a_prompt_version_is_text_in_the_diff(client: TestClient) -> None:
    page = client.get(f"/prompts/{NOTES}").text  # versions 1 and 2, the two latest recorded
    assert "<script>window.__pwned" not in page
    assert "<img src=" not in page
    assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in page
    assert 'data-diff="text"' in page
    texts = client.get(f"/prompts/{NOTES}?format=json&table=texts").json()
    assert [v["version"] for v in texts["versions"]] == [1, 2]
    assert SCRIPT_PROMPT in texts["versions"][1]["prompt"]  # exported as it was recorded


def test_a_version_without_its_text_is_said_so(client: TestClient) -> None:
    page = html.unescape(client.get(f"/prompts/{NOTES}?a=1&b=3").text)
    assert "Version 3 of release/notes: no text in this store (it has versions 1, 2)." in page
    assert 'data-diff="text"' not in page
    assert "Version 3 made generations here, but its text is not in this store" in page


def test_csv_of_prompt_versions_has_a_column_per_score(client: TestClient) -> None:
    rows = list(csv.DictReader(io.StringIO(client.get("/prompts?format=csv").text)))
    printed = client.get("/prompts?format=json").json()["rows"]
    assert [(r["prompt"], r["version"]) for r in rows] == [
        (p["prompt"], str(p["version"])) for p in printed
    ]
    notes = next(r for r in rows if r["prompt"] == NOTES and r["version"] == "2")
    assert float(notes["scores.relevance.mean"]) == pytest.approx(0.922)
    assert notes["scores.relevance.n"] == "5"


def test_version_changes_when_scores_arrive(client: TestClient, fresh_seeded: Seeded) -> None:
    trace_id = fresh_seeded.trace_ids["debug"]
    before = client.get("/api/version").json()["version"]
    before_trace = client.get(f"/api/version?trace={trace_id}").json()["version"]
    exporter = StoreExporter(fresh_seeded.path, retention_days=30)
    late = Score("late-1", trace_id, "helpful", 1.0, "BOOLEAN", time.time_ns())
    assert exporter.export_scores([late]) == 0
    exporter.shutdown()
    assert client.get("/api/version").json()["version"] != before
    assert client.get(f"/api/version?trace={trace_id}").json()["version"] != before_trace
    page = client.get(f"/traces/{trace_id}").text
    assert 'data-name="helpful"' in page  # a score of the trace itself


def test_a_persona_page_shows_its_score_means(
    client: TestClient, fresh_seeded: Seeded, capsys: pytest.CaptureFixture[str]
) -> None:
    page = client.get("/personas/backend-engineer").text
    (row,) = cli_json(
        capsys, fresh_seeded.path, "report", "--by", "persona", "--persona", "backend-engineer"
    )["rows"]
    assert row["scores"].keys() == {"helpful", "quality_gate", "relevance"}
    for name, value in row["scores"].items():
        if name != "quality_gate":
            key = f"activity.scores.{name}.mean"
            assert f'<dd data-key="{key}" data-value="{value["mean"]}">' in page
            assert f"{name} <small>mean, n = {value['n']}</small>" in page
    rate = row["gate_pass_rate"]
    assert f'<dd data-key="activity.gate_pass_rate" data-value="{rate}">' in page
    models = client.get("/personas/backend-engineer?format=json&table=models").json()
    printed = cli_json(
        capsys, fresh_seeded.path, "report", "--by", "model", "--persona", "backend-engineer"
    )
    assert models == printed
    assert [r["group"] for r in printed["rows"]] == ["gpt-4o", None]  # stage and trace scores
