"""Building an integration's parts from its settings: the composition root's wiring.

Sinks and their delivery pipeline (:mod:`~hypertool.instrumentation.export`), the local store
(:mod:`~hypertool.instrumentation.store`), the recorder thread and recorders
(:mod:`~hypertool.instrumentation.recording`), the budget ledger, and scores and managed
prompts (:mod:`~hypertool.instrumentation.quality`). The OpenTelemetry SDK, the sinks and
prometheus_client are imported here, when an integration is built, so importing the package
stays light.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from hypertool.instrumentation import semconv as attr
from hypertool.instrumentation._config import Settings
from hypertool.instrumentation._log import warn_once
from hypertool.instrumentation.budget import BudgetLedger, History, Period, Policy
from hypertool.instrumentation.export.drops import dropped_spans_counter, start_at_zero
from hypertool.instrumentation.masking import MaskFunction, chain
from hypertool.instrumentation.model.handles import Tracing
from hypertool.instrumentation.model.scores import ScoreSink
from hypertool.instrumentation.personas import PersonaRegistry, builtin_personas, load_personas
from hypertool.instrumentation.pricing import PriceTable, load_prices
from hypertool.instrumentation.recording.deferred import DeferredWork
from hypertool.instrumentation.recording.recorder import Cleaner, GenerationRecorder
from hypertool.instrumentation.recording.spans import FinishedSpans
from hypertool.instrumentation.recording.traces import TraceRecorder

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from prometheus_client import CollectorRegistry

    from hypertool.instrumentation.export.pipeline import Pipeline
    from hypertool.instrumentation.quality import Quality
    from hypertool.instrumentation.store import StoreExporter


@dataclass(frozen=True)
class Parts:
    """What an integration is made of.

    Attributes:
        personas: Persona definitions (budgets).
        prices: Model prices.
        enabled: The Langfuse sink is on.
        store: The local store's sink, or None when it is off.
        deferred: The recorder thread's queue.
        pipeline: The span sinks' delivery, or None when no sink is on.
        budgets: The one budget ledger.
        generations: Records generations.
        traces: Starts and ends traces and spans.
        quality: Scores and managed prompts.

    """

    personas: PersonaRegistry
    prices: PriceTable
    enabled: bool
    store: StoreExporter | None
    deferred: DeferredWork
    pipeline: Pipeline | None
    budgets: BudgetLedger
    generations: GenerationRecorder
    traces: TraceRecorder
    quality: Quality


def assemble(
    settings: Settings,
    *,
    owner: Tracing,
    trace_url: Callable[[str], str | None],
    metrics_registry: CollectorRegistry,
    personas: PersonaRegistry | None,
    prices: PriceTable | None,
    exporters: Mapping[str, SpanExporter],
    mask: MaskFunction | None,
    tracer_provider: TracerProvider | None,
    score_sinks: Mapping[str, ScoreSink] | None,
    given_metrics_registry: CollectorRegistry | None,
) -> Parts:
    """Build every part from ``settings`` and the integration's arguments.

    ``owner`` is what trace and span handles link back to; nothing built here holds it
    strongly (so an integration dropped without ``shutdown()`` is collected).

    Raises:
        ConfigError: a setting, persona file or price file is malformed.

    """
    if personas is None:
        personas = builtin_personas()
        if settings.personas_dir:
            personas = personas.merged(load_personas(settings.personas_dir))
    price_table = prices if prices is not None else PriceTable()
    if prices is None and settings.prices_file:
        price_table = price_table.with_overrides(load_prices(settings.prices_file))
    sinks, store, history = _sinks(settings, exporters)
    deferred = DeferredWork(settings.queue_size)
    pipeline = _pipeline(sinks, settings, metrics_registry, tracer_provider)
    tracer = pipeline.tracer if pipeline is not None else None

    def sync() -> None:  # not the integration's drain: the ledger must not keep it alive
        deferred.drain()

    budgets = BudgetLedger(
        personas,
        period=cast(Period, settings.budget_period),
        policy=cast(Policy, settings.budget_policy),
        history=history,
        sync=sync,
        refresh_s=settings.budget_refresh_s,
    )
    clean = Cleaner(chain(mask), settings.max_field_chars)
    common = {
        key: value
        for key, value in (
            (attr.ENVIRONMENT, settings.environment),
            (attr.RELEASE, settings.release),
        )
        if value
    }
    finished = None
    if pipeline is not None and pipeline.own_provider:
        finished = FinishedSpans(pipeline.emit, pipeline.provider.resource, pipeline.scope)
    from hypertool.instrumentation.quality import Quality

    return Parts(
        personas=personas,
        prices=price_table,
        enabled="langfuse" in sinks,
        store=store,
        deferred=deferred,
        pipeline=pipeline,
        budgets=budgets,
        generations=GenerationRecorder(
            tracer, price_table, budgets, clean, finished=finished, common=common
        ),
        traces=TraceRecorder(tracer, clean, owner, trace_url, common),
        # Scores and prompts hold the recorder queue, never the integration.
        quality=Quality(
            settings,
            clean=clean,
            defer=deferred.defer,
            store=store,
            score_sinks=score_sinks,
            metrics_registry=given_metrics_registry,
        ),
    )


def _sinks(
    settings: Settings, exporters: Mapping[str, SpanExporter]
) -> tuple[dict[str, SpanExporter], StoreExporter | None, History | None]:
    """The span sinks the settings turn on, then ``exporters``; the store's sink and the
    usage history budgets read from it.
    """
    from hypertool.instrumentation.export.sinks import build_sinks
    from hypertool.instrumentation.store import StoreError, StoreExporter

    sinks = build_sinks(settings)
    store: StoreExporter | None = None
    history: History | None = None
    if "store" not in exporters and settings.store_path is not None:
        try:
            store = StoreExporter(
                settings.store_path,
                retention_days=settings.store_retention_days,
                max_field_chars=settings.store_max_field_chars,
            )
            sinks["store"] = store
            history = store.spent_by_others
        except (StoreError, OSError) as exc:
            warn_once("store-failed", "the local trace store is off: %s", exc)
    sinks.update(exporters)
    if not settings.langfuse_configured:
        warn_once(
            "not-configured",
            "Langfuse not configured (LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY unset): "
            "tracing to Langfuse is off (other sinks: %s)",
            ", ".join(sorted(sinks)) or "none",
        )
    return sinks, store, history


def _pipeline(
    sinks: Mapping[str, SpanExporter],
    settings: Settings,
    metrics_registry: CollectorRegistry,
    tracer_provider: TracerProvider | None,
) -> Pipeline | None:
    if not sinks:
        return None
    from hypertool.instrumentation.export.pipeline import Pipeline
    from hypertool.instrumentation.store import DELIVERY_INTERVAL_S as STORE_INTERVAL_S

    pipeline = Pipeline(
        sinks,
        queue_size=settings.queue_size,
        exit_timeout=settings.exit_timeout,
        on_drop=(functools.partial(count_dropped, metrics_registry),),
        tracer_provider=tracer_provider,
        schedule_delays={"store": STORE_INTERVAL_S},
    )
    start_at_zero(metrics_registry, sinks)  # so increase() sees the first drop
    return pipeline


def count_dropped(registry: CollectorRegistry, sink: str, count: int) -> None:
    """Count ``count`` spans ``sink`` could not deliver (not a bound method: the pipeline must
    not keep the integration alive).
    """
    dropped_spans_counter(registry).labels(sink).inc(count)
