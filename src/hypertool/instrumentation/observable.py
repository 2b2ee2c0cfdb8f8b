"""Automatic tracing of LLM functions: :class:`ObservableLLM` and :func:`observe_llm`."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, ParamSpec, TypeVar, cast, overload

from hypertool.instrumentation.capture.calls import CallRecorder, is_async_callable, prompt_of
from hypertool.instrumentation.capture.providers import anthropic as anthropic_provider
from hypertool.instrumentation.capture.providers import openai as openai_provider
from hypertool.instrumentation.capture.scorers import Scorer
from hypertool.instrumentation.capture.target import TargetGetter
from hypertool.instrumentation.integration import LangfuseIntegration, get_langfuse_integration
from hypertool.instrumentation.model.handles import TraceContext

P = ParamSpec("P")
R = TypeVar("R")

# Stream items a wrapped generator may yield, recognised for their final usage.
_STREAM_PROVIDERS = (openai_provider.PROVIDER, anthropic_provider.PROVIDER)


def _target(langfuse: LangfuseIntegration | None) -> TargetGetter:
    if langfuse is not None:
        return lambda: langfuse
    return get_langfuse_integration


class ObservableLLM:
    """Wrap an LLM function so every call is a Langfuse generation with its persona.

    Calling the wrapper calls the function with the same arguments and returns what it
    returned; an async function (or any callable returning an awaitable) gives an awaitable,
    whose generation starts when it is awaited. Exceptions propagate unchanged (the generation
    is marked ERROR). Tokens are exact when the function returns a provider response (OpenAI
    chat completion, Anthropic message, or a dict with ``usage``), estimated otherwise.

    Persona: the call's ``persona=``, else the enclosing stage's, else ``persona`` here, else
    the trace's (:mod:`hypertool.instrumentation.capture.resolution`).

    Args:
        llm_function: The function to observe; its first argument is the prompt.
        model: Model name recorded on each generation.
        langfuse: Integration to record with; the process default when None.
        name: Generation name; the function's name by default.
        persona: Persona when a call names none.
        chatmode: Chatmode when a call names none.
        model_parameters: Temperature, max tokens… recorded on each generation.
        scorers: Functions ``scorer(input, output)`` scoring each successful call's
            generation, run on the recorder thread (see
            :mod:`hypertool.instrumentation.capture.scorers` for what they return); one that
            raises is reported once and never affects the call.

    A compiled managed prompt (``get_prompt(...).compile(...)``) given as the prompt links
    the generation to the prompt's name and version; :func:`last_generation` is the handle
    of the generation a call just made, for :meth:`LangfuseIntegration.score`.

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
        scorers: Sequence[Scorer] = (),
    ) -> None:
        self.llm_function = llm_function
        self.model = model
        self.is_async = is_async_callable(llm_function)
        self._recorder = CallRecorder(
            name or str(getattr(llm_function, "__name__", "llm")),
            model,
            _target(langfuse),
            persona,
            chatmode,
            model_parameters,
            _STREAM_PROVIDERS,
            scorers,
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
        if self.is_async:
            return self._recorder.call_async(
                self.llm_function,
                (prompt, *args),
                kwargs,
                prompt,
                persona,
                chatmode,
                trace,
                metadata,
            )
        return self._recorder.call(
            self.llm_function, (prompt, *args), kwargs, prompt, persona, chatmode, trace, metadata
        )

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
    scorers: Sequence[Scorer] = (),
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
    scorers: Sequence[Scorer] = (),
) -> Callable[[Callable[P, R]], Callable[P, R]] | Callable[P, R]:
    """Decorate an LLM function so each call is a generation of ``persona``.

    The decorated function keeps its name, docstring and signature; inside a trace or span
    entered with ``with``, its generations join that trace (the persona precedence, prompt
    links and ``scorers`` are :class:`ObservableLLM`'s).
    """

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        recorder = CallRecorder(
            name or str(getattr(fn, "__name__", "llm")),
            model,
            _target(langfuse),
            persona,
            chatmode,
            model_parameters,
            _STREAM_PROVIDERS,
            scorers,
        )
        if is_async_callable(fn):
            async_fn = cast(Callable[P, Awaitable[Any]], fn)

            @functools.wraps(fn)
            async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                return await recorder.call_async(async_fn, args, kwargs, prompt_of(args, kwargs))

            return cast(Callable[P, R], async_wrapper)

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            return cast(R, recorder.call(fn, args, kwargs, prompt_of(args, kwargs)))

        return wrapper

    if func is not None:
        return decorate(func)
    return decorate
