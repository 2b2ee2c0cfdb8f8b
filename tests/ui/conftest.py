"""Fixtures of the web UI tests: a seeded store with a hostile prompt and streamed calls."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, Page, Route, async_playwright

from support.store_seed import GENERATIONS, TRACES, Gen, Seeded, TraceSpec, seed_store
from support.ui_server import RunningUi, running_ui

SCRIPT_PROMPT = (
    "<script>window.__pwned = 1</script>"
    '<img src="http://127.0.0.2:9/x.png" onerror="window.__pwned = 2">'
)
"""A prompt a page must show as text: run, it would set ``__pwned`` or fetch another host."""
LONG_COMPLETION = "Step {n}: checked the release notes and the changelog.\n" * 40

UI_TRACES = [
    *TRACES,
    TraceSpec("hostile", "hostile-input", "frontend-engineer", "feature-implementation", "", 8),
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
]


@pytest.fixture(scope="module")
def ui_seeded(tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    """The store the UI tests read (one per module: the browser tests share one server)."""
    return seed_store(tmp_path_factory.mktemp("ui-store") / "traces.db", UI_TRACES, UI_GENERATIONS)


@pytest.fixture
def fresh_seeded(tmp_path: Path) -> Seeded:
    return seed_store(tmp_path / "traces.db", UI_TRACES, UI_GENERATIONS)


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
