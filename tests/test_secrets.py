"""Secrets and privacy: nothing secret leaves the process, the Langfuse key is never shown,
local files and ports are private by default, metrics labels stay bounded.

The leak test plants one secret of each family (and a value a user ``mask=`` hides) in
prompts, message lists, completions, metadata of calls, traces and spans, outputs and error
messages, then searches *everything* that arrived — every request body to a loopback Langfuse
endpoint and to a loopback OTLP collector, decompressed, and the raw bytes of the SQLite store
and its WAL — for each of them. Plain marker text planted beside them must arrive, so the
search is not vacuous.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from hypertool.instrumentation import (
    LangfuseIntegration,
    ObservableLLM,
    PersonaMetricsCollector,
    start_metrics_server,
)
from hypertool.instrumentation import semconv as attr
from hypertool.instrumentation.cli import main as hypertool_main
from hypertool.instrumentation.metrics import DEFAULT_MAX_LABEL_VALUES, OTHER
from hypertool.instrumentation.personas import PersonaRegistry
from support.loopback import LoopbackOTLP

# One planted secret per family; random parts so no test can pass by a fixed string.
_R = uuid.uuid4().hex
PLANTED = {
    "openai": f"sk-{_R[:24]}ABCD",
    "openai-project": f"sk-proj-{_R[:20]}_x-{_R[20:30]}",
    "anthropic": f"sk-ant-api03-{_R[:22]}-{_R[22:30]}AA",
    "langfuse-secret": f"sk-lf-{_R[:8]}-{_R[8:12]}-{_R[12:16]}-{_R[16:28]}",
    "langfuse-public": f"pk-lf-{_R[:8]}-{_R[8:12]}",
    "aws": f"AKIA{_R[:16].upper()}",
    "github": f"ghp_{_R[:32]}abcd",
    "github-pat": f"github_pat_{_R[:22]}_{_R[:30]}",
    "bearer": f"tok{_R[:20]}.{_R[20:28]}",  # planted as "Authorization: Bearer <this>"
    "jwt": f"eyJ{_R[:10]}.eyJ{_R[10:20]}.{_R[20:32]}sig",
    "password": f"hunter2-{_R[:10]}",  # planted as "password=<this>"
}
USER_SECRET = f"ACME-CUSTOMER-{_R[:6].upper()}"  # hidden by the user's mask= function
VISIBLE = f"visible-marker-{_R[:8]}"  # must arrive: proves the search is not vacuous
LANGFUSE_PUBLIC = f"pk-lf-test-{_R[:8]}"
LANGFUSE_SECRET = f"sk-lf-test-secret-{_R[8:24]}"


def user_mask(text: str) -> str:
    return text.replace(USER_SECRET, "[CUSTOMER]")


def planted_text() -> str:
    """All secrets in one text, as they show up in prompts, logs and errors."""
    return (
        f"{VISIBLE} key={PLANTED['openai']} proj {PLANTED['openai-project']} "
        f"anthropic {PLANTED['anthropic']}; langfuse {PLANTED['langfuse-secret']} "
        f"{PLANTED['langfuse-public']}, aws {PLANTED['aws']} gh {PLANTED['github']} "
        f"{PLANTED['github-pat']} Authorization: Bearer {PLANTED['bearer']} "
        f"jwt {PLANTED['jwt']} password={PLANTED['password']} customer {USER_SECRET}"
    )


def secrets() -> dict[str, str]:
    return {**PLANTED, "user-mask": USER_SECRET}


class ProviderError(Exception):
    """What a provider raises when a key is wrong: it quotes the key."""


def leaky_llm(prompt: Any, fail: bool = False) -> dict[str, Any]:
    if fail:
        raise ProviderError(f"Incorrect API key provided: {PLANTED['openai']} ({planted_text()})")
    return {
        "choices": [{"message": {"content": f"completion {planted_text()}"}}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 20},
    }


def leak_everywhere(integration: LangfuseIntegration) -> None:
    """Secrets in every field the library records."""
    llm = ObservableLLM(leaky_llm, model="gpt-4", langfuse=integration)
    metadata = {"note": planted_text(), "nested": {"token": PLANTED["github"]}}
    llm(f"prompt {planted_text()}", persona="backend-engineer", metadata=metadata)
    messages = [
        {"role": "system", "content": f"use {PLANTED['anthropic']}"},
        {"role": "user", "content": planted_text()},
    ]
    llm(messages, persona="backend-engineer")
    with pytest.raises(ProviderError):
        llm(f"failing {planted_text()}", fail=True, persona="backend-engineer")
    trace = integration.start_trace("secret-trace", "devops-engineer", "debugging", metadata)
    with integration.start_span(trace, "stage", metadata=metadata) as span:
        llm(planted_text(), trace=trace, metadata=metadata)
        integration.create_generation(
            trace,
            "explicit",
            "gpt-4",
            prompt=planted_text(),
            completion={"text": planted_text()},
            metadata=metadata,
            parent=span,
            error=f"failed with {planted_text()}",
        )
    failed = integration.start_span(trace, "failing-stage")
    integration.end_span(failed, status="error", error=ProviderError(planted_text()))
    integration.end_trace(trace, status="error", error=planted_text(), output=planted_text())


def assert_no_secret(data: bytes, where: str) -> None:
    for family, secret in secrets().items():
        assert secret.encode() not in data, f"{family} secret reached {where}"
        # Nor the secret's distinctive tail (a half-masked key is still a leak).
        assert secret[-10:].encode() not in data, f"part of the {family} secret reached {where}"


@pytest.fixture
def receivers() -> Iterator[tuple[LoopbackOTLP, LoopbackOTLP]]:
    with LoopbackOTLP(200) as langfuse, LoopbackOTLP(200) as collector:
        yield langfuse, collector


def test_no_secret_reaches_langfuse_otlp_or_the_store(
    receivers: tuple[LoopbackOTLP, LoopbackOTLP], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    langfuse_rx, otlp_rx = receivers
    store = tmp_path / "store" / "traces.db"
    monkeypatch.setenv("HYPERTOOL_STORE", str(store))
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"{otlp_rx.url}/v1/traces")
    integration = LangfuseIntegration(
        LANGFUSE_PUBLIC,
        LANGFUSE_SECRET,
        host=langfuse_rx.url,
        mask=user_mask,
        metrics_registry=CollectorRegistry(),
    )
    assert set(integration.sinks) == {"langfuse", "otlp", "store"}
    leak_everywhere(integration)
    assert integration.flush(timeout=10) is True
    assert integration.shutdown(timeout=5) is True

    for name, receiver in (("Langfuse", langfuse_rx), ("the OTLP collector", otlp_rx)):
        requests = receiver.trace_requests()
        assert requests, f"nothing reached {name}"
        payload = b"".join(request.payload for request in requests)
        assert VISIBLE.encode() in payload, f"{name} got no planted text: the test is vacuous"
        assert b"[REDACTED]" in payload and b"[CUSTOMER]" in payload
        assert_no_secret(payload, name)
        spans = [span for request in requests for span in request.spans()]
        # 3 calls on their own, 1 call and 1 generation in the trace, 2 spans, the trace.
        assert len(spans) == 8
        statuses = [s.status_message for s in spans if s.status_message]
        assert statuses and all(VISIBLE in m or "[REDACTED]" in m for m in statuses)
        headers = json.dumps([request.headers for request in requests]).encode()
        assert_no_secret(headers, f"{name} (headers)")

    raw = b"".join(
        path.read_bytes()
        for path in (store, Path(f"{store}-wal"), Path(f"{store}-shm"))
        if path.exists()
    )
    assert VISIBLE.encode() in raw, "the store holds no planted text: the test is vacuous"
    assert_no_secret(raw, "the store file")


def test_model_parameters_are_masked_too(tmp_path: Path) -> None:
    memory = InMemorySpanExporter()
    integration = LangfuseIntegration(exporters={"memory": memory})
    llm = ObservableLLM(
        lambda p: "ok",
        model="gpt-4",
        langfuse=integration,
        model_parameters={"temperature": 0.2, "api_key": PLANTED["openai"]},
    )
    llm("hello", persona="backend-engineer")
    assert integration.flush(timeout=5)
    (span,) = memory.get_finished_spans()
    assert_no_secret(json.dumps(dict(span.attributes or {})).encode(), "model parameters")


# -- the Langfuse secret key ---------------------------------------------------------------
@pytest.fixture
def library_logger() -> Iterator[logging.Logger]:
    """LANGFUSE_DEBUG adds a stderr handler and sets DEBUG on the library's logger for the
    process: put both back, so later tests do not write to this test's captured stderr."""
    logger = logging.getLogger("hypertool.instrumentation")
    level, handlers = logger.level, list(logger.handlers)
    yield logger
    logger.setLevel(level)
    for handler in logger.handlers:
        if handler not in handlers:
            logger.removeHandler(handler)


def test_secret_key_never_in_logs_reprs_or_exceptions(
    library_logger: logging.Logger,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger: ours, OpenTelemetry's, urllib3's
    monkeypatch.setenv("LANGFUSE_DEBUG", "true")
    monkeypatch.setenv("LANGFUSE_PUBLIC_KEY", LANGFUSE_PUBLIC)
    monkeypatch.setenv("LANGFUSE_SECRET_KEY", LANGFUSE_SECRET)
    texts: list[str] = []
    with LoopbackOTLP(401) as rejecting:
        monkeypatch.setenv("LANGFUSE_HOST", rejecting.url)
        integration = LangfuseIntegration(export_timeout=1, metrics_registry=CollectorRegistry())
        assert integration.settings.debug and integration.enabled
        texts += [repr(integration), repr(integration.settings), str(integration.settings)]
        llm = ObservableLLM(leaky_llm, model="gpt-4", langfuse=integration)
        llm("hello", persona="backend-engineer")
        with pytest.raises(ProviderError) as raised:
            llm("hello", fail=True, persona="backend-engineer")
        texts.append(str(raised.value))
        integration.flush(timeout=3)
        assert rejecting.trace_requests(), "nothing was sent: the rejection path was not run"
        integration.shutdown(timeout=1)
    # A refused connection and a timeout log tracebacks at debug: they must not hold it either.
    refused = LangfuseIntegration(
        host="http://127.0.0.1:9", export_timeout=0.5, metrics_registry=CollectorRegistry()
    )
    llm = ObservableLLM(leaky_llm, model="gpt-4", langfuse=refused)
    llm("hello", persona="backend-engineer")
    refused.flush(timeout=2)
    refused.shutdown(timeout=0.5)
    # Configuration errors raised while the key is set.
    for bad in ({"host": "ftp://nowhere"}, {"export_timeout": -1}):
        with pytest.raises(ValueError) as error:
            LangfuseIntegration(**bad)  # type: ignore[arg-type]
        texts.append(str(error.value))

    records = caplog.records
    assert any(r.levelno == logging.DEBUG for r in records), "debug logging was not on"
    assert any("Langfuse rejected the keys" in r.getMessage() for r in records)
    for record in records:
        texts.append(record.getMessage())
        if record.exc_info:
            texts.append(logging.Formatter().formatException(record.exc_info))
    out, err = capfd.readouterr()  # LANGFUSE_DEBUG's own stderr handler
    texts += [out, err]
    assert "hypertool.instrumentation" in err, "the debug handler wrote nothing"
    everything = "\n".join(texts)
    assert LANGFUSE_SECRET not in everything
    assert LANGFUSE_SECRET[8:] not in everything  # not even past the 8 characters shown
    assert LANGFUSE_SECRET[:8] in repr(integration)  # what the repr does show


@pytest.mark.parametrize("mode", [200, 401])
def test_secret_key_never_in_doctor_output(
    mode: int,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("LANGFUSE_PUBLIC_KEY", LANGFUSE_PUBLIC)
    monkeypatch.setenv("LANGFUSE_SECRET_KEY", LANGFUSE_SECRET)
    monkeypatch.setenv("HYPERTOOL_STORE", str(tmp_path / "traces.db"))
    outputs = []
    with LoopbackOTLP(mode) as receiver:
        monkeypatch.setenv("LANGFUSE_HOST", receiver.url)
        for argv in (["doctor"], ["doctor", "--json"], ["doctor", "--online", "--json"]):
            code = hypertool_main(argv)
            out, err = capsys.readouterr()
            outputs.append(out + err)
            assert code == (1 if mode == 401 and "--online" in argv else 0), out + err
        asked = [r for r in receiver.requests if r.path.startswith("/api/public/projects")]
    assert asked, "--online did not ask the host"
    report = json.loads(outputs[2])
    assert report["online"]["result"] == ("accepted" if mode == 200 else "rejected")
    everything = "\n".join(outputs)
    assert LANGFUSE_PUBLIC in everything  # the public key is shown; the secret is not
    assert LANGFUSE_SECRET not in everything
    assert LANGFUSE_SECRET[8:] not in everything


# -- local files and ports -----------------------------------------------------------------
def test_store_file_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    store = tmp_path / "new-dir" / "traces.db"
    previous = os.umask(0)  # a permissive umask: the library must not rely on the user's
    try:
        from hypertool.instrumentation.store import StoreExporter

        integration = LangfuseIntegration(exporters={"store": StoreExporter(store)})
        ObservableLLM(lambda p: "ok", model="gpt-4", langfuse=integration)(
            "hello", persona="backend-engineer"
        )
        assert integration.flush(timeout=5)
        files = [p for p in (store, Path(f"{store}-wal"), Path(f"{store}-shm")) if p.exists()]
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in files}
        integration.shutdown(timeout=2)
    finally:
        os.umask(previous)
    assert store.name in modes
    assert modes[store.name] == 0o600, modes
    # SQLite gives its WAL and shared-memory files the database file's permissions.
    assert all(mode & 0o077 == 0 for mode in modes.values()), modes


def test_metrics_server_binds_loopback_by_default() -> None:
    server = start_metrics_server(0, registry=CollectorRegistry())
    try:
        host, port = server.server_address[:2]
        assert host == "127.0.0.1"
        assert port > 0
    finally:
        server.shutdown()
        server.server_close()


def test_metrics_server_binds_elsewhere_only_when_told() -> None:
    server = start_metrics_server(0, addr="0.0.0.0", registry=CollectorRegistry())
    try:
        assert server.server_address[0] == "0.0.0.0"
    finally:
        server.shutdown()
        server.server_close()


# -- label cardinality ---------------------------------------------------------------------
def label_values(registry: CollectorRegistry, metric: str, label: str) -> dict[str, float]:
    values: dict[str, float] = {}
    for family in registry.collect():
        for sample in family.samples:
            if sample.name == metric and label in sample.labels:
                name = sample.labels[label]
                values[name] = values.get(name, 0.0) + sample.value
    return values


@pytest.mark.parametrize("limit", [5, DEFAULT_MAX_LABEL_VALUES])
def test_label_cardinality_is_bounded_but_traces_keep_the_real_persona(limit: int) -> None:
    assert DEFAULT_MAX_LABEL_VALUES == 200  # the number the README documents
    extra = 7
    registry = CollectorRegistry()
    memory = InMemorySpanExporter()
    # No persona definitions: the built-in ones would take label values of their own (their
    # budgets are published), and this test counts exactly.
    integration = LangfuseIntegration(
        exporters={"memory": memory}, metrics_registry=registry, personas=PersonaRegistry()
    )
    collector = PersonaMetricsCollector(
        registry, personas=PersonaRegistry(), max_label_values=limit
    ).attach(integration)
    llm = ObservableLLM(
        lambda p: {"usage": {"prompt_tokens": 1, "completion_tokens": 1}},
        model="gpt-4",
        langfuse=integration,
    )
    personas = [f"persona-{i:04d}" for i in range(limit + extra)]
    models = [f"model-{i:04d}" for i in range(limit + extra)]
    for persona, model in zip(personas, models, strict=True):
        trace = integration.start_trace("t", persona)
        llm("hello", persona=persona, trace=trace)
        integration.create_generation(trace, "g", model, "p", "c", persona=persona)
        integration.end_trace(trace)
    assert integration.flush(timeout=10)
    integration.drain()

    requests = label_values(registry, "hypertool_llm_requests_total", "persona")
    # Each call counts under its persona (two calls each), up to the limit; the rest as other.
    assert len(requests) == limit + 1
    assert requests[OTHER] == 2 * extra
    assert all(requests[p] == 2 for p in personas[:limit])
    assert sum(requests.values()) == 2 * len(personas)
    by_model = label_values(registry, "hypertool_llm_requests_total", "model")
    assert len(by_model) <= limit + 1 and OTHER in by_model
    tokens = label_values(registry, "hypertool_persona_tokens_used_total", "persona")
    assert set(tokens) <= {*personas[:limit], OTHER}

    # Traces are never bucketed: every span keeps the real persona and model.
    spans = memory.get_finished_spans()
    users = {span.attributes.get(attr.USER_ID) for span in spans if span.attributes}
    assert users == set(personas)
    exported_models = {span.attributes.get(attr.MODEL) for span in spans if span.attributes}
    assert set(models) <= exported_models
    assert OTHER not in users
    integration.remove_listener(collector.record_generation)
    integration.shutdown(timeout=1)


def test_label_cardinality_with_the_built_in_personas_stays_bounded() -> None:
    """With the default collector (built-in personas published) the number of distinct label
    values per label never passes the limit plus ``other``."""
    registry = CollectorRegistry()
    integration = LangfuseIntegration(exporters={}, metrics_registry=registry)
    PersonaMetricsCollector(registry, max_label_values=10).attach(integration)
    for i in range(40):
        trace = integration.start_trace("t", f"many-{i}")
        integration.create_generation(trace, "g", f"m-{i}", "p", "c")
        integration.end_trace(trace)
    for metric, label in (
        ("hypertool_llm_requests_total", "persona"),
        ("hypertool_llm_requests_total", "model"),
        ("hypertool_persona_tokens_used_total", "persona"),
        ("hypertool_persona_token_budget_remaining", "persona"),
    ):
        values = label_values(registry, metric, label)
        assert 0 < len(values) <= 11, (metric, label, sorted(values))
    assert OTHER in label_values(registry, "hypertool_llm_requests_total", "persona")
    integration.shutdown(timeout=1)
