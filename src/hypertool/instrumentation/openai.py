"""Record every chat completion an OpenAI client makes, streamed or not.

Usage::

    from openai import OpenAI
    from hypertool.instrumentation.openai import instrument

    client = instrument(OpenAI(), persona="backend-engineer")
    client.chat.completions.create(model="gpt-4o", messages=[...])

Needs the ``openai`` package (``pip install 'hypertool-instrumentation[openai]'``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from hypertool.instrumentation._generations import (
    Provider,
    Summary,
    assistant_output,
    copied,
    field,
    omitted,
)
from hypertool.instrumentation._providers import Instrumentation, patch_method, require
from hypertool.instrumentation.langfuse_integration import LangfuseIntegration

__all__ = ["instrument"]

C = TypeVar("C")

PARAMETERS = (
    "temperature",
    "max_tokens",
    "max_completion_tokens",
    "top_p",
    "frequency_penalty",
    "presence_penalty",
    "seed",
    "stop",
    "n",
    "logprobs",
    "top_logprobs",
    "reasoning_effort",
    "tool_choice",
    "parallel_tool_calls",
    "service_tier",
)


def instrument(
    client: C,
    *,
    langfuse: LangfuseIntegration | None = None,
    persona: str | None = None,
    chatmode: str | None = None,
) -> C:
    """Make every ``client.chat.completions.create(...)`` call a recorded generation.

    Works with ``OpenAI`` and ``AsyncOpenAI`` (and their Azure variants); the same client is
    returned, changed in place (only this instance, never the SDK's classes), and every call
    returns what it returned before. Each call records the model, model parameters
    (temperature, max tokens…), input messages (and tools), output text and tool calls, the
    provider's usage including cached and reasoning tokens, cost, and errors (status code and
    message; the SDK's exception is re-raised unchanged). ``.chat.completions.stream()``
    goes through ``create`` and is recorded too, and so is ``.chat.completions.parse()``.

    Persona and chatmode: the keyword arguments ``hypertool_persona=`` and
    ``hypertool_chatmode=`` of a call (taken out before the SDK sees them), else the
    enclosing trace or stage entered with ``with``, else ``persona`` / ``chatmode`` here.

    With ``stream=True`` the returned stream yields the same chunks and is recorded when it
    ends or is closed: time to first token, assembled output, and the usage of the final chunk.
    To get that usage, ``stream_options={"include_usage": True}`` is sent when the call does
    not pass ``stream_options``; the extra usage-only chunk it brings is then not yielded, so
    the caller sees the chunks it would have seen. Pass ``stream_options`` yourself (``None``
    to send none) to turn this off; usage is then estimated and marked so.

    Args:
        client: An ``openai.OpenAI`` or ``openai.AsyncOpenAI`` client.
        langfuse: Integration to record with; the process default (at call time) when None.
        persona: Persona of calls made outside any trace that name none.
        chatmode: Chatmode of calls that name none, outside a trace that has one.

    Returns:
        ``client`` itself.

    Raises:
        ImportError: The ``openai`` package is not installed.
        TypeError: ``client`` has no ``chat.completions``.

    """
    require("openai", "openai")
    completions = getattr(getattr(client, "chat", None), "completions", None)
    if completions is None or not hasattr(completions, "create"):
        raise TypeError(
            f"instrument() needs an openai.OpenAI or AsyncOpenAI client, got {type(client)!r}"
        )
    instrumentation = Instrumentation(PROVIDER, langfuse, persona, chatmode)
    patch_method(completions, "create", instrumentation)
    if hasattr(completions, "parse"):  # structured outputs; its own request, not via create
        patch_method(completions, "parse", instrumentation)
    return client


# -- reading calls, responses and chunks (duck typing: objects or dicts) --------------------
def _prompt(kwargs: Mapping[str, Any]) -> Any:
    messages = copied(kwargs.get("messages"))
    tools = kwargs.get("tools")
    if omitted(tools) or not tools:
        return messages
    return {"messages": messages, "tools": copied(tools)}


def _tool_call(call: Any) -> dict[str, Any]:
    function = field(call, "function")
    return {
        "id": field(call, "id"),
        "type": field(call, "type") or "function",
        "function": {"name": field(function, "name"), "arguments": field(function, "arguments")},
    }


def summarize_response(response: Any) -> Summary:
    """Text, tool calls and usage of a chat completion (first choice)."""
    choices = field(response, "choices") or ()
    choice = choices[0] if choices else None
    message = field(choice, "message")
    text = field(message, "content") or field(message, "refusal") or ""
    tool_calls = [_tool_call(call) for call in field(message, "tool_calls") or ()]
    return Summary(
        text=text if isinstance(text, str) else str(text),
        output=assistant_output(text, tool_calls),
        usage=field(response, "usage"),
        model=field(response, "model"),
        response_id=field(response, "id"),
        finish_reason=field(choice, "finish_reason"),
    )


def summarize_chunks(chunks: list[Any]) -> Summary:
    """Text, tool calls and usage of a chat completion's stream (first choice).

    The usage is the last one a chunk carried (the final chunk's, with ``include_usage``):
    OpenAI reports the whole call's usage once, never per chunk.
    """
    parts: list[str] = []
    calls: dict[int, dict[str, Any]] = {}
    usage = model = response_id = finish = None
    for chunk in chunks:
        if model is None:  # the same on every chunk: read until found
            model, response_id = field(chunk, "model"), field(chunk, "id")
        chunk_usage = field(chunk, "usage")
        if chunk_usage is not None:
            usage = chunk_usage
        for choice in field(chunk, "choices") or ():
            if (field(choice, "index") or 0) != 0:
                continue
            finish = field(choice, "finish_reason") or finish
            delta = field(choice, "delta")
            content = field(delta, "content") or field(delta, "refusal")
            if content:
                parts.append(content)
            for piece in field(delta, "tool_calls") or ():
                _add_tool_call_piece(calls, piece)
    text = "".join(parts)
    tool_calls = [calls[index] for index in sorted(calls)]
    return Summary(
        text=text,
        output=assistant_output(text, tool_calls),
        usage=usage,
        model=model,
        response_id=response_id,
        finish_reason=finish,
        complete=finish is not None,
    )


def _add_tool_call_piece(calls: dict[int, dict[str, Any]], piece: Any) -> None:
    index = field(piece, "index") or 0
    entry = calls.get(index)
    if entry is None:
        entry = calls[index] = {
            "id": None,
            "type": "function",
            "function": {"name": "", "arguments": ""},
        }
    entry["id"] = field(piece, "id") or entry["id"]
    function = field(piece, "function")
    name = field(function, "name")
    if name and not entry["function"]["name"]:
        entry["function"]["name"] = name
    arguments = field(function, "arguments")
    if arguments:
        entry["function"]["arguments"] += arguments


def _is_token(chunk: Any) -> bool:
    choices = field(chunk, "choices")
    if not choices:
        return False
    delta = field(choices[0], "delta")
    return bool(field(delta, "content") or field(delta, "tool_calls") or field(delta, "refusal"))


def _is_usage_only(chunk: Any) -> bool:
    # Per chunk of every stream we asked usage for: plain attribute access (SDK objects only).
    return not chunk.choices and chunk.usage is not None


def _prepare_stream(kwargs: dict[str, Any]) -> Any:
    if "stream_options" in kwargs and not omitted(kwargs["stream_options"]):
        return None
    if kwargs.get("stream_options", "absent") is None:
        return None  # an explicit None: the caller wants no stream options
    kwargs["stream_options"] = {"include_usage": True}
    return _is_usage_only


PROVIDER = Provider(
    system="openai",
    name="openai.chat.completions",
    parameters=PARAMETERS,
    prompt=_prompt,
    response=summarize_response,
    chunks=summarize_chunks,
    is_token=_is_token,
    prepare_stream=_prepare_stream,
)
