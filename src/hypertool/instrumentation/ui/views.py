"""The pages of the web UI that Langfuse's Users, Traces, Generations and Analytics views
answer: Personas, a persona, Traces, a trace, Generations, Analytics (the Prompts and Scores
pages are :mod:`.quality`'s).

Each page asks the store the same questions as a CLI command (noted on each function) with
the same filters, shows the answer as tables and charts, and exports each table: CSV of its
rows, or JSON — the document the CLI prints with ``--json``.
"""

from __future__ import annotations

from typing import Any, cast

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from hypertool.instrumentation.store import documents
from hypertool.instrumentation.store.analytics import BUCKET_SECONDS
from hypertool.instrumentation.store.filters import Filters
from hypertool.instrumentation.store.listings import TRACE_SORTS, Order, TraceSort
from hypertool.instrumentation.ui import charts
from hypertool.instrumentation.ui.params import BadRequest, parse_query
from hypertool.instrumentation.ui.site import Site, models_table, respond, time_range
from hypertool.instrumentation.ui.tables import (
    DISTRIBUTION_COLUMNS,
    GENERATION_COLUMNS,
    PERSONA_COLUMNS,
    SERIES_COLUMNS,
    TIMELINE_COLUMNS,
    TRACE_COLUMNS,
    Column,
    Table,
    export,
    quality_columns,
)

SLOWEST_ON_PERSONA_PAGE = 10


# -- Personas -------------------------------------------------------------------------------
def personas_page(site: Site, request: Request) -> Response:
    """Each persona's budget, use and activity, the mean of each score and the gate pass rate:
    ``hypertool personas --json [--since]`` (whose activity is ``report --by persona``'s row).
    """
    version = site.store.data_version()  # before the queries: see Site.render
    query = parse_query(request.query_params)
    rows = site.store.personas(site.budgets, time_range(query))
    document = documents.personas_document(time_range(query), rows)
    quality = quality_columns(rows, "activity")
    table = Table("personas", "Personas", [*PERSONA_COLUMNS, *quality], rows, document)
    totals = [{"persona": row["persona"], **row["activity"]} for row in rows]
    chart = charts.tokens_by_persona([row for row in totals if row["generations"]])
    return respond(
        site,
        request,
        query,
        "personas.html",
        {"personas": table},
        "personas",
        version=version,
        chart=chart,
        scored=bool(quality),
    )


def persona_page(site: Site, request: Request) -> Response:
    """One persona: its budget and activity, cost over time, latency by model, its traces
    (``hypertool traces --persona``), its models (``report --by model --persona``) and its
    slowest generations (``generations --slowest 10 --persona``).
    """
    version = site.store.data_version()  # before the queries: see Site.render
    name = request.path_params["name"]
    query = parse_query(request.query_params, sorts=TRACE_SORTS)
    filters = Filters(
        persona=name, since_ns=query.filters.since_ns, until_ns=query.filters.until_ns
    )
    store = site.store
    (row,) = store.personas(site.budgets, filters, only=name)
    persona = row["persona"]
    filters = Filters(persona=persona, since_ns=filters.since_ns, until_ns=filters.until_ns)
    traces = store.traces(
        filters=filters,
        sort=cast("TraceSort", query.sort or "start"),
        order=cast("Order", query.order),
        limit=query.per,
        offset=query.offset,
    )
    total = store.count_traces(filters)
    if not (row["registered"] or row["activity"]["generations"] or total):
        return site.error(request, 404, f"No persona {name!r} in this store or configuration.")
    models = store.report("model", filters=filters)
    slowest = store.generations(slowest=SLOWEST_ON_PERSONA_PAGE, filters=filters)
    document = store.analytics(filters)
    names = site.facets(version)["personas"]
    tables = {
        "summary": Table(
            "summary",
            "Summary",
            [*PERSONA_COLUMNS, *quality_columns([row], "activity")],
            [row],
            documents.personas_document(time_range(query), [row]),
        ),
        "traces": Table(
            "traces",
            "Traces",
            TRACE_COLUMNS,
            traces,
            documents.traces_document(filters, total, traces),
            "No traces of this persona in this range.",
        ),
        "models": models_table(filters, models),
        "slowest": Table(
            "slowest",
            f"Slowest {SLOWEST_ON_PERSONA_PAGE} generations",
            GENERATION_COLUMNS,
            slowest,
            documents.generations_document(filters, row["activity"]["generations"], slowest),
        ),
    }
    return respond(
        site,
        request,
        query,
        "persona.html",
        tables,
        f"persona-{persona}",
        version=version,
        persona=row,
        quality=quality_columns([row], "activity"),
        total=total,
        cost_chart=charts.time_series(document, "cost_usd", "usd", names),
        latency_chart=charts.histogram(
            document["latency_histogram"]["by_model"],
            document["latency_histogram"]["edges_ms"],
            [r["group"] for r in document["latency_histogram"]["by_model"]],
        ),
        analytics=document,
    )


# -- Traces ---------------------------------------------------------------------------------
def traces_page(site: Site, request: Request) -> Response:
    """Traces, filtered, sorted, a page at a time: ``hypertool traces --json --limit --offset``."""
    version = site.store.data_version()  # before the queries: see Site.render
    query = parse_query(request.query_params, sorts=TRACE_SORTS)
    filters = Filters(**{**query.filters.as_dict(), "model": None})
    rows = site.store.traces(
        filters=filters,
        sort=cast("TraceSort", query.sort or "start"),
        order=cast("Order", query.order),
        limit=query.per,
        offset=query.offset,
    )
    total = site.store.count_traces(filters)
    document = documents.traces_document(filters, total, rows)
    table = Table("traces", "Traces", TRACE_COLUMNS, rows, document, "No traces match.")
    return respond(
        site,
        request,
        query,
        "traces.html",
        {"traces": table},
        "traces",
        version=version,
        total=total,
    )


def _flatten_tree(nodes: list[dict[str, Any]], depth: int = 0) -> list[dict[str, Any]]:
    flat = []
    for node in nodes:
        flat.append({"depth": depth, **{k: v for k, v in node.items() if k != "children"}})
        flat.extend(_flatten_tree(node["children"], depth + 1))
    return flat


def trace_page(site: Site, request: Request) -> Response:
    """One trace as a tree with prompts, completions and the scores of each observation:
    ``hypertool trace ID --json``.
    """
    trace_id = request.path_params["trace_id"]
    full = len(trace_id) == 32 and trace_id == trace_id.lower()
    version = site.store.data_version(trace_id) if full else 0  # before the tree is read
    try:
        tree = site.store.trace(trace_id)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    if tree is None:
        return site.error(request, 404, f"No trace {trace_id} in this store.")
    if not full:  # a prefix: the page lives at the full id, which its refresh asks about
        return RedirectResponse(f"/traces/{tree['trace_id']}?{request.url.query}", status_code=302)
    query = parse_query(request.query_params)
    columns = [Column("depth", "Depth", "count"), Column("type", "Type"), *GENERATION_COLUMNS]
    table = Table("observations", "Observations", columns, _flatten_tree(tree["children"]), tree)
    if query.format is not None:
        return export(table, query.format, f"trace-{tree['trace_id']}")
    return site.render(
        request,
        "trace.html",
        version=version,
        trace_id=tree["trace_id"],
        q=query,
        trace=tree,
        table=table,
    )


# -- Generations ----------------------------------------------------------------------------
def generations_page(site: Site, request: Request) -> Response:
    """Generations, slowest or newest first, failed only if asked, and the same grouped by
    model: ``hypertool generations [--slowest N] [--failed] --json`` and
    ``hypertool report --by model --json`` with the same filters.
    """
    version = site.store.data_version()  # before the queries: see Site.render
    query = parse_query(request.query_params, sorts=("slowest", "recent"))
    filters = query.filters
    slowest = query.sort == "slowest"
    rows = site.store.generations(
        slowest=query.per if slowest else None,
        limit=query.per,
        filters=filters,
        offset=query.offset,
    )
    models = site.store.report("model", filters=filters)
    total = sum(row["generations"] for row in models)  # the same generations, grouped
    tables = {
        "generations": Table(
            "generations",
            "Slowest first" if slowest else "Newest first",
            GENERATION_COLUMNS,
            rows,
            documents.generations_document(filters, total, rows),
            "No generations match.",
        ),
        "models": models_table(filters, models),
    }
    return respond(
        site,
        request,
        query,
        "generations.html",
        tables,
        "generations",
        version=version,
        total=total,
    )


# -- Analytics ------------------------------------------------------------------------------
def analytics_page(site: Site, request: Request) -> Response:
    """Cost, tokens and errors over time by persona, latency and time-to-first-token
    distributions: ``hypertool analytics --json`` with the same range and filters.
    """
    version = site.store.data_version()  # before the queries: see Site.render
    query = parse_query(request.query_params, default_range="7d")
    raw_bucket = request.query_params.get("bucket") or None
    bucket = None
    if raw_bucket is not None:
        if not raw_bucket.isdigit() or int(raw_bucket) not in BUCKET_SECONDS:
            raise BadRequest(f"bucket={raw_bucket!r}: choose one of {BUCKET_SECONDS}")
        bucket = int(raw_bucket)
    document = site.store.analytics(query.filters, bucket_s=bucket)
    names = site.facets(version)["personas"]
    totals = charts.totals_by_persona(document["series"], names)
    latency = document["latency_histogram"]
    first_token = document["time_to_first_token"]
    histogram_columns = [
        Column("group", "Group"),
        Column("generations", "Generations", "count"),
        *(
            Column(f"bins.{number}", text, "count")
            for number, text in enumerate(charts.bin_labels(latency["edges_ms"]))
        ),
    ]

    def binned(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{**r, "bins": {str(i): c for i, c in enumerate(r["counts"])}} for r in rows]

    tables = {
        name: Table(name, title, columns, rows, document, "No generations in this range.")
        for name, title, columns, rows in (
            ("timeline", "Per bucket", TIMELINE_COLUMNS, document["timeline"]),
            ("series", "Per bucket and persona", SERIES_COLUMNS, document["series"]),
            ("tokens", "By persona", SERIES_COLUMNS[1:], totals),
            ("latency-models", "Latency by model", histogram_columns, binned(latency["by_model"])),
            (
                "latency-personas",
                "Latency by persona",
                histogram_columns,
                binned(latency["by_persona"]),
            ),
            ("first-token-models", "By model", DISTRIBUTION_COLUMNS, first_token["by_model"]),
            ("first-token-personas", "By persona", DISTRIBUTION_COLUMNS, first_token["by_persona"]),
        )
    }
    model_names = [row["group"] for row in latency["by_model"]]
    return respond(
        site,
        request,
        query,
        "analytics.html",
        tables,
        "analytics",
        version=version,
        analytics=document,
        buckets=BUCKET_SECONDS,
        charts={
            "cost": charts.time_series(document, "cost_usd", "usd", names),
            "tokens-time": charts.time_series(document, "total_tokens", "tokens", names),
            "tokens": charts.tokens_by_persona(totals),
            "errors": charts.error_rate(document),
            "latency-models": charts.histogram(
                latency["by_model"], latency["edges_ms"], model_names
            ),
            "latency-personas": charts.histogram(latency["by_persona"], latency["edges_ms"], names),
            "first-token": charts.histogram(
                first_token["by_model"], first_token["edges_ms"], model_names
            ),
        },
    )


def version(site: Site, request: Request) -> Response:
    """``{"version": N}``: changes when spans are stored (of ``?trace=ID`` only, if given)."""
    trace_id = request.query_params.get("trace") or None
    return JSONResponse({"version": site.store.data_version(trace_id)})
