"""A generation given explicitly (the guide's ``create_generation``) as a ``GenerationInput``."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from hypertool.instrumentation.model.handles import SpanContext, TraceContext
from hypertool.instrumentation.model.prompts import active_link, find_link
from hypertool.instrumentation.model.records import CallContext, GenerationInput
from hypertool.instrumentation.model.usage import (
    Usage,
    estimate_tokens,
    text_of,
    usage_from_argument,
)
from hypertool.instrumentation.personas import canonical_name
from hypertool.instrumentation.recording.spans import to_ns


def explicit_generation(
    trace: TraceContext,
    name: str,
    model: str,
    prompt: Any,
    completion: Any,
    usage: Mapping[str, Any] | Usage | None,
    metadata: Mapping[str, Any] | None,
    *,
    parent: SpanContext | None,
    persona: str | None,
    start_time: datetime | float | None,
    end_time: datetime | float | None,
    model_parameters: Mapping[str, Any] | None,
    error: BaseException | str | None,
) -> GenerationInput:
    """The generation ``create_generation`` was told of (see its docstring for the rules)."""
    persona_name = (
        canonical_name(persona)
        if persona
        else (parent.persona if parent is not None else trace.persona)
    )
    prompt_text = text_of(prompt)
    completion_text = "" if completion is None else text_of(completion)
    resolved = usage_from_argument(usage) or (
        Usage(0, 0, True)  # a failed call reported nothing and is normally not billed
        if error is not None
        else Usage(estimate_tokens(prompt_text), estimate_tokens(completion_text), True)
    )
    end_ns = to_ns(end_time) or time.time_ns()
    start_ns = to_ns(start_time) or end_ns
    workflow = stage = ""
    if parent is not None:
        workflow = str(parent.metadata.get("workflow", ""))
        stage = str(parent.metadata.get("stage", ""))
    return GenerationInput(
        context=CallContext(trace, parent, persona_name, trace.chatmode, workflow, stage),
        name=name,
        model=model,
        prompt=prompt_text,
        completion=completion_text,
        usage=resolved,
        start_ns=start_ns,
        end_ns=end_ns,
        error=error,
        metadata=metadata,
        model_parameters=model_parameters,
        # A compiled managed prompt as the prompt (or one entered with ``with
        # prompt.linked():``) links the generation to its version.
        prompt_link=find_link(prompt) or active_link(),
    )
