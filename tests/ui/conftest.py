"""Fixtures of the web UI tests: a seeded store with a hostile prompt and streamed calls."""

from __future__ import annotations

from pathlib import Path

import pytest

from support.store_seed import GENERATIONS, TRACES, Gen, Seeded, TraceSpec, seed_store

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
