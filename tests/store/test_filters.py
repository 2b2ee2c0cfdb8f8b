"""Filters, sorting and paging of traces and generations: what the CLI and the web UI share.

Expected values are computed from what was seeded, never typed in.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hypertool.instrumentation.store import TraceStore
from hypertool.instrumentation.store.filters import Filters, parse_duration, parse_moment
from support.store_seed import MINUTE, Gen, Seeded, TraceSpec, seed_store


@pytest.fixture
def seeded(tmp_path: Path) -> Seeded:
    return seed_store(tmp_path / "traces.db")


def trace_costs(seeded: Seeded) -> dict[str, float | None]:
    costs: dict[str, float | None] = {}
    for spec in seeded.traces:
        known = [g.cost for g in seeded.gens(trace=spec.key) if g.cost is not None]
        costs[seeded.trace_ids[spec.key]] = sum(known) if known else None
    for index, gen in enumerate(seeded.generations):
        if not gen.trace:  # a standalone generation is a trace of its own
            costs[seeded.trace_ids[f"gen-{index}"]] = gen.cost
    return costs


def test_traces_filter_by_chatmode_workflow_status_and_time(seeded: Seeded) -> None:
    with TraceStore(seeded.path, read_only=True) as store:
        by_chatmode = store.traces(filters=Filters(chatmode="debugging"))
        by_workflow = store.traces(filters=Filters(workflow="package-release-workflow"))
        failed = store.traces(filters=Filters(status="error"))
        recent = store.traces(filters=Filters(since_ns=seeded.start_ns(60)))
        older = store.traces(filters=Filters(until_ns=seeded.start_ns(60)))
    assert [row["trace_id"] for row in by_chatmode] == [seeded.trace_ids["debug"]]
    assert [row["trace_id"] for row in by_workflow] == [seeded.trace_ids["release"]]
    assert {row["trace_id"] for row in failed} == {seeded.trace_ids["debug"]}
    recent_ids = {row["trace_id"] for row in recent}
    assert seeded.trace_ids["old"] not in recent_ids
    assert [row["trace_id"] for row in older] == [seeded.trace_ids["old"]]
    assert recent_ids | {row["trace_id"] for row in older} == set(seeded.trace_ids.values())


def test_traces_sort_by_cost_and_duration_both_ways(seeded: Seeded) -> None:
    costs = trace_costs(seeded)
    with TraceStore(seeded.path, read_only=True) as store:
        by_cost = store.traces(sort="cost")
        cheapest = store.traces(sort="cost", order="asc")
        by_duration = store.traces(sort="duration")
        by_start = store.traces(sort="start", order="asc")
    known = sorted((c for c in costs.values() if c is not None), reverse=True)
    assert [row["cost_usd"] for row in by_cost[: len(known)]] == pytest.approx(known)
    assert all(row["cost_usd"] is None for row in by_cost[len(known) :])  # unknown cost last
    assert [row["cost_usd"] for row in cheapest[: len(known)]] == pytest.approx(known[::-1])
    durations = [row["duration_ms"] for row in by_duration]
    assert durations == sorted(durations, reverse=True)
    starts = [row["start_ns"] for row in by_start]
    assert starts == sorted(starts)


def test_traces_pages_cover_every_trace_once(seeded: Seeded) -> None:
    with TraceStore(seeded.path, read_only=True) as store:
        total = store.count_traces()
        pages = [store.traces(limit=2, offset=offset) for offset in range(0, total + 2, 2)]
        everything = store.traces(limit=100)
    assert total == len(seeded.trace_ids)
    assert [row for page in pages for row in page] == everything
    assert pages[-1] == []


def test_running_trace_is_one_whose_root_has_not_arrived(tmp_path: Path) -> None:
    seeded = seed_store(
        tmp_path / "traces.db",
        traces=[],
        generations=[Gen("", "backend-engineer", "gpt-4o", 1, 1, None, 1, 10)],
    )
    with TraceStore(seeded.path, read_only=True) as store:
        (row,) = store.traces()
    # A standalone generation is its own root: arrived, so not running.
    assert row["running"] is False


def test_generations_filter_by_model_chatmode_workflow_and_status(seeded: Seeded) -> None:
    with TraceStore(seeded.path, read_only=True) as store:
        for filters, expected in [
            (Filters(model="gpt-4o"), seeded.gens(model="gpt-4o")),
            (Filters(chatmode="debugging"), seeded.gens(chatmode="debugging")),
            (Filters(status="error"), [g for g in seeded.generations if g.error]),
            (Filters(persona="devops-engineer", model="gpt-4o-mini"), seeded.gens(
                persona="devops-engineer", model="gpt-4o-mini")),
        ]:  # fmt: skip
            rows = store.generations(limit=100, filters=filters)
            assert sorted(row["total_tokens"] for row in rows) == sorted(g.total for g in expected)
            assert store.count_generations(filters) == len(expected)
        # The workflow of a generation outside a stage is its trace's.
        in_workflow = store.generations(
            limit=100, filters=Filters(workflow="package-release-workflow")
        )
    assert len(in_workflow) == len(seeded.gens(trace="release"))


def test_generations_slowest_pages(seeded: Seeded) -> None:
    latencies = sorted((g.latency_ms for g in seeded.generations), reverse=True)
    with TraceStore(seeded.path, read_only=True) as store:
        first = store.generations(slowest=3)
        second = store.generations(slowest=3, offset=3)
    assert [row["latency_ms"] for row in first + second] == pytest.approx(latencies[:6])


def test_report_takes_every_filter(seeded: Seeded) -> None:
    with TraceStore(seeded.path, read_only=True) as store:
        rows = store.report("model", filters=Filters(persona="devops-engineer", status="error"))
    failed = [g for g in seeded.gens(persona="devops-engineer") if g.error]
    assert [(row["group"], row["generations"]) for row in rows] == [(g.model, 1) for g in failed]


def test_time_to_first_token_of_streamed_generations(tmp_path: Path) -> None:
    seeded = seed_store(
        tmp_path / "traces.db",
        traces=[TraceSpec("t", "chat", "backend-engineer", "debugging", "", 5)],
        generations=[
            Gen("t", "backend-engineer", "gpt-4o", 10, 5, 0.1, 4, 900.0, first_token_ms=120.0),
            Gen("t", "backend-engineer", "gpt-4o", 10, 5, 0.1, 3, 500.0),
        ],
    )
    with TraceStore(seeded.path, read_only=True) as store:
        rows = store.generations(limit=10)
        tree = store.trace(seeded.trace_ids["t"])
    firsts = sorted((row["time_to_first_token_ms"] for row in rows), key=lambda v: v is None)
    assert firsts == [pytest.approx(120.0, abs=0.01), None]
    assert tree is not None
    streamed = tree["children"][0]["children"][0]
    # The attribute stays in the metadata, as Langfuse received it.
    assert "langfuse.observation.completion_start_time" in streamed["metadata"]


def test_parse_moment_and_duration() -> None:
    assert parse_duration("90s") is not None and parse_duration("90s").total_seconds() == 90  # type: ignore[union-attr]
    assert parse_duration("2025-01-01") is None
    assert parse_moment("1h") < parse_moment("1m")
    assert parse_moment("2025-01-31T00:00:00Z") == 1738281600 * 10**9
    with pytest.raises(ValueError, match="not a duration"):
        parse_moment("yesterday")
    with pytest.raises(ValueError, match="status"):
        Filters(status="broken")  # type: ignore[arg-type]
    assert MINUTE == 60 * 10**9
