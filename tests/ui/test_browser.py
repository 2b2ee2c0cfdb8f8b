"""The web UI in Debian's Chromium, used as a person would: personas → a persona → a trace →
back, filters, analytics. Every number shown equals what the CLI's ``--json`` prints for the
same store and filters; charts are drawn; nothing leaves 127.0.0.1; no console error.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from playwright.async_api import Browser, Page, expect

from hypertool.instrumentation.store import StoreExporter
from hypertool.instrumentation.ui.tables import (
    DISTRIBUTION_COLUMNS,
    GENERATION_COLUMNS,
    PERSONA_COLUMNS,
    REPORT_COLUMNS,
    TIMELINE_COLUMNS,
    TRACE_COLUMNS,
)
from support.store_seed import Seeded, readable_span
from support.ui_server import RunningUi, running_ui
from ui.browser import assert_charts_drawn, assert_rows_match, cli_json, table
from ui.conftest import SCRIPT_PROMPT, Watch, open_page

pytestmark = pytest.mark.asyncio(loop_scope="session")
Browse = tuple[Page, Watch]


async def test_personas_to_a_persona_to_a_trace_and_back(
    browse: Browse, ui: RunningUi, ui_seeded: Seeded, capsys: pytest.CaptureFixture[str]
) -> None:
    page, watch = browse
    await page.goto(ui.url + "/")
    await expect(page.get_by_role("heading", name="Personas")).to_be_visible()
    personas = cli_json(capsys, ui_seeded.path, "personas")["personas"]
    assert_rows_match(await table(page, "personas"), personas, PERSONA_COLUMNS)
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
