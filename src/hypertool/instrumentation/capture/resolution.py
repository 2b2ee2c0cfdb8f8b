"""One call resolution: which trace, stage, persona and chatmode a call belongs to.

Shared by ``ObservableLLM``, ``@observe_llm`` and the OpenAI and Anthropic clients, so the same
call gets the same answer whichever way it is made. The most specific source wins:

- **trace**: the ``trace=`` argument, else the trace entered with ``with`` (a
  :class:`~hypertool.instrumentation.WorkflowTracer` stage, ``start_trace``/``start_span``
  handles), else none (the call is a trace of its own).
- **persona**: the call's own (``persona=`` / ``hypertool_persona=``) > the enclosing stage's,
  when the stage was given one > the wrapper's or client's default > the trace's >
  ``unknown``.
- **chatmode**: the call's own > the wrapper's or client's default > the trace's > none.
"""

from __future__ import annotations

from hypertool.instrumentation.model.handles import SpanContext, TraceContext, current
from hypertool.instrumentation.model.records import CallContext
from hypertool.instrumentation.personas import UNKNOWN_PERSONA, canonical_name


def resolve(
    *,
    trace: TraceContext | None,
    persona: str | None,
    chatmode: str | None,
    default_persona: str | None,
    default_chatmode: str | None,
) -> CallContext:
    """The call's context, read in the calling thread or task (see the module docstring).

    ``default_persona`` must already be canonical; ``persona`` is made so here.
    """
    parent: SpanContext | None = None
    entered = current()
    if entered is not None:
        if trace is None:
            trace, parent = entered
        elif entered[0] is trace:
            parent = entered[1]
    if persona:
        name = canonical_name(str(persona))
    elif parent is not None and parent.persona_given:
        name = parent.persona
    elif default_persona:
        name = default_persona
    elif trace is not None:
        name = trace.persona
    else:
        name = UNKNOWN_PERSONA
    mode = chatmode or default_chatmode or (trace.chatmode if trace is not None else "")
    if parent is None:
        return CallContext(trace, None, name, str(mode))
    metadata = parent.metadata
    return CallContext(
        trace,
        parent,
        name,
        str(mode),
        str(metadata.get("workflow", "")),
        str(metadata.get("stage", "")),
    )
