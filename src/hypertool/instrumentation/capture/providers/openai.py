"""Reading OpenAI chat completions: calls, responses and stream items, by duck typing
(no SDK import).

The front door is :mod:`hypertool.instrumentation.openai`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hypertool.instrumentation.capture.providers.base import (
    Provider,
    Summary,
    assistant_output,
    copied,
    field,
    omitted,
)

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


def _recognizes(item: Any) -> bool:
    return "choices" in item if isinstance(item, Mapping) else hasattr(item, "choices")


PROVIDER = Provider(
    system="openai",
    name="openai.chat.completions",
    parameters=PARAMETERS,
    prompt=_prompt,
    response=summarize_response,
    chunks=summarize_chunks,
    is_token=_is_token,
    recognizes=_recognizes,
    prepare_stream=_prepare_stream,
)
