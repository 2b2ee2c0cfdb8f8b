"""CPU per instrumented generation, import time and exit time, measured side by side.

Run with ``python benchmarks/cpu.py`` (``make bench``). Three measurements, each comparing us
with the alternatives in the same run:

- **CPU per generation**, amortised over all threads of the process, delivery included:
  ``time.process_time()`` over N calls plus the flush that delivers them, in a fresh process
  per variant and round, the OTLP endpoint in another process (its decoding is not counted):
  (ours) ``ObservableLLM`` → Langfuse (loopback), local store off;
  (otel) the stock OpenTelemetry SDK, ``BatchSpanProcessor`` + OTLP/HTTP (gzip), one span per
  call with exactly the attributes our generation span carries;
  (langfuse) langfuse's own ``@observe(as_type="generation")``.
  Variants run in interleaved rounds (the order rotates); the median of the rounds is shown.
- **Import**: ``from hypertool.instrumentation import LangfuseIntegration, ObservableLLM``
  against ``import langfuse``, the minimum of 7 fresh interpreters each, interleaved.
- **Exit**: a process that made 2,000 calls against a hanging endpoint (in another process)
  prints its last line and ends: the wall time from that line to the process's end,
  interpreter teardown included.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"
PROMPT = "Design a REST API for user profiles"
RESPONSE: dict[str, Any] = {
    "id": "chatcmpl-bench",
    "object": "chat.completion",
    "model": "gpt-4",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Here it is"}}],
    "usage": {"prompt_tokens": 12, "completion_tokens": 34, "total_tokens": 46},
}
VARIANTS = ("ours", "otel", "langfuse")
SCOPES = {
    "ours": "hypertool.instrumentation",
    "otel": "benchmarks.stock-otel",
    "langfuse": "langfuse-sdk",
}


def clean_environment() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("LANGFUSE_", "HYPERTOOL_", "OTEL_"))
    }
    env["HYPERTOOL_STORE"] = "off"
    env["PYTHONPATH"] = str(TESTS)
    return env


def llm(prompt: str) -> dict[str, Any]:
    return RESPONSE


# -- the endpoint, in a process of its own ----------------------------------------------------
def serve(mode: str) -> None:
    """Run a loopback receiver; print its URL; on stdin's end, print span counts by scope."""
    from support.loopback import LoopbackOTLP

    with LoopbackOTLP(int(mode) if mode.isdigit() else mode, hang_max=60) as receiver:
        print(receiver.url, flush=True)
        sys.stdin.read()
        counts: dict[str, int] = {}
        if mode != "hang":
            for span in receiver.spans(accepted_only=True):
                counts[span.scope] = counts.get(span.scope, 0) + 1
        print(json.dumps(counts), flush=True)


class Endpoint:
    def __init__(self, mode: str = "200") -> None:
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--serve", mode],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=clean_environment(),
        )
        assert self.process.stdout is not None
        self.url = self.process.stdout.readline().strip()

    def close(self) -> dict[str, int]:
        out, _ = self.process.communicate("", timeout=120)
        return json.loads(out.strip().splitlines()[-1])


# -- one variant in a fresh process -------------------------------------------------------------
def our_attributes() -> tuple[str, dict[str, Any]]:
    """The name and attributes of the generation span ObservableLLM makes for one call."""
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from hypertool.instrumentation import LangfuseIntegration, ObservableLLM

    memory = InMemorySpanExporter()
    integration = LangfuseIntegration(exporters={"memory": memory})
    ObservableLLM(llm, model="gpt-4", langfuse=integration)(PROMPT, persona="backend-engineer")
    integration.shutdown(10)
    (span,) = memory.get_finished_spans()
    return span.name, dict(span.attributes or {})


def worker(variant: str, url: str, calls: int, warmup: int) -> None:
    """Print the CPU seconds of ``calls`` calls and the flush that delivers them."""
    token = uuid.uuid4().hex[:12]
    if variant == "ours":
        from hypertool.instrumentation import LangfuseIntegration, ObservableLLM

        ours = LangfuseIntegration(f"pk-lf-{token}", f"sk-lf-{token}", host=url)
        wrapped = ObservableLLM(llm, model="gpt-4", langfuse=ours)

        def call() -> None:
            wrapped(PROMPT, persona="backend-engineer")

        def flush() -> bool:
            return ours.flush(timeout=60)

    elif variant == "otel":
        from opentelemetry.exporter.otlp.proto.http import Compression
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        name, attributes = our_attributes()
        provider = TracerProvider(
            resource=Resource.create({"service.name": "hypertool"}), shutdown_on_exit=False
        )
        # A queue that holds the whole run: the stock default (2,048) drops spans silently
        # when calls outpace export, and a dropped span costs no export work.
        provider.add_span_processor(
            BatchSpanProcessor(
                OTLPSpanExporter(
                    endpoint=f"{url}/v1/traces", compression=Compression.Gzip, timeout=10
                ),
                max_queue_size=calls + warmup,
            )
        )
        tracer = provider.get_tracer(SCOPES["otel"])

        def call() -> None:
            span = tracer.start_span(name, attributes=attributes)
            llm(PROMPT)
            span.end()

        def flush() -> bool:
            return provider.force_flush(60_000)

    else:
        from langfuse import Langfuse, observe

        client = Langfuse(public_key=f"pk-lf-{token}", secret_key=f"sk-lf-{token}", base_url=url)

        @observe(as_type="generation")
        def generation(prompt: str) -> dict[str, Any]:
            return llm(prompt)

        def call() -> None:
            generation(PROMPT)

        def flush() -> bool:
            client.flush()
            return True

    for _ in range(warmup):
        call()
    flush()
    started = time.process_time()
    for _ in range(calls):
        call()
    ok = flush()
    cpu = time.process_time() - started
    print(json.dumps({"cpu_s": cpu, "calls": calls, "flushed": ok}), flush=True)


def run_worker(variant: str, url: str, calls: int, warmup: int) -> float:
    command = [sys.executable, __file__, "--worker", variant, "--url", url]
    done = subprocess.run(
        [*command, "--calls", str(calls), "--warmup", str(warmup)],
        capture_output=True,
        text=True,
        env=clean_environment(),
        timeout=600,
        check=True,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return float(result["cpu_s"]) / int(result["calls"]) * 1e6


def cpu_table(calls: int, rounds: int, warmup: int) -> dict[str, float]:
    endpoint = Endpoint("200")
    per_call: dict[str, list[float]] = {v: [] for v in VARIANTS}
    try:
        for number in range(rounds):
            order = VARIANTS[number % 3 :] + VARIANTS[: number % 3]
            for variant in order:
                per_call[variant].append(run_worker(variant, endpoint.url, calls, warmup))
    finally:
        received = endpoint.close()
    expected = rounds * (calls + warmup)
    print(f"CPU per generation, all threads, delivery included ({rounds} rounds of {calls})")
    print(f"{'variant':<44} {'median µs':>10} {'min µs':>8} {'max µs':>8} {'received':>16}")
    labels = {
        "ours": "(ours) ObservableLLM → Langfuse (loopback)",
        "otel": "(otel) stock SDK span, same attributes",
        "langfuse": "(langfuse) @observe(as_type='generation')",
    }
    medians = {}
    for variant in VARIANTS:
        values = per_call[variant]
        medians[variant] = statistics.median(values)
        got = received.get(SCOPES[variant], 0)
        print(
            f"{labels[variant]:<44} {medians[variant]:>10.1f} {min(values):>8.1f} "
            f"{max(values):>8.1f} {got:>8}/{expected:<7}"
        )
    return medians


OUR_IMPORT = "from hypertool.instrumentation import LangfuseIntegration, ObservableLLM"


def import_ratio(runs: int = 7) -> tuple[float, float]:
    env = clean_environment()

    def once(code: str) -> float:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, env=env)
        return time.perf_counter() - started

    ours, theirs = [], []
    for _ in range(runs):
        ours.append(
            once("from hypertool.instrumentation import LangfuseIntegration, ObservableLLM")
        )
        theirs.append(once("import langfuse"))
    return min(ours), min(theirs)


EXIT_CHILD = """
import sys, time
from hypertool.instrumentation import LangfuseIntegration, ObservableLLM
langfuse = LangfuseIntegration("pk-lf-exit", "sk-lf-exit", host=sys.argv[1])
llm = ObservableLLM(lambda p: {"text": "ok", "usage": {"input": 3, "output": 2}}, model="gpt-4",
                    langfuse=langfuse)
for i in range(2000):
    llm(f"prompt {i}", persona="backend-engineer")
print(time.time(), flush=True)
"""


def exit_seconds(runs: int = 3) -> list[float]:
    endpoint = Endpoint("hang")
    results = []
    try:
        for _ in range(runs):
            process = subprocess.Popen(
                [sys.executable, "-c", EXIT_CHILD, endpoint.url],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
                env=clean_environment(),
            )
            assert process.stdout is not None
            last_line = float(process.stdout.readline())
            process.wait(timeout=60)
            results.append(time.time() - last_line)
    finally:
        endpoint.close()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--calls", type=int, default=5_000, help="measured calls per round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--warmup", type=int, default=500, help="calls before measuring")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--worker", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return 0
    if args.worker:
        worker(args.worker, args.url, args.calls, args.warmup)
        return 0

    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    medians = cpu_table(args.calls, args.rounds, args.warmup)
    to_otel = medians["ours"] / medians["otel"]
    to_langfuse = medians["ours"] / medians["langfuse"]
    print(f"ours / otel     = {to_otel:.2f}×  (target ≤ 0.8×)")
    print(f"ours / langfuse = {to_langfuse:.2f}×  (target ≤ 0.5×)")
    print()
    ours, theirs = import_ratio()
    print(
        f"Import: ours {ours * 1000:.0f} ms, `import langfuse` {theirs * 1000:.0f} ms "
        f"(min of 7 each): {ours / theirs:.2f}×  (target ≤ 0.5×)"
    )
    exits = exit_seconds()
    print(
        "Exit after 2,000 calls against a hanging endpoint: "
        + ", ".join(f"{s:.2f} s" for s in exits)
        + f"  (target ≤ 2.0 s; HYPERTOOL_EXIT_TIMEOUT default {2.0:g} s)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
