"""The README's screenshots of the web UI, taken from the demo's store.

``make screenshots`` (``UPDATE_SCREENSHOTS=1``) writes them to ``docs/``; otherwise
they go to a temporary folder, so a test run leaves the repository as it was.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest
from playwright.async_api import Browser, expect
from prometheus_client import CollectorRegistry

from hypertool.instrumentation import metrics as metrics_module
from hypertool.instrumentation import reset_langfuse_integration
from hypertool.instrumentation.cli import main
from support.ui_server import running_ui
from ui.browser import assert_charts_drawn, cli_json
from ui.conftest import open_page

pytestmark = pytest.mark.asyncio(loop_scope="session")

DOCS = Path(__file__).resolve().parents[2] / "docs"
UPDATE = "UPDATE_SCREENSHOTS"
DEMO_RUNS = (
    ["demo"],
    ["demo", "--release-version", "1.3.0"],
    ["demo", "--release-version", "1.3.1", "--no-failure"],
)
CHANGED = "release/publish"
"""The last run reads this prompt from a local folder, changed: a second version to compare."""
CHANGED_PROMPT = {
    "type": "text",
    "prompt": "Deploy: Publish package {{version}} to PyPI\nThen tag {{version}} and push the tag.",
    "config": {"model": "gpt-4o"},
}


async def test_screenshots_of_the_demo_store(
    browser: Browser,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store = tmp_path / "demo.db"
    monkeypatch.setenv("HYPERTOOL_STORE", str(store))
    monkeypatch.setattr(metrics_module, "REGISTRY", CollectorRegistry(), raising=False)
    folder = tmp_path / "prompts"
    (folder / CHANGED).parent.mkdir(parents=True)
    (folder / f"{CHANGED}.json").write_text(json.dumps(CHANGED_PROMPT))
    for number, argv in enumerate(DEMO_RUNS, 1):
        if number == len(DEMO_RUNS):  # the integration reads its prompts folder anew
            reset_langfuse_integration()
            monkeypatch.setenv("HYPERTOOL_PROMPTS_DIR", str(folder))
        assert await asyncio.to_thread(main, argv) == 0  # the demo runs its own event loop
    assert "`.venv/bin/hypertool ui`" in capsys.readouterr().out  # the summary points here
    reset_langfuse_integration()  # everything delivered, the writer closed
    traces = cli_json(capsys, store, "traces")["traces"]
    assert len(traces) == len(DEMO_RUNS)
    target = DOCS if os.environ.get(UPDATE) == "1" else tmp_path / "docs"
    target.mkdir(exist_ok=True)
    shots = {
        "ui-personas.png": ("/", ["tokens"]),
        "ui-persona.png": ("/personas/devops-engineer", ["cost", "latency"]),
        "ui-trace.png": (f"/traces/{traces[-1]['trace_id']}", []),
        "ui-analytics.png": ("/analytics?range=all", ["cost", "tokens", "errors"]),
        "ui-prompts.png": ("/prompts?min=1", []),
        "ui-prompt.png": (f"/prompts/{CHANGED}#compare", []),
        "ui-scores.png": ("/scores", []),
    }
    with running_ui(store) as ui:
        context, page, watch = await open_page(browser, ui.url)
        try:
            for name, (path, charts) in shots.items():
                await page.goto(ui.url + path)
                await expect(page.locator("main h1")).to_be_visible()
                await assert_charts_drawn(page, *charts)
                if name == "ui-prompt.png":  # versions 1 and 2 of the prompt, side by side
                    await expect(page.locator('table[data-diff="text"] tr.insert')).to_be_visible()
                await page.screenshot(path=target / name)
        finally:
            await context.close()
        watch.assert_clean()
    for name in shots:
        data = (target / name).read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 20_000, name
