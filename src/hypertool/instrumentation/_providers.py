"""Patching an SDK client so that each call is recorded.

:func:`patch_method` replaces one method of one client resource (an instance attribute: the
SDK's classes never change) with a wrapper that takes our keyword arguments out, resolves the
persona and chatmode, checks the budget, calls the SDK, and hands the outcome to the
integration's recorder thread (:mod:`._generations`). Streams are returned wrapped
(:mod:`._streams`) and recorded when they end; :class:`StreamManager` does the same for the
SDKs' ``with client.messages.stream(...)`` helpers.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

from hypertool.instrumentation._generations import (
    Provider,
    omitted,
    record_failure,
    record_response,
    record_stream,
)
from hypertool.instrumentation._log import logger
from hypertool.instrumentation._streams import ItemPredicate, StreamOutcome, observe_stream
from hypertool.instrumentation.budget import BudgetExceededError
from hypertool.instrumentation.contexts import SpanContext, TraceContext, current
from hypertool.instrumentation.langfuse_integration import (
    LangfuseIntegration,
    get_langfuse_integration,
)
from hypertool.instrumentation.personas import UNKNOWN_PERSONA, canonical_name

PERSONA_KWARG = "hypertool_persona"
CHATMODE_KWARG = "hypertool_chatmode"
_ORIGINAL = "__hypertool_original__"


def require(package: str, extra: str) -> None:
    """Raise ImportError with the exact ``pip install`` to run when ``package`` is missing."""
    try:
        importlib.import_module(package)
    except ImportError as exc:
        raise ImportError(
            f"hypertool.instrumentation.{extra} needs the {package!r} package: "
            f"pip install 'hypertool-instrumentation[{extra}]'"
        ) from exc


class Instrumentation:
    """One instrumented client's settings: provider, integration, default persona/chatmode."""

    def __init__(
        self,
        provider: Provider,
        langfuse: LangfuseIntegration | None,
        persona: str | None,
        chatmode: str | None,
    ) -> None:
        self.provider = provider
        self.langfuse = langfuse
        self.persona = canonical_name(persona) if persona else None
        self.chatmode = chatmode or ""

    def begin(self, kwargs: dict[str, Any], *, streaming: bool = False) -> Call:
        """Take our keyword arguments out of ``kwargs`` and resolve the call's context.

        Raises:
            BudgetExceededError: The persona's budget is spent under policy ``block``.

        """
        persona = kwargs.pop(PERSONA_KWARG, None)
        chatmode = kwargs.pop(CHATMODE_KWARG, None)
        try:
            return self._begin(kwargs, persona, chatmode, streaming)
        except BudgetExceededError:
            raise
        except Exception:
            logger.debug("instrumentation failed before the call", exc_info=True)
            return Call(self.provider, None)

    def _begin(self, kwargs: dict[str, Any], persona: Any, chatmode: Any, streaming: bool) -> Call:
        integration = self.langfuse or get_langfuse_integration()
        entered = current()
        trace, parent = entered if entered is not None else (None, None)
        if persona:
            resolved = canonical_name(str(persona))
        elif parent is not None:
            resolved = parent.persona
        elif trace is not None:
            resolved = trace.persona
        else:
            resolved = self.persona or UNKNOWN_PERSONA
        mode = str(chatmode or (trace.chatmode if trace is not None else "") or self.chatmode)
        integration.budgets.check(resolved)
        provider = self.provider
        call = Call(provider, integration)
        call.trace, call.parent, call.persona, call.chatmode = trace, parent, resolved, mode
        call.model = str(kwargs.get("model", "") or "")
        call.prompt = provider.prompt(kwargs)
        call.parameters = {
            name: kwargs[name]
            for name in provider.parameters
            if name in kwargs and not omitted(kwargs[name])
        }
        call.streaming = streaming or kwargs.get("stream") is True
        if call.streaming and provider.prepare_stream is not None:
            call.hide = provider.prepare_stream(kwargs)
        call.start_ns = time.time_ns()
        return call


class Call:
    """One call in flight: its context, and how its outcome is recorded."""

    __slots__ = (
        "chatmode",
        "hide",
        "integration",
        "model",
        "parameters",
        "parent",
        "persona",
        "prompt",
        "provider",
        "start_ns",
        "streaming",
        "trace",
    )

    def __init__(self, provider: Provider, integration: LangfuseIntegration | None) -> None:
        self.provider = provider
        self.integration = integration  # None: instrumentation failed, record nothing
        self.trace: TraceContext | None = None
        self.parent: SpanContext | None = None
        self.persona = UNKNOWN_PERSONA
        self.chatmode = ""
        self.model = ""
        self.prompt: Any = None
        self.parameters: dict[str, Any] = {}
        self.streaming = False
        self.hide: ItemPredicate | None = None
        self.start_ns = time.time_ns()

    def returned(self, result: Any) -> Any:
        """The SDK returned: record a response, or wrap a stream (recorded when it ends)."""
        if self.integration is None:
            return result
        if self.streaming:
            return self.observe(result)
        self.integration.defer(record_response, self, result, time.time_ns())
        return result

    def failed(self, error: BaseException) -> None:
        """The SDK raised ``error`` (re-raised by the caller): record the failed call."""
        if self.integration is not None:
            self.integration.defer(record_failure, self, error, time.time_ns())

    def observe(self, stream: Any) -> Any:
        """``stream`` wrapped so that it is recorded when it ends."""
        if self.integration is None:
            return stream
        return observe_stream(
            stream, self._stream_ended, is_token=self.provider.is_token, hide=self.hide
        )

    def _stream_ended(self, outcome: StreamOutcome) -> None:
        if self.integration is not None:
            self.integration.defer(record_stream, self, outcome)


# -- patching -------------------------------------------------------------------------------
def patch_method(resource: Any, method: str, instrumentation: Instrumentation) -> None:
    """Replace ``resource.<method>`` (a create call) by a recording wrapper; idempotent."""
    original = _original(resource, method)
    if inspect.iscoroutinefunction(inspect.unwrap(original)):

        @functools.wraps(original)
        async def call_async(*args: Any, **kwargs: Any) -> Any:
            call = instrumentation.begin(kwargs)
            try:
                result = await original(*args, **kwargs)
            except BaseException as exc:
                call.failed(exc)
                raise
            return call.returned(result)

        _install(resource, method, call_async, original)
        return

    @functools.wraps(original)
    def call_sync(*args: Any, **kwargs: Any) -> Any:
        call = instrumentation.begin(kwargs)
        try:
            result = original(*args, **kwargs)
        except BaseException as exc:
            call.failed(exc)
            raise
        return call.returned(result)

    _install(resource, method, call_sync, original)


def patch_stream_helper(resource: Any, method: str, instrumentation: Instrumentation) -> None:
    """Replace ``resource.<method>`` (a helper returning a stream manager, used with ``with``
    or ``async with``) so the stream it opens is recorded; idempotent.
    """
    original = _original(resource, method)

    @functools.wraps(original)
    def open_stream(*args: Any, **kwargs: Any) -> Any:
        call = instrumentation.begin(kwargs, streaming=True)
        try:
            manager = original(*args, **kwargs)
        except BaseException as exc:
            call.failed(exc)
            raise
        return StreamManager(manager, call)

    _install(resource, method, open_stream, original)


def _original(resource: Any, method: str) -> Callable[..., Any]:
    current_method = getattr(resource, method)
    original: Callable[..., Any] = getattr(current_method, _ORIGINAL, current_method)
    return original


def _install(
    resource: Any, method: str, wrapper: Callable[..., Any], original: Callable[..., Any]
) -> None:
    setattr(wrapper, _ORIGINAL, original)
    # An instance attribute: only this client changes, never the SDK's class.
    setattr(resource, method, wrapper)


class StreamManager:
    """An SDK stream manager whose stream is recorded; everything else is the SDK's."""

    __slots__ = ("_call", "_manager")

    def __init__(self, manager: Any, call: Call) -> None:
        self._manager = manager
        self._call = call

    def __getattr__(self, name: str) -> Any:
        if name in StreamManager.__slots__:
            raise AttributeError(name)
        return getattr(self._manager, name)

    def __enter__(self) -> Any:
        self._call.start_ns = time.time_ns()  # the request is made now
        try:
            stream = self._manager.__enter__()
        except BaseException as exc:
            self._call.failed(exc)
            raise
        return self._hook(stream)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Any:
        return self._manager.__exit__(exc_type, exc, tb)

    async def __aenter__(self) -> Any:
        self._call.start_ns = time.time_ns()
        try:
            stream = await self._manager.__aenter__()
        except BaseException as exc:
            self._call.failed(exc)
            raise
        return self._hook(stream)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Any:
        return await self._manager.__aexit__(exc_type, exc, tb)

    def _hook(self, stream: Any) -> Any:
        # The SDK's stream object reads its raw event stream for every way of consuming it
        # (iteration, text_stream, get_final_message, until_done): observe that one, and hand
        # the SDK's own object back so all its helpers keep working.
        raw = getattr(stream, "_raw_stream", None)
        if raw is None:
            return self._call.observe(stream)
        stream._raw_stream = self._call.observe(raw)
        return stream
