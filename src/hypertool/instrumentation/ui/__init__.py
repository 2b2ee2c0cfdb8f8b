"""``hypertool ui``: Langfuse's views — Personas, Traces, Generations, Analytics, Prompts, Scores —
in a browser, served from the local trace store, read-only, on 127.0.0.1, offline.

Server-rendered pages (Starlette + Jinja2, served by uvicorn) read the store through the same
query layer as the CLI (:mod:`hypertool.instrumentation.store`), so a page and ``hypertool …
--json`` with the same filters show the same numbers. Charts are drawn by uPlot, vendored in
``static/vendor``. The stack is the optional extra ``[ui]``; importing this package needs none
of it, and :func:`serve` says which ``pip install`` to run when it is missing.
"""

from __future__ import annotations

import importlib
from pathlib import Path

INSTALL = "pip install 'hypertool-instrumentation[ui]'"
"""The command that installs what the web UI needs."""

_NEEDS = ("starlette", "uvicorn", "jinja2")


class UiUnavailableError(RuntimeError):
    """The web UI's dependencies are not installed; the message says what to run."""


def missing_dependencies() -> list[str]:
    """The packages of the ``[ui]`` extra that cannot be imported here."""
    missing = []
    for name in _NEEDS:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    return missing


def require() -> None:
    """Raise :class:`UiUnavailableError` naming the ``pip install`` when the extra is missing."""
    missing = missing_dependencies()
    if missing:
        raise UiUnavailableError(
            f"the web UI needs {', '.join(missing)}, which this Python does not have: "
            f"run  {INSTALL}"
        )


def serve(
    store: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    open_browser: bool = False,
) -> int:
    """Serve the web UI over the store at ``store`` until interrupted; returns an exit code.

    Raises:
        UiUnavailableError: the ``[ui]`` extra is not installed.
        StoreError: the store is missing or unreadable.

    """
    require()
    from hypertool.instrumentation.ui.server import run

    return run(store, host=host, port=port, open_browser=open_browser)


__all__ = ["INSTALL", "UiUnavailableError", "missing_dependencies", "require", "serve"]
