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
from typing import Any

from opentelemetry import trace as trace_api
from opentelemetry.trace import Status, StatusCode

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


def finish(
    span: trace_api.Span,
    status: str,
    error: BaseException | str | None,
    clean: Callable[[str], str],
    *,
    default: str = "error",
    end_ns: int | None = None,
) -> None:
    """End ``span``; on error mark it ERROR (OTel status and Langfuse level) with a message."""
    if status == "error" or error is not None:
        raw = (str(error) or type(error).__name__) if error is not None else default
        message = clean(raw)
        span.set_attributes({attr.LEVEL: attr.LEVEL_ERROR, attr.STATUS_MESSAGE: message})
        if isinstance(error, BaseException):
            # Provider errors quote keys ("Incorrect API key: sk-…"): the event is masked too.
            stack = "".join(traceback.format_exception(error))
            span.record_exception(
                error,
                attributes={
                    "exception.type": repaired(_type_name(error)),
                    "exception.message": message,
                    "exception.stacktrace": clean(stack),
                },
            )
        span.set_status(Status(StatusCode.ERROR, message))
    span.end(end_time=end_ns)


def iso_time(ns: int) -> str:
    """Epoch nanoseconds as langfuse's SDK sends a time attribute.

    A JSON-quoted ISO 8601 UTC string with microseconds and ``Z``, e.g. the 28 characters
    ``"2025-01-02T03:04:05.123456Z"`` including the quotes.
    """
    moment = datetime.fromtimestamp(ns / 1e9, tz=UTC)
    return json.dumps(moment.isoformat(timespec="microseconds").replace("+00:00", "Z"))


def _type_name(error: BaseException) -> str:
    """The exception's type as OpenTelemetry names it (``module.Qualname``)."""
    kind = type(error)
    module, qualname = kind.__module__, kind.__qualname__
    return f"{module}.{qualname}" if module and module != "builtins" else qualname
