r"""Helpers to build and finish the OpenTelemetry spans behind traces, spans and generations.

Two rules every span follows, whichever sink it goes to:

- **Bad text costs one character.** Python strings may hold lone surrogates (``"\ud800"``),
  which no sink can encode (protobuf and SQLite want UTF-8): one such character would fail a
  whole export batch. Every text, name, key and value put on a span is :func:`repaired` first.
- **Our attributes are never evicted.** OpenTelemetry keeps at most 128 attributes per span
  by default and evicts the oldest past it (logging one line per key). User metadata is
  capped at :data:`MAX_METADATA_KEYS` keys per span, the rest folded into one JSON attribute
  (``…metadata.hypertool_overflow``), and user entries come first, so a provider with a lower
  limit than ours evicts them before our own keys.
"""

from __future__ import annotations

import json
import re
import traceback
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from itertools import islice
from random import getrandbits
from typing import TYPE_CHECKING, Any

from opentelemetry import trace as trace_api
from opentelemetry.trace import Status, StatusCode, TraceFlags

if TYPE_CHECKING:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from hypertool.instrumentation import semconv as attr
from hypertool.instrumentation._log import warn_once
from hypertool.instrumentation.model.usage import text_of

MAX_METADATA_KEYS = 64
"""User metadata keys kept as attributes of their own per span; the rest are folded."""
MAX_ATTRIBUTE_KEYS = 32
"""Raw ``attributes=`` of ``start_span`` kept as they are; the rest are folded."""
MAX_OVERFLOW_CHARS = 32_768
"""Characters of the folded JSON object; entries past it are counted, not kept."""
_SURROGATES = re.compile("[\ud800-\udfff]")
REPLACEMENT = "\ufffd"


def repaired(text: str) -> str:
    """``text`` with every lone surrogate (unencodable in UTF-8) replaced by U+FFFD."""
    if text.isascii():
        return text
    return _SURROGATES.sub(REPLACEMENT, text)


def repaired_value(value: Any) -> Any:
    """An attribute value with its text repaired (strings, and strings in sequences)."""
    if isinstance(value, str):
        return repaired(value)
    if isinstance(value, list | tuple):
        return [repaired(item) if isinstance(item, str) else item for item in value]
    return value


def to_ns(moment: datetime | float | None) -> int | None:
    """Nanoseconds since the epoch of a datetime or of epoch seconds (int or float)."""
    if moment is None:
        return None
    if isinstance(moment, datetime):
        return int(moment.timestamp() * 1e9)
    return int(moment * 1e9)


def metadata_attributes(
    prefix: str, metadata: Mapping[Any, Any] | None, clean: Callable[[str], str]
) -> dict[str, str]:
    """``prefix.key`` attributes for the first :data:`MAX_METADATA_KEYS` metadata entries,
    values as cleaned text; the rest folded into ``prefix.hypertool_overflow`` (a JSON
    object of the same cleaned texts).
    """
    if not metadata:
        return {}
    entries = iter(metadata.items())
    result = {
        f"{prefix}.{_key(key)}": clean(_text(value))
        for key, value in islice(entries, MAX_METADATA_KEYS)
    }
    overflow = _fold(entries, clean)
    if overflow is not None:
        result[f"{prefix}.{attr.METADATA_OVERFLOW}"] = overflow
        _warn_folded("metadata", len(metadata), MAX_METADATA_KEYS, attr.METADATA_OVERFLOW)
    return result


def user_attributes(attributes: Mapping[Any, Any] | None) -> dict[str, Any]:
    """Raw span attributes given by the caller: repaired, the first :data:`MAX_ATTRIBUTE_KEYS`
    as they are, the rest folded into ``hypertool.attributes_overflow``.
    """
    if not attributes:
        return {}
    entries = iter(attributes.items())
    result = {
        _key(key): repaired_value(value) for key, value in islice(entries, MAX_ATTRIBUTE_KEYS)
    }
    overflow = _fold(entries, repaired)
    if overflow is not None:
        result[attr.ATTRIBUTES_OVERFLOW] = overflow
        _warn_folded("attributes", len(attributes), MAX_ATTRIBUTE_KEYS, attr.ATTRIBUTES_OVERFLOW)
    return result


def _key(key: Any) -> str:
    return repaired(key if isinstance(key, str) else str(key))


def _text(value: Any) -> str:
    return repaired(value if isinstance(value, str) else text_of(value))


def _fold(entries: Iterator[tuple[Any, Any]], clean: Callable[[str], str]) -> str | None:
    """What is left of ``entries`` as one JSON object, at most :data:`MAX_OVERFLOW_CHARS`
    long; entries past that are counted under ``hypertool_omitted_keys``.
    """
    parts: list[str] = []
    size = omitted = 0
    for key, value in entries:
        if size > MAX_OVERFLOW_CHARS:
            omitted += 1
            continue
        part = f"{json.dumps(_key(key), ensure_ascii=False)}: " + json.dumps(
            clean(_text(value)), ensure_ascii=False
        )
        size += len(part) + 2
        if size > MAX_OVERFLOW_CHARS:
            omitted += 1
            continue
        parts.append(part)
    if not parts and not omitted:
        return None
    if omitted:
        parts.append(f'"{attr.OVERFLOW_OMITTED}": {omitted}')
    return "{" + ", ".join(parts) + "}"


def _warn_folded(what: str, count: int, limit: int, into: str) -> None:
    warn_once(
        f"{what}-overflow",
        "%s with %d keys: keys past the first %d are folded into one JSON attribute (%s), so "
        "OpenTelemetry's attribute limit never evicts the span's own attributes",
        what,
        count,
        limit,
        into,
    )


def error_marks(
    status: str,
    error: BaseException | str | None,
    clean: Callable[[str], str],
    default: str = "error",
) -> tuple[dict[str, Any], str, dict[str, Any] | None] | None:
    """What marks a failed span: Langfuse's level and message attributes, the OTel status
    message, and the attributes of an ``exception`` event (None when ``error`` is not an
    exception); None when the span did not fail.
    """
    if status != "error" and error is None:
        return None
    raw = (str(error) or type(error).__name__) if error is not None else default
    message = clean(raw)
    marks = {attr.LEVEL: attr.LEVEL_ERROR, attr.STATUS_MESSAGE: message}
    if not isinstance(error, BaseException):
        return marks, message, None
    # Provider errors quote keys ("Incorrect API key: sk-…"): the event is masked too.
    kind = type(error)
    module = kind.__module__
    event = {
        "exception.type": repaired(
            f"{module}.{kind.__qualname__}"
            if module and module != "builtins"
            else kind.__qualname__
        ),
        "exception.message": message,
        "exception.stacktrace": clean("".join(traceback.format_exception(error))),
        "exception.escaped": "False",
    }
    return marks, message, event


def finish(
    span: trace_api.Span,
    status: str,
    error: BaseException | str | None,
    clean: Callable[[str], str],
    *,
    default: str = "error",
    end_ns: int | None = None,
) -> None:
    """End a live ``span``; on error mark it ERROR (OTel status and Langfuse level)."""
    failed = error_marks(status, error, clean, default)
    if failed is not None:
        marks, message, event = failed
        span.set_attributes(marks)
        if event is not None:
            span.add_event("exception", attributes=event)
        span.set_status(Status(StatusCode.ERROR, message))
    span.end(end_time=end_ns)


_OK = Status(StatusCode.UNSET)
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)


class FinishedSpans:
    """Builds spans of work that has already ended (a generation is recorded once its call
    returned) and hands them to the sinks, without the SDK's live-span machinery (locks,
    limits, ``on_start``), which costs more than the rest of recording a generation.

    Args:
        emit: Hands a finished span to every sink.
        resource: The pipeline's resource.
        scope: The pipeline's instrumentation scope.

    """

    def __init__(
        self,
        emit: Callable[[ReadableSpan], None],
        resource: Resource,
        scope: InstrumentationScope,
    ) -> None:
        # The SDK is loaded with the pipeline that uses it, not with the package.
        from opentelemetry.sdk.trace import Event, ReadableSpan

        self.emit = emit
        self.resource = resource
        self.scope = scope
        self._span = ReadableSpan
        self._event = Event

    def record(
        self,
        name: str,
        trace_id: int,
        parent: trace_api.SpanContext | None,
        attributes: dict[str, Any],
        start_ns: int,
        end_ns: int,
        failed: tuple[dict[str, Any], str, dict[str, Any] | None] | None,
    ) -> trace_api.SpanContext:
        """Emit one finished span; ``failed`` as :func:`error_marks` gives it."""
        context = trace_api.SpanContext(
            trace_id, getrandbits(64), is_remote=False, trace_flags=_SAMPLED
        )
        status = _OK
        events: tuple[Any, ...] = ()
        if failed is not None:
            marks, message, event = failed
            attributes.update(marks)
            status = Status(StatusCode.ERROR, message)
            if event is not None:
                events = (self._event("exception", event, end_ns),)
        self.emit(
            self._span(
                name,
                context=context,
                parent=parent,
                resource=self.resource,
                attributes=attributes,
                events=events,
                status=status,
                start_time=start_ns,
                end_time=end_ns,
                instrumentation_scope=self.scope,
            )
        )
        return context


def iso_time(ns: int) -> str:
    """Epoch nanoseconds as langfuse's SDK sends a time attribute.

    A JSON-quoted ISO 8601 UTC string with microseconds and ``Z``, e.g. the 28 characters
    ``"2025-01-02T03:04:05.123456Z"`` including the quotes.
    """
    moment = datetime.fromtimestamp(ns / 1e9, tz=UTC)
    return json.dumps(moment.isoformat(timespec="microseconds").replace("+00:00", "Z"))
