"""Scores and managed prompts for one integration: the score sinks and their delivery, the
score recorder, and the prompt manager, composed from the settings.

:class:`Quality` is built by :class:`~hypertool.instrumentation.LangfuseIntegration`, which
lends it its recorder thread (``defer``) and delegates ``score``, ``get_prompt`` and the flush
and shutdown of scores to it. On the caller's path a score is only checked and handed over.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from random import getrandbits
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from hypertool.instrumentation._config import Settings
from hypertool.instrumentation._log import warn_once
from hypertool.instrumentation.export.drops import dropped_scores_counter
from hypertool.instrumentation.model.handles import (
    GenerationContext,
    PendingGeneration,
    SpanContext,
    TraceContext,
)
from hypertool.instrumentation.model.scores import ScoreDataType, ScoreError, ScoreSink, check_value
from hypertool.instrumentation.prompts import BUILTIN_DIR, MemoryVersions, PromptManager
from hypertool.instrumentation.recording.scores import ScoreHandle, ScoreRecorder, check_ids
from hypertool.instrumentation.recording.spans import to_ns

if TYPE_CHECKING:
    import threading

    from prometheus_client import CollectorRegistry

    from hypertool.instrumentation.export.delivery import DeliveryProcessor
    from hypertool.instrumentation.export.scores import ScoreDelivery
    from hypertool.instrumentation.store import StoreExporter

_HANDLES = (TraceContext, SpanContext, GenerationContext, PendingGeneration, str)
_NO_OPTIONS: Mapping[str, Any] = MappingProxyType({})
MAX_SCORE_ID_CHARS = 128

FlushRequests = list[tuple["DeliveryProcessor", "threading.Event | None"]]


def _timestamp_ns(name: Any, timestamp: Any) -> int:
    if isinstance(timestamp, datetime | int | float) and not isinstance(timestamp, bool):
        try:
            return int(to_ns(timestamp) or 0)
        except (OverflowError, ValueError, OSError):
            pass
    raise ScoreError(f"score {name!r}: timestamp {timestamp!r} is not a datetime or epoch seconds")


class StoreVersions:
    """Local prompt versions kept in the store (in memory when the store cannot be used)."""

    def __init__(self, store: StoreExporter) -> None:
        self.store = store
        self.memory = MemoryVersions()

    def record(self, name: str, kind: str, prompt: str, config: str) -> int:
        """The version of this content of ``name``."""
        from hypertool.instrumentation.store import StoreError

        try:
            return self.store.read(lambda s: s.record_prompt_version(name, kind, prompt, config))
        except (StoreError, OSError) as exc:
            warn_once("prompt-versions", "local prompt versions are kept in memory: %s", exc)
            return self.memory.record(name, kind, prompt, config)

    def get(self, name: str, version: int) -> Mapping[str, Any] | None:
        """A recorded version of ``name``."""
        from hypertool.instrumentation.store import StoreError

        try:
            found = self.store.read(lambda s: s.prompt_version(name, version))
        except (StoreError, OSError):
            return self.memory.get(name, version)
        return found if found is not None else self.memory.get(name, version)


class Quality:
    """Scores and prompts (see the module docstring).

    Args:
        settings: The integration's settings.
        clean: Masks and caps texts.
        defer: Runs work on the recorder thread.
        store: The local store's sink, when it is on (a score sink too, and where local prompt
            versions are numbered).
        score_sinks: More score sinks, by name.
        metrics_registry: Where dropped scores are counted (the default registry when None).

    """

    def __init__(
        self,
        settings: Settings,
        *,
        clean: Callable[[str], str],
        defer: Callable[..., None],
        store: StoreExporter | None,
        score_sinks: Mapping[str, ScoreSink] | None = None,
        metrics_registry: CollectorRegistry | None = None,
    ) -> None:
        self._defer = defer
        self._registry = metrics_registry
        sinks: dict[str, ScoreSink] = {}
        api = None
        if settings.langfuse_configured:
            assert settings.public_key and settings.secret_key
            from hypertool.instrumentation.export.scores import LangfuseScoreExporter
            from hypertool.instrumentation.prompts.langfuse_api import PromptApi

            sinks["langfuse"] = LangfuseScoreExporter(
                settings.host,
                settings.public_key,
                settings.secret_key,
                timeout=settings.export_timeout,
            )
            api = PromptApi(
                settings.host,
                settings.public_key,
                settings.secret_key,
                timeout=settings.prompt_timeout,
            )
        if store is not None:
            sinks["store"] = store
        sinks.update(score_sinks or {})
        self.delivery: ScoreDelivery | None = None
        if sinks:
            from hypertool.instrumentation.export.scores import ScoreDelivery

            self.delivery = ScoreDelivery(
                sinks, queue_size=settings.queue_size, on_drop=(self._count_dropped,)
            )
            # Each sink's series starts at 0, so increase() sees the first drop too.
            counter = dropped_scores_counter(metrics_registry)
            for sink in sinks:
                counter.labels(sink)
        self.recorder = ScoreRecorder(
            clean, self.delivery.submit if self.delivery else None, settings.environment
        )
        directories = [Path(settings.prompts_dir).expanduser()] if settings.prompts_dir else []
        self.prompts = PromptManager(
            api,
            [*directories, BUILTIN_DIR],
            StoreVersions(store) if store is not None else MemoryVersions(),
            timeout=settings.prompt_timeout,
        )

    def _count_dropped(self, sink: str, count: int) -> None:
        dropped_scores_counter(self._registry).labels(sink).inc(count)

    # -- scores ----------------------------------------------------------------------------
    def score(
        self,
        target: Any,
        name: Any,
        value: Any,
        data_type: str | None = None,
        comment: Any = None,
        metadata: Any = None,
        observation_id: str | None = None,
        config_id: str | None = None,
        score_id: str | None = None,
        timestamp: datetime | float | None = None,
    ) -> str | None:
        """Check a score and hand it to the recorder thread (see
        :meth:`LangfuseIntegration.score`); its id, or None when it is not recorded.

        On the caller's path: every cheap check here, the rest on the recorder thread.
        """
        try:
            checked, kind = check_value(name, value, data_type)
            if not isinstance(target, _HANDLES):
                raise ScoreError(
                    f"score {name!r}: {target!r} cannot be scored (give a trace, span, stage "
                    "span, generation, last_generation(), or a 32-hex trace id)"
                )
            if observation_id is not None or target.__class__ is str:
                problem = check_ids(target, observation_id)
                if problem is not None:
                    raise ScoreError(f"score {name!r}: {problem}")
            if score_id is None:
                score_id = getrandbits(64).to_bytes(8, "big").hex()
            elif not isinstance(score_id, str) or not 0 < len(score_id) <= MAX_SCORE_ID_CHARS:
                raise ScoreError(f"score {name!r}: score_id must be 1 to 128 characters")
            timestamp_ns = time.time_ns() if timestamp is None else _timestamp_ns(name, timestamp)
        except ScoreError as exc:
            # Keyed by name: one warning per score that keeps coming wrong, not one per call.
            warn_once(f"bad-score-{str(name)[:100]}", "%s; the score is not recorded", exc)
            return None
        options: Mapping[str, Any] = _NO_OPTIONS
        if comment is not None or metadata is not None or observation_id or config_id:
            options = {
                "comment": comment,
                "metadata": metadata,
                "observation_id": observation_id,
                "config_id": None if config_id is None else str(config_id),
            }
        self._defer(self._record, target, name, checked, kind, timestamp_ns, score_id, options)
        return score_id

    def _record(
        self,
        target: ScoreHandle,
        name: str,
        value: float | str,
        kind: ScoreDataType,
        timestamp_ns: int,
        score_id: str,
        options: Mapping[str, Any],
    ) -> None:
        self.recorder.record(target, name, value, kind, timestamp_ns, score_id, options)

    def owns(self, work: Callable[..., None]) -> bool:
        """True for the recorder-thread work of a score (at exit, what is left of it is
        counted as dropped scores, not spans).
        """
        return work == self._record

    # -- delivery --------------------------------------------------------------------------
    @property
    def sinks(self) -> list[str]:
        """Names of the score sinks."""
        return self.delivery.sinks if self.delivery else []

    def request_flush(self) -> FlushRequests:
        """Ask every score sink to deliver what it holds, without waiting."""
        return self.delivery.request_flush() if self.delivery else []

    def wait(self, requests: FlushRequests, deadline: float) -> bool:
        """Wait until ``deadline`` for :meth:`request_flush`'s requests."""
        return self.delivery.wait(requests, deadline) if self.delivery else True

    def close(self, timeout: float, requests: FlushRequests | None, lost: int) -> bool:
        """Count ``lost`` scores (never recorded) as dropped, deliver for at most ``timeout``
        seconds, and stop.
        """
        self.prompts.close()
        if self.delivery is None:
            return lost == 0
        self.delivery.count_dropped(lost)
        return self.delivery.close(timeout, requests) and lost == 0
