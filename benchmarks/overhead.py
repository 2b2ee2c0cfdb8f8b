"""Per-call overhead of instrumentation, all variants in one process and one run.

Run with ``python benchmarks/overhead.py`` (``make bench``). Variants, each wrapping the same
synchronous stand-in LLM function that returns an OpenAI-shaped dict with usage:

    (a) the bare call;
    (b) ObservableLLM with Langfuse not configured (``LangfuseIntegration()`` without keys);
    (c) ObservableLLM exporting to Langfuse, here a loopback OTLP receiver;
    (d) a plain OpenTelemetry span around the call (TracerProvider + BatchSpanProcessor +
        OTLPSpanExporter, gzip) exporting to the same receiver;
    (e) langfuse's own ``@observe(as_type="generation")`` exporting to the same receiver.

Variants run in interleaved rounds (the order rotates each round) so drift in machine load
hits all of them alike. Each call is timed with ``time.perf_counter_ns``; the median and p99
are of those per-call times (they include the ~0.05 µs of the timer itself). The "amortised"
column is a round's wall time including the variant's flush, divided by its calls: it counts
the work done off the caller's path (recording, export) that per-call times do not see.
After the run every exporting variant is flushed and the spans the receiver got are counted.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

# Settings are read from the environment and a .env in the working directory when objects are
# built: keep the user's own Langfuse/OTel settings out of the measurement.
for _name in list(os.environ):
    if _name.startswith(("LANGFUSE_", "HYPERTOOL_", "OTEL_")):
        del os.environ[_name]
# "Not configured" means no sink at all: the local store (on by default) is off here, and
# Langfuse (c) exports to the receiver only, so (c) and (d) do the same work.
os.environ["HYPERTOOL_STORE"] = "off"

from opentelemetry.exporter.otlp.proto.http import Compression  # noqa: E402
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # noqa: E402
from opentelemetry.sdk.resources import Resource  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import BatchSpanProcessor  # noqa: E402

from hypertool.instrumentation import LangfuseIntegration, ObservableLLM  # noqa: E402
from support.loopback import LoopbackOTLP  # noqa: E402  (needs the sys.path entry above)

PROMPT = "Design a REST API for user profiles"
RESPONSE: dict[str, Any] = {
    "id": "chatcmpl-bench",
    "object": "chat.completion",
    "model": "gpt-4",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Here it is"}}],
    "usage": {"prompt_tokens": 12, "completion_tokens": 34, "total_tokens": 46},
}
PLAIN_OTEL_SCOPE = "benchmarks.plain-otel"
OUR_SCOPE = "hypertool.instrumentation"
LANGFUSE_SCOPE = "langfuse-sdk"


def llm(prompt: str) -> dict[str, Any]:
    """The stand-in LLM call: as cheap as possible, so only overhead is measured."""
    return RESPONSE


@dataclass
class Variant:
    key: str
    label: str
    call: Callable[[], Any]
    flush: Callable[[], object] | None = None
    scope: str | None = None
    samples: list[int] = field(default_factory=list)
    wall_ns: int = 0
    received: int | None = None
    note: str = ""

    @property
    def calls(self) -> int:
        return len(self.samples)

    def quantile(self, q: float) -> float:
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1) + 0.5))] / 1000

    @property
    def median_us(self) -> float:
        return statistics.median(self.samples) / 1000

    @property
    def mean_us(self) -> float:
        return statistics.fmean(self.samples) / 1000

    @property
    def amortised_us(self) -> float:
        return self.wall_ns / self.calls / 1000


def run_round(variant: Variant, calls: int) -> None:
    """``calls`` timed calls, then the variant's flush (in the round's wall time, not in the
    per-call samples)."""
    call = variant.call
    samples = variant.samples
    clock = time.perf_counter_ns
    started = clock()
    for _ in range(calls):
        t0 = clock()
        call()
        samples.append(clock() - t0)
    if variant.flush is not None:
        variant.flush()
    variant.wall_ns += clock() - started


def build_variants(receiver: LoopbackOTLP) -> tuple[list[Variant], Callable[[], None]]:
    """The five variants, and a function closing what they opened."""
    # (b) Langfuse not configured: no keys, no sinks.
    unconfigured = LangfuseIntegration()
    assert not unconfigured.enabled and not unconfigured.recording
    observable_off = ObservableLLM(llm, model="gpt-4", langfuse=unconfigured)

    # (c) Ours, exporting to the receiver as the Langfuse host.
    token = uuid.uuid4().hex[:12]
    ours = LangfuseIntegration(
        public_key=f"pk-lf-bench-{token}", secret_key=f"sk-lf-bench-{token}", host=receiver.url
    )
    assert ours.enabled
    observable_on = ObservableLLM(llm, model="gpt-4", langfuse=ours)

    # (d) A plain OpenTelemetry span, the same exporter class and compression.
    provider = TracerProvider(
        resource=Resource.create({"service.name": "benchmark"}), shutdown_on_exit=False
    )
    provider.add_span_processor(
        BatchSpanProcessor(
            OTLPSpanExporter(
                endpoint=f"{receiver.url}/v1/traces", compression=Compression.Gzip, timeout=5
            )
        )
    )
    tracer = provider.get_tracer(PLAIN_OTEL_SCOPE)

    def plain_otel() -> Any:
        with tracer.start_as_current_span("llm"):
            return llm(PROMPT)

    # (e) langfuse's own decorator. Import late: building a Langfuse client registers a global
    # tracer provider, which the variants above do not use.
    from langfuse import Langfuse, observe

    token = uuid.uuid4().hex[:12]
    client = Langfuse(
        public_key=f"pk-lf-sdk-{token}", secret_key=f"sk-lf-sdk-{token}", base_url=receiver.url
    )

    @observe(as_type="generation")
    def langfuse_generation(prompt: str) -> dict[str, Any]:
        return llm(prompt)

    variants = [
        Variant("a", "(a) bare call", lambda: llm(PROMPT)),
        Variant(
            "b",
            "(b) ObservableLLM, Langfuse not configured",
            lambda: observable_off(PROMPT, persona="backend-engineer"),
            flush=lambda: unconfigured.flush(timeout=10),
        ),
        Variant(
            "c",
            "(c) ObservableLLM → Langfuse (loopback)",
            lambda: observable_on(PROMPT, persona="backend-engineer"),
            flush=lambda: ours.flush(timeout=10),
            scope=OUR_SCOPE,
        ),
        Variant(
            "d",
            "(d) plain OTel span → OTLP (loopback)",
            plain_otel,
            flush=lambda: provider.force_flush(10_000),
            scope=PLAIN_OTEL_SCOPE,
        ),
        Variant(
            "e",
            "(e) langfuse @observe(generation) (loopback)",
            lambda: langfuse_generation(PROMPT),
            flush=client.flush,
            scope=LANGFUSE_SCOPE,
        ),
    ]

    def close() -> None:
        ours.shutdown(timeout=5)
        unconfigured.shutdown(timeout=1)
        provider.shutdown()
        client.shutdown()
        if ours.pipeline is not None:
            dropped = sum(p.dropped for p in ours.pipeline.processors)
            variants[2].note = f"{dropped} counted as dropped" if dropped else ""

    return variants, close


def print_table(variants: list[Variant], expected: int) -> None:
    header = (
        f"{'variant':<46} {'median µs':>10} {'p99 µs':>9} {'mean µs':>9} "
        f"{'amortised µs':>13} {'spans received':>15}"
    )
    print(header)
    print("-" * len(header))
    for v in variants:
        received = "-" if v.received is None else f"{v.received}/{expected}"
        print(
            f"{v.label:<46} {v.median_us:>10.2f} {v.quantile(0.99):>9.2f} {v.mean_us:>9.2f} "
            f"{v.amortised_us:>13.2f} {received:>15}" + (f"  ({v.note})" if v.note else "")
        )


def verdict(ok: bool) -> str:
    return "meets target" if ok else "MISSES target"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--calls", type=int, default=20_000, help="timed calls per variant")
    parser.add_argument("--rounds", type=int, default=20, help="interleaved rounds")
    parser.add_argument("--warmup", type=int, default=1_000, help="untimed calls per variant")
    parser.add_argument(
        "--budget", type=float, default=50.0, help="seconds; later rounds are skipped past it"
    )
    args = parser.parse_args()

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # The "Langfuse not configured" warning of variant (b) is expected here; errors still show.
    logging.getLogger("hypertool.instrumentation").setLevel(logging.ERROR)

    started = time.monotonic()
    per_round = max(1, args.calls // args.rounds)
    with tempfile.TemporaryDirectory() as workdir, LoopbackOTLP() as receiver:
        os.chdir(workdir)  # no stray .env
        variants, close = build_variants(receiver)
        try:
            for variant in variants:  # warm-up, then forget what it sent
                for _ in range(args.warmup):
                    variant.call()
                if variant.flush is not None:
                    variant.flush()
            for variant in variants:
                variant.samples.clear()
            receiver.clear()

            rounds_done = 0
            for number in range(args.rounds):
                if time.monotonic() - started > args.budget:
                    print(f"time budget reached: {rounds_done} of {args.rounds} rounds run")
                    break
                shift = number % len(variants)
                for variant in variants[shift:] + variants[:shift]:
                    gc.collect()
                    run_round(variant, per_round)
                rounds_done += 1
            expected = rounds_done * per_round
            for variant in variants:  # already flushed after each round; make sure
                if variant.flush is not None:
                    variant.flush()
        finally:
            close()
        counts: dict[str, int] = {}
        for span in receiver.spans(accepted_only=True):
            counts[span.scope] = counts.get(span.scope, 0) + 1
        for variant in variants:
            if variant.scope is not None:
                variant.received = counts.get(variant.scope, 0)
        os.chdir(ROOT)

    a, b, c, d, e = variants
    print()
    print(
        f"Per-call overhead, {expected} timed calls per variant in {rounds_done} interleaved "
        f"rounds (Python {sys.version.split()[0]}, {os.cpu_count()} CPUs)"
    )
    print()
    print_table(variants, expected)
    print()
    extra = b.median_us - a.median_us
    print(f"(b) - (a) = {extra:.2f} µs per call (target ≤ 2 µs): {verdict(extra <= 2)}")
    ratio_cd = c.median_us / d.median_us
    print(f"(c) / (d) = {ratio_cd:.2f}× (target ≤ 2×): {verdict(ratio_cd <= 2)}")
    ratio_ed = e.median_us / d.median_us
    print(f"(e) / (d) = {ratio_ed:.2f}×")
    print(
        f"(c) amortised / (d) amortised = {c.amortised_us / d.amortised_us:.2f}×, "
        f"(e) amortised / (d) amortised = {e.amortised_us / d.amortised_us:.2f}×"
    )
    lost = [v.label for v in variants if v.received is not None and v.received < expected]
    if lost:
        print(f"spans missing at the receiver: {', '.join(lost)}")
    print(f"total run time {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
