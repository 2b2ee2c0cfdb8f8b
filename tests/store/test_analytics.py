"""Analytics (series per bucket and persona, latency and time-to-first-token distributions) and
the persona overview, checked against what was seeded.
"""

from __future__ import annotations

import bisect
from pathlib import Path

import pytest

from hypertool.instrumentation.personas import Persona, PersonaRegistry
from hypertool.instrumentation.store import TraceStore
from hypertool.instrumentation.store.analytics import (
    LATENCY_EDGES_MS,
    MAX_BUCKETS,
    TTFT_EDGES_MS,
    bucket_seconds,
)
from hypertool.instrumentation.store.filters import Filters
from hypertool.instrumentation.store.overview import Budgets
from support.store_seed import MS, Gen, Seeded, TraceSpec, seed_store

S = 10**9


@pytest.fixture
def seeded(tmp_path: Path) -> Seeded:
    gens = [
        Gen("t", "backend-engineer", "gpt-4o", 100, 50, 0.5, 50, 40.0, first_token_ms=30.0),
        Gen("t", "backend-engineer", "gpt-4o", 10, 5, None, 49, 120.0, first_token_ms=90.0),
        Gen("t", "testing-specialist", "gpt-4o-mini", 20, 10, 0.25, 48, 700.0, error="429"),
        Gen("t", "testing-specialist", "gpt-4o-mini", 30, 15, 0.25, 5, 3_000.0),
        Gen("", "my-bot", "local", 7, 3, None, 4, 70_000.0),
    ]
    return seed_store(
        tmp_path / "traces.db",
        traces=[TraceSpec("t", "release", "backend-engineer", "package-release", "wf", 51)],
        generations=gens,
    )


def test_series_sum_to_the_generations_per_persona(seeded: Seeded) -> None:
    with TraceStore(seeded.path, read_only=True) as store:
        document = store.analytics(
            Filters(since_ns=seeded.start_ns(60)), bucket_s=600, now_ns=seeded.now_ns
        )
    assert document["bucket_seconds"] == 600
    for persona in {g.persona for g in seeded.generations}:
        rows = [row for row in document["series"] if row["persona"] == persona]
        gens = seeded.gens(persona=persona)
        assert sum(row["generations"] for row in rows) == len(gens)
        assert sum(row["total_tokens"] for row in rows) == sum(g.total for g in gens)
        assert sum(row["input_tokens"] for row in rows) == sum(g.tokens_in for g in gens)
        assert sum(row["errors"] for row in rows) == sum(1 for g in gens if g.error)
        assert sum(row["cost_unknown"] for row in rows) == sum(1 for g in gens if g.cost is None)
        known = [g.cost for g in gens if g.cost is not None]
        costs = [row["cost_usd"] for row in rows if row["cost_usd"] is not None]
        assert sum(costs) == pytest.approx(sum(known))
    for row in document["series"]:
        assert row["start_ns"] % (600 * S) == 0  # buckets aligned to their size
    # Each generation lands in the bucket holding its start.
    expected_buckets = {
        (seeded.start_ns(g.ago_min) // (600 * S) * (600 * S), g.persona) for g in seeded.generations
    }
    assert {(row["start_ns"], row["persona"]) for row in document["series"]} == expected_buckets


def test_timeline_error_rate(seeded: Seeded) -> None:
    with TraceStore(seeded.path, read_only=True) as store:
        document = store.analytics(Filters(), bucket_s=3600 * 24 * 7, now_ns=seeded.now_ns)
    total = len(seeded.generations)
    errors = sum(1 for g in seeded.generations if g.error)
    assert sum(row["generations"] for row in document["timeline"]) == total
    assert sum(row["errors"] for row in document["timeline"]) == errors
    for row in document["timeline"]:
        assert row["error_rate"] == row["errors"] / row["generations"]


def test_latency_histograms_by_model_and_persona(seeded: Seeded) -> None:
    with TraceStore(seeded.path, read_only=True) as store:
        histogram = store.analytics(now_ns=seeded.now_ns)["latency_histogram"]
    assert histogram["edges_ms"] == list(LATENCY_EDGES_MS)

    def expected(key: str) -> dict[str, list[int]]:
        counts: dict[str, list[int]] = {}
        for g in seeded.generations:
            bins = counts.setdefault(getattr(g, key), [0] * (len(LATENCY_EDGES_MS) + 1))
            bins[bisect.bisect_right(LATENCY_EDGES_MS, g.latency_ms)] += 1
        return counts

    assert {row["group"]: row["counts"] for row in histogram["by_model"]} == expected("model")
    assert {row["group"]: row["counts"] for row in histogram["by_persona"]} == expected("persona")
    slowest = next(row for row in histogram["by_model"] if row["group"] == "local")
    assert slowest["counts"][-1] == 1  # past the last edge: the open-ended bin


def test_time_to_first_token(seeded: Seeded) -> None:
    with TraceStore(seeded.path, read_only=True) as store:
        first_token = store.analytics(now_ns=seeded.now_ns)["time_to_first_token"]
        only_mini = store.analytics(Filters(model="gpt-4o-mini"), now_ns=seeded.now_ns)
    assert first_token["generations"] == 2
    (model,) = first_token["by_model"]
    assert model["group"] == "gpt-4o"
    assert model["p50_ms"] == pytest.approx(60.0, abs=0.01)  # between 30 and 90
    assert model["p95_ms"] == pytest.approx(30 + 0.95 * 60, abs=0.01)
    assert model["counts"] == [
        sum(1 for ms in (30.0, 90.0) if bisect.bisect_right(TTFT_EDGES_MS, ms) == slot)
        for slot in range(len(TTFT_EDGES_MS) + 1)
    ]
    assert only_mini["time_to_first_token"]["generations"] == 0


def test_bucket_size_keeps_the_count_bounded() -> None:
    for span_s in (60, 3_600, 86_400, 7 * 86_400, 30 * 86_400, 365 * 86_400):
        size = bucket_seconds(0, span_s * S)
        assert span_s / size <= MAX_BUCKETS or size == 30 * 86_400
    assert bucket_seconds(0, 3_600 * S) == 60


def test_all_time_range_starts_at_the_first_generation(seeded: Seeded) -> None:
    with TraceStore(seeded.path, read_only=True) as store:
        document = store.analytics(now_ns=seeded.now_ns)
    first = min(seeded.start_ns(g.ago_min) for g in seeded.generations)
    assert document["since_ns"] == first
    assert document["until_ns"] == seeded.now_ns


def test_persona_overview_budget_and_activity(seeded: Seeded) -> None:
    registry = PersonaRegistry(
        [
            Persona(name="backend-engineer", tokenBudget=100, budgetPeriod="session"),
            Persona(name="testing-specialist", tokenBudget=1000, costBudgetUsd=1.0),
            Persona(name="idle-persona", tokenBudget=10),
        ]
    )
    with TraceStore(seeded.path, read_only=True) as store:
        rows = store.personas(Budgets(registry, "month"), Filters())
        (only,) = store.personas(Budgets(registry, "month"), Filters(), only="my-bot")
        report = {row["group"]: row for row in store.report("persona")}
    by_name = {row["persona"]: row for row in rows}
    # Registered first (registry order), then personas found only in the store.
    assert [row["persona"] for row in rows] == [*registry, "my-bot"]
    backend = by_name["backend-engineer"]
    used = sum(g.total for g in seeded.gens(persona="backend-engineer"))
    assert (backend["since"], backend["used_tokens"]) == (None, used)
    assert backend["remaining_tokens"] == 100 - used < 0  # overrun shows
    tester = by_name["testing-specialist"]
    assert tester["cost_remaining_usd"] == pytest.approx(1.0 - tester["cost_usd"])
    for name, row in by_name.items():
        expected = report.get(name)
        if expected is None:
            assert row["activity"]["generations"] == 0
            assert (row["activity"]["scores"], row["activity"]["gate_pass_rate"]) == ({}, None)
        else:
            # The persona's ``report --by persona`` row, score means and gate pass rate too.
            assert row["activity"] == {k: v for k, v in expected.items() if k != "group"}
    assert not by_name["my-bot"]["registered"] and by_name["my-bot"]["budget_tokens"] is None
    assert only == by_name["my-bot"]


def test_filters_reach_series_and_histograms(seeded: Seeded) -> None:
    with TraceStore(seeded.path, read_only=True) as store:
        document = store.analytics(Filters(persona="Testing Specialist"), now_ns=seeded.now_ns)
    assert {row["persona"] for row in document["series"]} == {"testing-specialist"}
    assert document["filters"] == {"persona": "testing-specialist"}
    assert sum(r["generations"] for r in document["latency_histogram"]["by_model"]) == 2
    assert MS == 1_000_000
