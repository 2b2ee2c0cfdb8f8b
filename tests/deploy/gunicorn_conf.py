"""gunicorn settings of the README's pre-fork setup (prometheus_client's multiprocess mode)."""

from __future__ import annotations

from typing import Any

from prometheus_client import multiprocess


def child_exit(server: Any, worker: Any) -> None:
    # Drops the dead worker's live* gauges (the remaining budget); its counters stay summed.
    multiprocess.mark_process_dead(worker.pid)
