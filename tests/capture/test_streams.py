"""The stream wrapper on its own (what ObservableLLM reuses for generator functions), and the
reading of streamed items without a provider SDK.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from hypertool.instrumentation.capture.providers import anthropic as anthropic_provider
from hypertool.instrumentation.capture.providers import openai as openai_provider
from hypertool.instrumentation.capture.providers.base import summarize_items
from hypertool.instrumentation.capture.providers.patching import StreamManager
from hypertool.instrumentation.capture.streams import (
    AsyncObservedStream,
    ObservedStream,
    StreamOutcome,
    observe_stream,
)

PROVIDERS = (openai_provider.PROVIDER, anthropic_provider.PROVIDER)


class Outcomes:
    def __init__(self) -> None:
        self.seen: list[StreamOutcome] = []

    def __call__(self, outcome: StreamOutcome) -> None:
        self.seen.append(outcome)

    @property
    def only(self) -> StreamOutcome:
        assert len(self.seen) == 1, self.seen
        return self.seen[0]


def words(n: int, closed: list[bool] | None = None) -> Iterator[str]:
    try:
        for i in range(n):
            yield f"w{i} "
    finally:
        if closed is not None:
            closed.append(True)


async def async_words(n: int, delay: float = 0.0) -> AsyncIterator[str]:
    for i in range(n):
        if delay:
            await asyncio.sleep(delay)
        yield f"w{i} "


# -- sync ------------------------------------------------------------------------------------
def test_items_pass_unchanged_and_the_end_is_reported_once() -> None:
    outcomes = Outcomes()
    stream = observe_stream(words(3), outcomes)
    assert isinstance(stream, ObservedStream)
    assert list(stream) == ["w0 ", "w1 ", "w2 "]
    assert list(stream) == []  # exhausted, as the generator is
    outcome = outcomes.only
    assert outcome.exhausted and not outcome.abandoned and outcome.error is None
    assert outcome.items == ["w0 ", "w1 ", "w2 "]
    assert outcome.first_token_ns is not None and outcome.first_token_ns <= outcome.end_ns


def test_an_error_is_re_raised_and_reported() -> None:
    def failing() -> Iterator[str]:
        yield "a"
        raise ValueError("boom")

    outcomes = Outcomes()
    stream = observe_stream(failing(), outcomes)
    with pytest.raises(ValueError, match="boom"):
        list(stream)
    assert isinstance(outcomes.only.error, ValueError)
    assert outcomes.only.items == ["a"] and not outcomes.only.abandoned


def test_close_reports_abandoned_and_closes_the_stream() -> None:
    outcomes, closed = Outcomes(), []
    stream = observe_stream(words(10, closed), outcomes)
    next(stream)
    stream.close()
    assert closed == [True]
    assert outcomes.only.abandoned and outcomes.only.items == ["w0 "]
    stream.close()  # idempotent
    assert len(outcomes.seen) == 1


def test_break_and_drop_reports_abandoned() -> None:
    outcomes = Outcomes()
    stream = observe_stream(words(10), outcomes)
    for _ in stream:
        break
    assert outcomes.seen == []
    del stream
    gc.collect()
    assert outcomes.only.abandoned


def test_with_block_left_early_reports_abandoned() -> None:
    outcomes = Outcomes()
    with observe_stream(words(10), outcomes) as stream:
        next(stream)
    assert outcomes.only.abandoned


def test_hidden_items_are_recorded_but_not_yielded_and_first_token_waits_for_a_token() -> None:
    outcomes = Outcomes()
    stream = observe_stream(
        iter(["", "a", "USAGE", "b"]),
        outcomes,
        is_token=lambda item: bool(item),
        hide=lambda item: item == "USAGE",
    )
    assert list(stream) == ["", "a", "b"]
    assert outcomes.only.items == ["", "a", "USAGE", "b"]


def test_failing_predicates_and_recorder_never_reach_the_caller() -> None:
    def broken(outcome: StreamOutcome) -> None:
        raise RuntimeError("recorder down")

    def bad(item: Any) -> bool:
        raise KeyError(item)

    stream = observe_stream(iter([1, 2]), broken, is_token=bad, hide=bad)
    assert list(stream) == [1, 2]


def test_attributes_and_isinstance_are_the_streams() -> None:
    class SDKStream:
        response = "the response"

        def __init__(self) -> None:
            self._it = iter([1, 2])

        def __iter__(self) -> SDKStream:
            return self

        def __next__(self) -> int:
            return next(self._it)

    outcomes = Outcomes()
    stream = observe_stream(SDKStream(), outcomes)
    assert isinstance(stream, SDKStream)
    assert stream.response == "the response"
    assert list(stream) == [1, 2]
    assert outcomes.only.exhausted


# -- async -----------------------------------------------------------------------------------
async def test_async_items_and_end() -> None:
    outcomes = Outcomes()
    stream = observe_stream(async_words(3), outcomes)
    assert isinstance(stream, AsyncObservedStream)
    assert [item async for item in stream] == ["w0 ", "w1 ", "w2 "]
    assert outcomes.only.exhausted


async def test_async_aclose_reports_abandoned() -> None:
    outcomes = Outcomes()
    stream = observe_stream(async_words(10), outcomes)
    await stream.__anext__()
    await stream.aclose()
    assert outcomes.only.abandoned


async def test_cancelled_consumer_is_abandoned_not_failed() -> None:
    outcomes = Outcomes()
    stream = observe_stream(async_words(1000, delay=0.01), outcomes)

    async def consume() -> None:
        async for _ in stream:
            pass

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert outcomes.only.abandoned and outcomes.only.error is None


# -- reading streamed items ------------------------------------------------------------------
def test_summarize_strings() -> None:
    assert summarize_items(["Hel", "lo"]) == ("Hello", None)
    assert summarize_items([]) == ("", None)


def test_summarize_openai_chunks_takes_the_final_usage_never_a_sum() -> None:
    usage = {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}
    chunks = [
        {"model": "gpt-4o", "choices": [{"index": 0, "delta": {"content": "Hi"}}], "usage": None},
        {"model": "gpt-4o", "choices": [{"index": 0, "delta": {"content": "!"}}], "usage": None},
        {"model": "gpt-4o", "choices": [], "usage": usage},
    ]
    assert summarize_items(chunks, PROVIDERS) == ("Hi!", usage)


def test_summarize_anthropic_events_takes_latest_counts() -> None:
    events = [
        {"type": "message_start", "message": {"usage": {"input_tokens": 7, "output_tokens": 1}}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Yo"}},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn"},
            "usage": {"output_tokens": 5},
        },
        {"type": "message_stop"},
    ]
    text, usage = summarize_items(events, PROVIDERS)
    assert text == "Yo"
    assert (usage.input, usage.output, usage.estimated) == (7, 5, False)


def test_stream_manager_without_a_raw_stream_wraps_the_stream_itself() -> None:
    class Manager:
        def __enter__(self) -> Iterator[str]:
            return words(2)

        def __exit__(self, *exc: object) -> None:
            return None

    class FakeCall:
        def __init__(self) -> None:
            self.start_ns = 0
            self.observed: list[Any] = []

        def observe(self, stream: Any) -> Any:
            self.observed.append(stream)
            return observe_stream(stream, lambda outcome: None)

        def failed(self, error: BaseException) -> None:
            raise AssertionError(error)

    call = FakeCall()
    with StreamManager(Manager(), call) as stream:  # type: ignore[arg-type]
        assert list(stream) == ["w0 ", "w1 "]
    assert len(call.observed) == 1 and call.start_ns > 0
