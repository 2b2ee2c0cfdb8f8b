"""The guide's API: :class:`LangfuseIntegration` and the process default integration."""

from __future__ import annotations

import atexit
import os
import random
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from typing import Any, cast

from opentelemetry import trace as trace_api
from opentelemetry.context import Context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter
from prometheus_client import REGISTRY, CollectorRegistry

from hypertool.instrumentation import _attributes as attr
from hypertool.instrumentation._config import Settings, _environment, load_settings, mask_secret
from hypertool.instrumentation._deferred import DeferredWork
from hypertool.instrumentation._generation_recording import GenerationRecording
from hypertool.instrumentation._log import enable_debug_logging, forget_warnings, logger, warn_once
from hypertool.instrumentation._pipeline import Pipeline
from hypertool.instrumentation._records import GenerationListener
from hypertool.instrumentation._sinks import (
    console_exporter,
    langfuse_exporter,
    otlp_configured,
    otlp_exporter,
)
from hypertool.instrumentation._spans import finish, metadata_attributes
from hypertool.instrumentation._usage import text_of
from hypertool.instrumentation.budget import BudgetLedger, History, Period, Policy
from hypertool.instrumentation.contexts import SpanContext, TraceContext
from hypertool.instrumentation.masking import MaskFunction, chain
from hypertool.instrumentation.metrics import dropped_spans_counter
from hypertool.instrumentation.personas import (
    PersonaRegistry,
    builtin_personas,
    canonical_name,
    load_personas,
)
from hypertool.instrumentation.pricing import PriceTable, load_prices
from hypertool.instrumentation.store import StoreError, StoreExporter, store_path_from_env


class LangfuseIntegration(GenerationRecording):
    """Persona-aware tracing to Langfuse (and other sinks) over OpenTelemetry.

    Settings come from the arguments, else ``LANGFUSE_*`` / ``HYPERTOOL_*`` environment
    variables (a ``.env`` in the working directory is read), else defaults. Without keys,
    Langfuse is off and every method still works, doing nothing visible; one warning is logged
    per process.

    Args:
        public_key: Langfuse public key (``LANGFUSE_PUBLIC_KEY``).
        secret_key: Langfuse secret key (``LANGFUSE_SECRET_KEY``).
        host: Langfuse URL (``LANGFUSE_HOST``, default ``https://cloud.langfuse.com``).
        debug: Log debug output of this library to stderr (``LANGFUSE_DEBUG``).
        project_id: Langfuse project id, for exact trace URLs (``LANGFUSE_PROJECT_ID``).
        personas: Persona definitions (budgets); the built-in ones, plus the files in
            ``HYPERTOOL_PERSONAS_DIR``, by default.
        prices: Model prices; the built-in table plus ``HYPERTOOL_PRICES`` by default.
        exporters: Extra sinks, name → OpenTelemetry span exporter.
        tracer_provider: The application's own provider: our spans are made with it, so they
            also reach the application's processors; our sinks take only our spans from it.
            By default a provider of our own is built (the global one is never touched).
        metrics_registry: Prometheus registry where spans a sink could not deliver are counted
            (``hypertool_export_dropped_spans_total{sink}``); the default registry when None.
        mask: Applied to prompts, completions, metadata and error messages after the built-in
            masking of API keys, tokens and passwords, before anything leaves the process.
        export_timeout: Seconds one export request may take (``HYPERTOOL_EXPORT_TIMEOUT``).
        exit_timeout: Seconds process exit may wait for delivery (``HYPERTOOL_EXIT_TIMEOUT``).
        queue_size: Spans held per sink while it is slow (``HYPERTOOL_QUEUE_SIZE``).

    """

    def __init__(
        self,
        public_key: str | None = None,
        secret_key: str | None = None,
        host: str | None = None,
        *,
        debug: bool | None = None,
        project_id: str | None = None,
        personas: PersonaRegistry | None = None,
        prices: PriceTable | None = None,
        exporters: Mapping[str, SpanExporter] | None = None,
        mask: MaskFunction | None = None,
        metrics_registry: CollectorRegistry | None = None,
        tracer_provider: TracerProvider | None = None,
        export_timeout: float | None = None,
        exit_timeout: float | None = None,
        queue_size: int | None = None,
    ) -> None:
        self.settings: Settings = load_settings(
            public_key=public_key,
            secret_key=secret_key,
            host=host,
            debug=debug,
            project_id=project_id,
            export_timeout=export_timeout,
            exit_timeout=exit_timeout,
            queue_size=queue_size,
        )
        if self.settings.debug:
            enable_debug_logging()
        if personas is None:
            personas = builtin_personas()
            if self.settings.personas_dir:
                personas = personas.merged(load_personas(self.settings.personas_dir))
        self.prices = prices if prices is not None else PriceTable()
        if prices is None and self.settings.prices_file:
            self.prices = self.prices.with_overrides(load_prices(self.settings.prices_file))
        self._personas = personas
        self._deferred = DeferredWork(self.settings.queue_size)
        self._listeners: list[GenerationListener] = []
        self._mask = chain(mask)
        sinks, history = self._build_sinks(exporters or {})
        self.metrics_registry = metrics_registry if metrics_registry is not None else REGISTRY
        self._pipeline: Pipeline | None = (
            Pipeline(
                sinks,
                queue_size=self.settings.queue_size,
                exit_timeout=self.settings.exit_timeout,
                on_drop=(self._count_dropped,),
                tracer_provider=tracer_provider,
            )
            if sinks
            else None
        )
        self._tracer = self._pipeline.tracer if self._pipeline else None
        self.budgets = BudgetLedger(
            self._personas,
            period=cast(Period, self.settings.budget_period),
            policy=cast(Policy, self.settings.budget_policy),
            history=history,
            sync=self.drain,
        )
        ref = weakref.ref(self)
        # Weakly referenced: a bound method would keep every integration alive until exit.
        self._atexit = lambda: (i := ref()) is not None and i.shutdown()
        atexit.register(self._atexit)

    def _build_sinks(
        self, exporters: Mapping[str, SpanExporter]
    ) -> tuple[dict[str, SpanExporter], History | None]:
        """The sinks from the settings and ``exporters``, and the store's usage history."""
        sinks: dict[str, SpanExporter] = {}
        self.enabled = False
        if self.settings.langfuse_configured:
            try:
                sinks["langfuse"] = langfuse_exporter(self.settings)
                self.enabled = True
            except Exception as exc:
                warn_once(
                    "init-failed",
                    "Failed to initialize Langfuse client for %s: %s; tracing to Langfuse is off",
                    self.settings.host,
                    exc,
                )
        if otlp_configured(os.environ):
            try:
                sinks["otlp"] = otlp_exporter(self.settings.export_timeout)
            except Exception as exc:
                warn_once("otlp-failed", "OTLP export is off: %s", exc)
        if self.settings.console:
            sinks["console"] = console_exporter()
        history = None
        if "store" not in exporters:
            store = _open_store()
            if store is not None:
                sinks["store"] = store
                history = store.usage_since
        sinks.update(exporters)
        if not self.settings.langfuse_configured:
            others = ", ".join(sorted(sinks)) or "none"
            warn_once(
                "not-configured",
                "Langfuse not configured (LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY unset): "
                "tracing to Langfuse is off (other sinks: %s)",
                others,
            )
        return sinks, history

    # -- properties ------------------------------------------------------------------------
    @property
    def host(self) -> str:
        """The Langfuse host traces go to."""
        return self.settings.host

    @property
    def recording(self) -> bool:
        """True when at least one sink receives spans."""
        return self._tracer is not None

    @property
    def sinks(self) -> list[str]:
        """Names of the sinks spans go to."""
        return self._pipeline.sinks if self._pipeline else []

    @property
    def pipeline(self) -> Pipeline | None:
        """The span pipeline (None when no sink is on)."""
        return self._pipeline

    def __repr__(self) -> str:
        return (
            f"LangfuseIntegration(host={self.host!r}, enabled={self.enabled}, "
            f"public_key={self.settings.public_key!r}, "
            f"secret_key={mask_secret(self.settings.secret_key)!r}, sinks={self.sinks})"
        )

    def _count_dropped(self, sink: str, count: int) -> None:
        dropped_spans_counter(self.metrics_registry).labels(sink).inc(count)

    def add_listener(self, listener: GenerationListener) -> None:
        """Tell ``listener`` of every generation recorded from now on (metrics, stores)."""
        self._listeners.append(listener)

    def remove_listener(self, listener: GenerationListener) -> None:
        """Stop telling ``listener`` of generations."""
        self._listeners.remove(listener)

    def trace_url(self, trace_id: str) -> str | None:
        """The trace's page in the Langfuse UI, built without a network call."""
        if not self.enabled:
            return None
        if self.settings.project_id:
            return f"{self.host}/project/{self.settings.project_id}/traces/{trace_id}"
        # Langfuse redirects /trace/<id> to the trace's project page.
        return f"{self.host}/trace/{trace_id}"

    # -- traces ----------------------------------------------------------------------------
    def start_trace(
        self,
        name: str,
        persona: str,
        chatmode: str = "",
        metadata: Mapping[str, Any] | None = None,
        *,
        session_id: str | None = None,
        tags: list[str] | None = None,
    ) -> TraceContext:
        """Start a trace whose Langfuse user is ``persona``; the chatmode is a tag and metadata."""
        try:
            return self._start_trace(name, persona, chatmode, metadata, session_id, tags)
        except Exception:
            logger.debug("start_trace failed", exc_info=True)
            return self._dead_trace(name, persona, chatmode, metadata)

    def _start_trace(
        self,
        name: str,
        persona: str,
        chatmode: str,
        metadata: Mapping[str, Any] | None,
        session_id: str | None,
        tags: list[str] | None,
    ) -> TraceContext:
        persona = canonical_name(persona)
        meta = dict(metadata or {})
        if self._tracer is None:
            return self._dead_trace(name, persona, chatmode, meta)
        trace_attrs: dict[str, Any] = {attr.TRACE_NAME: name}
        all_tags = [chatmode, *(tags or [])] if chatmode else list(tags or [])
        if all_tags:
            trace_attrs[attr.TRACE_TAGS] = all_tags
        if session_id:
            trace_attrs[attr.SESSION_ID] = session_id
        root_attrs = {
            **trace_attrs,
            attr.USER_ID: persona,
            attr.PERSONA: persona,
            attr.CHATMODE: chatmode,
            attr.OBSERVATION_TYPE: attr.TYPE_SPAN,
            **metadata_attributes(attr.TRACE_METADATA, {"chatmode": chatmode, **meta}, self._clean),
        }
        # An empty context: a trace's root must not adopt the application's current span.
        span = self._tracer.start_span(name, context=Context(), attributes=root_attrs)
        trace_id = format(span.get_span_context().trace_id, "032x")
        return TraceContext(
            trace_id=trace_id,
            name=name,
            persona=persona,
            chatmode=chatmode,
            metadata=meta,
            url=self.trace_url(trace_id),
            span=span,
            integration=self,
            trace_attributes=trace_attrs,
        )

    def _dead_trace(
        self, name: str, persona: str, chatmode: str, metadata: Mapping[str, Any] | None
    ) -> TraceContext:
        return TraceContext(
            trace_id=format(random.getrandbits(128), "032x"),
            name=name,
            persona=canonical_name(persona),
            chatmode=chatmode,
            metadata=dict(metadata or {}),
            url=None,
            span=trace_api.INVALID_SPAN,
            integration=self,
        )

    def end_trace(
        self,
        trace: TraceContext,
        status: str = "success",
        *,
        error: BaseException | str | None = None,
        output: Any = None,
    ) -> None:
        """End the trace and the spans still open in it; no network I/O happens here.

        ``status="error"`` marks the trace ERROR with ``error`` (or a generic message).
        """
        try:
            if trace.ended:
                return
            with trace._lock:
                open_spans, trace._open_spans = trace._open_spans, []
            for span in open_spans:
                self.end_span(span)
            trace.status = "error" if status == "error" else "success"
            if output is not None:
                trace.span.set_attribute(attr.OUTPUT, self._clean(text_of(output)))
            trace.span.set_attribute(attr.TRACE_STATUS, trace.status)
            finish(
                trace.span,
                trace.status,
                error,
                self._clean,
                default="trace ended with status=error",
            )
        except Exception:
            logger.debug("end_trace failed", exc_info=True)

    # -- spans -----------------------------------------------------------------------------
    def start_span(
        self,
        trace: TraceContext,
        name: str,
        metadata: Mapping[str, Any] | None = None,
        *,
        persona: str | None = None,
        parent: SpanContext | None = None,
        attributes: Mapping[str, Any] | None = None,
    ) -> SpanContext:
        """Start a span under ``trace`` (or under ``parent``); end it or use it with ``with``."""
        resolved = canonical_name(persona) if persona else trace.persona
        meta = dict(metadata or {})
        try:
            if self._tracer is None or trace.span is trace_api.INVALID_SPAN:
                span: trace_api.Span = trace_api.INVALID_SPAN
            else:
                parent_span = parent.span if parent is not None else trace.span
                span = self._tracer.start_span(
                    name,
                    context=trace_api.set_span_in_context(parent_span),
                    attributes={
                        **trace.trace_attributes,
                        attr.USER_ID: resolved,
                        attr.PERSONA: resolved,
                        attr.CHATMODE: trace.chatmode,
                        attr.OBSERVATION_TYPE: attr.TYPE_SPAN,
                        **metadata_attributes(attr.OBSERVATION_METADATA, meta, self._clean),
                        **(attributes or {}),
                    },
                )
            context = SpanContext(
                span_id=format(span.get_span_context().span_id, "016x"),
                trace=trace,
                name=name,
                persona=resolved,
                metadata=meta,
                span=span,
            )
            with trace._lock:
                trace._open_spans.append(context)
            return context
        except Exception:
            logger.debug("start_span failed", exc_info=True)
            return SpanContext("0" * 16, trace, name, resolved, meta, trace_api.INVALID_SPAN)

    def end_span(
        self,
        span: SpanContext,
        *,
        status: str = "success",
        error: BaseException | str | None = None,
    ) -> None:
        """End ``span`` (idempotent); ``status="error"`` marks it ERROR."""
        if span.ended:
            return
        span.ended = True
        try:
            with span.trace._lock:
                if span in span.trace._open_spans:
                    span.trace._open_spans.remove(span)
            finish(span.span, status, error, self._clean, default="span ended with status=error")
        except Exception:
            logger.debug("end_span failed", exc_info=True)

    # -- deferred recording ----------------------------------------------------------------
    def defer(self, fn: Callable[..., None], *args: Any) -> None:
        """Run ``fn(*args)`` soon on the recording thread (now, when the queue is full).

        Instrumented calls hand their outcome over here, so extracting usage and building spans
        never happens on the caller's path. Reads of budgets, :meth:`flush` and process exit
        process what is pending first, so nothing recorded is missed.
        """
        self._deferred.defer(fn, *args)

    def drain(self) -> None:
        """Record everything handed over so far, in this thread."""
        self._deferred.drain()

    # -- delivery --------------------------------------------------------------------------
    def flush(self, timeout: float = 5.0) -> bool:
        """Send what is pending; returns within ``timeout`` seconds even if the endpoint hangs.

        Returns:
            True when everything queued was handed over in time.

        """
        deadline = time.monotonic() + max(timeout, 0.0)
        # Recording what is pending is part of the time allowed: a large backlog must not make
        # flush() overrun it (what is left is recorded by the recorder thread).
        recorded = self._deferred.drain(timeout)
        if self._pipeline is None:
            return recorded
        try:
            return self._pipeline.flush(deadline - time.monotonic()) and recorded
        except Exception:
            logger.debug("flush failed", exc_info=True)
            return False

    def shutdown(self, timeout: float | None = None) -> bool:
        """Record what is pending and flush, for at most ``timeout`` seconds together (the exit
        timeout by default), and stop; runs at process exit too. Generations still unrecorded
        when the time runs out are counted as dropped by every sink.
        """
        atexit.unregister(self._atexit)
        budget = max(self.settings.exit_timeout if timeout is None else timeout, 0.0)
        deadline = time.monotonic() + budget
        recorded = self._deferred.drain(budget)
        left = 0 if recorded else self._deferred.discard()
        if self._pipeline is None:
            return recorded
        self._pipeline.count_dropped(left)
        return self._pipeline.close(deadline - time.monotonic()) and recorded


def _open_store() -> StoreExporter | None:
    """The local store sink (``HYPERTOOL_STORE``), or None when it is off or cannot open."""
    try:
        path = store_path_from_env(_environment())
        return None if path is None else StoreExporter(path)
    except (StoreError, OSError) as exc:
        warn_once("store-failed", "the local trace store is off: %s", exc)
        return None


_default: LangfuseIntegration | None = None
_default_lock = threading.Lock()


def get_langfuse_integration() -> LangfuseIntegration:
    """The process default integration, built from the environment on first use."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = LangfuseIntegration()
    return _default


def set_langfuse_integration(integration: LangfuseIntegration | None) -> None:
    """Make ``integration`` the process default (None: build anew from the environment)."""
    global _default
    with _default_lock:
        _default = integration


def reset_langfuse_integration() -> None:
    """Forget the process default and the once-per-process warnings (for tests)."""
    global _default
    with _default_lock:
        previous, _default = _default, None
    if previous is not None:
        previous.shutdown(0.0)
    forget_warnings()
