"""Watch a stream of chunks go by without changing it.

:func:`observe_stream` wraps a sync or async iterator (an SDK stream, a generator) in an object
that yields the same items, delegates every other attribute to it, and calls ``on_finish`` once
with a :class:`StreamOutcome` when the stream ends, fails, is closed early, or is dropped
unfinished. The per-item work is an append and, until the first token, one predicate call:
parsing the chunks happens in ``on_finish``'s consumer, off the caller's path.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from hypertool.instrumentation._log import logger

ItemPredicate = Callable[[Any], bool]


@dataclass(slots=True)
class StreamOutcome:
    """How an observed stream ended.

    Attributes:
        items: Every item the stream produced, hidden ones included, in order.
        first_token_ns: When the first token arrived (epoch ns), or None if none did.
        end_ns: When the stream ended, failed or was abandoned (epoch ns).
        error: The exception the stream raised, or None.
        exhausted: True when the stream ran to its end.

    """

    items: list[Any]
    first_token_ns: int | None
    end_ns: int
    error: BaseException | None
    exhausted: bool

    @property
    def abandoned(self) -> bool:
        """True when the caller stopped reading before the end (closed, broke out, dropped it)."""
        return not self.exhausted and self.error is None


OnFinish = Callable[[StreamOutcome], None]

_OWN = frozenset(
    ("_stream", "_next", "_items", "_first_ns", "_is_token", "_hide", "_on_finish", "_done")
)


class _Observed:
    """What the sync and async wrappers share: bookkeeping, finishing, delegation."""

    __slots__ = (
        "__weakref__",
        "_done",
        "_first_ns",
        "_hide",
        "_is_token",
        "_items",
        "_next",
        "_on_finish",
        "_stream",
    )

    def __init__(
        self,
        stream: Any,
        on_finish: OnFinish,
        is_token: ItemPredicate | None,
        hide: ItemPredicate | None,
    ) -> None:
        self._done = True  # until fully built: a failed __init__ must not report from __del__
        self._stream = stream
        self._items: list[Any] = []
        self._first_ns: int | None = None
        self._is_token = is_token
        self._hide = hide
        self._on_finish = on_finish
        self._done = False

    @property  # type: ignore[misc]
    def __class__(self) -> type[Any]:
        # isinstance(wrapper, openai.Stream) stays True, as the caller's code may check it.
        return type(self._stream)

    def __getattr__(self, name: str) -> Any:
        if name in _OWN:  # not set yet (during __init__ or after a failed one)
            raise AttributeError(name)
        return getattr(self._stream, name)

    def __repr__(self) -> str:
        return f"<observed {self._stream!r}>"

    @property
    def finished(self) -> bool:
        """True once the outcome was reported."""
        return self._done

    def _note_first(self, item: Any) -> None:
        """Take the time of the first token (called until one is seen)."""
        try:
            if self._is_token is None or self._is_token(item):
                self._first_ns = time.time_ns()
        except Exception:  # a malformed chunk is the caller's to see, never our error
            self._first_ns = time.time_ns()

    def _finish(self, exhausted: bool, error: BaseException | None) -> None:
        if self._done:
            return
        self._done = True
        if error is not None and not isinstance(error, Exception):
            # CancelledError, KeyboardInterrupt: the caller stopped reading; abandoned, not failed.
            error = None
        outcome = StreamOutcome(self._items, self._first_ns, time.time_ns(), error, exhausted)
        try:
            self._on_finish(outcome)
        except Exception:
            logger.debug("recording a stream failed", exc_info=True)

    def __del__(self) -> None:
        try:
            if not self._done:
                self._finish(False, None)
        except Exception:  # at interpreter exit anything may be gone already
            pass


def _accept_item(observed: _Observed, item: Any) -> bool:
    """Note ``item``; True when the caller sees it (False: a hidden item, e.g. usage only)."""
    # The per-item path, kept to an append and two attribute tests: see the benchmark.
    observed._items.append(item)
    if observed._first_ns is None:
        observed._note_first(item)
    hide = observed._hide
    if hide is None:
        return True
    try:
        return not hide(item)
    except Exception:  # a malformed chunk is the caller's to see, never our error
        return True


class ObservedStream(_Observed):
    """A sync stream, observed (see :func:`observe_stream`)."""

    __slots__ = ()

    def __init__(
        self,
        stream: Any,
        on_finish: OnFinish,
        is_token: ItemPredicate | None = None,
        hide: ItemPredicate | None = None,
    ) -> None:
        super().__init__(stream, on_finish, is_token, hide)
        next_method = getattr(stream, "__next__", None)
        self._next: Callable[[], Any] = (
            next_method if next_method is not None else iter(stream).__next__
        )

    def __iter__(self) -> ObservedStream:
        return self

    def __next__(self) -> Any:
        while True:  # bounded by the stream: only hidden items loop
            try:
                item = self._next()
            except StopIteration:
                self._finish(True, None)
                raise
            except BaseException as exc:
                self._finish(False, exc)
                raise
            if _accept_item(self, item):
                return item

    def __enter__(self) -> ObservedStream:
        enter = getattr(self._stream, "__enter__", None)
        if enter is not None:
            enter()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Any:
        self._finish(False, None)
        leave = getattr(self._stream, "__exit__", None)
        if leave is not None:
            return leave(exc_type, exc, tb)
        self.close()
        return None

    def close(self) -> None:
        """Stop reading: the stream is recorded (as abandoned unless it had ended) and closed."""
        self._finish(False, None)
        close = getattr(self._stream, "close", None)
        if close is not None:
            close()


class AsyncObservedStream(_Observed):
    """An async stream, observed (see :func:`observe_stream`)."""

    __slots__ = ()

    def __init__(
        self,
        stream: Any,
        on_finish: OnFinish,
        is_token: ItemPredicate | None = None,
        hide: ItemPredicate | None = None,
    ) -> None:
        super().__init__(stream, on_finish, is_token, hide)
        next_method = getattr(stream, "__anext__", None)
        self._next = next_method if next_method is not None else stream.__aiter__().__anext__

    def __aiter__(self) -> AsyncObservedStream:
        return self

    async def __anext__(self) -> Any:
        while True:  # bounded by the stream: only hidden items loop
            try:
                item = await self._next()
            except StopAsyncIteration:
                self._finish(True, None)
                raise
            except BaseException as exc:
                self._finish(False, exc)
                raise
            if _accept_item(self, item):
                return item

    async def __aenter__(self) -> AsyncObservedStream:
        enter = getattr(self._stream, "__aenter__", None)
        if enter is not None:
            await enter()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Any:
        self._finish(False, None)
        leave = getattr(self._stream, "__aexit__", None)
        if leave is not None:
            return await leave(exc_type, exc, tb)
        await self.close()
        return None

    async def close(self) -> None:
        """Stop reading: the stream is recorded (as abandoned unless it had ended) and closed."""
        await self._close("close", "aclose")

    async def aclose(self) -> None:
        """Same as :meth:`close` (the name async generators use)."""
        await self._close("aclose", "close")

    async def _close(self, *names: str) -> None:
        self._finish(False, None)
        for name in names:
            method = getattr(self._stream, name, None)
            if method is not None:
                result = method()
                if inspect.isawaitable(result):
                    await result
                return


def is_async_stream(stream: Any) -> bool:
    """True for an async iterator or async iterable (that is not also a sync one)."""
    return hasattr(stream, "__anext__") or (
        hasattr(stream, "__aiter__") and not hasattr(stream, "__iter__")
    )


def observe_stream(
    stream: Any,
    on_finish: OnFinish,
    *,
    is_token: ItemPredicate | None = None,
    hide: ItemPredicate | None = None,
) -> Any:
    """Wrap ``stream`` so ``on_finish`` learns how it went, once.

    The wrapper yields what ``stream`` yields (``for`` or ``async for``), supports ``with`` /
    ``async with`` and ``close()`` (``aclose()`` too when async), and passes every other
    attribute through; ``isinstance`` checks against the stream's class still hold.
    ``on_finish`` is called, on the thread that ends the stream, when the stream is exhausted,
    raises, is closed or left through ``with`` before its end, or is garbage-collected
    unfinished; it should hand heavy work off (``LangfuseIntegration.defer``).

    Args:
        stream: A sync or async iterator or iterable.
        on_finish: Told the :class:`StreamOutcome`.
        is_token: Which item counts as the first token (for time to first token); the first
            item when None. Only called until it returns True.
        hide: Items for which this returns True are recorded but not yielded (e.g. a usage-only
            chunk the caller did not ask for).

    Returns:
        An :class:`ObservedStream` or :class:`AsyncObservedStream`.

    """
    if is_async_stream(stream):
        return AsyncObservedStream(stream, on_finish, is_token, hide)
    return ObservedStream(stream, on_finish, is_token, hide)
