"""The web UI over 100,000 generations: each page's server time (target: under 300 ms).

Run with ``python benchmarks/ui.py``. Seeds a temporary store with 100,000 generations (10,000
traces, 6 personas, 5 models, 2 % failed, a third streamed, 1,000-character prompts) through
:class:`StoreExporter`, opens it read-only as ``hypertool ui`` does, and asks every page in
turn, in-process through the ASGI app (no network). The server time is the app's own
``Server-Timing`` header: from the request to the first byte of the answer, the page rendered.
Each page is asked ``--repeats`` times in interleaved rounds; the first answer (cold: nothing
cached, the facets of the filter fields read) and the median and worst of the rest are shown.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

for _name in list(os.environ):
    if _name.startswith(("LANGFUSE_", "HYPERTOOL_", "OTEL_")):
        del os.environ[_name]

sys.path.insert(0, str(Path(__file__).parent))

from starlette.testclient import TestClient  # noqa: E402

from hypertool.instrumentation.personas import builtin_personas  # noqa: E402
from hypertool.instrumentation.store import TraceStore  # noqa: E402
from hypertool.instrumentation.store.overview import Budgets  # noqa: E402
from hypertool.instrumentation.ui.app import create_app  # noqa: E402
from store import seed  # noqa: E402  (benchmarks/store.py: the same seeding)

TARGET_MS = 300.0


def pages(store: TraceStore) -> list[str]:
    trace_id = store.traces(limit=1)[0]["trace_id"]
    return [
        "/",
        "/?range=7d",
        "/personas/backend-engineer",
        "/personas/backend-engineer?range=7d",
        "/traces",
        "/traces?sort=cost",
        "/traces?sort=duration&order=asc",
        "/traces?persona=devops-engineer&page=20",
        "/traces?status=error&chatmode=debugging",
        f"/traces/{trace_id}",
        "/generations",
        "/generations?status=error&sort=recent",
        "/generations?model=gpt-4o&persona=data-scientist",
        "/analytics",
        "/analytics?range=all",
        "/analytics?range=all&persona=frontend-engineer",
        "/traces?format=csv",
        "/analytics?range=all&format=json",
    ]


def server_ms(client: TestClient, path: str) -> float:
    response = client.get(path)
    if response.status_code != 200:
        raise SystemExit(f"{path}: HTTP {response.status_code}\n{response.text[:500]}")
    return float(response.headers["server-timing"].split("dur=", 1)[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--generations", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--prompt-chars", type=int, default=1_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hypertool-ui-bench-") as tmp:
        path = Path(tmp) / "traces.db"
        seconds = seed(path, args.generations, streamed=1 / 3, prompt_chars=args.prompt_chars)
        size = sum(p.stat().st_size for p in path.parent.iterdir())
        print(
            f"seeded {args.generations:,} generations ({args.prompt_chars:,}-character prompts, "
            f"a third streamed) in {seconds:.1f} s, {size / 1e6:.0f} MB"
        )
        started = time.perf_counter()
        store = TraceStore(path, read_only=True)
        print(f"opened read-only in {(time.perf_counter() - started) * 1e3:.1f} ms")
        app = create_app(store, budgets=Budgets(builtin_personas(), "month"))
        with TestClient(app, base_url="http://127.0.0.1:8000") as client:
            paths = pages(store)
            cold = {path: server_ms(client, path) for path in paths}
            warm: dict[str, list[float]] = {path: [] for path in paths}
            for number in range(args.repeats):
                shift = number % len(paths)
                for path in paths[shift:] + paths[:shift]:
                    warm[path].append(server_ms(client, path))
        store.close()
    print(f"\nserver time per page (ms): cold, then median / worst of {args.repeats}")
    print(f"  {'page':<52} {'cold':>7} {'median':>7} {'worst':>7}")
    over = []
    for path in paths:
        median, worst = statistics.median(warm[path]), max(warm[path])
        flag = "" if max(worst, cold[path]) < TARGET_MS else "  > target"
        if flag:
            over.append(path)
        print(f"  {path[:52]:<52} {cold[path]:7.1f} {median:7.1f} {worst:7.1f}{flag}")
    every = [t for path in paths for t in (cold[path], *warm[path])]
    print(
        f"  every answer: median {statistics.median(every):.1f} ms, worst {max(every):.1f} ms "
        f"(target < {TARGET_MS:.0f} ms); pages over the target: {len(over)}"
    )


if __name__ == "__main__":
    main()
