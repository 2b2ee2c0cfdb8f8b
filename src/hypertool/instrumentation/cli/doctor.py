"""``hypertool doctor``: which sinks would be on, where the store and metrics are.

A secret key is never shown beyond its first 8 characters.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text

from hypertool.instrumentation._config import (
    HYPERTOOL_STORE,
    OTEL_ENDPOINT,
    ConfigError,
    Settings,
    load_settings,
    mask_secret,
)
from hypertool.instrumentation.export.sinks import basic_auth
from hypertool.instrumentation.store.schema import StoreError
from hypertool.instrumentation.store.trace_store import TraceStore

PROJECTS_PATH = "/api/public/projects"
ONLINE_TIMEOUT_S = 5.0
METRICS_COMMAND = "hypertool demo --metrics-port PORT"


def check_langfuse(
    host: str, public_key: str, secret_key: str, timeout: float = ONLINE_TIMEOUT_S
) -> dict[str, Any]:
    """Ask ``host`` whether it accepts the keys: ``accepted``, ``rejected`` or ``unreachable``.

    One GET of ``/api/public/projects`` with basic auth; the answer never echoes the secret.
    """
    url = f"{host.rstrip('/')}{PROJECTS_PATH}"
    request = urllib.request.Request(
        url, headers={"Authorization": basic_auth(public_key, secret_key)}
    )
    status: int | None = None
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        status = int(exc.code)
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return {"result": "unreachable", "http_status": None, "url": url, "detail": str(reason)}
    if 200 <= status < 300:
        return {"result": "accepted", "http_status": status, "url": url, "detail": "keys accepted"}
    if status in (401, 403):
        detail = "keys rejected: check LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY"
        return {"result": "rejected", "http_status": status, "url": url, "detail": detail}
    return {
        "result": "unexpected",
        "http_status": status,
        "url": url,
        "detail": f"unexpected answer HTTP {status}",
    }


def _mask(secret: str) -> str:
    """At most the first 8 characters, and never more than half of a short secret."""
    if len(secret) >= 16:
        return mask_secret(secret)
    return f"{secret[: len(secret) // 2]}…"


def _store(path: Path | None, source: str) -> dict[str, Any]:
    if path is None:
        return {"enabled": False, "path": None, "exists": False, "source": source}
    info: dict[str, Any] = {"enabled": True, "path": str(path), "source": source}
    info["exists"] = path.exists()
    if not info["exists"]:
        info["detail"] = "created on first use"
        return info
    try:
        with TraceStore(path, read_only=True) as store:
            stats = store.stats()
    except StoreError as exc:
        info["error"] = str(exc)
        return info
    info.update(
        {
            key: stats[key]
            for key in ("size_bytes", "schema_version", "traces", "generations", "newest")
        }
    )
    return info


def diagnose(
    store_path: Path | None,
    store_source: str,
    *,
    online: bool,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Everything ``hypertool doctor`` reports, as a JSON-ready dict.

    The sinks said to be on are those :meth:`Settings.sinks` turns on, the very settings an
    integration built here would use (``settings``; loaded from the environment when None).
    """
    result: dict[str, Any] = {"sinks": {}, "problems": []}
    sinks = result["sinks"]
    if settings is None:
        try:
            settings = load_settings()
        except ConfigError as exc:
            result["problems"].append(str(exc))
    on = settings.sinks() if settings is not None else {}
    public_key = settings.public_key if settings else None
    secret_key = settings.secret_key if settings else None
    host = settings.host if settings else None
    sinks["langfuse"] = {
        "enabled": on.get("langfuse", False),
        "host": host,
        "public_key": public_key,
        "secret_key": _mask(secret_key) if secret_key else None,
        "environment": settings.environment if settings else None,
        "release": settings.release if settings else None,
    }
    sinks["store"] = _store(store_path, store_source)
    otlp = settings.otlp if settings is not None else None
    sinks["otlp"] = {
        "enabled": on.get("otlp", False),
        "endpoint": otlp.endpoint if otlp is not None else None,
    }
    sinks["console"] = {"enabled": on.get("console", False)}
    result["metrics"] = {
        "served": False,
        "command": METRICS_COMMAND,
        "url": "http://127.0.0.1:PORT/metrics",
    }
    if online:
        if not (host and public_key and secret_key):
            result["online"] = {
                "result": "skipped",
                "http_status": None,
                "url": None,
                "detail": "LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY are not both set",
            }
        else:
            result["online"] = check_langfuse(host, public_key, secret_key)
    else:
        result["online"] = None
    return result


def _on(enabled: bool) -> Text:
    return Text("on", style="bold green") if enabled else Text("off", style="dim")


def doctor_table(result: Mapping[str, Any]) -> Table:
    """The diagnosis for people."""
    sinks = result["sinks"]
    table = Table(title="hypertool doctor", title_justify="left", header_style="bold")
    table.add_column("Sink")
    table.add_column("State")
    table.add_column("Details", overflow="fold")
    langfuse = sinks["langfuse"]
    if langfuse["enabled"]:
        detail = (
            f"host {langfuse['host']}, public key {langfuse['public_key']}, "
            f"secret key {langfuse['secret_key']}, "
            f"environment {langfuse['environment'] or 'default'}"
        )
        if langfuse["release"]:
            detail += f", release {langfuse['release']}"
    else:
        detail = "set LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY to send traces to Langfuse"
        if langfuse["public_key"] or langfuse["secret_key"]:
            detail = "only one of LANGFUSE_PUBLIC_KEY / LANGFUSE_SECRET_KEY is set"
    table.add_row("langfuse", _on(langfuse["enabled"]), Text(detail))
    store = sinks["store"]
    if not store["enabled"]:
        detail = f"disabled ({HYPERTOOL_STORE}=off)"
    elif store.get("error"):
        detail = f"{store['path']}: {store['error']}"
    elif not store["exists"]:
        detail = f"{store['path']} (not created yet: created on first use)"
    else:
        detail = (
            f"{store['path']} ({store['size_bytes']:,} bytes, {store['traces']:,} traces, "
            f"{store['generations']:,} generations, schema v{store['schema_version']})"
        )
    table.add_row("store", _on(store["enabled"]), Text(detail))
    otlp = sinks["otlp"]
    table.add_row(
        "otlp",
        _on(otlp["enabled"]),
        Text(otlp["endpoint"] or f"set {OTEL_ENDPOINT} to send to an OpenTelemetry collector"),
    )
    table.add_row(
        "console",
        _on(sinks["console"]["enabled"]),
        Text("spans printed as JSON" if sinks["console"]["enabled"] else "HYPERTOOL_CONSOLE=true"),
    )
    metrics = result["metrics"]
    table.add_section()
    table.add_row(
        "metrics",
        Text("on demand", style="yellow"),
        Text(
            f"`{metrics['command']}` serves {metrics['url']} "
            "(or start_metrics_server(port) in your application)"
        ),
    )
    online = result["online"]
    if online is not None:
        style = {"accepted": "bold green", "skipped": "dim"}.get(online["result"], "bold red")
        table.add_row("langfuse keys", Text(online["result"], style=style), Text(online["detail"]))
    for problem in result["problems"]:
        table.add_row("config", Text("error", style="bold red"), Text(problem))
    return table
