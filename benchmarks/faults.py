"""The fault suite as a table: each Langfuse endpoint fault mode with 5,000 instrumented calls.

Run with ``python benchmarks/faults.py`` (``make faults``). For each mode (200, 500, 401, 429,
503, refused connection, hang, 2 s per request) the scenario of ``tests/faults`` runs in this
process against a loopback receiver, with the local store as a second sink, then a child
process makes the same number of calls against the same kind of endpoint and exits without
flushing (default exit timeout, 2 s). Columns:

    app p99 µs   99th percentile of one instrumented call, as the application sees it
    flush s      time ``flush(timeout=1)`` took right after the calls
    exit s       child process: from its last statement to its end, without flushing
    dropped      spans counted in hypertool_export_dropped_spans_total{sink="langfuse"}
                 (of 5,050: 5,000 generations and 50 trace roots)
    kept         generations in the local store after shutdown (of 5,000)
    store s      time after the flush until the store held every generation
    exit kept    generations the child's store held after its exit (what it could not
                 record and store within the exit timeout is counted as dropped)

Each row also checks what the tests check (results equal to the bare calls, counts adding
up) and marks a row FAIL when something does not hold.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

# Settings are read from the environment and a .env in the working directory when objects are
# built: keep the user's own Langfuse/OTel settings out of the measurement.
for _name in list(os.environ):
    if _name.startswith(("LANGFUSE_", "HYPERTOOL_", "OTEL_")):
        del os.environ[_name]
os.environ["HYPERTOOL_STORE"] = "off"  # the scenario adds its own store sink

from faults.scenario import MODES, Result, endpoint, run, run_child  # noqa: E402
from hypertool.instrumentation.store import TraceStore  # noqa: E402


def check(result: Result, mode: int | str) -> list[str]:
    problems = []
    if not result.outcomes_match:
        problems.append("results differ from the bare calls")
    if result.flush_s >= 1.5:
        problems.append("flush over 1.5 s")
    if result.store_generations != result.calls:
        problems.append("store incomplete")
    if result.langfuse_exported + result.dropped_metric != result.spans:
        problems.append("exported + dropped != spans")
    if mode == 200 and result.dropped_metric:
        problems.append("drops with a healthy endpoint")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--modes", nargs="*", default=[str(mode) for mode in MODES])
    args = parser.parse_args()
    # The library's warnings (drops, rejected keys) would interleave with the table.
    logging.getLogger("hypertool.instrumentation").setLevel(logging.ERROR + 10)

    header = (
        f"{'mode':<8} {'calls':>6} {'app p99 µs':>10} {'flush s':>8} {'exit s':>7} "
        f"{'dropped':>8} {'kept':>6} {'store s':>8} {'exit kept':>9}  check"
    )
    print(header)
    print("-" * len(header))
    failed = False
    with tempfile.TemporaryDirectory(prefix="hypertool-faults-") as tmp:
        for raw in args.modes:
            mode: int | str = int(raw) if raw.isdigit() else raw
            started = time.monotonic()
            result = run(
                mode,
                Path(tmp) / f"{raw}.db",
                calls=args.calls,
                full_delivery_timeout=15 if mode == 200 else 0,
            )
            child_store = Path(tmp) / f"{raw}-exit.db"
            with endpoint(mode) as (host, _receiver):
                exited = run_child(args.calls, host, child_store, None)
            with TraceStore(child_store, create=False) as store:
                child_kept = int(store.stats()["generations"])
            problems = check(result, mode)
            if child_kept + exited.dropped_store < args.calls:
                problems.append("exit lost spans silently")
            failed = failed or bool(problems)
            catch_up = "-" if result.store_catch_up_s is None else f"{result.store_catch_up_s:.2f}"
            print(
                f"{raw:<8} {result.calls:>6} {result.call_p99_us:>10.1f} {result.flush_s:>8.3f} "
                f"{exited.exit_s:>7.3f} {result.dropped_metric:>8.0f} "
                f"{result.store_generations:>6} {catch_up:>8} {child_kept:>9}  "
                f"{'; '.join(problems) or 'ok'} ({time.monotonic() - started:.0f} s)",
                flush=True,
            )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
