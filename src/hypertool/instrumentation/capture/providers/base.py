"""What a provider call produced, and how it becomes a generation.

A provider module describes its SDK with a :class:`Provider`: which keyword arguments are model
parameters, how to read the input, a response and a stream's items (each into a
:class:`Summary`). The ``record_*`` functions run on the recorder thread: they read the
summary, add the attributes only a provider knows (system, response id, time to first token,
abandoned streams, HTTP status of errors) and hand a ``GenerationInput`` to the target.
Nothing here imports an SDK: responses and chunks are read by duck typing (:func:`field`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hypertool.instrumentation import semconv as attr
from hypertool.instrumentation.capture.streams import ItemPredicate, StreamOutcome
from hypertool.instrumentation.model.usage import text_of


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
        recognizes: True for a stream item of this provider (``ObservableLLM`` around a
            generator of them).
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
    recognizes: ItemPredicate
    prepare_stream: Callable[[dict[str, Any]], ItemPredicate | None] | None = None


def error_attributes(error: BaseException) -> dict[str, Any]:
    """``error.type``, and the HTTP status of an SDK's status error."""
    extra: dict[str, Any] = {attr.ERROR_TYPE: type(error).__qualname__}
    status = getattr(error, "status_code", None)
    if isinstance(status, int):
        extra[attr.HTTP_STATUS_CODE] = status
    return extra


def stream_attributes(outcome: StreamOutcome, *, complete: bool = False) -> dict[str, Any]:
    """Span attributes of a stream's end: chunks, error, or abandoned (level WARNING).

    ``complete`` is True when the items show the answer reached its end (a finish reason), so
    a caller that stops reading just after it has not abandoned anything.
    """
    extra: dict[str, Any] = {attr.STREAM: True, attr.STREAM_CHUNKS: len(outcome.items)}
    if outcome.error is not None:
        extra.update(error_attributes(outcome.error))
    elif outcome.abandoned and not complete:
        extra[attr.STREAM_ABANDONED] = True
        extra[attr.LEVEL] = attr.LEVEL_WARNING
        extra[attr.STATUS_MESSAGE] = (
            f"stream closed by the caller before its end, after {len(outcome.items)} chunk(s)"
        )
    return extra


# -- streams of any LLM function (ObservableLLM) --------------------------------------------
def summarize_items(items: list[Any], providers: Sequence[Provider] = ()) -> tuple[str, Any]:
    """Completion text and usage of a stream's items: strings, the items of one of
    ``providers`` (OpenAI chat completion chunks, Anthropic message events), or anything else
    (recorded as JSON).

    Usage is the provider's final count (never a sum of per-chunk counts), or None.
    """
    first = next((item for item in items if item is not None), None)
    if first is None:
        return "", None
    if isinstance(first, str | bytes):
        return "".join(text_of(item) for item in items if item is not None), None
    for provider in providers:
        if provider.recognizes(first):
            summary = provider.chunks(items)
            return text_of(summary.output), summary.usage
    return text_of(items), None
