"""Our attribute keys are langfuse's: checked against the installed SDK, which the package
itself never imports."""

from __future__ import annotations

import json
import subprocess
import sys

from langfuse._client.attributes import LangfuseOtelSpanAttributes

from hypertool.instrumentation import semconv


def test_every_langfuse_key_matches_the_installed_sdk() -> None:
    for name, ours in semconv.LANGFUSE_KEYS.items():
        assert getattr(LangfuseOtelSpanAttributes, name) == ours, name


def test_the_keys_we_send_are_all_checked() -> None:
    langfuse_valued = {
        value
        for name, value in vars(semconv).items()
        if name.isupper()
        and isinstance(value, str)
        and value.startswith(("langfuse.", "user.", "session."))
    }
    assert langfuse_valued == set(semconv.LANGFUSE_KEYS.values())


def test_tracing_never_imports_langfuse_or_changes_httpx_logging() -> None:
    code = """
import json, logging, sys
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from hypertool.instrumentation import LangfuseIntegration, ObservableLLM, WorkflowTracer
exporter = InMemorySpanExporter()
host = "http://127.0.0.1:9"
langfuse = LangfuseIntegration("pk-lf-x", "sk-lf-x", host, exporters={"m": exporter})
llm = ObservableLLM(lambda p: "answer", model="gpt-4o", langfuse=langfuse)
with WorkflowTracer("wf", langfuse=langfuse) as wf:
    with wf.stage("s", "backend-engineer"):
        llm("question")
langfuse.shutdown(3)  # delivers to the memory sink; the Langfuse host is closed
print(json.dumps({
    "langfuse": sorted(m for m in sys.modules if m == "langfuse" or m.startswith("langfuse.")),
    "httpx_handlers": len(logging.getLogger("httpx").handlers),
    "spans": len(exporter.get_finished_spans()),
}))
"""
    env = {"HYPERTOOL_STORE": "off", "PATH": ""}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {"langfuse": [], "httpx_handlers": 0, "spans": 3}
