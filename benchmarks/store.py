"""The embedded trace store: report speed over 100,000 generations, what the sink costs callers.

Run with ``python benchmarks/store.py``. In one run:

1. Seeds a temporary store with 100,000 generations (in 10,000 traces, 6 personas, 5 models,
   some failed, some without a known price) through :class:`StoreExporter`, in batches.
2. Times ``report --by persona`` (and the other groupings) in-process — opening the store and
   querying — and ``hypertool report --by persona --json`` as a subprocess, which adds the
   interpreter start and imports (shown separately as "startup": ``hypertool --help``).
3. Measures instrumented calls per second through ``ObservableLLM`` with
   ``LangfuseIntegration(exporters={"store": StoreExporter(tmp)})`` against
   ``LangfuseIntegration()`` with no sink (``HYPERTOOL_STORE=off``), and against a sink that
   discards spans ("null": what building spans costs, without the store). Variants run in
   interleaved rounds; the caller's time and the final ``flush`` are separate columns. Ratios
   are taken per round and the median is shown; the target is that the store costs the caller
   under 10 % more than no sink. The stand-in LLM returns at once, the worst case: with a real
   call the caller waits on the network while the store writes.
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
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

for _name in list(os.environ):
    if _name.startswith(("LANGFUSE_", "HYPERTOOL_", "OTEL_")):
        del os.environ[_name]
os.environ["HYPERTOOL_STORE"] = "off"  # the "no sink" variant must really have none

from opentelemetry.sdk.resources import Resource  # noqa: E402
from opentelemetry.sdk.trace import ReadableSpan  # noqa: E402
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult  # noqa: E402
from opentelemetry.trace import SpanContext, Status, StatusCode, TraceFlags  # noqa: E402

from hypertool.instrumentation import LangfuseIntegration, ObservableLLM  # noqa: E402
from hypertool.instrumentation import semconv as attr  # noqa: E402
from hypertool.instrumentation.store import REPORT_GROUPS, StoreExporter, TraceStore  # noqa: E402

PERSONAS = [
    "backend-engineer",
    "testing-specialist",
    "devops-engineer",
    "frontend-engineer",
    "data-scientist",
    "observability-expert",
]
MODELS = ["gpt-4o", "gpt-4o-mini", "claude-sonnet-4", "gemini-2.0-flash", "my-local-model"]
CHATMODES = ["package-release", "feature-implementation", "debugging", "code-review"]
WORKFLOWS = ["package-release-workflow", "feature-workflow", "incident-workflow"]
PROMPTS = [f"release/prompt-{n}" for n in range(4)]
RESPONSE: dict[str, Any] = {
    "id": "chatcmpl-bench",
    "object": "chat.completion",
    "model": "gpt-4o",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Here it is"}}],
    "usage": {"prompt_tokens": 12, "completion_tokens": 34, "total_tokens": 46},
}


def _context(trace_id: int, span_id: int) -> SpanContext:
    return SpanContext(trace_id, span_id, is_remote=False, trace_flags=TraceFlags(1))


def seed(
    path: Path,
    generations: int,
    per_trace: int = 10,
    batch: int = 5_000,
    *,
    streamed: float = 0.0,
    prompt_chars: int = 0,
    prompted: float = 0.0,
) -> float:
    """Write ``generations`` generations through the exporter; returns seconds taken.

    ``streamed``: the share of generations with a time to first token; ``prompt_chars``: the
    length of each prompt (its completion is half as long; default: a short sentence);
    ``prompted``: the share made from a managed prompt (:data:`PROMPTS`, versions 1 to 3).
    """
    rng = random.Random(7)
    resource = Resource.create({"service.name": "hypertool-bench"})  # one, not one per span
    exporter = StoreExporter(path, retention_days=0)
    now = time.time_ns()
    spans: list[ReadableSpan] = []
    started = time.perf_counter()
    span_id = 1
    prompt, completion = "Design a REST API for user profiles", "Here is the design"
    if prompt_chars:
        prompt = (prompt + ". ") * (prompt_chars // (len(prompt) + 2) + 1)
        prompt, completion = (
            prompt[:prompt_chars],
            ("Here is the design. " * prompt_chars)[: prompt_chars // 2],
        )
    for number in range(generations // per_trace):
        trace_id = rng.getrandbits(128) | 1
        start = now - rng.randrange(1, 20 * 86_400) * 10**9
        chatmode = CHATMODES[number % len(CHATMODES)]
        workflow = WORKFLOWS[number % len(WORKFLOWS)]
        root = _context(trace_id, span_id)
        span_id += 1
        trace_attrs = {attr.TRACE_NAME: workflow}
        spans.append(
            ReadableSpan(
                name=workflow,
                context=root,
                resource=resource,
                attributes={
                    **trace_attrs,
                    attr.USER_ID: PERSONAS[0],
                    attr.PERSONA: PERSONAS[0],
                    attr.CHATMODE: chatmode,
                    attr.WORKFLOW: workflow,
                    attr.OBSERVATION_TYPE: attr.TYPE_SPAN,
                },
                start_time=start,
                end_time=start + 60 * 10**9,
            )
        )
        for _ in range(per_trace):
            persona = rng.choice(PERSONAS)
            model = rng.choice(MODELS)
            tokens_in, tokens_out = rng.randrange(10, 3000), rng.randrange(10, 1500)
            failed = rng.random() < 0.02
            attributes: dict[str, Any] = {
                **trace_attrs,
                attr.USER_ID: persona,
                attr.PERSONA: persona,
                attr.CHATMODE: chatmode,
                attr.WORKFLOW: workflow,
                attr.STAGE: "stage",
                attr.OBSERVATION_TYPE: attr.TYPE_GENERATION,
                attr.MODEL: model,
                attr.INPUT: prompt,
                attr.OUTPUT: completion,
                attr.USAGE_DETAILS: json.dumps(
                    {"input": tokens_in, "output": tokens_out, "total": tokens_in + tokens_out}
                ),
                attr.GEN_AI_INPUT_TOKENS: tokens_in,
                attr.GEN_AI_OUTPUT_TOKENS: tokens_out,
                attr.USAGE_ESTIMATED: False,
                attr.COST_KNOWN: model != "my-local-model",
            }
            if model != "my-local-model":
                cost_in, cost_out = tokens_in * 2.5e-6, tokens_out * 1e-5
                attributes[attr.COST_DETAILS] = json.dumps(
                    {"input": cost_in, "output": cost_out, "total": cost_in + cost_out}
                )
            if failed:
                attributes[attr.LEVEL] = attr.LEVEL_ERROR
                attributes[attr.STATUS_MESSAGE] = "rate limited"
            if prompted and rng.random() < prompted:
                attributes[attr.PROMPT_NAME] = rng.choice(PROMPTS)
                attributes[attr.PROMPT_VERSION] = rng.randrange(1, 4)
            begin = start + rng.randrange(0, 50) * 10**9
            if streamed and rng.random() < streamed:
                first = begin + int(rng.lognormvariate(19.0, 0.5))
                attributes[attr.COMPLETION_START_TIME] = json.dumps(
                    datetime.fromtimestamp(first / 1e9, tz=UTC)
                    .isoformat(timespec="microseconds")
                    .replace("+00:00", "Z")
                )
            spans.append(
                ReadableSpan(
                    name="llm",
                    context=_context(trace_id, span_id),
                    resource=resource,
                    parent=root,
                    attributes=attributes,
                    status=Status(StatusCode.ERROR if failed else StatusCode.UNSET),
                    start_time=begin,
                    end_time=begin + int(rng.lognormvariate(20.5, 0.6)),
                )
            )
            span_id += 1
            if len(spans) >= batch:
                assert exporter.export(spans).name == "SUCCESS"
                spans = []
    if spans:
        assert exporter.export(spans).name == "SUCCESS"
    exporter.shutdown()
    return time.perf_counter() - started


def time_reports(path: Path, repeats: int) -> None:
    print("\nreport, in-process (open the store + query), best / median of", repeats)
    for by in REPORT_GROUPS:
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            with TraceStore(path, create=False) as store:
                rows = store.report(by)
            times.append(time.perf_counter() - started)
        generations = sum(row["generations"] for row in rows)
        print(
            f"  --by {by:<9} {min(times) * 1e3:7.1f} ms / {statistics.median(times) * 1e3:7.1f} ms"
            f"   ({len(rows)} groups, {generations:,} generations)"
        )
    hypertool = [sys.executable, "-m", "hypertool.instrumentation.cli"]
    startup, report = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run([*hypertool, "--help"], check=True, capture_output=True)
        startup.append(time.perf_counter() - started)
        started = time.perf_counter()
        done = subprocess.run(
            [*hypertool, "--store", str(path), "report", "--by", "persona", "--json"],
            check=True,
            capture_output=True,
        )
        report.append(time.perf_counter() - started)
        json.loads(done.stdout)
    print("\nhypertool report --by persona --json, subprocess, best / median")
    print(
        f"  startup (hypertool --help) {min(startup):6.2f} s / {statistics.median(startup):6.2f} s"
    )
    print(f"  report                     {min(report):6.2f} s / {statistics.median(report):6.2f} s")


class NullExporter(SpanExporter):
    """Takes spans and does nothing: what building the spans costs, without any sink."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def llm(prompt: str) -> dict[str, Any]:
    return RESPONSE


def time_calls(directory: Path, calls: int, rounds: int) -> None:
    variants = {
        "no sink": lambda: LangfuseIntegration(queue_size=calls * 2),
        "null": lambda: LangfuseIntegration(
            queue_size=calls * 2, exporters={"null": NullExporter()}
        ),
        "store": lambda: LangfuseIntegration(
            queue_size=calls * 2,
            exporters={"store": StoreExporter(directory / f"calls-{time.time_ns()}.db")},
        ),
    }
    results: dict[str, list[tuple[float, float]]] = {key: [] for key in variants}
    dropped: dict[str, int] = dict.fromkeys(variants, 0)
    order = list(variants)
    for number in range(rounds):
        for key in order[number % len(order) :] + order[: number % len(order)]:
            integration = variants[key]()
            wrapped = ObservableLLM(llm, model="gpt-4o", langfuse=integration, name="bench")
            started = time.perf_counter()
            for index in range(calls):
                wrapped("Design a REST API for user profiles", persona=PERSONAS[index % 6])
            caller = time.perf_counter() - started
            started = time.perf_counter()
            integration.flush(timeout=120)
            flush = time.perf_counter() - started
            results[key].append((caller, flush))
            if integration.pipeline is not None:
                dropped[key] += sum(p.dropped for p in integration.pipeline.processors)
            integration.shutdown(5)
    print(f"\ninstrumented calls, {calls:,} calls x {rounds} rounds (median of rounds)")
    print(f"  {'variant':<8} {'calls/s':>10} {'µs/call':>8} {'flush':>9} {'(calls+flush)/s':>16}")
    for key, samples in results.items():
        caller = statistics.median(sample[0] for sample in samples)
        flush = statistics.median(sample[1] for sample in samples)
        print(
            f"  {key:<8} {calls / caller:>10,.0f} {caller / calls * 1e6:>8.2f} "
            f"{flush * 1e3:>7.1f}ms {calls / (caller + flush):>16,.0f}"
        )

    def ratio(key: str, base: str, *, with_flush: bool = False) -> str:
        # Per round (variants of one round ran back to back), then the median and the range.
        ratios = sorted(
            (a[0] + (a[1] if with_flush else 0)) / (b[0] + (b[1] if with_flush else 0))
            for a, b in zip(results[key], results[base], strict=True)
        )
        return f"{statistics.median(ratios):.3f} (rounds {ratios[0]:.3f}-{ratios[-1]:.3f})"

    print(f"  store / no sink, caller's time:  {ratio('store', 'no sink')}  (target < 1.10)")
    print(f"  store / null sink, caller's time: {ratio('store', 'null')}")
    print(f"  store / null sink, calls + flush: {ratio('store', 'null', with_flush=True)}")
    print(f"  spans dropped by the store sink: {dropped['store']}")


def main() -> None:
    # Budgets warn once per persona and integration; a benchmark builds many integrations.
    logging.getLogger("hypertool.instrumentation").setLevel(logging.ERROR)
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--generations", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--skip-report", action="store_true", help="only the calls per second")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hypertool-store-bench-") as tmp:
        directory = Path(tmp)
        path = directory / "traces.db"
        if not args.skip_report:
            report_benchmark(path, args)
        time_calls(directory, args.calls, args.rounds)


def report_benchmark(path: Path, args: argparse.Namespace) -> None:
    if True:
        seconds = seed(path, args.generations)
        size = sum(p.stat().st_size for p in path.parent.iterdir() if p.name.startswith("traces"))
        print(
            f"seeded {args.generations:,} generations through StoreExporter in {seconds:.2f} s "
            f"({args.generations / seconds:,.0f} spans/s), {size / 1e6:.1f} MB"
        )
        time_reports(path, args.repeats)


if __name__ == "__main__":
    main()
