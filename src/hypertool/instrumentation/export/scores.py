"""③ Delivery of scores to their sinks (Langfuse's score API, the local store), off the
caller's path, with bounded waits and every score delivered or counted as dropped.

Scores ride the span delivery's machinery (:class:`~.delivery.DeliveryProcessor`: a bounded
queue and a thread per sink, batches, truthful flush, counted drops, reported at most once a
minute) rather than a copy of it. The processor never looks inside what it queues, so a score
sink is wrapped as the exporter it drives; drops are counted in
``hypertool_export_dropped_scores_total{sink}``.

Langfuse's wire contract (langfuse 5.0.4): ``POST {host}/api/public/scores``, basic auth, a JSON
array of scores; 202 when all were accepted, 207 with ``{"accepted", "rejected", "errors"}``
when some were not (those are not retried), 429 and 5xx retried.
"""

from __future__ import annotations

import inspect
import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, cast

from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from hypertool.instrumentation._log import logger, warn_once
from hypertool.instrumentation.export.delivery import DeliveryProcessor, DropListener
from hypertool.instrumentation.export.otlp_http import post_with_retries
from hypertool.instrumentation.export.public_api import PublicApi
from hypertool.instrumentation.model.scores import Score, ScoreSink

if TYPE_CHECKING:
    import requests
    from opentelemetry.sdk.trace import ReadableSpan

SCORES_PATH = "/api/public/scores"
# langfuse's SDK retries a score batch on 429 and every 5xx.
SCORE_RETRYABLE = frozenset({429, *range(500, 600)})
# Scores per request: langfuse's SDK sends 15 (its body limit is 1 MB; a score's comment and
# metadata are capped at 5,000 and 10,000 characters, so 15 always fit).
LANGFUSE_BATCH = 15
OTHER_BATCH = 500


class LangfuseScoreExporter(PublicApi):
    """A :class:`~hypertool.instrumentation.model.scores.ScoreSink` posting scores to Langfuse.

    Args:
        host: The Langfuse URL.
        public_key: Langfuse public key.
        secret_key: Langfuse secret key (never logged).
        timeout: Seconds one batch may take, retries included.
        session: A ``requests.Session`` to use; one is made when None.

    """

    def __init__(
        self,
        host: str,
        public_key: str,
        secret_key: str,
        *,
        timeout: float,
        session: requests.Session | None = None,
    ) -> None:
        super().__init__(
            host, SCORES_PATH, public_key, secret_key, timeout=timeout, session=session
        )
        self.headers["Content-Type"] = "application/json"
        self._answer: tuple[int, bytes] | None = None
        self.rejected = 0

    def export_scores(self, scores: Sequence[Score]) -> int:
        """POST ``scores`` in one request; how many were not accepted (never raises)."""
        if self.stopped.is_set() or not scores:
            return len(scores)
        try:
            body = json.dumps(
                [score.as_langfuse() for score in scores], ensure_ascii=False, default=str
            ).encode("utf-8", errors="replace")
        except Exception:  # unreachable for checked scores; never let a batch raise
            logger.debug("encoding scores failed", exc_info=True)
            return len(scores)
        status = post_with_retries(
            lambda left: self._post(body, left), self.timeout, self.stopped, SCORE_RETRYABLE
        )
        if status is None or not 200 <= status < 300:
            if status in (401, 403):
                warn_once(
                    f"scores-keys-rejected-{self.url}",
                    "Langfuse rejected the keys for %s (HTTP %d) when sending scores: check "
                    "LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY; scores for Langfuse are "
                    "dropped and counted",
                    self.url,
                    status,
                )
            return len(scores)
        if status == 207 and self._answer is not None:
            return self._partial(self._answer[1], len(scores))
        return 0

    def _post(self, body: bytes, timeout: float) -> int | None:
        try:
            response: Any = self.session.post(
                self.url, data=body, headers=self.headers, timeout=timeout
            )
        except Exception as exc:  # refused, reset, timed out: not delivered
            logger.debug("sending scores to %s failed: %s", self.url, exc)
            return None
        status = int(response.status_code)
        self._answer = (status, response.content if status == 207 else b"")
        if not 200 <= status < 300:
            logger.debug("sending scores to %s answered HTTP %d", self.url, status)
        return status

    def _partial(self, body: bytes, sent: int) -> int:
        """The number of scores a 207 answer rejected; its errors are reported once."""
        try:
            answer = json.loads(body)
            rejected = int(answer.get("rejected", 0))
            errors = [str(error.get("message", error)) for error in answer.get("errors", [])]
        except Exception:
            logger.debug("unreadable 207 answer from %s: %r", self.url, body[:200])
            return 0
        rejected = min(max(rejected, 0), sent)
        if rejected:
            self.rejected += rejected
            warn_once(
                f"scores-rejected-{self.url}",
                "Langfuse rejected %d of %d score(s) (HTTP 207, not retried; counted in "
                "hypertool_export_dropped_scores_total; reported once): %s",
                rejected,
                sent,
                "; ".join(errors[:5]) or "no reason given",
            )
        return rejected

    def close_scores(self) -> None:
        """Stop: pending retries end, later batches fail, connections close."""
        self.close()


class _ClaimingSink(Protocol):
    def export_scores(
        self, scores: Sequence[Score], claim: Callable[[], bool] | None = None
    ) -> int: ...


class _SinkExporter(SpanExporter):
    """A score sink as the exporter a :class:`DeliveryProcessor` drives (what it hands over
    are scores: the processor never looks inside its items).

    It is a partial exporter (``export_partial``): a sink's count of scores it could not take
    costs those, not the batch. A sink whose ``export_scores`` takes ``claim=`` (the local
    store) claims a batch just before committing it, as the store does for spans, so a batch
    :meth:`DeliveryProcessor.close` gave up on is never both counted as dropped and stored.
    """

    def __init__(self, sink: ScoreSink) -> None:
        self.sink = sink
        try:
            self._claims = "claim" in inspect.signature(sink.export_scores).parameters
        except (TypeError, ValueError):  # no signature to read: a sink that does not claim
            self._claims = False

    def export_partial(self, items: Sequence[ReadableSpan], claim: Callable[[], bool]) -> int:
        """Deliver a batch; how many of it were not delivered."""
        scores = cast("Sequence[Score]", items)
        if self._claims:
            lost = cast("_ClaimingSink", self.sink).export_scores(scores, claim=claim)
        else:
            lost = self.sink.export_scores(scores)
        return min(max(int(lost), 0), len(scores))

    def export(self, items: Sequence[ReadableSpan]) -> SpanExportResult:
        """Deliver a batch; SUCCESS when all of it was delivered."""
        if self.export_partial(items, lambda: True):
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        """Tell the sink no more scores come."""
        try:
            self.sink.close_scores()
        except Exception:
            logger.debug("closing the score sink %r failed", self.sink, exc_info=True)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Nothing is buffered here."""
        return True


class ScoreDelivery:
    """One bounded queue and delivery thread per score sink.

    Args:
        sinks: Sink name → score sink (``langfuse``, ``store``…).
        queue_size: Scores each sink holds while it is slow; past it they are dropped and
            counted.
        on_drop: Told of every score a sink could not deliver (sink name, count).

    """

    def __init__(
        self,
        sinks: Mapping[str, ScoreSink],
        *,
        queue_size: int,
        on_drop: Sequence[DropListener] = (),
    ) -> None:
        self.processors: list[DeliveryProcessor] = []
        for name, sink in sinks.items():
            exporter = _SinkExporter(sink)
            processor = DeliveryProcessor(
                name,
                exporter,
                max_queue_size=queue_size,
                max_batch_size=LANGFUSE_BATCH
                if isinstance(sink, LangfuseScoreExporter)
                else OTHER_BATCH,
                on_drop=on_drop,
                item="score",
            )
            self.processors.append(processor)
        self._closed = False

    @property
    def sinks(self) -> list[str]:
        """Names of the score sinks."""
        return [processor.sink for processor in self.processors]

    def submit(self, score: Score) -> None:
        """Queue ``score`` for every sink; never blocks, never raises."""
        item = cast("ReadableSpan", score)  # carried as is, see _SinkExporter
        for processor in self.processors:
            processor.on_end(item)

    def request_flush(self) -> list[tuple[DeliveryProcessor, threading.Event | None]]:
        """Ask every sink to deliver what it holds, without waiting."""
        return [(processor, processor.request_flush()) for processor in self.processors]

    def wait(
        self, requests: list[tuple[DeliveryProcessor, threading.Event | None]], deadline: float
    ) -> bool:
        """Wait until ``deadline`` (``time.monotonic()``) for :meth:`request_flush`'s requests;
        True when all was delivered and nothing dropped since the previous flush.
        """
        ok = True
        for processor, done in requests:
            ok = processor.wait_flushed(done, deadline - time.monotonic()) and ok
        return ok

    def flush(self, timeout: float) -> bool:
        """Deliver what is queued, for at most ``timeout`` seconds (every sink at once)."""
        return self.wait(self.request_flush(), time.monotonic() + max(timeout, 0.0))

    def close(
        self,
        timeout: float,
        requests: list[tuple[DeliveryProcessor, threading.Event | None]] | None = None,
    ) -> bool:
        """Flush for at most ``timeout`` seconds, stop, and count what is left as dropped."""
        if self._closed:
            return True
        self._closed = True
        deadline = time.monotonic() + max(timeout, 0.0)
        pending = dict(requests or [])
        ok = True
        for processor in self.processors:
            ok = (
                processor.close(max(deadline - time.monotonic(), 0.0), pending.get(processor))
                and ok
            )
        return ok

    def count_dropped(self, count: int) -> None:
        """Count ``count`` scores lost before they reached any sink (each sink lost them)."""
        for processor in self.processors:
            processor.count_dropped(count)
