"""Recording generations: the part of :class:`LangfuseIntegration` that turns one LLM call
into a generation span, a budget entry and a record for the listeners (metrics).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from opentelemetry import trace as trace_api
from opentelemetry.context import Context
from opentelemetry.trace import Tracer

from hypertool.instrumentation import _attributes as attr
from hypertool.instrumentation._config import Settings
from hypertool.instrumentation._log import logger, warn_once
from hypertool.instrumentation._records import GenerationListener, GenerationRecord
from hypertool.instrumentation._spans import finish, iso_time, metadata_attributes, to_ns
from hypertool.instrumentation._usage import Usage, estimate_tokens, text_of, usage_from_argument
from hypertool.instrumentation.budget import BudgetLedger
from hypertool.instrumentation.contexts import GenerationContext, SpanContext, TraceContext
from hypertool.instrumentation.masking import MaskFunction
from hypertool.instrumentation.personas import canonical_name
from hypertool.instrumentation.pricing import PriceTable


class GenerationRecording:
    """``create_generation`` and ``record_generation``; mixed into the integration, which sets
    the attributes declared here.
    """

    settings: Settings
    prices: PriceTable
    budgets: BudgetLedger
    _tracer: Tracer | None
    _listeners: list[GenerationListener]
    _mask: MaskFunction

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
        form (``input``/``output``); without it tokens are estimated and marked so. Times are
        datetimes or epoch seconds; without them the call is recorded as ending now.
        """
        try:
            persona_name = (
                canonical_name(persona)
                if persona
                else (parent.persona if parent is not None else trace.persona)
            )
            prompt_text = text_of(prompt)
            completion_text = "" if completion is None else text_of(completion)
            resolved = usage_from_argument(usage) or Usage(
                estimate_tokens(prompt_text), estimate_tokens(completion_text), True
            )
            end_ns = to_ns(end_time) or time.time_ns()
            start_ns = to_ns(start_time) or end_ns
            return self.record_generation(
                trace=trace,
                parent=parent,
                name=name,
                model=model,
                persona=persona_name,
                chatmode=trace.chatmode,
                prompt=prompt_text,
                completion=completion_text,
                usage=resolved,
                start_ns=start_ns,
                end_ns=end_ns,
                metadata=metadata,
                model_parameters=model_parameters,
                error=error,
            )
        except Exception:
            logger.debug("create_generation failed", exc_info=True)
            return GenerationContext("", trace.trace_id, name, model, trace.persona, Usage(), 0.0)

    def record_generation(
        self,
        *,
        trace: TraceContext | None,
        parent: SpanContext | None,
        name: str,
        model: str,
        persona: str,
        chatmode: str,
        prompt: str,
        completion: str,
        usage: Usage,
        start_ns: int,
        end_ns: int,
        metadata: Mapping[str, Any] | None = None,
        model_parameters: Mapping[str, Any] | None = None,
        error: BaseException | str | None = None,
        trace_name: str | None = None,
        workflow: str = "",
        stage: str = "",
        completion_start_ns: int | None = None,
        attributes: Mapping[str, Any] | None = None,
    ) -> GenerationContext:
        """Record a finished generation (the shared path of every way to record one).

        With ``trace=None`` the generation is the root of a trace of its own, named
        ``trace_name``. ``completion_start_ns`` (epoch ns of a stream's first token) becomes
        ``langfuse.observation.completion_start_time``; ``attributes`` are added to the span
        last (an error still sets the level and message).
        """
        message = None if error is None else self._clean(str(error) or type(error).__name__)
        cost = self.prices.cost(model, usage)
        if cost is None:
            warn_once(
                f"price-{model}",
                "no price known for model %r: its cost is recorded as unknown "
                "(add it to a HYPERTOOL_PRICES file)",
                model,
            )
        cost_usd = None if cost is None else cost.total
        span_id = ""
        trace_id = trace.trace_id if trace is not None else ""
        if self._tracer is not None and (trace is None or trace.span is not trace_api.INVALID_SPAN):
            span_attrs: dict[str, Any] = {
                **(
                    trace.trace_attributes
                    if trace is not None
                    else {attr.TRACE_NAME: trace_name or name}
                ),
                attr.USER_ID: persona,
                attr.PERSONA: persona,
                attr.CHATMODE: chatmode,
                attr.OBSERVATION_TYPE: attr.TYPE_GENERATION,
                attr.MODEL: model,
                attr.GEN_AI_OPERATION: "chat",
                attr.GEN_AI_REQUEST_MODEL: model,
                attr.INPUT: self._clean(prompt),
                attr.OUTPUT: self._clean(completion),
                attr.USAGE_DETAILS: json.dumps(usage.as_langfuse()),
                attr.GEN_AI_INPUT_TOKENS: usage.input,
                attr.GEN_AI_OUTPUT_TOKENS: usage.output,
                attr.USAGE_ESTIMATED: usage.estimated,
                attr.COST_KNOWN: cost is not None,
            }
            if cost is not None:
                span_attrs[attr.COST_DETAILS] = json.dumps(cost.as_langfuse())
            if trace is None and chatmode:
                span_attrs[attr.TRACE_TAGS] = [chatmode]
            if workflow:
                span_attrs[attr.WORKFLOW] = workflow
            if stage:
                span_attrs[attr.STAGE] = stage
            if model_parameters:
                span_attrs[attr.MODEL_PARAMETERS] = self._clean(text_of(dict(model_parameters)))
            if metadata:
                span_attrs.update(
                    metadata_attributes(attr.OBSERVATION_METADATA, metadata, self._clean)
                )
            if completion_start_ns is not None:
                span_attrs[attr.COMPLETION_START_TIME] = iso_time(completion_start_ns)
            if attributes:
                span_attrs.update(attributes)
            if trace is None:
                context = Context()
            else:
                parent_span = parent.span if parent is not None else trace.span
                context = trace_api.set_span_in_context(parent_span)
            span = self._tracer.start_span(
                name, context=context, attributes=span_attrs, start_time=start_ns
            )
            span_context = span.get_span_context()
            span_id = format(span_context.span_id, "016x")
            trace_id = format(span_context.trace_id, "032x")
            finish(span, "error" if message else "success", error, self._clean, end_ns=end_ns)
        elif not trace_id:
            trace_id = format(random.getrandbits(128), "032x")
        record = GenerationRecord(
            name=name,
            persona=persona,
            chatmode=chatmode,
            model=model,
            usage=usage,
            start_ns=start_ns,
            end_ns=end_ns,
            error=message,
            trace_id=trace_id,
            workflow=workflow,
            stage=stage,
            cost_usd=cost_usd,
        )
        self.budgets.record(persona, usage.total, cost_usd)
        for listener in self._listeners:
            try:
                listener(record)
            except Exception:
                warn_once(f"listener-{id(listener)}", "generation listener %r failed", listener)
        return GenerationContext(
            generation_id=span_id,
            trace_id=trace_id,
            name=name,
            model=model,
            persona=persona,
            usage=usage,
            latency_s=record.duration_s,
            error=message,
            cost_usd=cost_usd,
        )

    def _clean(self, text: str) -> str:
        """Mask secrets, then cap the length with a visible marker."""
        limit = self.settings.max_field_chars
        if len(text) <= limit:
            return self._mask(text)
        # Mask a little past the cut, so a key straddling it cannot leave half-visible.
        masked = self._mask(text[: limit + 256])[:limit]
        return f"{masked}…[truncated {len(text) - limit} chars]"
