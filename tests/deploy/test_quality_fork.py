"""Scores and prompts in a forked child: the child delivers its own scores (once), gets prompts
with a fetch thread of its own, and nothing the parent had pending is sent twice."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from hypertool.instrumentation import LangfuseIntegration
from hypertool.instrumentation.store import TraceStore
from support.loopback import LoopbackOTLP

PROMPTS = "/api/public/v2/prompts/"
SCORES = "/api/public/scores"


@pytest.mark.skipif(sys.platform == "win32", reason="fork")
def test_a_forked_child_scores_and_gets_prompts_on_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "traces.db"
    monkeypatch.setenv("HYPERTOOL_STORE", str(store))
    with LoopbackOTLP() as receiver:
        receiver.route("POST", SCORES, lambda request: (202, {}))
        prompt = {"name": "p", "version": 3, "type": "text", "prompt": "hi", "config": {}}
        receiver.route("GET", PROMPTS, lambda request: (200, {**prompt, "labels": [], "tags": []}))
        langfuse = LangfuseIntegration("pk-lf-fork", "sk-lf-fork", host=receiver.url)
        trace = langfuse.start_trace("t", "backend-engineer")
        assert langfuse.get_prompt("p", cache_ttl_seconds=0).version == 3  # the fetch thread runs
        langfuse.score(trace, "before", 1.0)
        assert langfuse.flush(timeout=10)
        langfuse.score(trace, "pending", 1.0)  # handed over, not yet delivered, at the fork
        pid = os.fork()
        if pid == 0:  # the child: its own queues, threads, sessions and store connection
            code = 1
            try:
                prompt = langfuse.get_prompt("p", cache_ttl_seconds=0)
                langfuse.score(trace, "child", 0.5)
                ok = langfuse.flush(timeout=10)
                langfuse.shutdown(5)
                code = 0 if ok and prompt.version == 3 else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert langfuse.flush(timeout=10)
        langfuse.shutdown(5)
        sent = sorted(item["name"] for body in receiver.json_requests(SCORES) for item in body)
        assert sent == ["before", "child", "pending"]  # each once: "pending" by the parent only
        gets = [r for r in receiver.requests if r.method == "GET" and r.path.startswith(PROMPTS)]
        assert len(gets) == 2  # one from each process
    with TraceStore(store, create=False) as reader:
        assert sorted(row["name"] for row in reader.scores()) == ["before", "child", "pending"]
