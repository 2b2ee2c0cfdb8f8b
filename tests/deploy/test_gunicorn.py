"""A real gunicorn (``--preload``, 2 sync workers, prometheus_client's multiprocess mode): calls
served by both workers reach Langfuse and the store once each, and ``/metrics`` aggregates
every worker's metrics."""

from __future__ import annotations

import collections
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from deploy.conftest import HERE, clean_env, only_once, received_tags, stored_tags
from support.loopback import LoopbackOTLP

WORKERS = 2
ROUND = 20
MAX_ROUNDS = 10
START_TIMEOUT_S = 30
TOKENS_PER_CALL = 7
BUDGET = 5000  # backend-engineer's tokenBudget


class Gunicorn:
    """gunicorn in a subprocess; its log is read by a thread (never a blocking read)."""

    def __init__(self, env: dict[str, str]) -> None:
        command = [sys.executable, "-m", "gunicorn", "--preload", "--workers", str(WORKERS)]
        command += ["--bind", "127.0.0.1:0", "--config", str(HERE / "gunicorn_conf.py")]
        command += ["--chdir", str(HERE), "--graceful-timeout", "20", "gunicorn_app:app"]
        self.process = subprocess.Popen(
            command,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.log: list[str] = []
        self._changed = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            with self._changed:
                self.log.append(line)
                self._changed.notify_all()

    def wait_log(self, pattern: str, count: int = 1, timeout: float = START_TIMEOUT_S) -> list[str]:
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [m.group(1) for line in self.log if (m := re.search(pattern, line))]
                if len(found) >= count:
                    return found
                remaining = deadline - time.monotonic()
                assert remaining > 0 and self.process.poll() is None, "".join(self.log)[-3000:]
                self._changed.wait(min(remaining, 0.1))

    def stop(self, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # graceful: workers finish and exit
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
            raise


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return str(response.read().decode())


def test_gunicorn_workers_deliver_and_aggregate_metrics(
    receiver: LoopbackOTLP, store: Path, tmp_path: Path
) -> None:
    multiproc = tmp_path / "prometheus-multiproc"
    multiproc.mkdir()
    server = Gunicorn(clean_env(receiver, store, PROMETHEUS_MULTIPROC_DIR=str(multiproc)))
    try:
        port = server.wait_log(r"Listening at: http://127\.0\.0\.1:(\d+)")[0]
        server.wait_log(r"Booting worker with pid: (\d+)", count=WORKERS)
        base = f"http://127.0.0.1:{port}"
        served: dict[str, str] = {}  # tag -> worker pid
        with ThreadPoolExecutor(4) as pool:
            for round_ in range(MAX_ROUNDS):
                tags = [f"web-{round_}-{i}" for i in range(ROUND)]
                pids = pool.map(lambda tag: get(f"{base}/call?tag={tag}"), tags)
                served.update(zip(tags, pids, strict=True))
                if len(set(served.values())) >= WORKERS:
                    break
        per_worker = collections.Counter(served.values())
        assert len(per_worker) == WORKERS, per_worker  # both workers served calls
        families = {f.name: f for f in text_string_to_metric_families(get(f"{base}/metrics"))}
    finally:
        code = server.stop()
    log = "".join(server.log)
    print(f"\ngunicorn: {len(served)} calls over workers {dict(per_worker)}")
    assert code == 0, log[-3000:]

    # Counters are summed over the workers.
    requests = {
        (s.labels["persona"], s.labels["status"]): s.value
        for s in families["hypertool_llm_requests"].samples
        if s.name == "hypertool_llm_requests_total"
    }
    assert requests == {("backend-engineer", "success"): len(served)}
    tokens = [
        s.value
        for s in families["hypertool_persona_tokens_used"].samples
        if s.name == "hypertool_persona_tokens_used_total"
    ]
    assert tokens == [TOKENS_PER_CALL * len(served)]
    # The remaining budget is one series (livemin): the lowest any live worker saw.
    remaining = [
        s
        for s in families["hypertool_persona_token_budget_remaining"].samples
        if s.labels.get("persona") == "backend-engineer"
    ]
    assert len(remaining) == 1, remaining
    assert remaining[0].value == BUDGET - TOKENS_PER_CALL * max(per_worker.values())

    # Every call reached Langfuse and the store once, delivered by its worker at exit.
    expected = {f"gen:{tag}" for tag in served}
    arrived = received_tags(receiver)
    assert set(arrived) == expected, sorted(expected ^ set(arrived))[:10]
    assert only_once(arrived) == []
    assert set(stored_tags(store)) == expected
    assert "could not be delivered" not in log
