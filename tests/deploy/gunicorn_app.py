"""The README's gunicorn setup, as a test app (``gunicorn --preload -c gunicorn_conf.py``).

The integration and the metrics collector are built once, in the master (``--preload``);
every worker inherits them through ``fork``. ``/call?tag=T`` makes one instrumented call and
answers the worker's pid; ``/metrics`` serves every worker's metrics, aggregated.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess

from hypertool.instrumentation import (
    ObservableLLM,
    PersonaMetricsCollector,
    get_langfuse_integration,
)

integration = get_langfuse_integration()
metrics = PersonaMetricsCollector().attach(integration)


def llm(prompt: str) -> dict[str, Any]:
    return {
        "choices": [{"message": {"content": f"echo {prompt}"}}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 4},
    }


observed = ObservableLLM(llm, model="gpt-4", langfuse=integration, persona="backend-engineer")


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    path = environ.get("PATH_INFO", "")
    if path == "/metrics":
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST)])
        return [generate_latest(registry)]
    if path == "/call":
        tag = parse_qs(environ.get("QUERY_STRING", ""))["tag"][0]
        observed(f"gen:{tag}")
        time.sleep(0.02)  # a sync worker is busy meanwhile: the next request goes elsewhere
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(os.getpid()).encode()]
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not found"]
