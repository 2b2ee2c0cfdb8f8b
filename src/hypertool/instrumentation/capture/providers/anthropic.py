"""Reading Anthropic messages: calls, responses and stream items, by duck typing
(no SDK import).

The front door is :mod:`hypertool.instrumentation.anthropic`.
"""

from __future__ import annotations

import json
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
from hypertool.instrumentation.model.usage import Usage, estimate_tokens, usage_from_mapping

PARAMETERS = (
    "max_tokens",
    "temperature",
    "top_p",
    "top_k",
    "stop_sequences",
    "thinking",
    "tool_choice",
    "output_config",
    "service_tier",
)
_USAGE_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
)
_TOOL_BLOCKS = ("tool_use", "server_tool_use")


# -- reading calls, messages and events (duck typing: objects or dicts) ---------------------
def _prompt(kwargs: Mapping[str, Any]) -> Any:
    messages = copied(kwargs.get("messages"))
    system = kwargs.get("system")
    if not omitted(system) and system:
        messages = [{"role": "system", "content": copied(system)}, *(messages or ())]
    tools = kwargs.get("tools")
    if omitted(tools) or not tools:
        return messages
    return {"messages": messages, "tools": copied(tools)}


def _plain(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    return dump() if callable(dump) else value


def _tool_use(block: Any, kind: str, tool_input: Any) -> dict[str, Any]:
    return {
        "type": kind,
        "id": field(block, "id"),
        "name": field(block, "name"),
        "input": tool_input,
    }


def summarize_message(message: Any) -> Summary:
    """Text, tool uses and usage of a message."""
    texts: list[str] = []
    tools: list[dict[str, Any]] = []
    for block in field(message, "content") or ():
        kind = field(block, "type")
        if kind == "text":
            texts.append(field(block, "text") or "")
        elif kind in _TOOL_BLOCKS:
            tools.append(_tool_use(block, kind, _plain(field(block, "input"))))
    text = "".join(texts)
    return Summary(
        text=text,
        output=assistant_output(text, tools),
        usage=field(message, "usage"),
        model=field(message, "model"),
        response_id=field(message, "id"),
        finish_reason=field(message, "stop_reason"),
    )


def _usage_fields(usage: Any) -> dict[str, Any]:
    fields = {}
    for name in _USAGE_FIELDS:
        value = field(usage, name)
        if value is not None:
            fields[name] = value
    return fields


def summarize_events(events: list[Any]) -> Summary:
    """Text, tool uses and usage of a message's stream events.

    Usage: ``message_start`` gives the input counts, ``message_delta`` the final (cumulative)
    output count and any updated input counts; the latest value of each wins, nothing is
    summed. Without a ``message_delta`` (stream closed early) output tokens are estimated.
    """
    usage: dict[str, Any] = {}
    blocks: dict[int, dict[str, Any]] = {}
    model = response_id = stop_reason = None
    final_usage = stopped = False
    for event in events:
        kind = field(event, "type")
        if kind == "content_block_delta":
            block = blocks.setdefault(field(event, "index") or 0, _block(None))
            delta = field(event, "delta")
            delta_kind = field(delta, "type")
            if delta_kind == "text_delta":
                block["parts"].append(field(delta, "text") or "")
            elif delta_kind == "input_json_delta":
                block["parts"].append(field(delta, "partial_json") or "")
        elif kind == "content_block_start":
            blocks[field(event, "index") or 0] = _block(field(event, "content_block"))
        elif kind == "message_start":
            message = field(event, "message")
            model, response_id = field(message, "model"), field(message, "id")
            usage.update(_usage_fields(field(message, "usage")))
        elif kind == "message_delta":
            final_usage = True
            stop_reason = field(field(event, "delta"), "stop_reason") or stop_reason
            usage.update(_usage_fields(field(event, "usage")))
        elif kind == "message_stop":
            stopped = True
    texts: list[str] = []
    tools: list[dict[str, Any]] = []
    for index in sorted(blocks):
        block = blocks[index]
        joined = "".join(block["parts"])
        if block["type"] in _TOOL_BLOCKS:
            tools.append(_tool_use(block["source"], block["type"], _json_or_text(joined)))
        elif block["type"] in ("text", None):
            texts.append(block["text"] + joined)
    text = "".join(texts)
    return Summary(
        text=text,
        output=assistant_output(text, tools),
        usage=_stream_usage(usage, final_usage, text),
        model=model,
        response_id=response_id,
        finish_reason=stop_reason,
        complete=stopped or stop_reason is not None,
    )


def _block(source: Any) -> dict[str, Any]:
    return {
        "type": field(source, "type"),
        "text": field(source, "text") or "",
        "source": source,
        "parts": [],
    }


def _json_or_text(raw: str) -> Any:
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _stream_usage(fields: dict[str, Any], final: bool, text: str) -> Usage | None:
    if not fields:
        return None
    if final:
        return usage_from_mapping(fields)
    # message_start's output_tokens is a placeholder; the real count comes with message_delta.
    started = usage_from_mapping({**fields, "output_tokens": 0})
    if started is None:
        return None
    return Usage(started.input, estimate_tokens(text), True, started.details)


def _is_token(event: Any) -> bool:
    return bool(field(event, "type") == "content_block_delta")


def _recognizes(item: Any) -> bool:
    return isinstance(field(item, "type"), str)


PROVIDER = Provider(
    system="anthropic",
    name="anthropic.messages",
    parameters=PARAMETERS,
    prompt=_prompt,
    response=summarize_message,
    chunks=summarize_events,
    is_token=_is_token,
    recognizes=_recognizes,
)
