"""Fixtures of the web UI tests: a seeded store with a hostile prompt and streamed calls,
generations made from managed prompts (two of whose versions' texts the store records, one
holding a script), and scores on generations, stages and a trace.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, Page, Route, async_playwright

from hypertool.instrumentation import Score
from hypertool.instrumentation.store import StoreExporter, TraceStore
from support.store_seed import GENERATIONS, TRACES, Gen, Seeded, TraceSpec, seed_store
from support.ui_server import RunningUi, running_ui

SCRIPT_PROMPT = (
    "<script>window.__pwned = 1</script>"
    '<img src="http://127.0.0.2:9/x.png" onerror="window.__pwned = 2">'
)
"""A prompt a page must show as text: run, it would set ``__pwned`` or fetch another host."""
LONG_COMPLETION = "Step {n}: checked the release notes and the changelog.\n" * 40

NOTES, ANSWER = "release/notes", "support/answer"
PERSONA = "backend-engineer"
NOTES_TEXTS = [
    "Write the release notes of {{version}}.\nList every change.\nKeep it short.",
    "Write the release notes of {{version}}.\nList every change.\nKeep it short and friendly.\n"
    + SCRIPT_PROMPT,
]
"""The texts of versions 1 and 2 of NOTES the store records; version 3 came from Langfuse."""
ANSWER_MESSAGES = [
    [
        {"role": "system", "content": "You answer support questions."},
        {"role": "user", "content": "{{q}}"},
    ],
    [
        {"role": "system", "content": "You answer support questions kindly."},
        {"role": "user", "content": "{{q}}"},
    ],
]
ANSWER_CONFIGS = [{}, {"temperature": 0.2}]
RELEVANCE = {1: [0.52, 0.55, 0.5, 0.58, 0.54], 2: [0.91, 0.93, 0.9, 0.95, 0.92], 3: [0.7, 0.8]}
"""Relevance of each generation made from NOTES, per version: version 2 is clearly best."""

UI_TRACES = [
    *TRACES,
    TraceSpec("hostile", "hostile-input", "frontend-engineer", "feature-implementation", "", 8),
    TraceSpec("notes", "release-notes", "backend-engineer", "package-release", "release-notes", 16),
]
UI_GENERATIONS = [
    *GENERATIONS,
    Gen(
        "hostile",
        "frontend-engineer",
        "gpt-4o",
        40,
        900,
        0.002,
        7.5,
        1500.0,
        "feature-implementation",
        prompt=SCRIPT_PROMPT,
        completion="".join(LONG_COMPLETION.format(n=n) for n in range(3)),
        first_token_ms=180.0,
    ),
    Gen(
        "hostile",
        "frontend-engineer",
        "gpt-4o-mini",
        20,
        30,
        0.0001,
        7.0,
        400.0,
        "feature-implementation",
        prompt="Summarise",
        completion="Done",
        first_token_ms=60.0,
    ),
    *(
        Gen(
            "notes",
            "testing-specialist" if version == 3 else "backend-engineer",
            "gpt-4o",
            300 + 10 * n,
            120,
            0.001,
            15.9 - version * 0.2 - n * 0.01,
            200.0 + 40 * n + 100 * version,
            "package-release",
            "release-notes",
            f"draft-v{version}",
            prompt=f"Write the release notes of 1.{version}.{n}",
            completion="Notes",
            prompt_name=NOTES,
            prompt_version=version,
        )
        for version, values in RELEVANCE.items()
        for n in range(len(values))
    ),
    *(
        Gen(
            "notes",
            "frontend-engineer",
            "gpt-4o-mini",
            50,
            20,
            0.0002,
            15.0 - version * 0.1,
            150.0,
            "package-release",
            "release-notes",
            prompt="How do I upgrade?",
            completion="Run pip install -U",
            error="rate limited" if version == 1 else None,
            prompt_name=ANSWER,
            prompt_version=version,
        )
        for version in (1, 2)
    ),
]


def seed_ui_store(path: Path) -> Seeded:
    """The UI tests' store: spans, the texts of local prompt versions, and scores."""
    seeded = seed_store(path, UI_TRACES, UI_GENERATIONS)
    with TraceStore(path) as store:
        for text in NOTES_TEXTS:
            store.record_prompt_version(NOTES, "text", text, "{}")
        for messages, config in zip(ANSWER_MESSAGES, ANSWER_CONFIGS, strict=True):
            store.record_prompt_version(ANSWER, "chat", json.dumps(messages), json.dumps(config))
    trace_id = seeded.trace_ids["notes"]
    at = seeded.start_ns(15)

    def score(score_id: str, name: str, value: float | str, kind: Any, **more: Any) -> Score:
        return Score(score_id, trace_id, name, value, kind, at + len(scores), **more)

    scores: list[Score] = []
    comment = '<b>clear</b> & "kind"'
    scores.append(score("helpful", "helpful", 1.0, "BOOLEAN", persona=PERSONA, comment=comment))
    values = {version: iter(found) for version, found in RELEVANCE.items()}
    for index, gen in enumerate(seeded.generations):
        if gen.prompt_name == NOTES:
            value = next(values[gen.prompt_version or 0])
            span_id = seeded.span_ids[index]
            scores.append(
                score(
                    f"r-{index}",
                    "relevance",
                    value,
                    "NUMERIC",
                    observation_id=span_id,
                    persona=gen.persona,
                    chatmode=gen.chatmode,
                )
            )
    for version, passed in ((1, 0.0), (2, 1.0), (3, 1.0)):
        stage = f"draft-v{version}"
        who = "testing-specialist" if version == 3 else PERSONA
        scores.append(
            score(
                f"gate-{version}",
                "quality_gate",
                passed,
                "BOOLEAN",
                persona=who,
                stage=stage,
                observation_id=seeded.stage_ids[f"notes/{stage}"],
                chatmode="package-release",
            )
        )
    first = next(i for i, g in enumerate(seeded.generations) if g.prompt_name == ANSWER)
    tone = seeded.span_ids[first]
    scores.append(score("tone", "tone", "formal", "CATEGORICAL", observation_id=tone))
    exporter = StoreExporter(path, retention_days=30)
    assert exporter.export_scores(scores) == 0
    exporter.shutdown()
    return seeded


@pytest.fixture(scope="module")
def ui_seeded(tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    """The store the UI tests read (one per module: the browser tests share one server)."""
    return seed_ui_store(tmp_path_factory.mktemp("ui-store") / "traces.db")


@pytest.fixture
def fresh_seeded(tmp_path: Path) -> Seeded:
    return seed_ui_store(tmp_path / "traces.db")


# -- the browser ----------------------------------------------------------------------------
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
]


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser() -> AsyncIterator[Browser]:
    """Debian's Chromium, driven by Playwright: one for the whole session (never downloaded)."""
    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail("Debian's chromium is needed for the UI tests: apt-get install chromium")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield launched
        await launched.close()


@pytest.fixture(scope="module")
def ui(ui_seeded: Seeded) -> Iterator[RunningUi]:
    """The UI over the module's store, served by uvicorn on a free 127.0.0.1 port."""
    with running_ui(ui_seeded.path) as running:
        yield running


@dataclass
class Watch:
    """What a page did that it must not: requests to anywhere but the UI, console errors."""

    origin: str
    outside: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def assert_clean(self) -> None:
        assert self.outside == [], f"requests leaving {self.origin}: {self.outside}"
        assert self.errors == [], f"console errors: {self.errors}"


async def open_page(browser: Browser, origin: str) -> tuple[BrowserContext, Page, Watch]:
    """A fresh context whose every request to another origin is recorded and refused."""
    watch = Watch(origin)
    context = await browser.new_context(viewport={"width": 1400, "height": 900})

    async def guard(route: Route) -> None:
        url = route.request.url
        watch.requests.append(url)
        if url == origin or url.startswith(origin + "/"):
            await route.continue_()
        else:
            watch.outside.append(url)
            await route.abort()

    await context.route("**/*", guard)
    page = await context.new_page()
    page.on("console", lambda m: watch.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda error: watch.errors.append(str(error)))
    return context, page, watch


@pytest_asyncio.fixture(loop_scope="session")
async def browse(browser: Browser, ui: RunningUi) -> AsyncIterator[tuple[Page, Watch]]:
    """A page on the module's UI; after the test, nothing may have left 127.0.0.1."""
    context, page, watch = await open_page(browser, ui.url)
    try:
        yield page, watch
    finally:
        await context.close()
    watch.assert_clean()
