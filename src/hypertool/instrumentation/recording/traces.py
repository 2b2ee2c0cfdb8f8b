"""Traces and spans: the handles of the guide's ``start_trace`` / ``start_span`` and their
OpenTelemetry spans.
"""

from __future__ import annotations

import contextlib
import json
import random
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry import trace as trace_api
from opentelemetry.context import Context
from opentelemetry.trace import Tracer

from hypertool.instrumentation import semconv as attr
from hypertool.instrumentation._log import logger
from hypertool.instrumentation.model.handles import (
    SpanContext,
    TraceContext,
    Tracing,
    stage_trace_id,
)
from hypertool.instrumentation.model.usage import text_of
from hypertool.instrumentation.personas import canonical_name
from hypertool.instrumentation.recording.spans import (
    finish,
    metadata_attributes,
    repaired,
    repaired_value,
    user_attributes,
)


class TraceRecorder:
    """Starts and ends traces and spans; without a tracer it hands out handles that record
    nothing (the "not configured" path: same methods, no work).

    In Langfuse a trace has one user, so a span started with a persona of its own (a
    workflow stage) is a Langfuse trace of its own, owned by that persona, holding the spans
    and generations inside it; every Langfuse trace of one OpenTelemetry trace shares a
    session. The OpenTelemetry trace (the store, OTLP collectors) stays one tree: only the
    Langfuse sink re-keys the stage's spans (``hypertool.langfuse.trace_id``).

    Args:
        tracer: Makes the spans; None when no sink is on.
        clean: Masks and caps every text before it is put on a span.
        owner: What the handles link back to (their ``with`` blocks end through it).
        trace_url: The Langfuse URL of a trace id, or None.
        common: Attributes every span carries (``langfuse.environment``, ``langfuse.release``).

    """

    def __init__(
        self,
        tracer: Tracer | None,
        clean: Callable[[str], str],
        owner: Tracing,
        trace_url: Callable[[str], str | None],
        common: Mapping[str, Any] | None = None,
    ) -> None:
        self.tracer = tracer
        self.clean = clean
        self.owner = owner
        self.trace_url = trace_url
        self.common = dict(common or {})

    def start_trace(
        self,
        name: str,
        persona: str,
        chatmode: str,
        metadata: Mapping[str, Any] | None,
        session_id: str | None,
        tags: list[str] | None,
        workflow: str | None = None,
    ) -> TraceContext:
        """A new trace whose root span is started now.

        A ``workflow`` trace's stages become Langfuse traces of their own, so its Langfuse
        traces are grouped in a session from the start: ``session_id``, else the trace's id.
        """
        persona = canonical_name(persona)
        meta = dict(metadata or {})
        if self.tracer is None:
            return self.dead_trace(name, persona, chatmode, meta)
        name, chatmode = repaired(name), repaired(chatmode)
        trace_attrs: dict[str, Any] = {attr.TRACE_NAME: name, attr.USER_ID: persona, **self.common}
        all_tags = [chatmode, *(tags or [])] if chatmode else list(tags or [])
        if all_tags:
            trace_attrs[attr.TRACE_TAGS] = repaired_value(all_tags)
        if session_id:
            trace_attrs[attr.SESSION_ID] = repaired(session_id)
        trace_metadata = metadata_attributes(
            attr.TRACE_METADATA, {"chatmode": chatmode, **meta}, self.clean
        )
        # User metadata first: past a provider's attribute limit, the oldest are evicted.
        root_attrs = dict(trace_metadata)
        root_attrs.update(trace_attrs)
        root_attrs.update(
            {
                attr.PERSONA: persona,
                attr.CHATMODE: chatmode,
                attr.OBSERVATION_TYPE: attr.TYPE_SPAN,
            }
        )
        if workflow:
            root_attrs[attr.WORKFLOW] = repaired(workflow)
        # An empty context: a trace's root must not adopt the application's current span.
        span = self.tracer.start_span(name, context=Context(), attributes=root_attrs)
        trace_id = format(span.get_span_context().trace_id, "032x")
        if workflow and not session_id:
            trace_attrs[attr.SESSION_ID] = trace_id
            span.set_attribute(attr.SESSION_ID, trace_id)
        # The other spans repeat the trace's metadata (as langfuse's SDK does), in one attribute.
        trace_attrs[attr.TRACE_METADATA] = _metadata_json(trace_metadata)
        return TraceContext(
            trace_id=trace_id,
            name=name,
            persona=persona,
            chatmode=chatmode,
            metadata=meta,
            url=self.trace_url(trace_id),
            span=span,
            integration=self.owner,
            trace_attributes=trace_attrs,
        )

    def _stage_trace(
        self, trace: TraceContext, name: str, persona: str, span_id: str
    ) -> tuple[str, dict[str, Any]]:
        """The Langfuse trace id and trace-level attributes of a stage (a span with a persona
        of its own) in ``trace``.
        """
        lf_trace_id = stage_trace_id(trace.trace_id, span_id)
        root = trace.trace_attributes
        if attr.SESSION_ID not in root:
            # The trace now spans several Langfuse traces: one session groups them. A new dict
            # (the recorder thread may be reading the old one); spans started before keep it.
            root = trace.trace_attributes = {**root, attr.SESSION_ID: trace.trace_id}
            if trace.span.is_recording():
                trace.span.set_attribute(attr.SESSION_ID, trace.trace_id)
        metadata = json.loads(root.get(attr.TRACE_METADATA) or "{}")
        metadata["workflow_trace_id"] = trace.trace_id
        stage_attrs = {
            **root,
            attr.TRACE_NAME: f"{trace.name}/{repaired(name)}",
            attr.USER_ID: persona,
            attr.TRACE_METADATA: json.dumps(metadata, ensure_ascii=False),
            attr.LANGFUSE_TRACE_ID: lf_trace_id,
        }
        return lf_trace_id, stage_attrs

    def dead_trace(
        self, name: str, persona: str, chatmode: str, metadata: Mapping[str, Any] | None
    ) -> TraceContext:
        """A trace handle that records nothing (no sink, or starting the real one failed)."""
        return TraceContext(
            trace_id=format(random.getrandbits(128), "032x"),
            name=name,
            persona=canonical_name(persona),
            chatmode=chatmode,
            metadata=dict(metadata or {}),
            url=None,
            span=trace_api.INVALID_SPAN,
            integration=self.owner,
        )

    def end_trace(
        self,
        trace: TraceContext,
        status: str,
        error: BaseException | str | None,
        output: Any,
    ) -> None:
        """End the trace's root span, after the spans still open in it."""
        with trace._lock:
            open_spans, trace._open_spans = trace._open_spans, []
        for span in open_spans:
            self.end_span(span, "success", None)
        trace.status = "error" if status == "error" else "success"
        if output is not None:
            trace.span.set_attribute(attr.OUTPUT, self.clean(text_of(output)))
        trace.span.set_attribute(attr.TRACE_STATUS, trace.status)
        finish(trace.span, trace.status, error, self.clean, default="trace ended with status=error")

    def start_span(
        self,
        trace: TraceContext,
        name: str,
        metadata: Mapping[str, Any] | None,
        persona: str | None,
        parent: SpanContext | None,
        attributes: Mapping[str, Any] | None,
    ) -> SpanContext:
        """A span under ``parent`` (or the trace's root), registered as open in the trace.

        With ``persona`` the span is a stage: in Langfuse, a trace of its own owned by that
        persona; without, it is in its parent's Langfuse trace.
        """
        resolved = canonical_name(persona) if persona else trace.persona
        meta = dict(metadata or {})
        try:
            lf_trace_id = parent.langfuse_trace_id if parent is not None else trace.trace_id
            lf_attrs = parent.trace_attributes if parent is not None else trace.trace_attributes
            if self.tracer is None or trace.span is trace_api.INVALID_SPAN:
                span: trace_api.Span = trace_api.INVALID_SPAN
            else:
                parent_span = parent.span if parent is not None else trace.span
                # User entries first: past a provider's attribute limit, the oldest are
                # evicted. The caller's attributes still win over ours of the same key.
                given = user_attributes(attributes)
                span_attrs = metadata_attributes(attr.OBSERVATION_METADATA, meta, self.clean)
                span_attrs.update(given)
                # The Langfuse trace's attributes (its user among them) are set below, once the
                # span's id decides whether it is a stage's trace of its own.
                ours = {
                    attr.PERSONA: resolved,
                    attr.CHATMODE: trace.chatmode,
                    attr.OBSERVATION_TYPE: attr.TYPE_SPAN,
                }
                for key, value in ours.items():
                    span_attrs.setdefault(key, value)
                span = self.tracer.start_span(
                    repaired(name),
                    context=trace_api.set_span_in_context(parent_span),
                    attributes=span_attrs,
                )
                span_id = format(span.get_span_context().span_id, "016x")
                if persona:
                    lf_trace_id, lf_attrs = self._stage_trace(trace, name, resolved, span_id)
                span.set_attributes(lf_attrs)
            context = SpanContext(
                span_id=format(span.get_span_context().span_id, "016x"),
                trace=trace,
                name=name,
                persona=resolved,
                metadata=meta,
                span=span,
                persona_given=bool(persona),
                langfuse_trace_id=lf_trace_id,
                url=self.trace_url(lf_trace_id),
                trace_attributes=lf_attrs,
            )
            with trace._lock:
                trace._open_spans.append(context)
            return context
        except Exception:
            logger.debug("start_span failed", exc_info=True)
            return SpanContext(
                "0" * 16,
                trace,
                name,
                resolved,
                meta,
                trace_api.INVALID_SPAN,
                persona_given=bool(persona),
                langfuse_trace_id=trace.trace_id,
                trace_attributes=trace.trace_attributes,
            )

    def end_span(self, span: SpanContext, status: str, error: BaseException | str | None) -> None:
        """End ``span`` (idempotent)."""
        if span.ended:
            return
        span.ended = True
        with span.trace._lock:
            if span in span.trace._open_spans:
                span.trace._open_spans.remove(span)
        finish(span.span, status, error, self.clean, default="span ended with status=error")


def _metadata_json(metadata_attrs: Mapping[str, Any]) -> str:
    """``langfuse.trace.metadata.<key>`` attributes as the one JSON object Langfuse also reads
    from ``langfuse.trace.metadata``.
    """
    prefix = f"{attr.TRACE_METADATA}."
    metadata: dict[str, Any] = {}
    for key, value in metadata_attrs.items():
        if key.startswith(prefix):
            metadata[key[len(prefix) :]] = value
        elif key == attr.TRACE_METADATA and isinstance(value, str):
            with contextlib.suppress(ValueError):
                folded = json.loads(value)
                if isinstance(folded, dict):
                    metadata.update(folded)
    return json.dumps(metadata, ensure_ascii=False)
