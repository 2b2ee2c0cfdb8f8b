"""What a provider call produced, and how it becomes a recorded generation.

A provider module describes its SDK with a :class:`Provider`: which keyword arguments are model
parameters, how to read the input, a response and a stream's items (each into a
:class:`Summary`). The ``record_*`` functions run on the integration's recorder thread: they
read the summary, add the attributes ``record_generation`` has no parameter for (provider,
response id, time to first token, abandoned streams, HTTP status of errors) and record. Nothing
here imports an SDK: responses and chunks are read by duck typing (:func:`field`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hypertool.instrumentation import _attributes as attr
from hypertool.instrumentation._streams import ItemPredicate, StreamOutcome
from hypertool.instrumentation._usage import Usage, complete_usage, text_of
from hypertool.instrumentation.langfuse_integration import LangfuseIntegration

if TYPE_CHECKING:
    from hypertool.instrumentation._providers import Call

# Span attributes beyond what record_generation sets.
GEN_AI_SYSTEM = "gen_ai.system"
GEN_AI_PROVIDER = "gen_ai.provider.name"
GEN_AI_RESPONSE_MODEL = "gen_ai.response.model"
GEN_AI_RESPONSE_ID = "gen_ai.response.id"
GEN_AI_FINISH_REASONS = "gen_ai.response.finish_reasons"
HTTP_STATUS_CODE = "http.response.status_code"
ERROR_TYPE = "error.type"
STREAM = "hypertool.stream"
STREAM_ABANDONED = "hypertool.stream.abandoned"
STREAM_CHUNKS = "hypertool.stream.chunks"
LEVEL_WARNING = "WARNING"


def omitted(value: Any) -> bool:
    """True for None and the SDKs' "not given" sentinels (``NOT_GIVEN``, ``omit``)."""
    return value is None or type(value).__name__ in ("NotGiven", "Omit")


_MISSING = object()


def field(obj: Any, name: str) -> Any:
    """``obj.name`` of an SDK object, or ``obj[name]`` of a dict; None when absent.

    Attribute access first: an ``isinstance(obj, Mapping)`` test on every chunk would cost more
    than the rest of the per-chunk work together.
    """
    if type(obj) is dict:
        return obj.get(name)
    value = getattr(obj, name, _MISSING)
    if value is _MISSING:
        return obj.get(name) if isinstance(obj, Mapping) else None
    return value


def copied(value: Any) -> Any:
    """A shallow copy of a list or dict argument: appending to it after the call must not
    change what is recorded.
    """
    if isinstance(value, list | tuple):
        return list(value)
    if isinstance(value, dict):
        return dict(value)
    return value


@dataclass(slots=True)
class Summary:
    """What a response (or a stream's chunks) said.

    Attributes:
        text: The assistant's text.
        output: What to record as output: the text, or a message with its tool calls.
        usage: A :class:`Usage`, the provider's raw usage, or None (then estimated).
        model: The model the provider says answered.
        response_id: The provider's response id.
        finish_reason: Why the answer ended (``stop``, ``tool_calls``, ``end_turn``…).
        complete: False when a stream stopped before the answer's end.

    """

    text: str
    output: Any
    usage: Any
    model: str | None = None
    response_id: str | None = None
    finish_reason: str | None = None
    complete: bool = True


def assistant_output(text: str, tool_calls: list[dict[str, Any]]) -> Any:
    """The text alone, or an assistant message with its tool calls."""
    if not tool_calls:
        return text
    return {"role": "assistant", "content": text or None, "tool_calls": tool_calls}


@dataclass(frozen=True)
class Provider:
    """How to read one SDK's calls.

    Attributes:
        system: ``gen_ai.system`` value (``openai``, ``anthropic``).
        name: Generation name (and trace name when the call is outside any trace).
        parameters: Keyword arguments recorded as model parameters.
        prompt: The recorded input, from the call's keyword arguments.
        response: Summary of a complete response.
        chunks: Summary of a stream's items.
        is_token: Which stream item is the first token (time to first token).
        prepare_stream: Called with the keyword arguments of a streamed call before it is made;
            may change them, and returns a predicate of items to hide from the caller.

    """

    system: str
    name: str
    parameters: tuple[str, ...]
    prompt: Callable[[Mapping[str, Any]], Any]
    response: Callable[[Any], Summary]
    chunks: Callable[[list[Any]], Summary]
    is_token: ItemPredicate
    prepare_stream: Callable[[dict[str, Any]], ItemPredicate | None] | None = None


# -- recording (on the integration's recorder thread) ---------------------------------------
def record_response(call: Call, response: Any, end_ns: int) -> None:
    """Record a call that returned ``response``."""
    _record(call, call.provider.response(response), None, end_ns, {})


def record_failure(call: Call, error: BaseException, end_ns: int) -> None:
    """Record a call that raised ``error``."""
    _record(call, None, error, end_ns, error_attributes(error))


def record_stream(call: Call, outcome: StreamOutcome) -> None:
    """Record a streamed call once its stream ended, failed or was abandoned."""
    summary = call.provider.chunks(outcome.items)
    extra = stream_attributes(outcome, complete=summary.complete)
    _record(call, summary, outcome.error, outcome.end_ns, extra, outcome.first_token_ns)


def error_attributes(error: BaseException) -> dict[str, Any]:
    """``error.type``, and the HTTP status of an SDK's status error."""
    extra: dict[str, Any] = {ERROR_TYPE: type(error).__qualname__}
    status = getattr(error, "status_code", None)
    if isinstance(status, int):
        extra[HTTP_STATUS_CODE] = status
    return extra


def stream_attributes(outcome: StreamOutcome, *, complete: bool = False) -> dict[str, Any]:
    """Span attributes of a stream's end: chunks, error, or abandoned (level WARNING).

    ``complete`` is True when the items show the answer reached its end (a finish reason), so
    a caller that stops reading just after it has not abandoned anything.
    """
    extra: dict[str, Any] = {STREAM: True, STREAM_CHUNKS: len(outcome.items)}
    if outcome.error is not None:
        extra.update(error_attributes(outcome.error))
    elif outcome.abandoned and not complete:
        extra[STREAM_ABANDONED] = True
        extra[attr.LEVEL] = LEVEL_WARNING
        extra[attr.STATUS_MESSAGE] = (
            f"stream closed by the caller before its end, after {len(outcome.items)} chunk(s)"
        )
    return extra


def _record(
    call: Call,
    summary: Summary | None,
    error: BaseException | None,
    end_ns: int,
    extra: dict[str, Any],
    completion_start_ns: int | None = None,
) -> None:
    integration = call.integration
    if integration is None:
        return
    provider = call.provider
    prompt = text_of(call.prompt)
    if summary is None:
        completion, usage, model = "", Usage(), call.model
    else:
        completion = text_of(summary.output)
        usage = complete_usage(summary.usage, prompt, completion)
        model = summary.model or call.model
        if summary.model:
            extra[GEN_AI_RESPONSE_MODEL] = summary.model
        if summary.response_id:
            extra[GEN_AI_RESPONSE_ID] = summary.response_id
        if summary.finish_reason:
            extra[GEN_AI_FINISH_REASONS] = [summary.finish_reason]
    extra[GEN_AI_SYSTEM] = provider.system
    extra[GEN_AI_PROVIDER] = provider.system
    extra[STREAM] = call.streaming
    if call.model:
        extra[attr.GEN_AI_REQUEST_MODEL] = call.model
    workflow = stage = ""
    if call.parent is not None:
        workflow = str(call.parent.metadata.get("workflow", ""))
        stage = str(call.parent.metadata.get("stage", ""))
    record_generation(
        integration,
        extra,
        completion_start_ns,
        trace=call.trace,
        parent=call.parent,
        name=provider.name,
        model=model or "unknown",
        persona=call.persona,
        chatmode=call.chatmode,
        prompt=prompt,
        completion=completion,
        usage=usage,
        start_ns=call.start_ns,
        end_ns=end_ns,
        model_parameters=call.parameters or None,
        error=error,
        workflow=workflow,
        stage=stage,
    )


def record_generation(
    integration: LangfuseIntegration,
    extra: Mapping[str, Any],
    completion_start_ns: int | None,
    **kwargs: Any,
) -> None:
    """``integration.record_generation(**kwargs)`` with ``extra`` span attributes and the
    completion start time (``langfuse.observation.completion_start_time``).
    """
    integration.record_generation(
        attributes=extra, completion_start_ns=completion_start_ns, **kwargs
    )


# -- streams of any LLM function (ObservableLLM) --------------------------------------------
def summarize_items(items: list[Any]) -> tuple[str, Any]:
    """Completion text and usage of a stream's items: strings, OpenAI chat completion chunks,
    Anthropic message events, or anything else (recorded as JSON).

    Usage is the provider's final count (never a sum of per-chunk counts), or None.
    """
    first = next((item for item in items if item is not None), None)
    if first is None:
        return "", None
    if isinstance(first, str | bytes):
        return "".join(text_of(item) for item in items if item is not None), None
    if _has(first, "choices"):
        from hypertool.instrumentation.openai import summarize_chunks as openai_chunks

        summary = openai_chunks(items)
    elif isinstance(field(first, "type"), str):
        from hypertool.instrumentation.anthropic import summarize_events

        summary = summarize_events(items)
    else:
        return text_of(items), None
    return text_of(summary.output), summary.usage


def _has(obj: Any, name: str) -> bool:
    return name in obj if isinstance(obj, Mapping) else hasattr(obj, name)
