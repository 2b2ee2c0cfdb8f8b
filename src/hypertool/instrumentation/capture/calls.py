"""The core of ``ObservableLLM`` and ``@observe_llm``: run a function, hand its outcome over.

:class:`CallRecorder` is shared by the sync and async paths. For an async call, the context is
resolved, the budget checked and the clock started when the coroutine starts running, not
when it is created: coroutines are often created first and awaited later, behind a
semaphore. Any callable whose result is awaitable is treated as async, ``async def`` or not.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from hypertool.instrumentation._log import logger
from hypertool.instrumentation.budget import BudgetExceededError
from hypertool.instrumentation.capture.providers.base import (
    Provider,
    stream_attributes,
    summarize_items,
)
from hypertool.instrumentation.capture.resolution import resolve
from hypertool.instrumentation.capture.scorers import Scorer, run_scorers
from hypertool.instrumentation.capture.streams import StreamOutcome, observe_stream
from hypertool.instrumentation.capture.target import Target, TargetGetter
from hypertool.instrumentation.model.handles import (
    LAST_GENERATION,
    PendingGeneration,
    TraceContext,
)
from hypertool.instrumentation.model.prompts import ACTIVE_PROMPT, PromptLink, find_link, link_of
from hypertool.instrumentation.model.records import CallContext, GenerationInput, Reservation
from hypertool.instrumentation.model.usage import Usage, complete_usage, freeze, snapshot, text_of
from hypertool.instrumentation.personas import canonical_name


class Call(PendingGeneration):
    """One call in flight: where it belongs, what it was asked, when it started; once it
    returned, the handle of its generation (:func:`last_generation`).
    """

    __slots__ = ("context", "link", "metadata", "prompt", "reservation", "start_ns", "target")

    def __init__(
        self,
        target: Target,
        context: CallContext,
        prompt: Any,
        metadata: Mapping[str, Any] | None,
        reservation: Reservation | None,
        link: PromptLink | None,
    ) -> None:
        self._recorded = None  # PendingGeneration's, set here: one call less per call
        self._waiting = None
        self.target = target
        self.context = context
        self.prompt = prompt
        self.metadata = metadata
        self.reservation = reservation
        self.link = link
        self.start_ns = time.time_ns()

    def release(self) -> None:
        """Recorded (or recording failed): keep only the handle's part. :func:`last_generation`
        may hold this call until the next one, and must not keep the integration (or the
        prompt) alive, nor a budget reservation recording did not settle: that is given back
        (a settled one is left as it is).
        """
        if self.reservation is not None:
            self.reservation.release()
            self.reservation = None
        del self.target, self.context, self.prompt, self.metadata


def is_async_callable(fn: Any) -> bool:
    """True for ``async def`` functions, partials of them, and objects with ``async __call__``."""
    if inspect.iscoroutinefunction(fn):
        return True
    call = getattr(type(fn), "__call__", None)  # noqa: B004 - the class's, not the instance's
    return call is not None and inspect.iscoroutinefunction(call)


class CallRecorder:
    """Resolves each call's context and records its outcome off the caller's path.

    Args:
        name: Generation name.
        model: Model name.
        target: The integration to record with (called at each call: the process default
            may change).
        persona: Default persona (see :mod:`~.resolution` for the precedence).
        chatmode: Default chatmode.
        model_parameters: Recorded on every generation.
        stream_providers: Providers whose stream items a returned generator may yield.
        scorers: Turn each successful call's input and output into scores of its generation
            (:mod:`~.scorers`), on the recorder thread.

    """

    def __init__(
        self,
        name: str,
        model: str,
        target: TargetGetter,
        persona: str | None,
        chatmode: str | None,
        model_parameters: Mapping[str, Any] | None,
        stream_providers: Sequence[Provider] = (),
        scorers: Sequence[Scorer] = (),
    ) -> None:
        self.name = name
        self.model = model
        self.target = target
        self.persona = canonical_name(persona) if persona else None
        self.chatmode = chatmode
        self.model_parameters = dict(model_parameters) if model_parameters else None
        self.stream_providers = tuple(stream_providers)
        self.scorers = tuple(scorers)

    # -- the caller's path -----------------------------------------------------------------
    def start(
        self,
        prompt: Any,
        persona: str | None,
        chatmode: str | None,
        trace: TraceContext | None,
        metadata: Mapping[str, Any] | None,
    ) -> Call | None:
        """Resolve the call and check its persona's budget; None when instrumentation failed.

        Raises:
            BudgetExceededError: The persona's budget is spent under policy ``block``.

        """
        try:
            target = self.target()
            context = resolve(
                trace=trace,
                persona=persona,
                chatmode=chatmode,
                default_persona=self.persona,
                default_chatmode=self.chatmode,
            )
            # A spent budget under policy "block" must stop the call: raised past the guard.
            reservation = target.admit(context.persona)
            if type(prompt) is str:
                return Call(target, context, prompt, metadata, reservation, ACTIVE_PROMPT.get())
            # A compiled managed prompt links the call; a list loses the link when frozen.
            link = link_of(prompt) or ACTIVE_PROMPT.get()
            return Call(target, context, freeze(prompt), metadata, reservation, link)
        except BudgetExceededError:
            raise
        except Exception:
            logger.debug("instrumentation failed before the call", exc_info=True)
            return None

    def finish(self, call: Call | None, result: Any, error: BaseException | None) -> Any:
        """Hand the outcome over; the recording itself happens on the recorder thread.

        The text and provider usage are read now, since the caller may change the returned
        object afterwards. A generator or async generator is returned wrapped: its generation
        is recorded when it ends.

        Returns:
            ``result``, or the wrapped generator.

        """
        if call is None:
            return result
        try:
            LAST_GENERATION.set(call)
            end_ns = time.time_ns()
            if error is not None:
                completion, usage = "", None
            elif type(result) is str:
                completion, usage = result, None
            elif inspect.isgenerator(result) or inspect.isasyncgen(result):
                return observe_stream(result, functools.partial(self._stream_ended, call))
            else:
                completion, usage = snapshot(result)
            call.target.defer(self.complete, call, completion, usage, error, end_ns)
        except Exception:
            logger.debug("instrumentation failed after the call", exc_info=True)
        return result

    def call(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any],
        prompt: Any,
        persona: str | None = None,
        chatmode: str | None = None,
        trace: TraceContext | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Any:
        """Call a sync-looking ``fn``; an awaitable result is recorded when it is awaited."""
        call = self.start(prompt, persona, chatmode, trace, metadata)
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            self.finish(call, None, exc)
            raise
        if type(result) is not str and inspect.isawaitable(result):
            # A lambda around an async function, say: its call only made the awaitable.
            return self.awaited(result, prompt, persona, chatmode, trace, metadata)
        return self.finish(call, result, None)

    async def call_async(
        self,
        fn: Callable[..., Awaitable[Any]],
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any],
        prompt: Any,
        persona: str | None = None,
        chatmode: str | None = None,
        trace: TraceContext | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Any:
        """Await ``fn(*args, **kwargs)``; resolution and the clock start when this runs."""
        call = self.start(prompt, persona, chatmode, trace, metadata)
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            self.finish(call, None, exc)
            raise
        return self.finish(call, result, None)

    async def awaited(
        self,
        awaitable: Awaitable[Any],
        prompt: Any,
        persona: str | None,
        chatmode: str | None,
        trace: TraceContext | None,
        metadata: Mapping[str, Any] | None,
    ) -> Any:
        """Await an awaitable a call returned, recording it from when it starts running."""
        try:
            call = self.start(prompt, persona, chatmode, trace, metadata)
        except BaseException:
            close = getattr(awaitable, "close", None)
            if close is not None:  # never awaited: say so quietly, not with a RuntimeWarning
                close()
            raise
        try:
            result = await awaitable
        except BaseException as exc:
            self.finish(call, None, exc)
            raise
        return self.finish(call, result, None)

    # -- the recorder thread ---------------------------------------------------------------
    def _stream_ended(self, call: Call, outcome: StreamOutcome) -> None:
        call.target.defer(self.complete_stream, call, outcome)

    def complete_stream(self, call: Call, outcome: StreamOutcome) -> None:
        """Record a generator's generation."""
        try:
            completion, usage = summarize_items(outcome.items, self.stream_providers)
        except BaseException:
            call.release()
            raise
        self.complete(
            call,
            completion,
            usage,
            outcome.error,
            outcome.end_ns,
            extra=stream_attributes(outcome),
            completion_start_ns=outcome.first_token_ns,
        )

    def complete(
        self,
        call: Call,
        completion: str,
        provider_usage: Any,
        error: BaseException | None,
        end_ns: int,
        *,
        extra: Mapping[str, Any] | None = None,
        completion_start_ns: int | None = None,
    ) -> None:
        """Record the generation."""
        try:
            prompt = text_of(call.prompt)
            # A failed call returned no usage and is normally not billed: 0 tokens, estimated.
            usage = (
                Usage(0, 0, True)
                if error is not None
                else complete_usage(provider_usage, prompt, completion)
            )
            generation = call.target.record(
                GenerationInput(
                    context=call.context,
                    name=self.name,
                    model=self.model,
                    prompt=prompt,
                    completion=completion,
                    usage=usage,
                    start_ns=call.start_ns,
                    end_ns=end_ns,
                    error=error,
                    metadata=call.metadata,
                    model_parameters=self.model_parameters,
                    completion_start_ns=completion_start_ns,
                    attributes=extra or None,
                    reservation=call.reservation,
                    prompt_link=call.link or find_link(call.prompt),
                )
            )
            call.resolve(generation)
            if self.scorers and error is None:
                run_scorers(self.scorers, call.target, generation, call.prompt, completion)
        finally:
            call.release()


def prompt_of(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
    """What to record as the input of a decorated function's call."""
    if len(args) == 1 and not kwargs:
        return args[0]
    if not args and len(kwargs) == 1:
        return next(iter(kwargs.values()))
    return {"args": list(args), "kwargs": dict(kwargs)} if kwargs else list(args)
