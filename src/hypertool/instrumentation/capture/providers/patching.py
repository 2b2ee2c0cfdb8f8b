"""Patching an SDK client so that each call is recorded.

:func:`patch_method` replaces one method of one client resource (an instance attribute: the
SDK's classes never change) with a wrapper that takes our keyword arguments out, resolves the
call's context (:mod:`~hypertool.instrumentation.capture.resolution`), checks the budget,
calls the SDK, and hands the outcome to the recorder thread. Streams are returned wrapped
(:mod:`~hypertool.instrumentation.capture.streams`) and recorded when they end;
:class:`StreamManager` does the same for the SDKs' ``with client.messages.stream(...)`` helpers.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

from hypertool.instrumentation import semconv as attr
from hypertool.instrumentation._log import logger
from hypertool.instrumentation.budget import BudgetExceededError
from hypertool.instrumentation.capture.providers.base import (
    Provider,
    Summary,
    error_attributes,
    omitted,
    stream_attributes,
)
from hypertool.instrumentation.capture.resolution import resolve
from hypertool.instrumentation.capture.streams import ItemPredicate, StreamOutcome, observe_stream
from hypertool.instrumentation.capture.target import Target, TargetGetter
from hypertool.instrumentation.model.handles import PendingGeneration, set_last_generation
from hypertool.instrumentation.model.prompts import PromptLink, active_link, find_link, link_of
from hypertool.instrumentation.model.records import CallContext, GenerationInput, Reservation
from hypertool.instrumentation.model.usage import Usage, complete_usage, text_of
from hypertool.instrumentation.personas import canonical_name

PERSONA_KWARG = "hypertool_persona"
CHATMODE_KWARG = "hypertool_chatmode"
# Arguments a compiled managed prompt may be given as (it links the generation to it).
_PROMPT_KWARGS = ("messages", "system")
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
    """One instrumented client's settings: provider, target, default persona/chatmode."""

    def __init__(
        self,
        provider: Provider,
        target: TargetGetter,
        persona: str | None,
        chatmode: str | None,
    ) -> None:
        self.provider = provider
        self.target = target
        self.persona = canonical_name(persona) if persona else None
        self.chatmode = chatmode or None

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
        target = self.target()
        context = resolve(
            trace=None,
            persona=str(persona) if persona else None,
            chatmode=str(chatmode) if chatmode else None,
            default_persona=self.persona,
            default_chatmode=self.chatmode,
        )
        reservation = target.admit(context.persona)
        provider = self.provider
        call = Call(provider, target)
        call.reservation = reservation
        call.context = context
        call.model = str(kwargs.get("model", "") or "")
        for key in _PROMPT_KWARGS:
            call.link = link_of(kwargs.get(key))
            if call.link is not None:
                break
        else:
            call.link = active_link()
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


class Call(PendingGeneration):
    """One call in flight: its context, and how its outcome is recorded; once it returned,
    the handle of its generation (:func:`last_generation`).
    """

    __slots__ = (
        "context",
        "hide",
        "link",
        "model",
        "parameters",
        "prompt",
        "provider",
        "reservation",
        "start_ns",
        "streaming",
        "target",
    )

    def __init__(self, provider: Provider, target: Target | None) -> None:
        self._recorded = None  # PendingGeneration's, set here: one call less per call
        self._waiting = None
        self.provider = provider
        self.target = target  # None: instrumentation failed, record nothing
        self.context: CallContext | None = None
        self.model = ""
        self.link: PromptLink | None = None
        self.prompt: Any = None
        self.parameters: dict[str, Any] = {}
        self.streaming = False
        self.hide: ItemPredicate | None = None
        self.reservation: Reservation | None = None
        self.start_ns = time.time_ns()

    def returned(self, result: Any) -> Any:
        """The SDK returned: record a response, or wrap a stream (recorded when it ends)."""
        if self.target is None:
            return result
        if self.streaming:
            return self.observe(result)
        set_last_generation(self)
        self.target.defer(self._record_response, result, time.time_ns())
        return result

    def failed(self, error: BaseException) -> None:
        """The SDK raised ``error`` (re-raised by the caller): record the failed call."""
        if self.target is not None:
            set_last_generation(self)
            self.target.defer(self._record_failure, error, time.time_ns())

    def observe(self, stream: Any) -> Any:
        """``stream`` wrapped so that it is recorded when it ends."""
        if self.target is None:
            return stream
        set_last_generation(self)
        return observe_stream(
            stream, self._stream_ended, is_token=self.provider.is_token, hide=self.hide
        )

    def _stream_ended(self, outcome: StreamOutcome) -> None:
        if self.target is not None:
            self.target.defer(self._record_stream, outcome)

    # -- on the recorder thread ------------------------------------------------------------
    def _record_response(self, response: Any, end_ns: int) -> None:
        try:
            self._record(self.provider.response(response), None, end_ns, {})
        finally:
            self._release()

    def _record_failure(self, error: BaseException, end_ns: int) -> None:
        try:
            self._record(None, error, end_ns, error_attributes(error))
        finally:
            self._release()

    def _record_stream(self, outcome: StreamOutcome) -> None:
        try:
            summary = self.provider.chunks(outcome.items)
            extra = stream_attributes(outcome, complete=summary.complete)
            self._record(summary, outcome.error, outcome.end_ns, extra, outcome.first_token_ns)
        finally:
            self._release()

    def _release(self) -> None:
        """Recorded (or recording failed): :func:`last_generation` may hold this call until
        the next one; it must not keep the integration (or the prompt) alive, nor a budget
        reservation recording did not settle: that is given back (a settled one is left as
        it is).
        """
        if self.reservation is not None:
            self.reservation.release()
            self.reservation = None
        self.target = self.context = self.prompt = None

    def _record(
        self,
        summary: Summary | None,
        error: BaseException | None,
        end_ns: int,
        extra: dict[str, Any],
        completion_start_ns: int | None = None,
    ) -> None:
        if self.target is None or self.context is None:
            return
        prompt = text_of(self.prompt)
        if summary is None:
            completion, usage, model = "", Usage(), self.model
        else:
            completion = text_of(summary.output)
            usage = complete_usage(summary.usage, prompt, completion)
            model = summary.model or self.model
            if summary.model:
                extra[attr.GEN_AI_RESPONSE_MODEL] = summary.model
            if summary.response_id:
                extra[attr.GEN_AI_RESPONSE_ID] = summary.response_id
            if summary.finish_reason:
                extra[attr.GEN_AI_FINISH_REASONS] = [summary.finish_reason]
        extra[attr.GEN_AI_SYSTEM] = self.provider.system
        extra[attr.GEN_AI_PROVIDER] = self.provider.system
        extra[attr.STREAM] = self.streaming
        if self.model:
            extra[attr.GEN_AI_REQUEST_MODEL] = self.model
        generation = self.target.record(
            GenerationInput(
                context=self.context,
                name=self.provider.name,
                model=model or "unknown",
                prompt=prompt,
                completion=completion,
                usage=usage,
                start_ns=self.start_ns,
                end_ns=end_ns,
                error=error,
                model_parameters=self.parameters or None,
                completion_start_ns=completion_start_ns,
                attributes=extra,
                reservation=self.reservation,
                prompt_link=self.link or find_link(self.prompt),
            )
        )
        self.resolve(generation)


# -- patching -------------------------------------------------------------------------------
def patch_method(resource: Any, method: str, instrumentation: Instrumentation) -> None:
    """Replace ``resource.<method>`` (a create call) by a recording wrapper; idempotent."""
    original = _original(resource, method)
    if inspect.iscoroutinefunction(inspect.unwrap(original)):

        @functools.wraps(original)
        async def call_async(*args: Any, **kwargs: Any) -> Any:
            # Resolved when the coroutine runs, not when it is created.
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
