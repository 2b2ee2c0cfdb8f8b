"""④ The embedded local trace store: a sink of the pipeline, and its reader.

Every trace, span and generation lands in one SQLite file (``HYPERTOOL_STORE``; default
``traces.db`` in the per-user data directory; ``off`` disables it), written by its own delivery
thread: :class:`StoreExporter` is the sink, :class:`TraceStore` writes (:mod:`.writes`) and
answers reports (:mod:`.reader`, over the query modules :mod:`.reports`, :mod:`.listings`,
:mod:`.tree`, :mod:`.scores`, :mod:`.quality`, :mod:`.analytics`, :mod:`.overview`),
:mod:`.schema` owns the file format and its migrations, :mod:`.rows` turns spans into rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from hypertool.instrumentation._config import (
    DEFAULT_RETENTION_DAYS,
    DEFAULT_STORE_MAX_FIELD_CHARS,
    HYPERTOOL_STORE,
    HYPERTOOL_STORE_MAX_FIELD_CHARS,
    HYPERTOOL_STORE_RETENTION_DAYS,
    default_store_path,
    environment,
    store_path,
)
from hypertool.instrumentation.store.exporter import DELIVERY_INTERVAL_S, StoreExporter
from hypertool.instrumentation.store.reports import REPORT_GROUPS, ReportBy
from hypertool.instrumentation.store.schema import SCHEMA_VERSION, StoreError, StoreLockedError
from hypertool.instrumentation.store.trace_store import TraceStore
from hypertool.instrumentation.store.values import percentile

DEFAULT_MAX_FIELD_CHARS = DEFAULT_STORE_MAX_FIELD_CHARS

__all__ = [
    "DEFAULT_MAX_FIELD_CHARS",
    "DEFAULT_RETENTION_DAYS",
    "DELIVERY_INTERVAL_S",
    "HYPERTOOL_STORE",
    "HYPERTOOL_STORE_MAX_FIELD_CHARS",
    "HYPERTOOL_STORE_RETENTION_DAYS",
    "REPORT_GROUPS",
    "SCHEMA_VERSION",
    "ReportBy",
    "StoreError",
    "StoreExporter",
    "StoreLockedError",
    "TraceStore",
    "default_store_path",
    "percentile",
    "store_path_from_env",
]


def store_path_from_env(environ: Mapping[str, str] | None = None) -> Path | None:
    """Where the store is: ``HYPERTOOL_STORE``, or the default path; None when it is ``off``.

    Args:
        environ: Variables to read; the process environment (and a ``.env`` in the working
            directory) when None.

    """
    return store_path(environment() if environ is None else environ)
