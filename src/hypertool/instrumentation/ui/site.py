"""What every page of the web UI shares: the navigation, the store and the templates, and how
a page answers — its HTML, or one of its tables exported as CSV or JSON.

A page joins the UI with a function in a views module (:mod:`.views`, :mod:`.quality`), a
route in :mod:`.app`, an entry in :data:`NAV` and a template.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from jinja2 import Environment
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from hypertool.instrumentation.store import documents
from hypertool.instrumentation.store.filters import Filters
from hypertool.instrumentation.store.overview import Budgets
from hypertool.instrumentation.store.trace_store import TraceStore
from hypertool.instrumentation.ui.params import PAGE_SIZES, RANGES, BadRequest, Query
from hypertool.instrumentation.ui.tables import REPORT_COLUMNS, Table, export, quality_columns

NAV: list[tuple[str, str, str]] = [
    ("personas", "Personas", "/"),
    ("traces", "Traces", "/traces"),
    ("generations", "Generations", "/generations"),
    ("analytics", "Analytics", "/analytics"),
    ("prompts", "Prompts", "/prompts"),
    ("scores", "Scores", "/scores"),
]
"""The navigation bar: (name, label, path)."""


@dataclass
class Site:
    """What every page needs: the store, the personas' budgets, the templates."""

    store: TraceStore
    budgets: Budgets
    templates: Environment
    _facets: tuple[int, dict[str, list[Any]]] | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def facets(self, version: int) -> dict[str, list[Any]]:
        """Values to suggest in the filter fields; read again only when the store changed."""
        with self._lock:
            if self._facets is None or self._facets[0] != version:
                found = self.store.facets()
                found["personas"] = sorted(set(found["personas"]) | set(self.budgets.registry))
                self._facets = (version, found)
            return self._facets[1]

    def render(
        self,
        request: Request,
        template: str,
        *,
        version: int,
        trace_id: str | None = None,
        **context: Any,
    ) -> HTMLResponse:
        """``template`` with the page's context and what every page shows.

        ``version`` is the store's version read before the page's queries (of ``trace_id``
        only, for a trace's page): spans or scores stored meanwhile make the page refresh.
        """
        page = self.templates.get_template(template).render(
            request=request,
            nav=NAV,
            ranges=list(RANGES),
            page_sizes=PAGE_SIZES,
            store_path=str(self.store.path),
            store_name=self.store.path.name,
            version=version,
            version_url="/api/version" + (f"?trace={trace_id}" if trace_id else ""),
            facets=self.facets(self.store.data_version()),
            **context,
        )
        return HTMLResponse(page)

    def error(self, request: Request, status: int, message: str) -> HTMLResponse:
        """An error page saying ``message``."""
        page = self.templates.get_template("error.html").render(
            request=request,
            nav=NAV,
            status=status,
            message=message,
            store_path=str(self.store.path),
        )
        return HTMLResponse(page, status_code=status)


def time_range(query: Query) -> Filters:
    """Only the time range of ``query``'s filters."""
    return Filters(since_ns=query.filters.since_ns, until_ns=query.filters.until_ns)


def models_table(filters: Filters, rows: list[dict[str, Any]]) -> Table:
    """The generations of ``filters`` grouped by model, with the mean of each score given to
    their work: ``hypertool report --by model`` (a row without a model holds the scores of
    work that is not a generation: stages, traces).
    """
    document = documents.report_document("model", filters, rows)
    columns = [*REPORT_COLUMNS, *quality_columns(rows)]
    return Table("models", "By model", columns, rows, document, "No generations match.")


def respond(
    site: Site,
    request: Request,
    query: Query,
    template: str,
    tables: Mapping[str, Table],
    filename: str,
    *,
    version: int,
    **context: Any,
) -> Response:
    """The page, or the table ``query`` asks to export (``?format=csv|json&table=NAME``)."""
    if query.format is not None:
        name = query.table or next(iter(tables))
        if name not in tables:
            raise BadRequest(f"table={name!r}: this page has {', '.join(tables)}")
        return export(tables[name], query.format, filename)
    return site.render(request, template, version=version, q=query, tables=tables, **context)
