"""Scores: what a score is on the wire (langfuse 5.0.4's ``POST /api/public/scores`` body item),
how a given value is checked against its data type, and the protocol a score sink implements.

No I/O here: scores are built on the recorder thread (:mod:`~hypertool.instrumentation.recording`)
and delivered by :mod:`~hypertool.instrumentation.export`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol

ScoreDataType = Literal["NUMERIC", "BOOLEAN", "CATEGORICAL", "TEXT"]
DATA_TYPES: Final = ("NUMERIC", "BOOLEAN", "CATEGORICAL", "TEXT")
NUMERIC_TYPES: Final = frozenset({"NUMERIC", "BOOLEAN"})

QUALITY_GATE: Final = "quality_gate"
"""Name of the BOOLEAN score each ``WorkflowTracer`` stage's quality gate becomes."""

MAX_NAME_CHARS: Final = 200
MAX_COMMENT_CHARS: Final = 5_000
MAX_STRING_VALUE_CHARS: Final = 5_000

_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
_OBSERVATION_ID = re.compile(r"^[0-9a-f]{16}$")


class ScoreError(ValueError):
    """A score cannot be recorded as given; the message names the score and what is wrong."""


def is_trace_id(text: str) -> bool:
    """True for a 32-hex (lower-case) trace id, as Langfuse and OpenTelemetry write them."""
    return bool(_TRACE_ID.match(text)) and text != "0" * 32


def is_observation_id(text: str) -> bool:
    """True for a 16-hex (lower-case) observation (span) id."""
    return bool(_OBSERVATION_ID.match(text)) and text != "0" * 16


def check_value(name: Any, value: Any, data_type: str | None) -> tuple[float | str, ScoreDataType]:
    """The value as sent and its data type; the type is inferred when ``data_type`` is None
    (bool → BOOLEAN, int/float → NUMERIC, str → CATEGORICAL).

    BOOLEAN values go out as 1.0 or 0.0 and NUMERIC ones as floats, as langfuse's SDK sends them.

    Raises:
        ScoreError: the name is not a non-empty string, the data type is unknown, or the value
            does not fit it (a NaN, a string for NUMERIC, 2 for BOOLEAN, a number for
            CATEGORICAL…).

    """
    if name.__class__ is not str or not name or len(name) > MAX_NAME_CHARS or name.isspace():
        _check_name(name)
    if data_type is None:  # the common case first: one type test, on the caller's path
        kind_of = value.__class__
        if kind_of is float:
            if math.isfinite(value):
                return value, "NUMERIC"
        elif kind_of is bool:
            return (1.0 if value else 0.0), "BOOLEAN"
        elif kind_of is str and value:
            return value[:MAX_STRING_VALUE_CHARS], "CATEGORICAL"
    kind = data_type.upper() if isinstance(data_type, str) else data_type
    if kind is None:
        if isinstance(value, bool):
            kind = "BOOLEAN"
        elif isinstance(value, int | float):
            kind = "NUMERIC"
        elif isinstance(value, str):
            kind = "CATEGORICAL"
        else:
            raise ScoreError(f"score {name!r}: value {value!r} is not a number, a bool or a string")
    if kind not in DATA_TYPES:
        raise ScoreError(f"score {name!r}: data type {data_type!r} is not one of {DATA_TYPES}")
    if kind == "BOOLEAN":
        if isinstance(value, bool) or (
            isinstance(value, int | float) and not isinstance(value, bool) and value in (0, 1)
        ):
            return (1.0 if value else 0.0), "BOOLEAN"
        raise ScoreError(f"score {name!r}: BOOLEAN takes True/False or 1/0, not {value!r}")
    if kind == "NUMERIC":
        if isinstance(value, int | float) and not isinstance(value, bool):
            number = float(value)
            if math.isfinite(number):
                return number, "NUMERIC"
            raise ScoreError(f"score {name!r}: NUMERIC value {value!r} is not finite")
        raise ScoreError(f"score {name!r}: NUMERIC takes a number, not {value!r}")
    if not isinstance(value, str):
        raise ScoreError(f"score {name!r}: {kind} takes a string, not {value!r}")
    if kind == "CATEGORICAL" and not value:
        raise ScoreError(f"score {name!r}: a CATEGORICAL value cannot be empty")
    return value[:MAX_STRING_VALUE_CHARS], kind  # type: ignore[return-value]


def _check_name(name: Any) -> None:
    if not isinstance(name, str) or not name.strip():
        raise ScoreError(f"a score needs a non-empty name, not {name!r}")
    if len(name) > MAX_NAME_CHARS:
        raise ScoreError(f"score name {name[:40]!r}… is longer than {MAX_NAME_CHARS} characters")


def iso_timestamp(ns: int) -> str:
    """Epoch nanoseconds as ISO 8601 UTC with microseconds and ``Z`` (the SDK's form)."""
    from datetime import UTC, datetime

    seconds, rest = divmod(ns, 10**9)
    moment = datetime.fromtimestamp(seconds, tz=UTC).replace(microsecond=rest // 1000)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Score:
    """One score, as delivered to every score sink.

    Attributes:
        score_id: 16-hex id (or the caller's own, for idempotent updates).
        trace_id: The 32-hex trace scored (or whose observation is scored), as the local
            store and OpenTelemetry know it.
        name: Score name (``quality_gate``, ``relevance``…).
        value: A float for NUMERIC and BOOLEAN (1.0/0.0), a string for CATEGORICAL and TEXT.
        data_type: ``NUMERIC``, ``BOOLEAN``, ``CATEGORICAL`` or ``TEXT``.
        timestamp_ns: When it was given, ns since the epoch.
        observation_id: The 16-hex span or generation scored; None for a trace score.
        comment: Why (masked).
        metadata: JSON-ready mapping (masked), or None.
        config_id: A Langfuse score config id.
        environment: The Langfuse environment, when one is set.
        persona: Persona of what was scored ("" when unknown).
        chatmode: Chatmode of what was scored.
        workflow: Workflow of what was scored.
        stage: Workflow stage of what was scored.
        langfuse_trace_id: The Langfuse trace scored, when it is not ``trace_id``: a workflow
            stage (and what runs in it) is a Langfuse trace of its own.

    """

    score_id: str
    trace_id: str
    name: str
    value: float | str
    data_type: ScoreDataType
    timestamp_ns: int
    observation_id: str | None = None
    comment: str | None = None
    metadata: Mapping[str, Any] | None = None
    config_id: str | None = None
    environment: str | None = None
    persona: str = ""
    chatmode: str = ""
    workflow: str = ""
    stage: str = ""
    langfuse_trace_id: str | None = None

    @property
    def numeric(self) -> float | None:
        """The value as a number (NUMERIC and BOOLEAN), else None."""
        value = self.value
        return value if isinstance(value, float) else None

    def as_langfuse(self) -> dict[str, Any]:
        """The item of the ``POST /api/public/scores`` body: langfuse 5.0.4's field names and
        order, with None fields left out.
        """
        item: dict[str, Any] = {
            "id": self.score_id,
            "traceId": self.langfuse_trace_id or self.trace_id,
        }
        if self.observation_id is not None:
            item["observationId"] = self.observation_id
        item["name"] = self.name
        item["value"] = self.value
        if self.comment is not None:
            item["comment"] = self.comment
        if self.environment is not None:
            item["environment"] = self.environment
        item["dataType"] = self.data_type
        if self.config_id is not None:
            item["configId"] = self.config_id
        item["timestamp"] = iso_timestamp(self.timestamp_ns)
        if self.metadata is not None:
            item["metadata"] = self.metadata
        return item


class ScoreSink(Protocol):
    """Where scores go: Langfuse's score API, the local store, a test's list.

    The local store is both a span sink and a score sink; scores reach it through this
    protocol, never as spans. A sink that can still drop a batch until it commits it (the
    store) takes ``claim=`` in ``export_scores`` as well: it asks ``claim()`` just before the
    commit and, when that returns False (delivery gave up on the batch at exit and counted it
    as dropped), commits nothing and returns ``len(scores)``.
    """

    def export_scores(self, scores: Sequence[Score]) -> int:
        """Deliver ``scores``; return how many could not be delivered (0 to ``len(scores)``).

        Never raises: a failure is a count.
        """

    def close_scores(self) -> None:
        """No more scores will come: release what only scores use (idempotent)."""


ScoreListener = Callable[[Score], None]
"""Told of every score recorded, in the process that made it (metrics, the demo's summary)."""
