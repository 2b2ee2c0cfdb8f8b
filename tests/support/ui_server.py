"""The web UI served by a real uvicorn on a free 127.0.0.1 port, in a thread that stops by itself.

Used by the browser tests and the UI benchmark; the store is opened read-only, as
``hypertool ui`` does.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from hypertool.instrumentation.personas import builtin_personas
from hypertool.instrumentation.store import TraceStore
from hypertool.instrumentation.store.overview import Budgets
from hypertool.instrumentation.ui.app import create_app

START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class RunningUi:
    """A UI being served: its address and the store it reads."""

    url: str
    store: TraceStore

    @property
    def host(self) -> str:
        return self.url.split("//", 1)[1].rstrip("/")


@contextlib.contextmanager
def running_ui(path: Path, budgets: Budgets | None = None) -> Iterator[RunningUi]:
    """Serve the UI over the store at ``path`` until the block ends (bounded start and stop)."""
    store = TraceStore(path, read_only=True)
    app = create_app(store, budgets=budgets or Budgets(builtin_personas(), "month"))
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="warning", access_log=False, lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="ui-test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            server.should_exit = True
            store.close()
            raise RuntimeError("the UI server did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield RunningUi(f"http://127.0.0.1:{port}", store)
    finally:
        server.should_exit = True
        thread.join(STOP_TIMEOUT_S)
        store.close()
        if thread.is_alive():
            raise RuntimeError("the UI server did not stop")
