"""Scores and prompt versions in the store: the scores table, the prompt each generation was
made from, the prompt × version × persona report and its best-version rule, score means in
reports and on trace trees, retention, and the migration from schema version 2.
"""

from __future__ import annotations

import math
import random
import sqlite3
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hypertool.instrumentation import Score
from hypertool.instrumentation import semconv as attr
from hypertool.instrumentation.store import SCHEMA_VERSION, StoreExporter, TraceStore
from hypertool.instrumentation.store.quality import MIN_SAMPLES
from hypertool.instrumentation.store.schema import APPLICATION_ID, MIGRATIONS
from support.store_seed import MS, Gen, generation_attributes, readable_span

PROMPT = "support/answer"


@dataclass(frozen=True)
class Made:
    """One seeded generation made from a prompt, with its score."""

    trace_id: int
    span_id: int
    stage_id: int
    persona: str
    version: int
    tokens: int
    cost: float | None
    latency_ms: float
    error: bool
    helpful: float | None


def seed(path: Path, plan: list[tuple[str, int, list[float]]], now: int) -> list[Made]:
    """For each (persona, version, helpful values): one trace with a stage, one generation per
    value (scored ``helpful`` on the generation), the stage scored ``quality_gate`` 1.
    """
    rng = random.Random(11)
    exporter = StoreExporter(path, retention_days=0)
    spans = []
    scores = []
    made: list[Made] = []
    next_id = 1
    for persona, version, values in plan:
        trace_id = rng.getrandbits(128) | 1
        root, stage = next_id, next_id + 1
        next_id += 2
        spans.append(
            readable_span(
                trace_id, root, name="wf", attributes={attr.PERSONA: persona}, start_ns=now
            )
        )
        spans.append(
            readable_span(
                trace_id,
                stage,
                parent=root,
                name="stage",
                attributes={attr.PERSONA: persona},
                start_ns=now,
            )
        )
        scores.append(
            _score(f"gate-{stage}", trace_id, stage, "quality_gate", 1.0, "BOOLEAN", persona, now)
        )
        for value in values:
            tokens_in, tokens_out = rng.randrange(10, 500), rng.randrange(10, 500)
            cost = None if rng.random() < 0.2 else round(rng.random() / 100, 6)
            error = rng.random() < 0.1
            latency = rng.randrange(50, 3000)
            gen = Gen(
                "",
                persona,
                "gpt-4o",
                tokens_in,
                tokens_out,
                cost,
                0,
                latency,
                "support",
                error="boom" if error else None,
            )
            attributes = {
                **generation_attributes(gen, "wf"),
                attr.PROMPT_NAME: PROMPT,
                attr.PROMPT_VERSION: version,
            }
            spans.append(
                readable_span(
                    trace_id,
                    next_id,
                    parent=stage,
                    attributes=attributes,
                    start_ns=now,
                    latency_ns=latency * MS,
                )
            )
            scores.append(
                _score(f"h-{next_id}", trace_id, next_id, "helpful", value, "NUMERIC", persona, now)
            )
            made.append(
                Made(
                    trace_id,
                    next_id,
                    stage,
                    persona,
                    version,
                    tokens_in + tokens_out,
                    cost,
                    float(latency),
                    error,
                    value,
                )
            )
            next_id += 1
    assert exporter.export(spans).name == "SUCCESS"
    assert exporter.export_scores(scores) == 0
    exporter.shutdown()
    return made


def _score(
    score_id: str,
    trace_id: int,
    span_id: int | None,
    name: str,
    value: float | str,
    kind: Any,
    persona: str,
    now: int,
    **extra: Any,
) -> Score:
    return Score(
        score_id,
        format(trace_id, "032x"),
        name,
        value,
        kind,
        now,
        observation_id=None if span_id is None else format(span_id, "016x"),
        persona=persona,
        chatmode="support",
        **extra,
    )


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "traces.db"


def spread(n: int, mean: float) -> list[float]:
    """``n`` values 0 or 1 whose mean is ``mean`` (rounded)."""
    ones = round(n * mean)
    return [1.0] * ones + [0.0] * (n - ones)


def test_prompts_report_numbers_come_from_the_data(db: Path) -> None:
    now = time.time_ns()
    made = seed(
        db,
        [
            ("backend-engineer", 1, spread(25, 0.48)),
            ("backend-engineer", 2, spread(25, 0.92)),
            ("testing-specialist", 1, spread(30, 0.5)),
            ("testing-specialist", 2, spread(30, 0.57)),
            ("devops-engineer", 1, spread(5, 0.2)),
            ("devops-engineer", 2, spread(MIN_SAMPLES, 0.9)),
        ],
        now,
    )
    with TraceStore(db, create=False) as store:
        report = store.prompts_report(score="helpful")
    assert report["score"] == "helpful" and report["min_samples"] == MIN_SAMPLES
    rows = {(row["persona"], row["version"]): row for row in report["rows"]}
    assert set(rows) == {(m.persona, m.version) for m in made}
    for key, row in rows.items():
        mine = [m for m in made if (m.persona, m.version) == key]
        known = [m.cost for m in mine if m.cost is not None]
        latencies = sorted(m.latency_ms for m in mine)
        assert row["prompt"] == PROMPT
        assert row["generations"] == len(mine)
        assert row["total_tokens"] == sum(m.tokens for m in mine)
        assert row["cost_usd"] == (pytest.approx(sum(known)) if known else None)
        assert row["cost_unknown"] == len(mine) - len(known)
        assert row["error_rate"] == pytest.approx(sum(m.error for m in mine) / len(mine))
        assert row["p50_ms"] == pytest.approx(
            statistics.quantiles(latencies, n=100, method="inclusive")[49]
        )
        assert row["p95_ms"] == pytest.approx(
            statistics.quantiles(latencies, n=100, method="inclusive")[94]
        )
        helpful = [m.helpful for m in mine if m.helpful is not None]
        assert row["scores"]["helpful"] == {
            "mean": pytest.approx(statistics.fmean(helpful)),
            "n": len(helpful),
        }
        # The stage's gate counts for each generation made in it.
        assert row["scores"]["quality_gate"] == {"mean": 1.0, "n": len(mine)}
    best = {row["persona"]: row for row in report["best"]}
    assert (best["backend-engineer"]["best_version"], best["backend-engineer"]["verdict"]) == (
        2,
        "best",
    )
    assert best["testing-specialist"]["best_version"] is None
    assert best["testing-specialist"]["verdict"] == "too close to tell"
    assert best["devops-engineer"]["best_version"] == 2
    assert best["devops-engineer"]["verdict"] == "only version with enough samples"


def test_the_best_version_rule_is_a_welch_test_at_95_percent(db: Path) -> None:
    # 0.92 vs 0.48 over 25 each: a difference of many standard errors; the rule agrees with
    # the test computed here from the same values.
    a, b = spread(25, 0.92), spread(25, 0.48)
    se = math.hypot(statistics.stdev(a) / math.sqrt(25), statistics.stdev(b) / math.sqrt(25))
    assert statistics.fmean(a) - statistics.fmean(b) > 1.96 * se
    c, d = spread(30, 0.57), spread(30, 0.5)
    se = math.hypot(statistics.stdev(c) / math.sqrt(30), statistics.stdev(d) / math.sqrt(30))
    assert statistics.fmean(c) - statistics.fmean(d) < 1.96 * se


def test_filters_and_the_default_score(db: Path) -> None:
    now = time.time_ns()
    seed(db, [("backend-engineer", 1, [1.0, 0.0]), ("devops-engineer", 1, [1.0])], now)
    with TraceStore(db, create=False) as store:
        report = store.prompts_report(persona="Backend Engineer")
        assert report["score"] == "quality_gate"  # present: chosen by default
        assert {row["persona"] for row in report["rows"]} == {"backend-engineer"}
        assert [b["verdict"] for b in report["best"]] == [
            f"too few samples (each version needs {MIN_SAMPLES} scored)"
        ]
        assert store.prompts_report(since_ns=now + 10**9)["rows"] == []


def test_scores_table_keeps_what_was_scored_and_a_score_once(db: Path) -> None:
    now = time.time_ns()
    trace = random.getrandbits(128) | 1
    scores = [
        _score(
            "s1",
            trace,
            None,
            "helpful",
            0.5,
            "NUMERIC",
            "backend-engineer",
            now,
            comment="ok",
            metadata={"by": "ci"},
            workflow="wf",
            stage="build",
        ),
        _score("s2", trace, 7, "tone", "friendly", "CATEGORICAL", "backend-engineer", now + 1),
        _score("s3", trace, 8, "quality_gate", 0.0, "BOOLEAN", "devops-engineer", now + 2),
    ]
    with TraceStore(db) as store:
        assert store.write_scores(scores) == 3
        assert store.write_scores(scores[:1]) == 1  # delivered twice, stored once
        listed = store.scores()
        assert [row["score_id"] for row in listed] == ["s3", "s2", "s1"]
        first = listed[-1]
        assert first["value"] == 0.5 and first["data_type"] == "NUMERIC"
        assert (first["persona"], first["chatmode"], first["workflow"], first["stage"]) == (
            "backend-engineer",
            "support",
            "wf",
            "build",
        )
        assert first["comment"] == "ok" and first["metadata"] == {"by": "ci"}
        assert first["observation_id"] is None
        assert listed[1]["value"] == "friendly" and listed[0]["value"] is False
        assert [row["score_id"] for row in store.scores(name="tone")] == ["s2"]
        assert [row["score_id"] for row in store.scores(persona="devops-engineer")] == ["s3"]
        assert [row["score_id"] for row in store.scores(limit=1)] == ["s3"]
        assert store.stats()["scores"] == 3


def test_a_score_batch_abandoned_before_its_commit_is_not_stored(db: Path) -> None:
    """As for spans: delivery gave up on the batch at exit (and counted it as dropped)."""
    exporter = StoreExporter(db)
    scores = [_score("s1", 1, None, "helpful", 1.0, "NUMERIC", "backend-engineer", 1)]
    asked: list[bool] = []

    def gave_up() -> bool:
        asked.append(True)
        return False

    try:
        assert exporter.export_scores(scores, claim=gave_up) == 1
        assert asked == [True]
        with TraceStore(db) as store:
            assert store.scores() == []
        assert exporter.export_scores(scores, claim=lambda: True) == 0
        with TraceStore(db) as store:
            assert [row["score_id"] for row in store.scores()] == ["s1"]
    finally:
        exporter.shutdown()


def test_report_gains_score_means_and_the_gate_pass_rate(db: Path) -> None:
    now = time.time_ns()
    made = seed(db, [("backend-engineer", 1, [1.0, 0.5]), ("devops-engineer", 1, [0.0])], now)
    with TraceStore(db) as store:
        # A persona with scores and no generation still has a row.
        store.write_scores(
            [_score("x", 5, None, "quality_gate", 0.0, "BOOLEAN", "data-scientist", now)]
        )
        rows = {row["group"]: row for row in store.report("persona")}
        by_model = {row["group"]: row for row in store.report("model")}
    backend = [m for m in made if m.persona == "backend-engineer"]
    assert rows["backend-engineer"]["scores"]["helpful"] == {
        "mean": pytest.approx(statistics.fmean(m.helpful for m in backend)),
        "n": 2,  # type: ignore[misc]
    }
    assert rows["backend-engineer"]["gate_pass_rate"] == 1.0
    assert rows["devops-engineer"]["scores"]["helpful"]["mean"] == 0.0
    assert rows["data-scientist"]["generations"] == 0
    assert rows["data-scientist"]["gate_pass_rate"] == 0.0
    # By model: generation scores go to the generation's model; stage scores have none.
    assert by_model["gpt-4o"]["scores"]["helpful"]["n"] == 3
    assert by_model[None]["scores"]["quality_gate"]["n"] == 3
    # Each persona's activity (``hypertool personas``, the UI's Personas page) is its row.
    with TraceStore(db, read_only=True) as store:
        personas = {row["persona"]: row["activity"] for row in store.personas()}
    for name, row in rows.items():
        assert personas[name] == {key: value for key, value in row.items() if key != "group"}


def test_prompts_report_for_one_prompt_is_its_rows_of_the_whole(db: Path) -> None:
    now = time.time_ns()
    seed(db, [("backend-engineer", 1, [1.0, 0.5]), ("backend-engineer", 2, [0.2])], now)
    with TraceStore(db) as store:
        store.write_spans(
            [
                readable_span(
                    7,
                    99,
                    attributes={
                        **generation_attributes(
                            Gen("", "devops-engineer", "m", 1, 1, 0.1, 0, 1), "t"
                        ),
                        attr.PROMPT_NAME: "other",
                        attr.PROMPT_VERSION: 1,
                    },
                    start_ns=now,
                )
            ]
        )
        whole = store.prompts_report()
        one = store.prompts_report(prompt=PROMPT)
        assert store.prompts_report(prompt="nothing")["rows"] == []
    assert {row["prompt"] for row in whole["rows"]} == {PROMPT, "other"}
    assert one["rows"] == [row for row in whole["rows"] if row["prompt"] == PROMPT]
    assert one["best"] == [answer for answer in whole["best"] if answer["prompt"] == PROMPT]


def test_scores_a_page_at_a_time_and_how_many(db: Path) -> None:
    now = time.time_ns()
    seed(db, [("backend-engineer", 1, [1.0, 0.5, 0.2]), ("devops-engineer", 1, [0.0])], now)
    with TraceStore(db, read_only=True) as store:
        every = store.scores(limit=100)
        assert store.count_scores() == len(every) == 6  # 4 helpful, 2 gates
        assert store.scores(limit=2, offset=3) == every[3:5]
        assert store.count_scores(name="helpful", persona="Backend Engineer") == 3
        assert store.count_scores(since_ns=now + 10**9) == 0


def test_trace_tree_shows_each_score_on_its_observation(db: Path) -> None:
    now = time.time_ns()
    made = seed(db, [("backend-engineer", 3, [0.25])], now)
    trace_hex = format(made[0].trace_id, "032x")
    with TraceStore(db) as store:
        store.write_scores(
            [
                _score(
                    "t", made[0].trace_id, None, "overall", 0.9, "NUMERIC", "backend-engineer", now
                )
            ]
        )
        tree = store.trace(trace_hex)
    assert tree is not None
    assert [(s["name"], s["value"]) for s in tree["scores"]] == [("overall", 0.9)]
    [root] = tree["children"]
    [stage] = root["children"]
    [generation] = stage["children"]
    assert [(s["name"], s["value"]) for s in stage["scores"]] == [("quality_gate", True)]
    assert [(s["name"], s["value"]) for s in generation["scores"]] == [("helpful", 0.25)]
    assert (generation["prompt_name"], generation["prompt_version"]) == (PROMPT, 3)
    assert root["scores"] == [] and stage["prompt_name"] is None


def test_retention_deletes_old_scores(db: Path) -> None:
    old = time.time_ns() - 40 * 86_400 * 10**9
    with TraceStore(db, retention_days=30) as store:
        store.write_scores(
            [
                _score("old", 1, None, "x", 1.0, "NUMERIC", "p", old),
                _score("new", 1, None, "x", 1.0, "NUMERIC", "p", time.time_ns()),
            ]
        )
        store.run(
            lambda c: c.execute(  # a trace old enough that purge runs
                "INSERT INTO traces (trace_id, start_ns, end_ns, status) "
                "VALUES ('aa', ?, ?, 'success')",
                (old, old),
            )
        )
        store.purge()
        assert [row["score_id"] for row in store.scores()] == ["new"]


def test_prompt_versions_number_each_change(db: Path) -> None:
    with TraceStore(db) as store:
        versions = [
            store.record_prompt_version("p", "text", text, "{}")
            for text in ("a", "a", "b", "b", "a")
        ]
        assert versions == [1, 1, 2, 2, 3]
        assert store.record_prompt_version("p", "text", "a", '{"model": "x"}') == 4  # config
        assert (
            store.record_prompt_version("q", "chat", '[{"role": "user", "content": "hi"}]', "{}")
            == 1
        )
        assert store.prompt_version("p", 2)["prompt"] == "b"  # type: ignore[index]
        assert store.prompt_version("p")["version"] == 4  # type: ignore[index]
        assert store.prompt_version("q")["prompt"] == [{"role": "user", "content": "hi"}]  # type: ignore[index]
        assert store.prompt_version("p", 9) is None
        assert [v["version"] for v in store.prompt_versions("p")] == [1, 2, 3, 4]
        assert [v["name"] for v in store.prompt_versions()] == ["p"] * 4 + ["q"]


def test_version_2_store_migrates_forward_with_rows_intact(db: Path) -> None:
    with sqlite3.connect(db, isolation_level=None) as connection:
        for statements in MIGRATIONS[:2]:
            for statement in statements:
                connection.execute(statement)
        connection.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        connection.execute("PRAGMA user_version = 2")
        connection.execute(
            "INSERT INTO observations (span_id, trace_id, type, name, persona, total_tokens, "
            "start_ns, end_ns, status) VALUES ('00000000000000aa', 'ff', 'generation', 'old', "
            "'backend-engineer', 42, ?, ?, 'success')",
            (time.time_ns(), time.time_ns()),
        )
    with TraceStore(db) as store:
        assert store.stats()["schema_version"] == SCHEMA_VERSION == len(MIGRATIONS)
        assert store.usage_since("backend-engineer")[0] == 42
        [row] = store.generations()
        assert (row["prompt_name"], row["prompt_version"]) == (None, None)
        assert store.scores() == [] and store.prompts_report()["rows"] == []
