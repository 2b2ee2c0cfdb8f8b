"""A page's query string: filters, time range, sort, page, export format — parsed once, and
turned back into links that keep what the person chose.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from hypertool.instrumentation.store.filters import STATUSES, Filters, parse_moment

RANGES: dict[str, int | None] = {
    "1h": 3_600,
    "24h": 86_400,
    "7d": 7 * 86_400,
    "30d": 30 * 86_400,
    "all": None,
}
"""The time ranges offered in every page's range selector (seconds back from now)."""
FORMATS = ("csv", "json")
PAGE_SIZES = (25, 50, 100, 250, 500)
DEFAULT_PAGE_SIZE = 50
FILTER_NAMES = ("persona", "chatmode", "workflow", "model", "status")


class BadRequest(ValueError):
    """A query parameter that cannot be used; the message names it."""


@dataclass(frozen=True)
class Query:
    """What the query string asks for.

    Attributes:
        filters: The filters, with the time range resolved to epoch nanoseconds.
        range: The range preset chosen (``1h`` … ``all``), or ``custom`` for since/until.
        sort: A sort key, when the page has one.
        order: ``desc`` or ``asc``.
        page: 1-based page number.
        per: Rows per page.
        format: ``csv`` or ``json`` to export a table instead of the page.
        table: Which table of the page to export.
        given: The parameters as given (kept in links).

    """

    filters: Filters
    range: str
    sort: str | None = None
    order: str = "desc"
    page: int = 1
    per: int = DEFAULT_PAGE_SIZE
    format: str | None = None
    table: str | None = None
    given: Mapping[str, str] = field(default_factory=dict)

    @property
    def offset(self) -> int:
        """Rows before this page."""
        return (self.page - 1) * self.per

    def link(self, **changes: Any) -> str:
        """This query string with ``changes`` (None removes a parameter), starting with ``?``."""
        values = dict(self.given)
        for key in ("format", "table"):
            values.pop(key, None)
        if any(key not in ("page", "format", "table") for key in changes):
            values.pop("page", None)  # a new filter or sort starts at the first page
        for key, value in changes.items():
            if value is None or value == "":
                values.pop(key, None)
            else:
                values[key] = str(value)
        return "?" + urlencode(values) if values else "?"

    def export(self, table: str, format: str) -> str:
        """The link exporting ``table`` of this page as ``format``."""
        values = dict(self.given)
        values.update(table=table, format=format)
        return "?" + urlencode(values)


def _choice(params: Mapping[str, str], name: str, choices: tuple[Any, ...], default: Any) -> Any:
    value = params.get(name) or default
    if value not in choices:
        raise BadRequest(f"{name}={value!r}: choose one of {', '.join(map(str, choices))}")
    return value


def number(params: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    """The whole number ``name`` from ``low`` to ``high``; ``default`` when not given.

    Raises:
        BadRequest: it is not a whole number in that range (the message names it).

    """
    raw = params.get(name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name}={raw!r} is not a whole number") from None
    if not low <= value <= high:
        raise BadRequest(f"{name}={raw!r}: give a number from {low} to {high}")
    return value


def _moment(params: Mapping[str, str], name: str) -> int | None:
    raw = (params.get(name) or "").strip()
    if not raw:
        return None
    try:
        return parse_moment(raw)
    except ValueError as exc:
        raise BadRequest(f"{name}: {exc}") from None


def parse_query(
    params: Mapping[str, str],
    *,
    default_range: str = "all",
    sorts: tuple[str, ...] = (),
    now_ns: int | None = None,
    filters: tuple[str, ...] = FILTER_NAMES,
    until: bool = True,
    command: str = "",
) -> Query:
    """Parse a page's query parameters.

    The time range is ``since``/``until`` when given (``24h`` or an ISO date, as on the
    command line), else the ``range`` preset counted back from now. A page whose CLI command
    has fewer filters (``filters``; no ``--until`` when ``until`` is False) refuses the others,
    naming ``command``.

    Raises:
        BadRequest: a parameter has a value the page cannot use (the message names it).

    """
    for name in (*FILTER_NAMES, "until"):
        allowed = until if name == "until" else name in filters
        if params.get(name) and not allowed:
            raise BadRequest(f"{name}: not a filter of this page (nor of hypertool {command})")
    since, until_ns = _moment(params, "since"), _moment(params, "until")
    chosen = "custom" if since is not None or until_ns is not None else None
    if chosen is None:
        chosen = _choice(params, "range", tuple(RANGES), default_range)
        back = RANGES[chosen]
        if back is not None:
            since = (time.time_ns() if now_ns is None else now_ns) - back * 10**9
    values = {name: (params.get(name) or "").strip() or None for name in FILTER_NAMES}
    if values["status"] is not None:
        _choice(params, "status", STATUSES, None)
    chosen_filters = Filters(since_ns=since, until_ns=until_ns, **values)  # type: ignore[arg-type]
    return Query(
        filters=chosen_filters,
        range=chosen,
        sort=_choice(params, "sort", sorts, sorts[0]) if sorts else None,
        order=_choice(params, "order", ("desc", "asc"), "desc"),
        page=number(params, "page", 1, 1, 1_000_000),
        per=number(params, "per", DEFAULT_PAGE_SIZE, 1, max(PAGE_SIZES)),
        format=_choice(params, "format", (*FORMATS, None), None),
        table=params.get("table") or None,
        given={key: value for key, value in params.items() if value != ""},
    )
