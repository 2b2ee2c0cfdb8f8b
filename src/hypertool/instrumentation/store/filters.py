"""Which generations and traces a store query covers: one filter for the CLI and the web UI.

A :class:`Filters` turns into SQL conditions on generations (``observations``) or on traces;
every listing, report and chart applies it the same way, so a page of the web UI and the
CLI's ``--json`` with the same filters give the same numbers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields, replace
from datetime import datetime, timedelta
from typing import Any, Literal

Status = Literal["success", "error"]
STATUSES: tuple[Status, ...] = ("success", "error")

# A generation outside any stage still belongs to its trace's workflow.
WORKFLOW_OF_GENERATION = (
    "coalesce({o}.workflow, (SELECT tw.workflow FROM traces tw WHERE tw.trace_id = {o}.trace_id))"
)

MAX_INTEGER = 2**63 - 1
"""SQLite integers (and the epoch nanoseconds in them) are 64-bit: no larger number is asked."""

_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str) -> timedelta | None:
    """``90s``, ``30m``, ``24h``, ``7d``, ``2w`` as a duration; None when ``text`` is not one.

    Raises:
        ValueError: the duration is too long to represent.

    """
    match = _RELATIVE.match(text)
    if match is None:
        return None
    amount, unit = float(match.group(1)), match.group(2).lower()
    try:
        return timedelta(**{_UNITS[unit]: amount})
    except OverflowError:
        raise ValueError(f"{text!r} is out of range: it reaches too far back") from None


def parse_moment(text: str, now: datetime | None = None) -> int:
    """``24h``, ``30m``, ``7d``, ``2w`` ago, or an ISO date/time (local time unless it says),
    as epoch nanoseconds.

    Raises:
        ValueError: ``text`` is neither, or a moment the store cannot hold (epoch nanoseconds
            in 64 bits: 1677-09-21 to 2262-04-11).

    """
    moment = (now or datetime.now()).astimezone()
    duration = parse_duration(text)
    try:
        if duration is not None:
            start = moment - duration
        else:
            try:
                start = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
            except ValueError:
                raise ValueError(
                    f"{text!r} is not a duration (24h, 7d, 30m, 2w) or an ISO date (2025-01-31)"
                ) from None
            start = start.astimezone() if start.tzinfo is None else start
        ns = int(start.timestamp() * 1e9)
    except (OverflowError, OSError):
        ns = MAX_INTEGER + 1  # out of range, said below
    if not -MAX_INTEGER <= ns <= MAX_INTEGER:
        raise ValueError(
            f"{text!r} is out of range (the store holds times from 1677-09-21 to 2262-04-11)"
        )
    return ns


@dataclass(frozen=True, slots=True)
class Filters:
    """Conditions a query applies; None means "any".

    Attributes:
        persona: Generations of this persona; traces it did any work in.
        chatmode: The generation's (or trace's) chatmode.
        workflow: The generation's workflow (its trace's, outside a stage); the trace's.
        model: Generations of this model (traces: not applied).
        status: ``success`` or ``error``, of the generation or of the trace.
        since_ns: Started at or after this time (epoch nanoseconds).
        until_ns: Started before this time.
        environment: Recorded with this Langfuse tracing environment (kept per trace).
        release: Recorded with this release (kept per trace).

    """

    persona: str | None = None
    chatmode: str | None = None
    workflow: str | None = None
    model: str | None = None
    status: Status | None = None
    since_ns: int | None = None
    until_ns: int | None = None
    environment: str | None = None
    release: str | None = None

    def __post_init__(self) -> None:
        if self.status is not None and self.status not in STATUSES:
            raise ValueError(f"status {self.status!r} is not one of {', '.join(STATUSES)}")

    def with_defaults(self, **values: Any) -> Filters:
        """These filters, with each of ``values`` that is not None and not already set."""
        given = {k: v for k, v in values.items() if v is not None and getattr(self, k) is None}
        return replace(self, **given) if given else self

    def as_dict(self) -> dict[str, Any]:
        """The filters that are set, by name (for JSON documents and links)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name)}

    def _time(self, alias: str) -> tuple[list[str], list[Any]]:
        conditions, params = [], []
        if self.since_ns is not None:
            conditions.append(f"{alias}.start_ns >= ?")
            params.append(self.since_ns)
        if self.until_ns is not None:
            conditions.append(f"{alias}.start_ns < ?")
            params.append(self.until_ns)
        return conditions, params

    def _equal(self, alias: str, columns: tuple[str, ...]) -> tuple[list[str], list[Any]]:
        chosen = [(column, getattr(self, column)) for column in columns]
        chosen = [(column, value) for column, value in chosen if value is not None]
        return [f"{alias}.{column} = ?" for column, _ in chosen], [value for _, value in chosen]

    def on_generations(self, alias: str = "o") -> tuple[str, list[Any]]:
        """SQL conditions (joined by AND, starting with the type) and their parameters."""
        conditions, params = self._time(alias)
        equal, values = self._equal(alias, ("persona", "chatmode", "model", "status"))
        conditions, params = [f"{alias}.type = 'generation'", *conditions, *equal], params + values
        if self.workflow is not None:
            conditions.append(f"{WORKFLOW_OF_GENERATION.format(o=alias)} = ?")
            params.append(self.workflow)
        deployment, values = self.on_deployment(f"{alias}.trace_id")
        return " AND ".join([*conditions, *deployment]), params + values

    def on_deployment(self, trace_id: str) -> tuple[list[str], list[Any]]:
        """The conditions on environment and release of the trace whose id is in the column
        ``trace_id`` (none when neither is set), and their parameters.
        """
        deployment, values = self._equal("d", ("environment", "release"))
        if not deployment:
            return [], []
        # Kept per trace: the small traces table is searched, never the wide rows.
        where = " AND ".join(deployment)
        return [f"{trace_id} IN (SELECT d.trace_id FROM traces d WHERE {where})"], values

    def on_traces(self, alias: str = "t") -> tuple[str, list[Any]]:
        """SQL conditions on the ``traces`` table and their parameters."""
        conditions, params = ["1 = 1"], []
        if self.persona is not None:
            # Multi-persona workflows: a persona "is in" a trace when it did any of the work.
            conditions.append(
                f"({alias}.persona = ? OR {alias}.trace_id IN "
                "(SELECT trace_id FROM observations WHERE persona = ?))"
            )
            params += [self.persona, self.persona]
        for more, values in (
            self._equal(alias, ("chatmode", "workflow", "status", "environment", "release")),
            self._time(alias),
        ):
            conditions += more
            params += values
        return " AND ".join(conditions), params
