"""A program that makes instrumented calls and exits without flushing (run as a subprocess).

Usage: ``python exit_child.py CALLS``; Langfuse keys, host and the store come from the
environment. It prints one line ``calls-done <epoch s>`` once its calls returned, then exits
from the end of the script; at the very end of interpreter shutdown (the first atexit hook
registered runs last) it prints ``exit-report <json>`` with how long the library's own exit
work took and what the default Prometheus registry counted as dropped.
"""

from __future__ import annotations

import atexit
import json
import sys
import time

marks: dict[str, float] = {}


def _report() -> None:
    from prometheus_client import REGISTRY

    def dropped(sink: str) -> float:
        value = REGISTRY.get_sample_value("hypertool_export_dropped_spans_total", {"sink": sink})
        return value or 0.0

    ended = time.monotonic()
    print(
        "exit-report "
        + json.dumps(
            {
                "library_exit_s": ended - marks.get("exit_started", ended),
                "dropped_langfuse": dropped("langfuse"),
                "dropped_store": dropped("store"),
            }
        ),
        flush=True,
    )


atexit.register(_report)  # first registered: runs after the integration's own exit hook

from hypertool.instrumentation import LangfuseIntegration, ObservableLLM  # noqa: E402


def llm(prompt: str) -> dict[str, object]:
    return {
        "choices": [{"message": {"content": f"echo {prompt}"}}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 4},
    }


def main(calls: int) -> None:
    integration = LangfuseIntegration()  # keys, host, store: from the environment
    assert integration.enabled and "store" in integration.sinks, integration.sinks
    # Registered after the integration: runs just before its exit hook.
    atexit.register(lambda: marks.__setitem__("exit_started", time.monotonic()))
    observed = ObservableLLM(llm, model="gpt-4", langfuse=integration, persona="exit-tester")
    for i in range(calls):
        observed(f"exit-{i}")
    print(f"calls-done {time.time()}", flush=True)


main(int(sys.argv[1]))
