"""The web UI over 100,000 generations: each page's server time (target: under 300 ms).

Run with ``python benchmarks/ui.py``. Seeds a temporary store with 100,000 generations (10,000
traces, 6 personas, 5 models, 2 % failed, a third streamed, 1,000-character prompts; half made
from 4 managed prompts at versions 1–3, each of those scored ``relevance``, and every trace's
workflow span scored ``quality_gate``: 60,000 scores; 3 recorded texts of each prompt) through
:class:`StoreExporter`, opens it read-only as ``hypertool ui`` does, and asks every page in
turn, in-process through the ASGI app (no network). The server time is the app's own
``Server-Timing`` header: from the request to the first byte of the answer, the page rendered.
Each page is asked ``--repeats`` times in interleaved rounds; the first answer (cold: nothing
cached, the facets of the filter fields read) and the median and worst of the rest are shown.
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
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

from hypertool.instrumentation import Score  # noqa: E402
from hypertool.instrumentation.personas import builtin_personas  # noqa: E402
from hypertool.instrumentation.store import StoreExporter, TraceStore  # noqa: E402
from hypertool.instrumentation.store.overview import Budgets  # noqa: E402
from hypertool.instrumentation.ui.app import create_app  # noqa: E402
from store import PROMPTS, seed  # noqa: E402  (benchmarks/store.py: the same seeding)

TARGET_MS = 300.0
PROMPTED = 0.5


def add_quality(path: Path, batch: int = 5_000) -> int:
    """Score the seeded store (``relevance`` on each generation made from a prompt,
    ``quality_gate`` on each workflow span) and record 3 texts of each prompt; returns how many
    scores.
    """
    rng = random.Random(5)
    with sqlite3.connect(path) as connection:  # what to score: read once, before the writer
        generations = connection.execute(
            "SELECT span_id, trace_id, persona, chatmode, prompt_version, start_ns "
            "FROM observations WHERE prompt_name IS NOT NULL"
        ).fetchall()
        roots = connection.execute(
            "SELECT span_id, trace_id, persona, chatmode, start_ns FROM observations "
            "WHERE type = 'span' AND parent_id IS NULL"
        ).fetchall()
    scores = [
        Score(
            f"r{span_id}",
            trace_id,
            "relevance",
            round(rng.betavariate(5 + version, 3), 3),
            "NUMERIC",
            start + 10**9,
            observation_id=span_id,
            persona=persona,
            chatmode=mode,
        )
        for span_id, trace_id, persona, mode, version, start in generations
    ]
    scores += [
        Score(
            f"g{span_id}",
            trace_id,
            "quality_gate",
            float(rng.random() < 0.9),
            "BOOLEAN",
            start + 61 * 10**9,
            observation_id=span_id,
            persona=persona,
            chatmode=mode,
        )
        for span_id, trace_id, persona, mode, start in roots
    ]
    exporter = StoreExporter(path, retention_days=0)
    for at in range(0, len(scores), batch):
        assert exporter.export_scores(scores[at : at + batch]) == 0
    exporter.shutdown()
    with TraceStore(path, retention_days=0) as store:
        for name in PROMPTS:
            for version in range(1, 4):
                text = f"Write the {name} answer.\nBe precise.\n" + "Check it. " * version
                store.record_prompt_version(name, "text", text, "{}")
    return len(scores)


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
        "/prompts",
        "/prompts?range=7d",
        "/prompts?persona=backend-engineer&score=relevance&min=50",
        f"/prompts/{PROMPTS[1]}",
        f"/prompts/{PROMPTS[1]}?a=1&b=3&persona=devops-engineer",
        "/prompts?format=csv",
        "/scores",
        "/scores?name=relevance&persona=devops-engineer&page=20",
        "/scores?range=7d&format=json",
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
        seconds = seed(
            path,
            args.generations,
            streamed=1 / 3,
            prompt_chars=args.prompt_chars,
            prompted=PROMPTED,
        )
        scored = add_quality(path)
        size = sum(p.stat().st_size for p in path.parent.iterdir())
        print(
            f"seeded {args.generations:,} generations ({args.prompt_chars:,}-character prompts, "
            f"a third streamed, {PROMPTED:.0%} from managed prompts) and {scored:,} scores in "
            f"{seconds:.1f} s, {size / 1e6:.0f} MB"
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
