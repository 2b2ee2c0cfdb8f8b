"""Record every chat completion an OpenAI client makes, streamed or not.

Usage::

    from openai import OpenAI
    from hypertool.instrumentation.openai import instrument

    client = instrument(OpenAI(), persona="backend-engineer")
    client.chat.completions.create(model="gpt-4o", messages=[...])

Needs the ``openai`` package (``pip install 'hypertool-instrumentation[openai]'``).
"""

from __future__ import annotations

from typing import TypeVar

from hypertool.instrumentation.capture.providers.openai import PROVIDER
from hypertool.instrumentation.capture.providers.patching import (
    Instrumentation,
    patch_method,
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
    """Make every ``client.chat.completions.create(...)`` call a recorded generation.

    Works with ``OpenAI`` and ``AsyncOpenAI`` (and their Azure variants); the same client is
    returned, changed in place (only this instance, never the SDK's classes), and every call
    returns what it returned before. Each call records the model, model parameters
    (temperature, max tokens…), input messages (and tools), output text and tool calls, the
    provider's usage including cached and reasoning tokens, cost, and errors (status code and
    message; the SDK's exception is re-raised unchanged). ``.chat.completions.stream()``
    goes through ``create`` and is recorded too, and so is ``.chat.completions.parse()``.

    Persona and chatmode: the keyword arguments ``hypertool_persona=`` and
    ``hypertool_chatmode=`` of a call (taken out before the SDK sees them), else the persona of
    the enclosing stage, else ``persona`` / ``chatmode`` here, else the enclosing trace's: the
    precedence every instrumented call shares (:mod:`hypertool.instrumentation.capture.resolution`).

    With ``stream=True`` the returned stream yields the same chunks and is recorded when it
    ends or is closed: time to first token, assembled output, and the usage of the final chunk.
    To get that usage, ``stream_options={"include_usage": True}`` is sent when the call does
    not pass ``stream_options``; the extra usage-only chunk it brings is then not yielded, so
    the caller sees the chunks it would have seen. Pass ``stream_options`` yourself (``None``
    to send none) to turn this off; usage is then estimated and marked so.

    Args:
        client: An ``openai.OpenAI`` or ``openai.AsyncOpenAI`` client.
        langfuse: Integration to record with; the process default (at call time) when None.
        persona: Persona of calls that name none, outside a stage that has one.
        chatmode: Chatmode of calls that name none.

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
    instrumentation = Instrumentation(
        PROVIDER, lambda: langfuse or get_langfuse_integration(), persona, chatmode
    )
    patch_method(completions, "create", instrumentation)
    if hasattr(completions, "parse"):  # structured outputs; its own request, not via create
        patch_method(completions, "parse", instrumentation)
    return client
