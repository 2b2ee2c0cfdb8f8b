"""Record every message an Anthropic client creates, streamed or not.

Usage::

    from anthropic import Anthropic
    from hypertool.instrumentation.anthropic import instrument

    client = instrument(Anthropic(), persona="backend-engineer")
    client.messages.create(model="claude-sonnet-4-0", max_tokens=1024, messages=[...])
    with client.messages.stream(model=..., max_tokens=1024, messages=[...]) as stream:
        for text in stream.text_stream:
            ...

Needs the ``anthropic`` package (``pip install 'hypertool-instrumentation[anthropic]'``).
"""

from __future__ import annotations

from typing import TypeVar

from hypertool.instrumentation.capture.providers.anthropic import PROVIDER
from hypertool.instrumentation.capture.providers.patching import (
    Instrumentation,
    patch_method,
    patch_stream_helper,
    require,
)
from hypertool.instrumentation.integration import LangfuseIntegration, get_langfuse_integration

__all__ = ["instrument"]

C = TypeVar("C")


def instrument(
    client: C,
    *,
    langfuse: LangfuseIntegration | None = None,
    persona: str | None = None,
    chatmode: str | None = None,
) -> C:
    """Make every ``client.messages.create(...)`` and ``client.messages.stream(...)`` call a
    recorded generation.

    Works with ``Anthropic`` and ``AsyncAnthropic``; the same client is returned, changed in
    place (only this instance, never the SDK's classes), and every call returns what it
    returned before. Each call records the model, model parameters (max tokens, temperature…),
    input messages (system prompt and tools included), output text and tool uses, the
    provider's usage including cache reads and writes, cost, and errors (status code and
    message; the SDK's exception is re-raised unchanged).

    Persona and chatmode: the keyword arguments ``hypertool_persona=`` and
    ``hypertool_chatmode=`` of a call (taken out before the SDK sees them), else the persona of
    the enclosing stage, else ``persona`` / ``chatmode`` here, else the enclosing trace's: the
    precedence every instrumented call shares (:mod:`hypertool.instrumentation.capture.resolution`).

    Streams (``create(stream=True)`` and the ``messages.stream()`` helper, whose
    ``text_stream``, ``get_final_message()`` and other helpers keep working) yield the same
    events and are recorded when they end or are closed: time to first token, assembled
    output, and the usage of ``message_start`` and ``message_delta``.

    Args:
        client: An ``anthropic.Anthropic`` or ``anthropic.AsyncAnthropic`` client.
        langfuse: Integration to record with; the process default (at call time) when None.
        persona: Persona of calls that name none, outside a stage that has one.
        chatmode: Chatmode of calls that name none.

    Returns:
        ``client`` itself.

    Raises:
        ImportError: The ``anthropic`` package is not installed.
        TypeError: ``client`` has no ``messages.create``.

    """
    require("anthropic", "anthropic")
    messages = getattr(client, "messages", None)
    if messages is None or not hasattr(messages, "create"):
        raise TypeError(
            f"instrument() needs an anthropic.Anthropic or AsyncAnthropic client, "
            f"got {type(client)!r}"
        )
    instrumentation = Instrumentation(
        PROVIDER, lambda: langfuse or get_langfuse_integration(), persona, chatmode
    )
    patch_method(messages, "create", instrumentation)
    if hasattr(messages, "stream"):
        patch_stream_helper(messages, "stream", instrumentation)
    return client
