"""Automatic tracing of LLM functions: :class:`ObservableLLM` and :func:`observe_llm`."""

from __future__ import annotations

import functools
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar, cast, overload

from hypertool.instrumentation._generations import (
    record_generation,
    stream_attributes,
    summarize_items,
)
from hypertool.instrumentation._streams import StreamOutcome, observe_stream
from hypertool.instrumentation._usage import Usage, complete_usage, freeze, snapshot, text_of
from hypertool.instrumentation.budget import BudgetExceededError
from hypertool.instrumentation.contexts import SpanContext, TraceContext, _current
from hypertool.instrumentation.langfuse_integration import (
    LangfuseIntegration,
    get_langfuse_integration,
)
from hypertool.instrumentation.personas import UNKNOWN_PERSONA, _canonical_cache, canonical_name

logger = logging.getLogger("hypertool.instrumentation")

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(slots=True)
class _Call:
    integration: LangfuseIntegration
    trace: TraceContext | None
    parent: SpanContext | None
    persona: str
    chatmode: str
    prompt: Any
    metadata: Mapping[str, Any] | None
    start_ns: int


class _Recorder:
    """What the sync and async wrappers share: resolve the call's context, record its outcome."""

    def __init__(
        self,
        name: str,
        model: str,
        langfuse: LangfuseIntegration | None,
        persona: str | None,
        chatmode: str | None,
        model_parameters: Mapping[str, Any] | None,
    ) -> None:
        self.name = name
        self.model = model
        self.langfuse = langfuse
        self.persona = canonical_name(persona) if persona else None
        self.chatmode = chatmode
        self.model_parameters = dict(model_parameters) if model_parameters else None

    def before(
        self,
        prompt: Any,
        persona: str | None,
        chatmode: str | None,
        trace: TraceContext | None,
        metadata: Mapping[str, Any] | None,
    ) -> _Call | None:
        try:
            integration = self.langfuse or get_langfuse_integration()
            parent: SpanContext | None = None
            entered = _current.get()
            if trace is None and entered is not None:
                trace, parent = entered
            elif entered is not None and entered[0] is trace:
                parent = entered[1]
            if persona:
                resolved = _canonical_cache.get(persona) or canonical_name(persona)
            elif parent is not None:
                resolved = parent.persona
            elif self.persona:
                resolved = self.persona
            elif trace is not None:
                resolved = trace.persona
            else:
                resolved = UNKNOWN_PERSONA
            mode = chatmode or self.chatmode or (trace.chatmode if trace is not None else "")
            # A spent budget under policy "block" must stop the call: raised past the guard.
            integration.budgets.check(resolved)
            return _Call(
                integration,
                trace,
                parent,
                resolved,
                mode,
                prompt if type(prompt) is str else freeze(prompt),
                metadata,
                time.time_ns(),
            )
        except BudgetExceededError:
            raise
        except Exception:
            logger.debug("instrumentation failed before the call", exc_info=True)
            return None

    def after(self, call: _Call | None, result: Any, error: BaseException | None) -> Any:
        """Hand the outcome to the integration; the recording itself happens off this path.

        The text and provider usage are read now, since the caller may change the returned
        object afterwards; estimating tokens and building the span are deferred. A generator
        or async generator is returned wrapped: its generation is recorded when it ends.

        Returns:
            ``result``, or the wrapped generator.

        """
        if call is None:
            return result
        try:
            end_ns = time.time_ns()
            if error is not None:
                completion, usage = "", None
            elif type(result) is str:
                completion, usage = result, None
            elif inspect.isgenerator(result) or inspect.isasyncgen(result):
                return observe_stream(result, functools.partial(self._stream_ended, call))
            else:
                completion, usage = snapshot(result)
            call.integration.defer(self.complete, call, completion, usage, error, end_ns)
        except Exception:
            logger.debug("instrumentation failed after the call", exc_info=True)
        return result

    def _stream_ended(self, call: _Call, outcome: StreamOutcome) -> None:
        call.integration.defer(self.complete_stream, call, outcome)

    def complete_stream(self, call: _Call, outcome: StreamOutcome) -> None:
        """Record a generator's generation (on the recorder thread)."""
        completion, usage = summarize_items(outcome.items)
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
        call: _Call,
        completion: str,
        provider_usage: Usage | None,
        error: BaseException | None,
        end_ns: int,
        *,
        extra: Mapping[str, Any] | None = None,
        completion_start_ns: int | None = None,
    ) -> None:
        """Record the generation (on the recorder thread)."""
        prompt = text_of(call.prompt)
        # A failed call returned no usage and is normally not billed: 0 tokens, marked estimated.
        usage = (
            Usage(0, 0, True)
            if error is not None
            else complete_usage(provider_usage, prompt, completion)
        )
        workflow = stage = ""
        if call.parent is not None:
            workflow = str(call.parent.metadata.get("workflow", ""))
            stage = str(call.parent.metadata.get("stage", ""))
        record_generation(
            call.integration,
            extra or {},
            completion_start_ns,
            trace=call.trace,
            parent=call.parent,
            name=self.name,
            model=self.model,
            persona=call.persona,
            chatmode=call.chatmode,
            prompt=prompt,
            completion=completion,
            usage=usage,
            start_ns=call.start_ns,
            end_ns=end_ns,
            metadata=call.metadata,
            model_parameters=self.model_parameters,
            error=error,
            workflow=workflow,
            stage=stage,
        )


def _run(
    recorder: _Recorder,
    call: _Call | None,
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
) -> Any:
    try:
        result = fn(*args, **kwargs)
    except BaseException as exc:
        recorder.after(call, None, exc)
        raise
    return recorder.after(call, result, None)


async def _run_async(
    recorder: _Recorder,
    call: _Call | None,
    fn: Callable[..., Awaitable[Any]],
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
) -> Any:
    try:
        result = await fn(*args, **kwargs)
    except BaseException as exc:
        recorder.after(call, None, exc)
        raise
    return recorder.after(call, result, None)


def _prompt_of(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
    if len(args) == 1 and not kwargs:
        return args[0]
    if not args and len(kwargs) == 1:
        return next(iter(kwargs.values()))
    return {"args": list(args), "kwargs": dict(kwargs)} if kwargs else list(args)


class ObservableLLM:
    """Wrap an LLM function so every call is a Langfuse generation with its persona.

    Calling the wrapper calls the function with the same arguments and returns what it
    returned; an async function gives an awaitable. Exceptions propagate unchanged (the
    generation is marked ERROR). Tokens are exact when the function returns a provider
    response (OpenAI chat completion, Anthropic message, or a dict with ``usage``), estimated
    otherwise.

    Args:
        llm_function: The function to observe; its first argument is the prompt.
        model: Model name recorded on each generation.
        langfuse: Integration to record with; the process default when None.
        name: Generation name; the function's name by default.
        persona: Persona when a call names none.
        chatmode: Chatmode when a call names none.
        model_parameters: Temperature, max tokens… recorded on each generation.

    """

    def __init__(
        self,
        llm_function: Callable[..., Any],
        model: str,
        langfuse: LangfuseIntegration | None = None,
        *,
        name: str | None = None,
        persona: str | None = None,
        chatmode: str | None = None,
        model_parameters: Mapping[str, Any] | None = None,
    ) -> None:
        self.llm_function = llm_function
        self.model = model
        self.is_async = inspect.iscoroutinefunction(llm_function)
        self._recorder = _Recorder(
            name or str(getattr(llm_function, "__name__", "llm")),
            model,
            langfuse,
            persona,
            chatmode,
            model_parameters,
        )
        functools.update_wrapper(self, llm_function)

    def __call__(
        self,
        prompt: Any,
        *args: Any,
        persona: str | None = None,
        chatmode: str | None = None,
        trace: TraceContext | None = None,
        metadata: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        """Call the function (awaitable when it is async) and record the generation."""
        recorder = self._recorder
        call = recorder.before(prompt, persona, chatmode, trace, metadata)
        if self.is_async:
            return _run_async(recorder, call, self.llm_function, (prompt, *args), kwargs)
        try:
            result = self.llm_function(prompt, *args, **kwargs)
        except BaseException as exc:
            recorder.after(call, None, exc)
            raise
        return recorder.after(call, result, None)

    def __repr__(self) -> str:
        return f"ObservableLLM({self._recorder.name!r}, model={self.model!r})"


@overload
def observe_llm(
    *,
    model: str,
    persona: str | None = None,
    chatmode: str | None = None,
    langfuse: LangfuseIntegration | None = None,
    name: str | None = None,
    model_parameters: Mapping[str, Any] | None = None,
) -> Callable[[Callable[P, R]], Callable[P, R]]: ...


@overload
def observe_llm(
    func: Callable[P, R],
    *,
    model: str = ...,
) -> Callable[P, R]: ...


def observe_llm(
    func: Callable[P, R] | None = None,
    *,
    model: str = "unknown",
    persona: str | None = None,
    chatmode: str | None = None,
    langfuse: LangfuseIntegration | None = None,
    name: str | None = None,
    model_parameters: Mapping[str, Any] | None = None,
) -> Callable[[Callable[P, R]], Callable[P, R]] | Callable[P, R]:
    """Decorate an LLM function so each call is a generation of ``persona``.

    The decorated function keeps its name, docstring and signature; inside a trace or span
    entered with ``with``, its generations join that trace.
    """

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        recorder = _Recorder(
            name or str(getattr(fn, "__name__", "llm")),
            model,
            langfuse,
            persona,
            chatmode,
            model_parameters,
        )
        if inspect.iscoroutinefunction(fn):
            async_fn = cast(Callable[P, Awaitable[Any]], fn)

            @functools.wraps(fn)
            async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                call = recorder.before(_prompt_of(args, kwargs), None, None, None, None)
                return await _run_async(recorder, call, async_fn, args, kwargs)

            return cast(Callable[P, R], async_wrapper)

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            call = recorder.before(_prompt_of(args, kwargs), None, None, None, None)
            return cast(R, _run(recorder, call, fn, args, kwargs))

        return wrapper

    if func is not None:
        return decorate(func)
    return decorate
