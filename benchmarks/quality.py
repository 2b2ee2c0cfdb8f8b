"""Scores and prompts: what a scored call adds on the caller's path, and ``hypertool prompts``
over 100,000 generations as a whole CLI process.

Run with ``python benchmarks/quality.py`` (``make bench``). In one run:

1. Caller's path: an ``ObservableLLM`` call alone, against the same call followed by
   ``langfuse.score(last_generation(), "relevance", 0.9)``, and ``score(trace, …)`` alone,
   in interleaved rounds (the order rotates each round). Each call is timed with
   ``time.perf_counter_ns``; the median per call is shown, and the difference of the medians
   is what scoring adds (target < 2 µs). Recording and delivery happen on other threads (a sink
   that discards spans and one that discards scores); they are not on the caller's path.
2. ``hypertool prompts --json`` on a store of 100,000 generations made from 12 prompt
   versions by 6 personas (each generation and its stage scored), as a subprocess: interpreter
   start, imports, opening the store and the report (target < 1 s), beside ``hypertool --help``
   (the start alone).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

for _name in list(os.environ):
    if _name.startswith(("LANGFUSE_", "HYPERTOOL_", "OTEL_")):
        del os.environ[_name]
os.environ["HYPERTOOL_STORE"] = "off"

from opentelemetry.sdk.resources import Resource  # noqa: E402
from opentelemetry.sdk.trace import ReadableSpan  # noqa: E402
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult  # noqa: E402
from opentelemetry.trace import SpanContext, TraceFlags  # noqa: E402

from hypertool.instrumentation import (  # noqa: E402
    LangfuseIntegration,
    ObservableLLM,
    Score,
    last_generation,
)
from hypertool.instrumentation import semconv as attr  # noqa: E402
from hypertool.instrumentation.store import StoreExporter  # noqa: E402

PERSONAS = [
    "backend-engineer",
    "testing-specialist",
    "devops-engineer",
    "frontend-engineer",
    "data-scientist",
    "observability-expert",
]
PROMPTS = [f"release/prompt-{n}" for n in range(4)]
VERSIONS = (1, 2, 3)
RESPONSE: dict[str, Any] = {
    "choices": [{"message": {"role": "assistant", "content": "Here it is"}}],
    "usage": {"prompt_tokens": 12, "completion_tokens": 34, "total_tokens": 46},
}


class NullSpans(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


class NullScores:
    def export_scores(self, scores: Sequence[Score]) -> int:
        return 0

    def close_scores(self) -> None:
        return None


def llm(prompt: str) -> dict[str, Any]:
    return RESPONSE


# -- 1. the caller's path --------------------------------------------------------------------
def time_scoring(calls: int, rounds: int) -> None:
    langfuse = LangfuseIntegration(
        exporters={"null": NullSpans()},
        score_sinks={"null": NullScores()},
        queue_size=calls * 4,
    )
    wrapped = ObservableLLM(llm, model="gpt-4o", langfuse=langfuse, persona="backend-engineer")
    trace = langfuse.start_trace("bench", "backend-engineer")
    score = langfuse.score

    def call() -> None:
        wrapped("Design a REST API for user profiles")

    def scored_call() -> None:
        wrapped("Design a REST API for user profiles")
        score(last_generation(), "relevance", 0.9)

    def trace_score() -> None:
        score(trace, "helpful", True)

    variants: dict[str, Callable[[], None]] = {
        "call": call,
        "call + score(last_generation())": scored_call,
        "score(trace) alone": trace_score,
    }
    samples: dict[str, list[int]] = {key: [] for key in variants}
    clock = time.perf_counter_ns
    order = list(variants)
    for number in range(rounds):
        for key in order[number % len(order) :] + order[: number % len(order)]:
            run, bucket = variants[key], samples[key]
            for _ in range(calls):
                started = clock()
                run()
                bucket.append(clock() - started)
            langfuse.flush(timeout=60)  # outside the timed calls: the backlog is recorded
    langfuse.shutdown(5)
    print(f"caller's path, {calls:,} calls x {rounds} rounds, median / p90 per call")
    medians = {}
    for key, values in samples.items():
        values.sort()
        medians[key] = statistics.median(values) / 1000
        p90 = values[int(0.9 * (len(values) - 1))] / 1000
        print(f"  {key:<34} {medians[key]:7.2f} µs / {p90:7.2f} µs")
    added = medians["call + score(last_generation())"] - medians["call"]
    print(f"  a scored call adds {added:.2f} µs on the caller's path (target < 2 µs)")


# -- 2. hypertool prompts over 100,000 generations -------------------------------------------
def seed(path: Path, generations: int, per_trace: int = 10, batch: int = 5_000) -> float:
    rng = random.Random(3)
    resource = Resource.create({"service.name": "hypertool-bench"})
    exporter = StoreExporter(path, retention_days=0)
    now = time.time_ns()
    started = time.perf_counter()
    spans: list[ReadableSpan] = []
    scores: list[Score] = []
    span_id = 1

    def context(trace_id: int, span: int) -> SpanContext:
        return SpanContext(trace_id, span, is_remote=False, trace_flags=TraceFlags(1))

    def flush() -> None:
        assert exporter.export(spans).name == "SUCCESS"
        assert exporter.export_scores(scores) == 0
        spans.clear()
        scores.clear()

    for _ in range(generations // per_trace):
        trace_id = rng.getrandbits(128) | 1
        trace_hex = format(trace_id, "032x")
        start = now - rng.randrange(1, 20 * 86_400) * 10**9
        persona = rng.choice(PERSONAS)
        stage = span_id
        span_id += 1
        spans.append(
            ReadableSpan(
                name="stage",
                context=context(trace_id, stage),
                resource=resource,
                attributes={attr.PERSONA: persona, attr.OBSERVATION_TYPE: attr.TYPE_SPAN},
                start_time=start,
                end_time=start + 60 * 10**9,
            )
        )
        scores.append(
            Score(
                format(stage, "016x"),
                trace_hex,
                "quality_gate",
                float(rng.random() < 0.9),
                "BOOLEAN",
                start,
                observation_id=format(stage, "016x"),
                persona=persona,
            )
        )
        for _ in range(per_trace):
            prompt, version = rng.choice(PROMPTS), rng.choice(VERSIONS)
            tokens_in, tokens_out = rng.randrange(10, 3000), rng.randrange(10, 1500)
            begin = start + rng.randrange(0, 50) * 10**9
            spans.append(
                ReadableSpan(
                    name="llm",
                    context=context(trace_id, span_id),
                    parent=context(trace_id, stage),
                    resource=resource,
                    attributes={
                        attr.PERSONA: persona,
                        attr.OBSERVATION_TYPE: attr.TYPE_GENERATION,
                        attr.MODEL: "gpt-4o",
                        attr.GEN_AI_INPUT_TOKENS: tokens_in,
                        attr.GEN_AI_OUTPUT_TOKENS: tokens_out,
                        attr.COST_DETAILS: json.dumps({"total": tokens_in * 2.5e-6}),
                        attr.COST_KNOWN: True,
                        attr.PROMPT_NAME: prompt,
                        attr.PROMPT_VERSION: version,
                    },
                    start_time=begin,
                    end_time=begin + int(rng.lognormvariate(20.5, 0.6)),
                )
            )
            scores.append(
                Score(
                    format(span_id, "016x"),
                    trace_hex,
                    "relevance",
                    round(rng.betavariate(5 + version, 3), 3),
                    "NUMERIC",
                    begin,
                    observation_id=format(span_id, "016x"),
                    persona=persona,
                )
            )
            span_id += 1
            if len(spans) >= batch:
                flush()
    flush()
    exporter.shutdown()
    return time.perf_counter() - started


def time_prompts_cli(path: Path, repeats: int) -> None:
    hypertool = [sys.executable, "-m", "hypertool.instrumentation.cli"]
    startup, report = [], []
    rows = 0
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run([*hypertool, "--help"], check=True, capture_output=True)
        startup.append(time.perf_counter() - started)
        started = time.perf_counter()
        done = subprocess.run(
            [*hypertool, "--store", str(path), "prompts", "--json"],
            check=True,
            capture_output=True,
        )
        report.append(time.perf_counter() - started)
        document = json.loads(done.stdout)
        rows = len(document["rows"])
        generations = sum(row["generations"] for row in document["rows"])
    print(f"\nhypertool prompts --json, subprocess, best / median of {repeats}")
    median = statistics.median(startup)
    print(f"  startup (hypertool --help) {min(startup):6.2f} s / {median:6.2f} s")
    print(
        f"  prompts                    {min(report):6.2f} s / {statistics.median(report):6.2f} s"
        f"   ({rows} rows, {generations:,} generations; target < 1 s)"
    )


def main() -> None:
    logging.getLogger("hypertool.instrumentation").setLevel(logging.ERROR)
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--generations", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    time_scoring(args.calls, args.rounds)
    with tempfile.TemporaryDirectory(prefix="hypertool-quality-bench-") as tmp:
        path = Path(tmp) / "traces.db"
        seconds = seed(path, args.generations)
        print(f"\nseeded {args.generations:,} generations and their scores in {seconds:.1f} s")
        time_prompts_cli(path, args.repeats)


if __name__ == "__main__":
    main()
