"""② Recording: a :class:`GenerationInput` becomes a generation span, a budget entry and a
record for the listeners (metrics).

Runs on the recorder thread for instrumented calls (and on the caller's thread for the explicit
``create_generation``). The integration holds one :class:`GenerationRecorder`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from json.encoder import encode_basestring
from random import getrandbits
from typing import Any

from opentelemetry import trace as trace_api
from opentelemetry.context import Context
from opentelemetry.trace import Tracer

from hypertool.instrumentation import semconv as attr
from hypertool.instrumentation._log import warn_once
from hypertool.instrumentation.budget import BudgetLedger
from hypertool.instrumentation.masking import MaskFunction
from hypertool.instrumentation.model.handles import GenerationContext
from hypertool.instrumentation.model.records import (
    GenerationInput,
    GenerationListener,
    GenerationRecord,
)
from hypertool.instrumentation.model.usage import text_of
from hypertool.instrumentation.pricing import Cost, PriceTable
from hypertool.instrumentation.recording.spans import (
    FinishedSpans,
    error_marks,
    finish,
    iso_time,
    metadata_attributes,
    repaired,
    repaired_value,
)


def numbers_json(numbers: Mapping[str, float]) -> str:
    """``json.dumps(numbers)`` for a flat mapping of names to finite numbers, written directly:
    the general encoder costs more than the rest of a generation's attributes together.
    """
    parts = []
    for key, value in numbers.items():
        if value.__class__ is float and not math.isfinite(value):
            return json.dumps(dict(numbers))
        parts.append(f"{encode_basestring(key)}: {value!r}")
    return "{" + ", ".join(parts) + "}"


class Cleaner:
    """Repairs unencodable characters, masks secrets, then caps the length with a visible
    marker: what every text sent to a sink goes through.
    """

    def __init__(self, mask: MaskFunction, max_chars: int) -> None:
        self._mask = mask
        self._max_chars = max_chars

    def __call__(self, text: str) -> str:
        """``text`` repaired, masked and capped."""
        text = repaired(text)
        limit = self._max_chars
        if len(text) <= limit:
            return self._mask(text)
        # Mask a little past the cut, so a key straddling it cannot leave half-visible.
        masked = self._mask(text[: limit + 256])[:limit]
        return f"{masked}…[truncated {len(text) - limit} chars]"


class GenerationRecorder:
    """Turns finished calls into generation spans, budget entries and listener records.

    Args:
        tracer: Makes the spans; None when no sink is on (budgets and listeners still run).
        prices: Prices the usage.
        budgets: Told of every generation's tokens and cost.
        clean: Masks and caps every text before it is put on a span.
        finished: Emits generation spans as finished spans straight to the sinks (our own
            pipeline); None to make them with ``tracer`` (the application's provider, whose
            processors must see them too).
        common: Attributes every span carries (``langfuse.environment``, ``langfuse.release``).

    """

    def __init__(
        self,
        tracer: Tracer | None,
        prices: PriceTable,
        budgets: BudgetLedger,
        clean: Callable[[str], str],
        finished: FinishedSpans | None = None,
        common: Mapping[str, Any] | None = None,
    ) -> None:
        self.tracer = tracer
        self.finished = finished
        self.prices = prices
        self.budgets = budgets
        self.clean = clean
        self.common = dict(common or {})
        self.listeners: list[GenerationListener] = []

    def record(self, generation: GenerationInput) -> GenerationContext:
        """Record ``generation``; with no trace in its context it is a trace of its own."""
        g = generation
        context = g.context
        trace = context.trace
        error = g.error
        message = None if error is None else self.clean(str(error) or type(error).__name__)
        cost = self.prices.cost(g.model, g.usage)
        if cost is None:
            warn_once(
                f"price-{g.model}",
                "no price known for model %r: its cost is recorded as unknown "
                "(add it to a HYPERTOOL_PRICES file)",
                g.model,
            )
        cost_usd = None if cost is None else cost.total
        # The budget first: it holds whatever happens to the span.
        if g.reservation is not None:  # what the call set aside gives way to what it used
            g.reservation.settle(g.usage.total, cost_usd)
        else:
            self.budgets.record(context.persona, g.usage.total, cost_usd)
        name = repaired(g.name)
        span_id = langfuse_trace_id = ""
        trace_id = trace.trace_id if trace is not None else ""
        if self.tracer is not None and (trace is None or trace.span is not trace_api.INVALID_SPAN):
            parent = (
                None
                if trace is None
                else (context.parent.span if context.parent is not None else trace.span)
            )
            attributes = self._attributes(g, cost)
            # In a stage, the call is in the stage's Langfuse trace (the Langfuse sink re-keys
            # the span by this attribute).
            stage_trace = attributes.get(attr.LANGFUSE_TRACE_ID)
            status = "error" if message else "success"
            if self.finished is not None:
                parent_context = None if parent is None else parent.get_span_context()
                if parent_context is not None and not parent_context.is_valid:
                    parent_context = None  # its parent never started: a trace of its own
                span_context = self.finished.record(
                    name,
                    getrandbits(128) if parent_context is None else parent_context.trace_id,
                    parent_context,
                    attributes,
                    g.start_ns,
                    g.end_ns,
                    error_marks(status, error, self.clean),
                )
            else:
                span = self.tracer.start_span(
                    name,
                    context=Context() if parent is None else trace_api.set_span_in_context(parent),
                    attributes=attributes,
                    start_time=g.start_ns,
                )
                span_context = span.get_span_context()
                finish(span, status, error, self.clean, end_ns=g.end_ns)
            span_id = format(span_context.span_id, "016x")
            trace_id = format(span_context.trace_id, "032x")
            if isinstance(stage_trace, str) and stage_trace != trace_id:
                langfuse_trace_id = stage_trace
        elif not trace_id:
            trace_id = format(getrandbits(128), "032x")
        record = GenerationRecord(
            name=name,
            persona=context.persona,
            chatmode=repaired(context.chatmode),
            model=repaired(g.model),
            usage=g.usage,
            start_ns=g.start_ns,
            end_ns=g.end_ns,
            error=message,
            trace_id=trace_id,
            workflow=repaired(context.workflow),
            stage=repaired(context.stage),
            cost_usd=cost_usd,
        )
        for listener in self.listeners:
            try:
                listener(record)
            except Exception:
                warn_once(f"listener-{id(listener)}", "generation listener %r failed", listener)
        return GenerationContext(
            generation_id=span_id,
            trace_id=trace_id,
            name=record.name,
            model=record.model,
            persona=context.persona,
            usage=g.usage,
            latency_s=record.duration_s,
            error=message,
            cost_usd=cost_usd,
            chatmode=context.chatmode,
            workflow=context.workflow,
            stage=context.stage,
            langfuse_trace_id=langfuse_trace_id,
        )

    def _attributes(self, g: GenerationInput, cost: Cost | None) -> dict[str, Any]:
        context = g.context
        trace = context.trace
        usage = g.usage
        clean = self.clean
        model = repaired(g.model)
        if context.parent is not None:
            trace_attrs = context.parent.trace_attributes
        elif trace is not None:
            trace_attrs = trace.trace_attributes
        else:  # a trace of its own
            trace_attrs = {
                attr.TRACE_NAME: repaired(g.name),
                attr.USER_ID: context.persona,
                **self.common,
            }
            if context.chatmode:
                trace_attrs[attr.TRACE_TAGS] = [repaired(context.chatmode)]
        # User metadata first: a provider with a lower attribute limit than ours evicts the
        # oldest entries, and those must be the user's, never ours.
        span_attrs: dict[str, Any] = (
            metadata_attributes(attr.OBSERVATION_METADATA, g.metadata, clean) if g.metadata else {}
        )
        # The Langfuse trace's user: the persona owning the trace (or the stage) the call is
        # in, so every Langfuse trace has one user; the caller's own persona is PERSONA.
        span_attrs.update(trace_attrs)
        span_attrs.update(
            {
                attr.PERSONA: context.persona,
                attr.CHATMODE: repaired(context.chatmode),
                attr.OBSERVATION_TYPE: attr.TYPE_GENERATION,
                attr.MODEL: model,
                attr.GEN_AI_OPERATION: "chat",
                attr.GEN_AI_REQUEST_MODEL: model,
                attr.INPUT: clean(g.prompt),
                attr.COST_KNOWN: cost is not None,
            }
        )
        failed = g.error is not None
        if g.completion or not failed:  # a failed call has no output (as langfuse's SDK sends)
            span_attrs[attr.OUTPUT] = clean(g.completion)
        if usage.estimated or (failed and usage.is_empty):
            # Not the provider's count: kept for the local store only. Langfuse, given no
            # usage or cost, counts and prices the call itself, as for langfuse's own SDK.
            span_attrs[attr.USAGE_INPUT] = usage.input
            span_attrs[attr.USAGE_OUTPUT] = usage.output
            if cost is not None:
                span_attrs[attr.COST_USD] = cost.total
        else:
            span_attrs[attr.USAGE_DETAILS] = numbers_json(usage.as_langfuse())
            span_attrs[attr.GEN_AI_INPUT_TOKENS] = usage.input
            span_attrs[attr.GEN_AI_OUTPUT_TOKENS] = usage.output
            if cost is not None:
                span_attrs[attr.COST_DETAILS] = numbers_json(cost.as_langfuse())
        span_attrs[attr.USAGE_ESTIMATED] = usage.estimated
        if context.workflow:
            span_attrs[attr.WORKFLOW] = repaired(context.workflow)
        if context.stage:
            span_attrs[attr.STAGE] = repaired(context.stage)
        if g.model_parameters:
            span_attrs[attr.MODEL_PARAMETERS] = clean(text_of(dict(g.model_parameters)))
        if g.completion_start_ns is not None:
            span_attrs[attr.COMPLETION_START_TIME] = iso_time(g.completion_start_ns)
        if g.prompt_link is not None:
            # Langfuse links a generation to a prompt version by these two (name as a string,
            # version as an int); a fallback prompt never has a link.
            span_attrs[attr.PROMPT_NAME] = g.prompt_link.name
            span_attrs[attr.PROMPT_VERSION] = g.prompt_link.version
        if g.attributes:
            for key, value in g.attributes.items():
                span_attrs[key] = repaired_value(value)
        return span_attrs
