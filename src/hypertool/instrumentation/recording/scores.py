"""② Recording scores: a score given for a handle becomes a :class:`Score` with the ids Langfuse
knows, the persona and chatmode of what was scored, and a masked comment and metadata.

Runs on the recorder thread (the caller only checked the value and handed the rest over).
:func:`score_target` is the one place that maps a handle to Langfuse's ids: it reads the ids of
the OpenTelemetry span behind the handle, which is what every sink received, and the Langfuse
trace the span is in. A workflow stage (a span with a persona of its own) and what runs in it
are a Langfuse trace of their own (see :mod:`~hypertool.instrumentation.export.langfuse`), so
their scores go to that Langfuse trace, while the local store keeps the OpenTelemetry trace id
its rows are joined by.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace as trace_api

from hypertool.instrumentation._fork import reset_in_child
from hypertool.instrumentation._log import logger, warn_once
from hypertool.instrumentation.model.handles import (
    GenerationContext,
    PendingGeneration,
    SpanContext,
    TraceContext,
)
from hypertool.instrumentation.model.scores import (
    MAX_COMMENT_CHARS,
    Score,
    ScoreDataType,
    ScoreListener,
    is_observation_id,
    is_trace_id,
)
from hypertool.instrumentation.model.usage import text_of
from hypertool.instrumentation.recording.spans import repaired

ScoreHandle = TraceContext | SpanContext | GenerationContext | PendingGeneration | str
"""What can be scored: a trace, a span or stage, a generation (recorded, or pending), or a
32-hex trace id."""

MAX_METADATA_KEYS = 50
MAX_METADATA_CHARS = 10_000


@dataclass(frozen=True, slots=True)
class ScoreTarget:
    """Where a score goes, and whose work it scores.

    Attributes:
        trace_id: OpenTelemetry trace id (32 hex), the local store's.
        observation_id: Langfuse observation id (16 hex), None for the trace itself.
        delivered: False when what is scored reached no sink (nothing to attach the score to
            there; listeners are still told).
        persona: Persona of what was scored.
        chatmode: Its chatmode.
        workflow: Its workflow.
        stage: Its stage.
        langfuse_trace_id: The Langfuse trace, when it is not ``trace_id`` (a stage's).

    """

    trace_id: str
    observation_id: str | None
    delivered: bool
    persona: str = ""
    chatmode: str = ""
    workflow: str = ""
    stage: str = ""
    langfuse_trace_id: str | None = None


def _span_ids(span: trace_api.Span) -> tuple[str, str] | None:
    context = span.get_span_context()
    if not context.is_valid:
        return None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


def score_target(
    handle: TraceContext | SpanContext | GenerationContext, observation_id: str | None = None
) -> ScoreTarget:
    """The Langfuse ids of ``handle`` (and of ``observation_id`` in a trace), with the persona,
    chatmode, workflow and stage of what it stands for.
    """
    if isinstance(handle, TraceContext):
        # A trace's workflow, if it is one, is the store's to join (the traces table).
        ids = _span_ids(handle.span)
        trace_id = ids[0] if ids is not None else handle.trace_id
        return ScoreTarget(
            trace_id, observation_id, ids is not None, handle.persona, handle.chatmode
        )
    if isinstance(handle, SpanContext):
        ids = _span_ids(handle.span)
        metadata = handle.metadata
        trace_id = ids[0] if ids is not None else handle.trace.trace_id
        return ScoreTarget(
            trace_id,
            ids[1] if ids is not None else handle.span_id,
            ids is not None,
            handle.persona,
            handle.trace.chatmode,
            str(metadata.get("workflow", "")),
            str(metadata.get("stage", "")),
            _other(handle.langfuse_trace_id, trace_id),
        )
    return ScoreTarget(
        handle.trace_id,
        handle.generation_id or None,
        bool(handle.generation_id),
        handle.persona,
        handle.chatmode,
        handle.workflow,
        handle.stage,
        _other(handle.langfuse_trace_id, handle.trace_id),
    )


def _other(langfuse_trace_id: str, trace_id: str) -> str | None:
    """The Langfuse trace id when it differs from the OpenTelemetry one, else None."""
    return langfuse_trace_id if langfuse_trace_id and langfuse_trace_id != trace_id else None


class ScoreRecorder:
    """Builds scores for handles and hands them to the score sinks and the listeners.

    A score of something no sink recorded (a trace that could not start, or no span sink at
    all) reaches the listeners (metrics) only: there is nothing to attach it to in a sink.

    Args:
        clean: Masks and caps every text before it leaves the process.
        submit: Hands a score to every score sink; None when there is none.
        environment: The Langfuse tracing environment every score carries, as every
            observation does (``LANGFUSE_TRACING_ENVIRONMENT``); None when unset.

    """

    def __init__(
        self,
        clean: Callable[[str], str],
        submit: Callable[[Score], None] | None,
        environment: str | None = None,
    ) -> None:
        self.clean = clean
        self.submit = submit
        self.environment = environment
        self.listeners: list[ScoreListener] = []
        self._parked = 0
        self._epoch = 0
        self._lock = threading.Lock()
        reset_in_child(self, ScoreRecorder._after_fork)

    def _after_fork(self) -> None:
        # The parent's calls are the parent's: their waiting scores are not this child's.
        self._lock = threading.Lock()
        self._parked = 0
        self._epoch += 1

    @property
    def parked(self) -> int:
        """Scores waiting for a generation not recorded yet (a stream still running)."""
        return self._parked

    def abandon_parked(self) -> int:
        """Give up the scores waiting for their generation (at exit, where they are counted as
        dropped): they are not sent later if it comes. Returns how many there were.
        """
        with self._lock:
            count, self._parked = self._parked, 0
            self._epoch += 1
        return count

    def record(
        self,
        handle: ScoreHandle,
        name: str,
        value: float | str,
        data_type: ScoreDataType,
        timestamp_ns: int,
        score_id: str,
        options: Mapping[str, Any],
    ) -> None:
        """Record one checked score for ``handle`` (on the recorder thread)."""
        if isinstance(handle, PendingGeneration):
            recorded = handle.recorded
            if recorded is None:
                with self._lock:
                    self._parked += 1
                    epoch = self._epoch

                def when_recorded(generation: GenerationContext) -> None:
                    with self._lock:
                        if epoch != self._epoch:
                            return  # abandoned at exit, and counted as dropped then
                        self._parked -= 1
                    self.record(generation, name, value, data_type, timestamp_ns, score_id, options)

                handle.when_recorded(when_recorded)
                return
            handle = recorded
        if isinstance(handle, str):
            target = ScoreTarget(handle, options.get("observation_id"), True)
        else:
            target = score_target(handle, options.get("observation_id"))
        config_id = options.get("config_id")
        # Bad text (a lone surrogate) costs one character, never the score's batch: the
        # texts not masked below (which repairs them) are repaired here.
        score = Score(
            score_id=repaired(score_id),
            trace_id=target.trace_id,
            name=repaired(name),
            value=self.clean(value)[:MAX_COMMENT_CHARS] if isinstance(value, str) else value,
            data_type=data_type,
            timestamp_ns=timestamp_ns,
            observation_id=target.observation_id,
            comment=self._comment(options.get("comment")),
            metadata=self._metadata(name, options.get("metadata")),
            config_id=None if config_id is None else repaired(config_id),
            environment=self.environment,
            persona=repaired(target.persona),
            chatmode=repaired(target.chatmode),
            workflow=repaired(target.workflow),
            stage=repaired(target.stage),
            langfuse_trace_id=target.langfuse_trace_id,
        )
        if target.delivered and self.submit is not None:
            self.submit(score)
        for listener in self.listeners:
            try:
                listener(score)
            except Exception:
                warn_once(f"score-listener-{id(listener)}", "score listener %r failed", listener)

    def _comment(self, comment: Any) -> str | None:
        if comment is None:
            return None
        text = self.clean(comment if isinstance(comment, str) else text_of(comment))
        return text[:MAX_COMMENT_CHARS]

    def _metadata(self, name: str, metadata: Any) -> dict[str, Any] | None:
        """JSON-ready metadata with every text masked; too much of it is cut, with a note."""
        if metadata is None:
            return None
        if not isinstance(metadata, Mapping):
            return {"value": self.clean(text_of(metadata))[:MAX_METADATA_CHARS]}
        cleaned: dict[str, Any] = {}
        for key, item in list(metadata.items())[:MAX_METADATA_KEYS]:
            text_key = repaired(str(key))
            if item is None or isinstance(item, bool | int | float):
                cleaned[text_key] = item
            else:
                cleaned[text_key] = self.clean(item if isinstance(item, str) else text_of(item))
        text = json.dumps(cleaned, ensure_ascii=False, default=str)
        if len(metadata) > MAX_METADATA_KEYS or len(text) > MAX_METADATA_CHARS:
            logger.debug("score %r: metadata cut to %d characters", name, MAX_METADATA_CHARS)
            return {"truncated": text[:MAX_METADATA_CHARS]}
        return cleaned


def check_ids(handle: Any, observation_id: str | None) -> str | None:
    """What is wrong with a trace id given as a string (and an ``observation_id``), or None."""
    if isinstance(handle, str):
        if not is_trace_id(handle):
            return f"trace id {handle[:64]!r} is not 32 lower-case hex digits"
    elif observation_id is not None and not isinstance(handle, TraceContext):
        return "observation_id= goes with a trace (or a trace id), not with a span or generation"
    if observation_id is not None and not is_observation_id(observation_id):
        return f"observation id {observation_id[:64]!r} is not 16 lower-case hex digits"
    return None
