"""The web UI as an ASGI application: routes, templates, static files and safety headers.

Safety, for pages full of other people's prompts: the store is opened read-only; Jinja2
escapes every value (autoescape), so a prompt holding ``<script>`` is shown as text; a
Content-Security-Policy lets the page run only the package's own scripts (no inline script, no
request to another origin); the Host header must name this machine unless the server was asked
to listen elsewhere (a web page elsewhere cannot reach the UI by DNS rebinding).
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hypertool.instrumentation import display
from hypertool.instrumentation.store.overview import Budgets, configured_budgets
from hypertool.instrumentation.store.schema import StoreError
from hypertool.instrumentation.store.trace_store import TraceStore
from hypertool.instrumentation.ui import quality, views
from hypertool.instrumentation.ui.params import BadRequest
from hypertool.instrumentation.ui.site import Site
from hypertool.instrumentation.ui.tables import lookup

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
"""Only this server's own scripts, styles and requests; nothing inline, nothing elsewhere."""

SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-resource-policy", b"same-origin"),
)
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
STATIC = Path(__file__).parent / "static"
Endpoint = Callable[[Request], Awaitable[Response]]


class SecurityHeaders:
    """Adds :data:`SECURITY_HEADERS` to every response; pages are not cached; a
    ``Server-Timing: app;dur=MS`` header says how long the server took to answer (shown by the
    browser's developer tools, read by the benchmark).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI call, adding the headers to its response."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope.get("path", "").startswith("/static/")
        started = time.perf_counter()

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.extend(SECURITY_HEADERS)
                took_ms = (time.perf_counter() - started) * 1000
                headers.append((b"server-timing", f"app;dur={took_ms:.1f}".encode()))
                if not static:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def pretty_json(value: Any) -> str:
    """``value`` as indented JSON text (escaped by the template like any other text)."""
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def templates() -> Environment:
    """The Jinja2 environment of the UI: autoescaping on for every template."""
    environment = Environment(
        loader=PackageLoader("hypertool.instrumentation.ui", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters.update(
        tokens=display.tokens,
        cost=display.cost,
        ms=display.duration,
        moment=display.moment,
        excerpt=display.excerpt,
        mean=display.mean,
        best_version=display.best_version,
        score_value=display.score_value,
        percent=display.percent,
        bucket=display.bucket,
        lookup=lookup,
        pretty=pretty_json,
    )
    return environment


def create_app(
    store: TraceStore,
    *,
    budgets: Budgets | None = None,
    allowed_hosts: Sequence[str] | None = None,
) -> Starlette:
    """The web UI over ``store`` (open it with ``read_only=True``); the caller closes it.

    Args:
        store: The trace store to show.
        budgets: Personas and their budgets; the configured ones (``HYPERTOOL_PERSONAS_DIR``)
            when None, read once here.
        allowed_hosts: Host header values accepted; this machine's names when None.

    """
    environment = templates()
    for name in environment.list_templates():  # compiled once now, not on a first visit
        environment.get_template(name)
    site = Site(
        store=store,
        budgets=budgets if budgets is not None else configured_budgets(),
        templates=environment,
    )
    site.facets(store.data_version())

    def page(handler: Callable[[Site, Request], Response]) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            try:  # the store's calls block: off the event loop
                return await run_in_threadpool(handler, site, request)
            except BadRequest as exc:
                return site.error(request, 400, str(exc))

        return endpoint

    routes = [
        Route("/", page(views.personas_page), name="personas"),
        Route("/personas/{name:path}", page(views.persona_page), name="persona"),
        Route("/traces", page(views.traces_page), name="traces"),
        Route("/traces/{trace_id}", page(views.trace_page), name="trace"),
        Route("/generations", page(views.generations_page), name="generations"),
        Route("/analytics", page(views.analytics_page), name="analytics"),
        Route("/prompts", page(quality.prompts_page), name="prompts"),
        Route("/prompts/{name:path}", page(quality.prompt_page), name="prompt"),
        Route("/scores", page(quality.scores_page), name="scores"),
        Route("/api/version", page(views.version), name="version"),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]

    async def not_found(request: Request, exc: Exception) -> Response:
        return site.error(request, 404, "There is no such page.")

    async def failed(request: Request, exc: Exception) -> Response:
        return site.error(request, 500, f"The store could not answer: {exc}")

    return Starlette(
        routes=routes,
        middleware=[
            Middleware(SecurityHeaders),
            Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts or LOCAL_HOSTS)),
        ],
        exception_handlers={404: not_found, StoreError: failed},
    )
