"""Compatibility path: the handles now live in :mod:`hypertool.instrumentation.model.handles`."""

from hypertool.instrumentation.model.handles import (
    GenerationContext,
    SpanContext,
    TraceContext,
    bind_context,
    current,
)

__all__ = ["GenerationContext", "SpanContext", "TraceContext", "bind_context", "current"]
