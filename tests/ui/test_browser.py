"""The web UI in Debian's Chromium, used as a person would: personas → a persona → a trace →
back, filters, analytics, prompts → a prompt → two versions side by side, scores. Every number
shown equals what the CLI's ``--json`` prints for the same store and filters; charts are drawn;
nothing leaves 127.0.0.1; no console error.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from playwright.async_api import Browser, Page, expect

from hypertool.instrumentation import display
from hypertool.instrumentation.store import StoreExporter
from hypertool.instrumentation.store.scores import walk
from hypertool.instrumentation.ui.tables import (
    BEST_COLUMNS,
    DISTRIBUTION_COLUMNS,
    GENERATION_COLUMNS,
    PERSONA_COLUMNS,
    PROMPT_COLUMNS,
    REPORT_COLUMNS,
    SCORE_COLUMNS,
    TIMELINE_COLUMNS,
    TRACE_COLUMNS,
    quality_columns,
    score_sample_columns,
)
from support.store_seed import Seeded, readable_span
from support.ui_server import RunningUi, running_ui
from ui.browser import assert_charts_drawn, assert_rows_match, cli_json, table
from ui.conftest import NOTES, SCRIPT_PROMPT, Watch, open_page

pytestmark = pytest.mark.asyncio(loop_scope="session")
Browse = tuple[Page, Watch]


async def test_personas_to_a_persona_to_a_trace_and_back(
    browse: Browse, ui: RunningUi, ui_seeded: Seeded, capsys: pytest.CaptureFixture[str]
) -> None:
    page, watch = browse
    await page.goto(ui.url + "/")
    await expect(page.get_by_role("heading", name="Personas")).to_be_visible()
    personas = cli_json(capsys, ui_seeded.path, "personas")["personas"]
    quality = quality_columns(personas, "activity")
    assert {c.label for c in quality} == {"Gates", "helpful", "relevance"}
    assert_rows_match(await table(page, "personas"), personas, [*PERSONA_COLUMNS, *quality])
    # The score means are `hypertool report --by persona`'s.
    report = cli_json(capsys, ui_seeded.path, "report", "--by", "persona")["rows"]
    by_persona = {p["persona"]: p["activity"] for p in personas}
    for row in report:
        activity = by_persona[row["group"]]
        assert (activity["scores"], activity["gate_pass_rate"]) == (
            row["scores"],
            row["gate_pass_rate"],
        )
    await assert_charts_drawn(page, "tokens")

    await page.get_by_role("link", name="devops-engineer", exact=True).first.click()
    await expect(page).to_have_url(ui.url + "/personas/devops-engineer")
    devops = next(row for row in personas if row["persona"] == "devops-engineer")
    for key in ("activity.generations", "activity.total_tokens", "activity.errors", "used_tokens"):
        card = page.locator(f'dl.cards dd[data-key="{key}"]')
        parts = key.split(".")
        expected = devops[parts[0]] if len(parts) == 1 else devops["activity"][parts[1]]
        assert await card.get_attribute("data-value") == str(expected)
    traces = cli_json(capsys, ui_seeded.path, "traces", "--persona", "devops-engineer")
    assert_rows_match(await table(page, "traces"), traces["traces"], TRACE_COLUMNS)
    models = cli_json(
        capsys, ui_seeded.path, "report", "--by", "model", "--persona", "devops-engineer"
    )
    assert_rows_match(await table(page, "models"), models["rows"], REPORT_COLUMNS)
    await assert_charts_drawn(page, "cost", "latency")

    await page.locator('table[data-table="traces"] td.id a').first.click()
    await expect(page).to_have_url(re.compile(r"/traces/[0-9a-f]{32}$"))
    trace_id = page.url.rsplit("/", 1)[1]
    assert trace_id == traces["traces"][0]["trace_id"]
    tree = cli_json(capsys, ui_seeded.path, "trace", trace_id)
    assert await page.locator("li.node").count() == tree["observations"]
    assert await page.locator('li.node[data-type="generation"]').count() == tree["generations"]
    for key in ("generations", "total_tokens", "duration_ms"):
        card = page.locator(f'dl.cards dd[data-key="{key}"]')
        assert float(await card.get_attribute("data-value") or "nan") == tree[key]
    await expect(page.locator("p.error").first).to_be_visible()  # the failed call, in red

    await page.go_back()
    await expect(page).to_have_url(ui.url + "/personas/devops-engineer")
    await expect(page.get_by_role("heading", name=re.compile("devops-engineer"))).to_be_visible()
    watch.assert_clean()


async def test_filter_sort_and_page_traces(
    browse: Browse, ui: RunningUi, ui_seeded: Seeded, capsys: pytest.CaptureFixture[str]
) -> None:
    page, watch = browse
    store = ui_seeded.path
    await page.goto(ui.url + "/traces")
    await page.fill('input[name="persona"]', "devops-engineer")
    await page.select_option('select[name="status"]', "error")
    await page.get_by_role("button", name="Apply").click()
    await expect(page).to_have_url(re.compile(r"persona=devops-engineer.*status=error"))
    printed = cli_json(capsys, store, "traces", "--persona", "devops-engineer", "--status", "error")
    assert_rows_match(await table(page, "traces"), printed["traces"], TRACE_COLUMNS)

    await page.goto(ui.url + "/traces")
    await page.locator('th[data-key="cost_usd"] a').click()
    await expect(page).to_have_url(re.compile(r"sort=cost"))
    by_cost = cli_json(capsys, store, "traces", "--sort", "cost")["traces"]
    assert_rows_match(await table(page, "traces"), by_cost, TRACE_COLUMNS)
    await page.locator('th[data-key="cost_usd"] a').click()
    await expect(page).to_have_url(re.compile(r"order=asc"))
    cheapest = cli_json(capsys, store, "traces", "--sort", "cost", "--order", "asc")["traces"]
    assert_rows_match(await table(page, "traces"), cheapest, TRACE_COLUMNS)

    await page.goto(ui.url + "/traces?per=2")
    await page.get_by_role("link", name="next →").first.click()
    second = cli_json(capsys, store, "traces", "--limit", "2", "--offset", "2")
    assert_rows_match(await table(page, "traces"), second["traces"], TRACE_COLUMNS)
    total = page.locator(".pager .count").first
    assert await total.get_attribute("data-total") == str(second["total"])
    watch.assert_clean()


async def test_failed_generations_grouped_by_model(
    browse: Browse, ui: RunningUi, ui_seeded: Seeded, capsys: pytest.CaptureFixture[str]
) -> None:
    page, watch = browse
    await page.goto(ui.url + "/generations")
    slowest = cli_json(capsys, ui_seeded.path, "generations", "--slowest", "50")["generations"]
    assert_rows_match(await table(page, "generations"), slowest, GENERATION_COLUMNS)
    await page.check('input[name="status"][value="error"]')
    await page.get_by_role("button", name="Apply").click()
    await expect(page).to_have_url(re.compile(r"status=error"))
    failed = cli_json(capsys, ui_seeded.path, "generations", "--slowest", "50", "--failed")
    assert failed["generations"], "the seeded store has failed generations"
    assert_rows_match(await table(page, "generations"), failed["generations"], GENERATION_COLUMNS)
    models = cli_json(capsys, ui_seeded.path, "report", "--by", "model", "--status", "error")
    assert_rows_match(await table(page, "models"), models["rows"], REPORT_COLUMNS)
    watch.assert_clean()


async def test_analytics_for_a_chosen_range(
    browse: Browse, ui: RunningUi, ui_seeded: Seeded, capsys: pytest.CaptureFixture[str]
) -> None:
    page, watch = browse
    await page.goto(ui.url + "/analytics")
    await page.select_option('select[name="range"]', "all")
    await page.get_by_role("button", name="Apply").click()
    await expect(page).to_have_url(re.compile(r"range=all"))
    await expect(page.locator("p.note").first).to_contain_text(
        f"{len(ui_seeded.generations)} generations"
    )
    # A range given by dates, as a person types them: the same as the command line's.
    until = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    await page.fill('input[name="since"]', "2020-01-01T00:00:00Z")
    await page.fill('input[name="until"]', until)
    await page.get_by_role("button", name="Apply").click()
    await expect(page).to_have_url(re.compile(r"since=2020"))
    document = cli_json(
        capsys, ui_seeded.path, "analytics", "--since", "2020-01-01T00:00:00Z", "--until", until
    )
    await page.locator("details.data summary").click()
    assert_rows_match(await table(page, "timeline"), document["timeline"], TIMELINE_COLUMNS)
    first_token = document["time_to_first_token"]
    assert first_token["generations"] == sum(
        1 for g in ui_seeded.generations if g.first_token_ms is not None
    )
    assert_rows_match(
        await table(page, "first-token-models"), first_token["by_model"], DISTRIBUTION_COLUMNS
    )
    assert_rows_match(
        await table(page, "first-token-personas"), first_token["by_persona"], DISTRIBUTION_COLUMNS
    )
    await assert_charts_drawn(
        page,
        "cost",
        "tokens-time",
        "tokens",
        "errors",
        "latency-models",
        "latency-personas",
        "first-token",
    )
    watch.assert_clean()


async def test_a_script_in_a_prompt_is_text(
    browse: Browse, ui: RunningUi, ui_seeded: Seeded
) -> None:
    page, watch = browse
    await page.goto(f"{ui.url}/traces/{ui_seeded.trace_ids['hostile']}")
    await expect(page.get_by_text(SCRIPT_PROMPT).first).to_be_visible()
    assert await page.evaluate("() => window.__pwned") is None
    await page.get_by_text("completion", exact=False).first.click()  # unfold the long completion
    await expect(page.locator("details.text[open] pre").first).to_be_visible()
    assert not any("127.0.0.2" in url for url in watch.requests)
    watch.assert_clean()


async def test_page_refreshes_by_itself_when_spans_arrive(
    browser: Browser, fresh_seeded: Seeded
) -> None:
    trace_id = fresh_seeded.trace_ids["hostile"]
    with running_ui(fresh_seeded.path) as live:
        context, page, watch = await open_page(browser, live.url)
        try:
            await page.goto(f"{live.url}/traces/{trace_id}")
            nodes = page.locator("li.node")
            before = await nodes.count()
            folded = page.locator("details.text").first
            await folded.locator("summary").click()  # a person reading a long completion
            await expect(folded).to_have_attribute("open", "")
            async with page.expect_navigation(timeout=15_000):
                exporter = StoreExporter(fresh_seeded.path, retention_days=30)
                late = readable_span(int(trace_id, 16), 0xBEEF, parent=0xCAFE, name="late")
                assert exporter.export([late]).name == "SUCCESS"
                exporter.shutdown()
            await expect(nodes).to_have_count(before + 1)
            await expect(page.locator("details.text").first).to_have_attribute("open", "")
        finally:
            await context.close()
        watch.assert_clean()


async def test_prompts_to_a_prompt_to_the_diff_of_two_versions(
    browse: Browse, ui: RunningUi, ui_seeded: Seeded, capsys: pytest.CaptureFixture[str]
) -> None:
    page, watch = browse
    store = ui_seeded.path
    await page.goto(ui.url + "/")
    await page.get_by_role("link", name="Prompts", exact=True).click()
    await expect(page).to_have_url(ui.url + "/prompts")
    printed = cli_json(capsys, store, "prompts")
    columns = [*PROMPT_COLUMNS, *score_sample_columns(printed["rows"])]
    assert_rows_match(await table(page, "versions"), printed["rows"], columns)
    assert_rows_match(await table(page, "best"), printed["best"], BEST_COLUMNS)
    verdicts = [row["best_version"]["text"] for row in await table(page, "best")]
    assert verdicts == [display.best_version(answer) for answer in printed["best"]]
    assert all(v.startswith("too few samples") for v in verdicts)  # 20 scored needed

    # Fewer samples and a chosen score: the CLI's answer with the same options.
    await page.fill('input[name="min"]', "3")
    await page.select_option('select[name="score"]', "relevance")
    await page.get_by_role("button", name="Apply").click()
    await expect(page).to_have_url(re.compile(r"score=relevance.*min=3|min=3.*score=relevance"))
    chosen = cli_json(capsys, store, "prompts", "--score", "relevance", "--min-samples", "3")
    assert_rows_match(await table(page, "versions"), chosen["rows"], columns)
    best = await table(page, "best")
    assert [r["best_version"]["text"] for r in best] == [
        display.best_version(answer) for answer in chosen["best"]
    ]
    assert "version 2 (best)" in [r["best_version"]["text"] for r in best]
    starred = page.locator('table[data-table="versions"] td.version .best')
    await expect(starred).to_have_count(1)  # version 2, for backend-engineer
    await expect(page.get_by_text(display.best_legend("relevance")).first).to_be_visible()

    await page.locator('table[data-table="versions"] td.prompt a', has_text=NOTES).first.click()
    await expect(page).to_have_url(re.compile(rf"/prompts/{NOTES}\?.*min=3"))
    one = cli_json(
        capsys, store, "prompts", "--prompt", NOTES, "--score", "relevance", "--min-samples", "3"
    )
    assert_rows_match(await table(page, "versions"), one["rows"], columns)
    await expect(page.get_by_text("Version 3 made generations here")).to_be_visible()

    # The two latest recorded versions, side by side; the script in version 2 is text.
    diff = page.locator('table[data-diff="text"]')
    await expect(diff.locator("thead th")).to_have_text(["version 1", "version 2"])
    await expect(diff.locator("tr.replace")).to_have_count(1)
    await expect(diff.locator("tr.insert td.line").last).to_have_text(SCRIPT_PROMPT)
    await expect(diff.locator("tr.replace td.line mark").last).to_have_text(" and friendly")
    assert await page.evaluate("() => window.__pwned") is None
    assert not any("127.0.0.2" in url for url in watch.requests)

    # The other way round, chosen as a person would.
    await page.select_option('select[name="a"]', "2")
    await page.select_option('select[name="b"]', "1")
    await page.get_by_role("button", name="Compare").click()
    await expect(page).to_have_url(re.compile(r"a=2&b=1"))
    await expect(diff.locator("thead th")).to_have_text(["version 2", "version 1"])
    await expect(diff.locator("tr.delete td.line").first).to_have_text(SCRIPT_PROMPT)
    watch.assert_clean()


async def test_scores_filtered_and_shown_on_their_trace(
    browse: Browse, ui: RunningUi, ui_seeded: Seeded, capsys: pytest.CaptureFixture[str]
) -> None:
    page, watch = browse
    store = ui_seeded.path
    await page.goto(ui.url + "/scores")
    everything = cli_json(capsys, store, "scores")["scores"]
    shown = await table(page, "scores")
    assert [row["value"]["text"] for row in shown] == [
        display.score_value(row["value"], row["data_type"]) for row in everything
    ]
    assert [row["name"]["text"] for row in shown] == [row["name"] for row in everything]
    assert_rows_match(shown, everything, SCORE_COLUMNS)

    await page.fill('input[name="name"]', "relevance")
    await page.fill('input[name="persona"]', "backend-engineer")
    await page.get_by_role("button", name="Apply").click()
    await expect(page).to_have_url(re.compile(r"persona=backend-engineer.*name=relevance"))
    argv = ("scores", "--name", "relevance", "--persona", "backend-engineer")
    chosen = cli_json(capsys, store, *argv)["scores"]
    assert [r["observation_id"]["text"] for r in await table(page, "scores")] == [
        row["observation_id"] for row in chosen
    ]
    await page.goto(page.url + "&per=4")
    await page.get_by_role("link", name="next →").first.click()
    second = cli_json(capsys, store, *argv, "--limit", "4", "--offset", "4")["scores"]
    assert [r["observation_id"]["text"] for r in await table(page, "scores")] == [
        row["observation_id"] for row in second
    ]
    total = page.locator(".pager .count").first
    assert await total.get_attribute("data-total") == str(len(chosen))

    # A score's observation, in its trace: each node shows its own scores, as `hypertool trace`.
    await page.locator('table[data-table="scores"] td.id a[href*="#span-"]').first.click()
    await expect(page).to_have_url(re.compile(r"/traces/[0-9a-f]{32}#span-[0-9a-f]{16}$"))
    tree = cli_json(capsys, store, "trace", ui_seeded.trace_ids["notes"])
    for node in walk(tree["children"]):
        chips = page.locator(f'li.node[data-span="{node["span_id"]}"] > ul.scores > li.score')
        await expect(chips).to_have_count(len(node["scores"]))
        for chip, score in zip(await chips.all(), node["scores"], strict=True):
            assert await chip.get_attribute("data-name") == score["name"]
    helpful = page.locator("section.trace-scores li.score")
    await expect(helpful).to_have_count(len(tree["scores"]))
    await expect(helpful.first).to_contain_text('helpful = true <b>clear</b> & "kind"')
    watch.assert_clean()
