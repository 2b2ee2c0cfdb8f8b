"""The guide's API: :class:`LangfuseIntegration`, the composition root users call.

It builds its parts from the settings (:mod:`.assembly`) and lends itself to capture
(:mod:`~hypertool.instrumentation.capture`) as the target calls are handed to; how it ends is
:mod:`.lifetime`'s.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from hypertool.instrumentation._config import Settings, load_settings, mask_secret
from hypertool.instrumentation._log import enable_debug_logging, logger
from hypertool.instrumentation.integration import lifetime
from hypertool.instrumentation.integration.assembly import assemble
from hypertool.instrumentation.masking import MaskFunction
from hypertool.instrumentation.model.handles import (
    GenerationContext,
    PendingGeneration,
    SpanContext,
    TraceContext,
)
from hypertool.instrumentation.model.prompts import ManagedPrompt
from hypertool.instrumentation.model.records import (
    GenerationInput,
    GenerationListener,
    Reservation,
)
from hypertool.instrumentation.model.scores import ScoreListener, ScoreSink
from hypertool.instrumentation.model.usage import Usage
from hypertool.instrumentation.personas import PersonaRegistry
from hypertool.instrumentation.pricing import PriceTable
from hypertool.instrumentation.recording.explicit import explicit_generation

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from prometheus_client import CollectorRegistry

    from hypertool.instrumentation.export.pipeline import Pipeline
    from hypertool.instrumentation.quality import Quality


class LangfuseIntegration:
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
        environment: Tracing environment of every observation, e.g. ``production``
            (``LANGFUSE_TRACING_ENVIRONMENT``; Langfuse shows ``default`` without one).
        release: Release of the application, e.g. a version or commit (``LANGFUSE_RELEASE``).
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
        exit_timeout: Seconds process exit may take on our behalf, interpreter teardown
            included (``HYPERTOOL_EXIT_TIMEOUT``).
        queue_size: Spans held per sink while it is slow (``HYPERTOOL_QUEUE_SIZE``).
        score_sinks: Extra score sinks, name → an object with ``export_scores(scores) -> int``
            and ``close_scores()`` (:class:`~hypertool.instrumentation.model.scores.ScoreSink`);
            Langfuse (with keys) and the local store receive scores without it.

    """

    def __init__(
        self,
        public_key: str | None = None,
        secret_key: str | None = None,
        host: str | None = None,
        *,
        debug: bool | None = None,
        project_id: str | None = None,
        environment: str | None = None,
        release: str | None = None,
        personas: PersonaRegistry | None = None,
        prices: PriceTable | None = None,
        exporters: Mapping[str, SpanExporter] | None = None,
        mask: MaskFunction | None = None,
        metrics_registry: CollectorRegistry | None = None,
        tracer_provider: TracerProvider | None = None,
        export_timeout: float | None = None,
        exit_timeout: float | None = None,
        queue_size: int | None = None,
        score_sinks: Mapping[str, ScoreSink] | None = None,
    ) -> None:
        self.settings: Settings = load_settings(
            public_key=public_key,
            secret_key=secret_key,
            host=host,
            debug=debug,
            project_id=project_id,
            environment=environment,
            release=release,
            export_timeout=export_timeout,
            exit_timeout=exit_timeout,
            queue_size=queue_size,
        )
        settings = self.settings
        if settings.debug:
            enable_debug_logging()
        self._metrics_registry = metrics_registry
        parts = assemble(
            settings,
            owner=self,
            trace_url=self.trace_url,
            metrics_registry=self.metrics_registry,
            personas=personas,
            prices=prices,
            exporters=exporters or {},
            mask=mask,
            tracer_provider=tracer_provider,
            score_sinks=score_sinks,
            given_metrics_registry=metrics_registry,
        )
        self.personas = parts.personas
        self.prices = parts.prices
        self.enabled = parts.enabled
        self.budgets = parts.budgets
        self._store = parts.store
        self._deferred = parts.deferred
        self._pipeline = parts.pipeline
        self._generations = parts.generations
        self._traces = parts.traces
        self._quality = parts.quality
        # Collected without shutdown(): finish the pending work elsewhere. The finalizer holds
        # the queue and the pipeline, never the integration (items waiting in the queue refer
        # to it, so it is only collected once they are recorded).
        self._finalizer = weakref.finalize(
            self,
            lifetime.release,
            self._deferred,
            self._pipeline,
            self._quality,
            settings.exit_timeout,
        )
        self._finalizer.atexit = False  # exit shuts live integrations down (lifetime)
        lifetime.track(self)

    # -- properties ------------------------------------------------------------------------
    @property
    def host(self) -> str:
        """The Langfuse host traces go to."""
        return self.settings.host

    @property
    def recording(self) -> bool:
        """True when at least one sink receives spans."""
        return self._pipeline is not None

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

    @property
    def metrics_registry(self) -> CollectorRegistry:
        """The Prometheus registry dropped spans are counted in."""
        if self._metrics_registry is None:
            from prometheus_client import REGISTRY  # not with the package: it is heavy

            return REGISTRY
        return self._metrics_registry

    def add_listener(self, listener: GenerationListener) -> None:
        """Tell ``listener`` of every generation recorded from now on (metrics, stores)."""
        self._generations.listeners.append(listener)

    def remove_listener(self, listener: GenerationListener) -> None:
        """Stop telling ``listener`` of generations."""
        self._generations.listeners.remove(listener)

    def add_score_listener(self, listener: ScoreListener) -> None:
        """Tell ``listener`` of every score recorded from now on (metrics)."""
        self._quality.recorder.listeners.append(listener)

    def remove_score_listener(self, listener: ScoreListener) -> None:
        """Stop telling ``listener`` of scores."""
        self._quality.recorder.listeners.remove(listener)

    @property
    def quality(self) -> Quality:
        """Scores and prompts: their sinks, delivery and prompt manager."""
        return self._quality

    def trace_url(self, trace_id: str) -> str | None:
        """The trace's page in the Langfuse UI, built without a network call."""
        if not self.enabled:
            return None
        if self.settings.project_id:
            return f"{self.host}/project/{self.settings.project_id}/traces/{trace_id}"
        # Langfuse redirects /trace/<id> to the trace's project page.
        return f"{self.host}/trace/{trace_id}"

    # -- traces and spans ------------------------------------------------------------------
    def start_trace(
        self,
        name: str,
        persona: str,
        chatmode: str = "",
        metadata: Mapping[str, Any] | None = None,
        *,
        session_id: str | None = None,
        tags: list[str] | None = None,
        workflow: str | None = None,
    ) -> TraceContext:
        """Start a trace whose Langfuse user is ``persona``; the chatmode is a tag and metadata.

        Spans started in it with a persona of their own (``start_span(persona=…)``, every
        :class:`WorkflowTracer` stage) are Langfuse traces of their own, owned by that
        persona, in one Langfuse session: ``session_id``, else this trace's id. A
        ``workflow`` trace (what :class:`WorkflowTracer` starts) is in that session from the
        start.
        """
        try:
            return self._traces.start_trace(
                name, persona, chatmode, metadata, session_id, tags, workflow
            )
        except Exception:
            logger.debug("start_trace failed", exc_info=True)
            return self._traces.dead_trace(name, persona, chatmode, metadata)

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
            if not trace.ended:
                self._traces.end_trace(trace, status, error, output)
        except Exception:
            logger.debug("end_trace failed", exc_info=True)

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
        """Start a span under ``trace`` (or under ``parent``); end it or use it with ``with``.

        With ``persona``, calls made inside the span are that persona's (unless a call names
        its own); without, the span is the trace's persona's.
        """
        return self._traces.start_span(trace, name, metadata, persona, parent, attributes)

    def end_span(
        self,
        span: SpanContext,
        *,
        status: str = "success",
        error: BaseException | str | None = None,
    ) -> None:
        """End ``span`` (idempotent); ``status="error"`` marks it ERROR."""
        try:
            self._traces.end_span(span, status, error)
        except Exception:
            logger.debug("end_span failed", exc_info=True)

    # -- generations -----------------------------------------------------------------------
    def create_generation(
        self,
        trace: TraceContext,
        name: str,
        model: str,
        prompt: Any,
        completion: Any,
        usage: Mapping[str, Any] | Usage | None = None,
        metadata: Mapping[str, Any] | None = None,
        *,
        parent: SpanContext | None = None,
        persona: str | None = None,
        start_time: datetime | float | None = None,
        end_time: datetime | float | None = None,
        model_parameters: Mapping[str, Any] | None = None,
        error: BaseException | str | None = None,
    ) -> GenerationContext:
        """Record one LLM call in ``trace`` (under ``parent`` when given).

        ``usage`` may be in OpenAI form (``prompt_tokens``/``completion_tokens``) or Langfuse
        form (``input``/``output``, which exclude the ``input_*``/``output_*`` buckets beside
        them); without it tokens are estimated and marked so (a failed call without usage
        counts 0). An estimate is never sent to Langfuse as usage or cost. Times are
        datetimes or epoch seconds; without them the call is recorded as ending now. The
        persona is ``persona``, else the parent span's, else the trace's. A compiled managed
        prompt as ``prompt`` (``get_prompt(...).compile(...)``) links the generation to the
        prompt's name and version. Score the returned generation with :meth:`score`.
        """
        try:
            return self.record(
                explicit_generation(
                    trace,
                    name,
                    model,
                    prompt,
                    completion,
                    usage,
                    metadata,
                    parent=parent,
                    persona=persona,
                    start_time=start_time,
                    end_time=end_time,
                    model_parameters=model_parameters,
                    error=error,
                )
            )
        except Exception:
            logger.debug("create_generation failed", exc_info=True)
            return GenerationContext("", trace.trace_id, name, model, trace.persona, Usage(), 0.0)

    def record(self, generation: GenerationInput) -> GenerationContext:
        """Record a finished call (the one path every way of recording a generation takes)."""
        return self._generations.record(generation)

    # -- budgets ---------------------------------------------------------------------------
    def admit(self, persona: str) -> Reservation | None:
        """Admit a call of ``persona`` before it is made (see :meth:`BudgetLedger.admit`).

        Raises:
            BudgetExceededError: The persona's budget is spent under policy ``block``.

        """
        return self.budgets.admit(persona)

    # -- scores and prompts ----------------------------------------------------------------
    def score(
        self,
        target: TraceContext | SpanContext | GenerationContext | PendingGeneration | str | None,
        name: str,
        value: float | bool | str,
        *,
        data_type: str | None = None,
        comment: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        observation_id: str | None = None,
        config_id: str | None = None,
        score_id: str | None = None,
        timestamp: datetime | float | None = None,
    ) -> str | None:
        """Score a trace, a span (a workflow stage), or a generation; no I/O happens here.

        Args:
            target: A :class:`TraceContext`, a :class:`SpanContext` (``stage.span``), a
                :class:`GenerationContext` (``create_generation``'s), the handle of the
                generation an instrumented call just made (:func:`last_generation`), or a
                32-hex trace id.
            name: Score name, e.g. ``relevance``.
            value: ``True``/``False`` (BOOLEAN), a number (NUMERIC) or a string
                (CATEGORICAL, or TEXT with ``data_type="TEXT"``).
            data_type: ``NUMERIC``, ``BOOLEAN``, ``CATEGORICAL`` or ``TEXT``; inferred from
                the value when None.
            comment: Why (masked like prompts).
            metadata: A JSON-like mapping (masked).
            observation_id: With a trace id or trace: the 16-hex observation scored in it.
            config_id: A Langfuse score config id.
            score_id: An id of your own (the same id again updates the score); 16 random hex
                digits by default.
            timestamp: When (datetime or epoch seconds); now by default.

        Returns:
            The score's id; None when it was not recorded because the input was wrong (one
            warning says what was wrong, per score name).

        """
        return self._quality.score(
            target,
            name,
            value,
            data_type,
            comment,
            metadata,
            observation_id,
            config_id,
            score_id,
            timestamp,
        )

    def get_prompt(
        self,
        name: str,
        *,
        version: int | None = None,
        label: str | None = None,
        fallback: str | list[dict[str, Any]] | None = None,
        cache_ttl_seconds: float | None = None,
    ) -> ManagedPrompt:
        """A managed prompt: from Langfuse, else the local prompts folder, else ``fallback``.

        With keys, the prompt is fetched from Langfuse (``production`` label unless a version
        or label is given) and cached ``cache_ttl_seconds`` (60); a stale entry is served while
        it is refreshed in the background; this never waits longer than
        ``HYPERTOOL_PROMPT_TIMEOUT`` for Langfuse. Otherwise, or when Langfuse does not have
        it or cannot answer, the file in ``HYPERTOOL_PROMPTS_DIR`` (or shipped with the
        package), versioned in the store; else the fallback (never linked). Compile it with
        ``prompt.compile(**variables)`` and give the result to the call; see
        :class:`~hypertool.instrumentation.model.prompts.ManagedPrompt`.

        Raises:
            PromptError: no source has the prompt and there is no fallback, or the request is
                malformed; the message says what each source answered.

        """
        return self._quality.prompts.get(
            name,
            version=version,
            label=label,
            fallback=fallback,
            cache_ttl_seconds=cache_ttl_seconds,
        )

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
            True when everything recorded so far reached every sink, and nothing was dropped
            since the previous flush.

        """
        return lifetime.flush(self._deferred, self._pipeline, self._quality, timeout)

    def exit_budget(self) -> float:
        """Seconds the exit hook may deliver for (all but a little of the exit timeout)."""
        return lifetime.exit_budget(self.settings.exit_timeout)

    def shutdown(self, timeout: float | None = None) -> bool:
        """Record what is pending and flush, for at most ``timeout`` seconds together (the exit
        timeout by default), and stop; runs at process exit too. Generations still unrecorded
        when the time runs out are counted as dropped by every sink.
        """
        self._finalizer.detach()
        lifetime.untrack(self)
        budget = max(self.settings.exit_timeout if timeout is None else timeout, 0.0)
        return lifetime.close(self._deferred, self._pipeline, self._quality, budget)
