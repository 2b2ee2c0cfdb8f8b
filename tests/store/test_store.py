"""The embedded trace store: what it records, concurrency, corruption, locks, migrations."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import sqlite3
import stat
import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace.export import SpanExportResult

from hypertool.instrumentation import ConfigError, LangfuseIntegration, ObservableLLM
from hypertool.instrumentation import semconv as attr
from hypertool.instrumentation.store import (
    HYPERTOOL_STORE,
    HYPERTOOL_STORE_MAX_FIELD_CHARS,
    HYPERTOOL_STORE_RETENTION_DAYS,
    SCHEMA_VERSION,
    StoreError,
    StoreExporter,
    StoreLockedError,
    TraceStore,
    default_store_path,
    percentile,
    store_path_from_env,
)
from hypertool.instrumentation.store.filters import Filters
from hypertool.instrumentation.store.schema import APPLICATION_ID, MIGRATIONS
from support.store_seed import DAY, MS, Gen, generation_attributes, readable_span, seed_store


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "data" / "traces.db"


def rows(path: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as connection:
        return connection.execute(sql, params).fetchall()


# -- configuration -----------------------------------------------------------------------


def test_store_path_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert store_path_from_env({}) == default_store_path()
    assert default_store_path().name == "traces.db"
    assert store_path_from_env({HYPERTOOL_STORE: "off"}) is None
    assert store_path_from_env({HYPERTOOL_STORE: " OFF "}) is None
    assert store_path_from_env({HYPERTOOL_STORE: str(tmp_path / "x.db")}) == tmp_path / "x.db"
    assert store_path_from_env({HYPERTOOL_STORE: "~/x.db"}) == Path.home() / "x.db"
    monkeypatch.setenv(HYPERTOOL_STORE, str(tmp_path / "env.db"))
    assert store_path_from_env() == tmp_path / "env.db"
    monkeypatch.setenv(HYPERTOOL_STORE, "off")
    assert store_path_from_env() is None


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        (HYPERTOOL_STORE_RETENTION_DAYS, "soon"),
        (HYPERTOOL_STORE_RETENTION_DAYS, "inf"),
        (HYPERTOOL_STORE_RETENTION_DAYS, "-1"),
        (HYPERTOOL_STORE_MAX_FIELD_CHARS, "0"),
    ],
)
def test_bad_settings_name_the_variable(
    db: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(HYPERTOOL_STORE, str(db))
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=variable):
        LangfuseIntegration()


@pytest.mark.parametrize(
    ("retention_days", "max_field_chars"), [(-1, 10), (float("inf"), 10), (1, 0)]
)
def test_bad_arguments_name_the_argument(
    db: Path, retention_days: float, max_field_chars: int
) -> None:
    with pytest.raises(ConfigError, match="retention_days" if max_field_chars else "max_field"):
        TraceStore(db, retention_days=retention_days, max_field_chars=max_field_chars)


def test_new_store_is_private_wal_and_versioned(db: Path) -> None:
    with TraceStore(db) as store:
        store.write_spans([readable_span(1, 1)])
        assert stat.S_IMODE(db.stat().st_mode) == 0o600
        for extra in (Path(f"{db}-wal"), Path(f"{db}-shm")):
            assert stat.S_IMODE(extra.stat().st_mode) & 0o077 == 0
        assert rows(db, "PRAGMA journal_mode") == [("wal",)]
        assert rows(db, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
        assert rows(db, "PRAGMA application_id") == [(APPLICATION_ID,)]
        stats = store.stats()
    assert stats["path"] == str(db)
    assert stats["size_bytes"] > 0
    assert stats["schema_version"] == SCHEMA_VERSION
    assert (stats["traces"], stats["observations"], stats["generations"]) == (1, 1, 0)


def test_missing_store_is_an_error_when_not_creating(db: Path) -> None:
    with pytest.raises(StoreError, match=str(db)):
        TraceStore(db, create=False)
    assert not db.exists()


# -- what is recorded --------------------------------------------------------------------


def test_columns_of_a_seeded_store(db: Path) -> None:
    seeded = seed_store(db)
    with TraceStore(db) as store:
        for index, gen in enumerate(seeded.generations):
            (row,) = rows(
                db,
                "SELECT persona, chatmode, workflow, stage, model, input_tokens, output_tokens, "
                "total_tokens, usage_estimated, cost_usd, end_ns - start_ns, status, error, "
                "input, output, type FROM observations WHERE span_id = ?",
                seeded.span_ids[index],
            )
            assert row == (
                gen.persona,
                gen.chatmode or None,
                gen.workflow or None,
                gen.stage or None,
                gen.model,
                gen.tokens_in,
                gen.tokens_out,
                gen.total,
                int(gen.estimated),
                pytest.approx(gen.cost) if gen.cost is not None else None,
                int(gen.latency_ms * MS),
                "error" if gen.error else "success",
                gen.error,
                gen.prompt,
                gen.completion or None,
                "generation",
            )
        debug = store.trace(seeded.trace_ids["debug"])
    assert debug is not None
    assert (debug["status"], debug["error"]) == ("error", "deploy failed")
    # A generation with no parent is the root of a one-generation trace.
    standalone = rows(
        db, "SELECT count(*) FROM observations WHERE trace_id = ?", seeded.trace_ids["gen-6"]
    )
    assert standalone == [(1,)]


def test_cost_unknown_is_null_never_zero(db: Path) -> None:
    base = generation_attributes(Gen("", "p", "m", 10, 5, 0.25, 1, 1), "t")
    legacy_known = {k: v for k, v in base.items() if k != attr.COST_KNOWN}
    unknown = {**base, attr.COST_KNOWN: False}
    unknown.pop(attr.COST_DETAILS)
    legacy_unknown = {k: v for k, v in unknown.items() if k != attr.COST_KNOWN}
    no_total = {**base, attr.COST_DETAILS: json.dumps({"input": 0.5, "output": 0.25})}
    spans = [
        readable_span(index + 1, index + 1, attributes=attributes)
        for index, attributes in enumerate([base, legacy_known, unknown, legacy_unknown, no_total])
    ]
    with TraceStore(db) as store:
        store.write_spans(spans)
    costs = [row[0] for row in rows(db, "SELECT cost_usd FROM observations ORDER BY span_id")]
    assert costs == [0.25, 0.25, None, None, 0.75]


def test_usage_falls_back_to_usage_details_and_keeps_extra_keys(db: Path) -> None:
    attributes = generation_attributes(Gen("", "p", "m", 10, 5, None, 1, 1), "t")
    del attributes[attr.GEN_AI_INPUT_TOKENS], attributes[attr.GEN_AI_OUTPUT_TOKENS]
    details = {"input": 7, "output": 3, "total": 11, "cache_read_input_tokens": 4}
    attributes[attr.USAGE_DETAILS] = json.dumps(details)
    with TraceStore(db) as store:
        store.write_spans([readable_span(1, 1, attributes=attributes)])
        (generation,) = store.generations()
    assert (generation["input_tokens"], generation["output_tokens"]) == (7, 3)
    assert generation["total_tokens"] == 11
    assert generation["metadata"][attr.USAGE_DETAILS] == details


def test_langfuse_usage_buckets_are_stored_inclusive(db: Path) -> None:
    """Columns count every input and output token (as the provider's prompt and completion
    counts), whatever convention the span's usage details use: Langfuse's ``input`` leaves out
    the ``input_*`` buckets beside it.
    """
    attributes = generation_attributes(Gen("", "p", "m", 1, 1, None, 1, 1), "t")
    del attributes[attr.GEN_AI_INPUT_TOKENS], attributes[attr.GEN_AI_OUTPUT_TOKENS]
    details = {"input": 200, "output": 200, "total": 1500, "input_cached_tokens": 800}
    details["output_reasoning_tokens"] = 300
    attributes[attr.USAGE_DETAILS] = json.dumps(details)
    with TraceStore(db) as store:
        store.write_spans([readable_span(1, 1, attributes=attributes)])
        (generation,) = store.generations()
    assert (generation["input_tokens"], generation["output_tokens"]) == (1000, 500)
    assert generation["total_tokens"] == 1500


def test_an_estimate_not_sent_as_usage_is_stored_and_marked(db: Path) -> None:
    attributes = generation_attributes(Gen("", "p", "m", 1, 1, None, 1, 1, estimated=True), "t")
    for key in (attr.GEN_AI_INPUT_TOKENS, attr.GEN_AI_OUTPUT_TOKENS, attr.USAGE_DETAILS):
        del attributes[key]
    attributes.update({attr.USAGE_INPUT: 12, attr.USAGE_OUTPUT: 30, attr.COST_USD: 0.5})
    attributes[attr.COST_KNOWN] = True
    with TraceStore(db) as store:
        store.write_spans([readable_span(1, 1, attributes=attributes)])
        (generation,) = store.generations()
    assert (generation["input_tokens"], generation["output_tokens"]) == (12, 30)
    assert generation["total_tokens"] == 42
    assert generation["usage_estimated"] is True
    assert generation["cost_usd"] == 0.5
    for key in (attr.USAGE_INPUT, attr.USAGE_OUTPUT, attr.COST_USD):
        assert key not in generation["metadata"]


def test_environment_and_release_are_kept_per_trace_and_filter(db: Path) -> None:
    def spans(trace_id: int, environment: str | None, release: str | None) -> list[Any]:
        deployment = {
            key: value
            for key, value in ((attr.ENVIRONMENT, environment), (attr.RELEASE, release))
            if value is not None
        }
        gen = Gen("", "backend-engineer", "m", 3, 4, 0.1, 1, 1)
        return [
            readable_span(trace_id, trace_id * 10, name="root", attributes={**deployment}),
            readable_span(
                trace_id,
                trace_id * 10 + 1,
                parent=trace_id * 10,
                attributes={**generation_attributes(gen, "root"), **deployment},
            ),
        ]

    with TraceStore(db) as store:
        store.write_spans(
            spans(1, "production", "v1") + spans(2, "staging", "v2") + spans(3, None, None)
        )
        listed = {(t["environment"], t["release"]) for t in store.traces()}
        assert listed == {("production", "v1"), ("staging", "v2"), (None, None)}
        staging = Filters(environment="staging")
        assert [t["release"] for t in store.traces(filters=staging)] == ["v2"]
        assert store.traces(filters=Filters(environment="staging", release="v1")) == []
        (row,) = store.report(filters=Filters(environment="production"))
        assert (row["group"], row["generations"], row["total_tokens"]) == ("backend-engineer", 1, 7)
        assert [g["trace_id"][-1] for g in store.generations(filters=Filters(release="v2"))] == [
            "2"
        ]
        (only,) = [g for g in store.generations() if g["trace_id"].endswith("1")]
        assert attr.ENVIRONMENT not in only["metadata"] and attr.RELEASE not in only["metadata"]
        tree = store.trace(format(1, "032x"))
        assert tree is not None and (tree["environment"], tree["release"]) == ("production", "v1")


def test_a_stages_langfuse_trace_id_shows_that_stage(db: Path) -> None:
    """A stage is a Langfuse trace of its own whose id is the workflow's first 16 hex digits
    and the stage's span id: given that id, the store shows the stage.
    """
    trace_id = int("ab" * 16, 16)
    gen = Gen("", "testing-specialist", "m", 5, 6, None, 1, 1)
    spans = [
        readable_span(trace_id, 1, name="workflow"),
        readable_span(trace_id, 2, parent=1, name="qa", attributes={attr.PERSONA: "tester"}),
        readable_span(trace_id, 3, parent=2, attributes=generation_attributes(gen, "workflow")),
        readable_span(trace_id, 4, parent=1, attributes=generation_attributes(gen, "workflow")),
    ]
    full = format(trace_id, "032x")
    with TraceStore(db) as store:
        store.write_spans(spans)
        stage = store.trace(full[:16] + format(2, "016x"))
        whole = store.trace(full)
        elsewhere = store.trace("cd" * 8 + format(2, "016x"))
    assert stage is not None and whole is not None
    assert (stage["trace_id"], stage["name"], stage["persona"]) == (full, "qa", "tester")
    assert stage["langfuse_trace_id"] == full[:16] + format(2, "016x")
    assert [child["name"] for child in stage["children"]] == ["qa"]
    assert (stage["generations"], stage["total_tokens"]) == (1, 11)
    assert (whole["langfuse_trace_id"], whole["generations"]) == (full, 2)
    assert elsewhere is None  # the span id alone is not enough: the workflow must match


def test_other_attributes_are_kept_as_metadata(db: Path) -> None:
    attributes = generation_attributes(Gen("", "p", "m", 1, 1, None, 1, 1), "t")
    extra = {
        attr.TRACE_TAGS: ("package-release", "nightly"),
        f"{attr.OBSERVATION_METADATA}.note": 'a "quoted" café\n',
        f"{attr.OBSERVATION_METADATA}.attempt": 2,
        f"{attr.OBSERVATION_METADATA}.flaky": True,
        "gen_ai.request.temperature": 0.5,
    }
    plain = {key: value for key, value in extra.items() if key != "gen_ai.request.temperature"}
    with TraceStore(db) as store:
        store.write_spans(
            [
                readable_span(1, 1, attributes={**attributes, **extra}),
                readable_span(1, 2, attributes={**attributes, **plain}),
            ]
        )
        first, second = sorted(store.generations(), key=lambda g: g["span_id"])
    expected = {**extra, attr.TRACE_TAGS: ["package-release", "nightly"]}
    assert {k: first["metadata"][k] for k in expected} == expected
    assert {k: second["metadata"][k] for k in plain} == {
        k: v for k, v in expected.items() if k in plain
    }
    assert attr.PERSONA not in first["metadata"]  # columns are not repeated


def test_field_cap_marks_truncation(db: Path) -> None:
    prompt = "p" * 120
    attributes = generation_attributes(Gen("", "p", "m", 1, 1, None, 1, 1, prompt=prompt), "t")
    with TraceStore(db, max_field_chars=50) as store:
        store.write_spans([readable_span(1, 1, attributes=attributes)])
        (generation,) = store.generations()
    assert generation["input"] == "p" * 50 + "…[truncated 70 chars]"
    assert generation["output"] == "completion"


def test_field_cap_from_the_environment_reaches_the_store(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(HYPERTOOL_STORE, str(db))
    monkeypatch.setenv(HYPERTOOL_STORE_MAX_FIELD_CHARS, "50")
    integration = LangfuseIntegration()
    trace = integration.start_trace("t", "p")
    integration.create_generation(trace, "g", "gpt-4", "p" * 120, "completion")
    integration.end_trace(trace)
    assert integration.flush(5.0)
    integration.shutdown()
    with TraceStore(db, create=False) as store:
        (generation,) = store.generations()
    assert generation["input"] == "p" * 50 + "…[truncated 70 chars]"


def test_redelivery_never_duplicates(db: Path) -> None:
    attributes = generation_attributes(Gen("", "p", "m", 10, 5, None, 1, 1), "t")
    batch = [readable_span(7, span_id, attributes=attributes) for span_id in range(1, 11)]
    exporter = StoreExporter(db)
    assert exporter.export(batch) is SpanExportResult.SUCCESS
    assert exporter.export(batch[3:]) is SpanExportResult.SUCCESS
    exporter.shutdown()
    assert rows(db, "SELECT count(*), count(DISTINCT span_id) FROM observations") == [(10, 10)]
    assert rows(db, "SELECT count(*) FROM traces") == [(1,)]


def test_trace_row_from_children_until_the_root_arrives(db: Path) -> None:
    now = time.time_ns()
    root_attrs = {
        attr.TRACE_NAME: "wf",
        attr.PERSONA: "lead",
        attr.CHATMODE: "debugging",
        attr.OBSERVATION_TYPE: attr.TYPE_SPAN,
    }
    child = generation_attributes(Gen("", "worker", "m", 1, 1, None, 1, 1, error="boom"), "wf")
    with TraceStore(db) as store:
        store.write_spans([readable_span(9, 2, parent=1, attributes=child, start_ns=now)])
        (early,) = store.traces()
        assert (early["name"], early["persona"], early["status"]) == ("wf", "worker", "error")
        store.write_spans(
            [readable_span(9, 1, attributes=root_attrs, start_ns=now - MS, latency_ns=20 * MS)]
        )
        (late,) = store.traces()
        # The child arriving again after the root changes nothing.
        store.write_spans([readable_span(9, 2, parent=1, attributes=child, start_ns=now)])
        assert store.traces() == [late]
        tree = store.trace(format(9, "032x"))
    assert (late["persona"], late["chatmode"], late["status"]) == ("lead", "debugging", "success")
    assert late["duration_ms"] == 20.0
    assert tree is not None
    (root,) = tree["children"]
    assert [c["span_id"] for c in root["children"]] == [format(2, "016x")]


# -- queries -----------------------------------------------------------------------------


def test_report_numbers_come_from_the_data(db: Path) -> None:
    seeded = seed_store(db)
    with TraceStore(db) as store:
        report = {row["group"]: row for row in store.report("persona")}
        since = store.report("model", since_ns=seeded.start_ns(60))
    assert set(report) == {g.persona for g in seeded.generations}
    for persona, row in report.items():
        gens = seeded.gens(persona=persona)
        latencies = sorted(g.latency_ms for g in gens)
        known = [g.cost for g in gens if g.cost is not None]
        assert row["traces"] == len({g.trace or g.prompt for g in gens})
        assert row["generations"] == len(gens)
        assert row["input_tokens"] == sum(g.tokens_in for g in gens)
        assert row["output_tokens"] == sum(g.tokens_out for g in gens)
        assert row["total_tokens"] == sum(g.total for g in gens)
        assert row["cost_usd"] == (pytest.approx(sum(known)) if known else None)
        assert row["cost_unknown"] == len(gens) - len(known)
        assert row["errors"] == sum(1 for g in gens if g.error)
        expected = (
            statistics.quantiles(latencies, n=100, method="inclusive")
            if len(latencies) > 1
            else [latencies[0]] * 99
        )
        assert row["p50_ms"] == pytest.approx(expected[49], abs=1e-3)
        assert row["p95_ms"] == pytest.approx(expected[94], abs=1e-3)
    recent = [g for g in seeded.generations if g.ago_min <= 60]
    assert {row["group"] for row in since} == {g.model for g in recent}
    assert sum(row["generations"] for row in since) == len(recent)


def test_report_by_workflow_uses_the_trace_workflow(db: Path) -> None:
    seeded = seed_store(db)
    with TraceStore(db) as store:
        report = {row["group"]: row for row in store.report("workflow")}
        with pytest.raises(ValueError, match="persona"):
            store.report("colour")  # type: ignore[arg-type]
    in_workflow = seeded.gens(trace="release")
    assert report["package-release-workflow"]["generations"] == len(in_workflow)
    assert report[None]["generations"] == len(seeded.generations) - len(in_workflow)


def test_percentile_interpolates_like_statistics() -> None:
    data = [5.0, 1.0, 9.0, 3.0, 7.0, 2.0]
    ordered = sorted(data)
    quantiles = statistics.quantiles(data, n=100, method="inclusive")
    assert percentile(ordered, 0.5) == pytest.approx(quantiles[49])
    assert percentile(ordered, 0.95) == pytest.approx(quantiles[94])
    assert percentile([], 0.5) is None
    assert percentile([4.0], 0.95) == 4.0


def test_traces_filters_and_order(db: Path) -> None:
    seeded = seed_store(db)
    with TraceStore(db) as store:
        everything = store.traces()
        failed = store.traces(status="error")
        tester = store.traces(persona="testing-specialist")
        recent = store.traces(since_ns=seeded.start_ns(60))
        one = store.traces(limit=1)
    assert len(everything) == len(seeded.trace_ids)
    starts = [row["start_ns"] for row in everything]
    assert starts == sorted(starts, reverse=True)
    assert [row["trace_id"] for row in failed] == [seeded.trace_ids["debug"]]
    # A persona is in a trace it did work in, even when another persona owns the trace.
    assert {row["trace_id"] for row in tester} == {
        seeded.trace_ids["release"],
        seeded.trace_ids["old"],
    }
    assert seeded.trace_ids["old"] not in {row["trace_id"] for row in recent}
    assert one == everything[:1]
    release = next(r for r in everything if r["trace_id"] == seeded.trace_ids["release"])
    gens = seeded.gens(trace="release")
    assert release["generations"] == len(gens)
    assert release["total_tokens"] == sum(g.total for g in gens)
    assert release["cost_unknown"] == sum(1 for g in gens if g.cost is None)


def test_trace_tree_and_prefixes(db: Path) -> None:
    seeded = seed_store(db)
    trace_id = seeded.trace_ids["release"]
    with TraceStore(db) as store:
        tree = store.trace(trace_id[:8].upper())
        assert store.trace("0" * 32) is None
        with pytest.raises(ValueError, match="8 hex"):
            store.trace(trace_id[:7])
        with pytest.raises(ValueError):
            store.trace("not-hex-at-all")
    assert tree is not None
    gens = seeded.gens(trace="release")
    assert tree["trace_id"] == trace_id
    assert tree["generations"] == len(gens)
    assert tree["total_tokens"] == sum(g.total for g in gens)
    (root,) = tree["children"]
    assert root["type"] == "span" and root["name"] == "package-release-workflow"
    stages = {child["name"]: child for child in root["children"] if child["type"] == "span"}
    assert set(stages) == {g.stage for g in gens if g.stage}
    (bump,) = stages["version-bump"]["children"]
    first = gens[0]
    assert (bump["input"], bump["output"], bump["persona"]) == (
        first.prompt,
        first.completion,
        first.persona,
    )


def test_ambiguous_prefix_is_a_store_error(db: Path) -> None:
    prefix = 0xABCDEF01 << 96
    with TraceStore(db) as store:
        store.write_spans([readable_span(prefix | 1, 1), readable_span(prefix | 2, 2)])
        with pytest.raises(StoreError, match="several"):
            store.trace("abcdef01")
        found = store.trace(format(prefix | 2, "032x"))
    assert found is not None and found["trace_id"] == format(prefix | 2, "032x")


def test_generations_slowest_failed_and_usage_since(db: Path) -> None:
    seeded = seed_store(db)
    with TraceStore(db) as store:
        slowest = store.generations(slowest=3)
        failed = store.generations(failed=True)
        recent = store.generations(limit=2)
        used = store.usage_since("devops-engineer", seeded.start_ns(60))
        used_all = store.usage_since("Devops Engineer")
    by_latency = sorted(seeded.generations, key=lambda g: -g.latency_ms)[:3]
    assert [g["latency_ms"] for g in slowest] == [g.latency_ms for g in by_latency]
    assert [g["error"] for g in failed] == [g.error for g in seeded.generations if g.error]
    assert [g["start_ns"] for g in recent] == sorted(
        (seeded.start_ns(g.ago_min) for g in seeded.generations), reverse=True
    )[:2]
    devops = seeded.gens(persona="devops-engineer")
    assert used == (
        sum(g.total for g in devops),
        pytest.approx(sum(g.cost for g in devops if g.cost is not None)),
    )
    assert used_all[0] == used[0]
    exporter = StoreExporter(db)
    assert exporter.usage_since("devops-engineer", seeded.start_ns(60)) == used
    exporter.shutdown()


# -- retention ---------------------------------------------------------------------------


def test_retention_deletes_old_rows_on_open_and_on_purge(db: Path) -> None:
    now = time.time_ns()
    old = [
        readable_span(1, 1, start_ns=now - 40 * DAY),
        readable_span(1, 2, parent=1, start_ns=now - 40 * DAY),
    ]
    new = [readable_span(2, 3, start_ns=now - DAY)]
    with TraceStore(db, retention_days=0) as store:
        store.write_spans(old + new)
        assert store.stats()["observations"] == 3
    with TraceStore(db, retention_days=30) as store:
        assert rows(db, "SELECT span_id FROM observations") == [(format(3, "016x"),)]
        assert rows(db, "SELECT trace_id FROM traces") == [(format(2, "032x"),)]
        store.write_spans([readable_span(3, 4, start_ns=now - 31 * DAY)])
        assert store.purge() == 1
        assert store.stats()["observations"] == 1


def test_retention_from_the_environment(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with TraceStore(db) as store:  # an old row, written before the integration starts
        store.write_spans([readable_span(1, 1, start_ns=time.time_ns() - DAY)])
    monkeypatch.setenv(HYPERTOOL_STORE, str(db))
    monkeypatch.setenv(HYPERTOOL_STORE_RETENTION_DAYS, "0.5")
    integration = LangfuseIntegration()
    trace = integration.start_trace("t", "p")
    integration.end_trace(trace)
    assert integration.flush(5.0)  # the store opens on its first batch, and purges then
    integration.shutdown()
    with TraceStore(db, retention_days=0) as store:
        assert store.stats()["observations"] == 1  # only the new trace's root is left


# -- failures ----------------------------------------------------------------------------


def test_corrupt_file_is_a_clear_error_and_a_failed_batch(
    db: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db.parent.mkdir(parents=True)
    db.write_bytes(b"this is not a database at all" * 200)
    with pytest.raises(StoreError, match=str(db)) as raised:
        TraceStore(db)
    assert "corrupt" in str(raised.value)
    exporter = StoreExporter(db)
    with caplog.at_level(logging.ERROR, logger="hypertool.instrumentation"):
        assert exporter.export([readable_span(1, 1)]) is SpanExportResult.FAILURE
        assert exporter.export([readable_span(1, 2)]) is SpanExportResult.FAILURE
    assert exporter.failed_batches == 2
    assert sum(str(db) in record.getMessage() for record in caplog.records) == 1  # once


def test_other_sqlite_database_is_not_taken_over(db: Path) -> None:
    db.parent.mkdir(parents=True)
    with sqlite3.connect(db) as connection:
        connection.execute("CREATE TABLE mine (x)")
    with pytest.raises(StoreError, match="not a hypertool trace store"):
        TraceStore(db)
    assert rows(db, "SELECT name FROM sqlite_schema") == [("mine",)]


def test_newer_schema_is_refused(db: Path) -> None:
    TraceStore(db).close()
    with sqlite3.connect(db) as connection:
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match="newer"):
        TraceStore(db)


def test_locked_database_fails_the_batch_in_bounded_time(db: Path) -> None:
    TraceStore(db).close()
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    exporter = StoreExporter(db, busy_timeout_ms=100)
    try:
        started = time.monotonic()
        assert exporter.export([readable_span(1, 1)]) is SpanExportResult.FAILURE
        assert time.monotonic() - started < 5
        with TraceStore(db, busy_timeout_ms=100) as store:
            with pytest.raises(StoreLockedError, match=str(db)):
                store.write_spans([readable_span(1, 1)])
            assert store.traces() == []  # readers are not blocked by a writer (WAL)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert exporter.export([readable_span(1, 1)]) is SpanExportResult.SUCCESS
    exporter.shutdown()
    assert exporter.export([readable_span(1, 2)]) is SpanExportResult.FAILURE
    assert rows(db, "SELECT count(*) FROM observations") == [(1,)]


def test_a_failing_store_does_not_reach_the_application(db: Path) -> None:
    db.parent.mkdir(parents=True)
    db.write_bytes(b"\x00garbage" * 512)
    integration = LangfuseIntegration(exporters={"store": StoreExporter(db)})
    llm = ObservableLLM(
        lambda prompt: {"usage": {"prompt_tokens": 1, "completion_tokens": 2}},
        model="m",
        langfuse=integration,
    )
    assert llm("hello", persona="backend-engineer") is not None
    integration.flush(5)
    assert integration.pipeline is not None
    (processor,) = integration.pipeline.processors
    assert processor.dropped == 1
    integration.shutdown(1)


# -- migrations --------------------------------------------------------------------------


def test_version_1_database_migrates_forward_with_data_intact(db: Path) -> None:
    db.parent.mkdir(parents=True)
    with sqlite3.connect(db, isolation_level=None) as connection:
        for statement in MIGRATIONS[0]:
            connection.execute(statement)
        connection.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        connection.execute("PRAGMA user_version = 1")
        connection.execute(
            "INSERT INTO observations (span_id, trace_id, type, name, persona, total_tokens, "
            "start_ns, end_ns, status) VALUES ('00000000000000aa', 'ff', 'generation', 'old', "
            "'backend-engineer', 42, ?, ?, 'success')",
            (time.time_ns(), time.time_ns()),
        )
    with TraceStore(db) as store:
        assert store.stats()["schema_version"] == SCHEMA_VERSION == len(MIGRATIONS)
        assert store.usage_since("backend-engineer")[0] == 42
    indexes = {row[0] for row in rows(db, "SELECT name FROM sqlite_schema WHERE type='index'")}
    assert "observations_persona" in indexes


def test_version_2_database_gains_environment_and_release(db: Path) -> None:
    db.parent.mkdir(parents=True)
    with sqlite3.connect(db, isolation_level=None) as connection:
        for statements in MIGRATIONS[:2]:
            for statement in statements:
                connection.execute(statement)
        connection.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        connection.execute("PRAGMA user_version = 2")
        connection.execute(
            "INSERT INTO traces (trace_id, name, start_ns, end_ns, status, root_seen) "
            "VALUES ('ff', 'old', ?, ?, 'success', 1)",
            (time.time_ns(), time.time_ns()),
        )
    with TraceStore(db) as store:
        assert store.stats()["schema_version"] == SCHEMA_VERSION == len(MIGRATIONS)
        (old,) = store.traces()
        assert (old["name"], old["environment"], old["release"]) == ("old", None, None)
        assert store.traces(filters=Filters(environment="production")) == []


# -- concurrency -------------------------------------------------------------------------

SPANS_PER_WRITER = 2_000
BATCH = 250


def _batches(writer: int) -> Iterator[list[Any]]:
    attributes = generation_attributes(Gen("", "p", "m", 1, 1, None, 1, 1), "t")
    spans = [
        readable_span(writer + 1, writer * SPANS_PER_WRITER + n + 1, attributes=attributes)
        for n in range(SPANS_PER_WRITER)
    ]
    for start in range(0, len(spans), BATCH):
        yield spans[start : start + BATCH]


def _write(path: str, writer: int) -> int:
    exporter = StoreExporter(path)
    failures = sum(
        exporter.export(batch) is not SpanExportResult.SUCCESS for batch in _batches(writer)
    )
    exporter.shutdown()
    return failures


def _assert_all_rows(path: Path, writers: int) -> None:
    expected = writers * SPANS_PER_WRITER
    assert rows(path, "SELECT count(*), count(DISTINCT span_id) FROM observations") == [
        (expected, expected)
    ]
    assert rows(path, "SELECT count(*) FROM traces") == [(writers,)]


def test_concurrent_writer_threads_lose_nothing(db: Path) -> None:
    failures: list[int] = []
    threads = [
        threading.Thread(target=lambda w=w: failures.append(_write(str(db), w))) for w in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert failures == [0] * 8
    _assert_all_rows(db, 8)


def test_concurrent_writer_processes_lose_nothing(db: Path) -> None:
    TraceStore(db).close()  # three processes racing to create the file is another test
    context = multiprocessing.get_context("spawn")
    with context.Pool(3) as pool:
        failures = pool.starmap(_write, [(str(db), w) for w in range(3)], chunksize=1)
    assert failures == [0, 0, 0]
    _assert_all_rows(db, 3)


def test_processes_racing_to_create_the_store(tmp_path: Path) -> None:
    path = tmp_path / "fresh" / "traces.db"
    context = multiprocessing.get_context("spawn")
    with context.Pool(3) as pool:
        results = [pool.apply_async(_create_and_write, (str(path), w)) for w in range(3)]
        assert [r.get(60) for r in results] == [True] * 3
    assert rows(path, "SELECT count(*) FROM observations") == [(3,)]
    assert rows(path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]


def _create_and_write(path: str, writer: int) -> bool:
    exporter = StoreExporter(path)
    ok = exporter.export([readable_span(writer + 1, writer + 1)]) is SpanExportResult.SUCCESS
    exporter.shutdown()
    return ok


def test_integration_writes_the_demo_workflow(db: Path) -> None:
    import asyncio

    from hypertool.instrumentation.test_instrumented_workflow import run_release_workflow

    integration = LangfuseIntegration(exporters={"store": StoreExporter(db)})
    result = asyncio.run(run_release_workflow(integration, out=lambda _: None))
    integration.flush(10)
    with TraceStore(db) as store:
        report = {row["group"]: row["total_tokens"] for row in store.report("persona")}
        tree = store.trace(result.trace_id)
    assert report == result.tokens_by_persona
    assert tree is not None and tree["workflow"] == "package-release-workflow"
    integration.shutdown(1)
    assert os.path.exists(db)
