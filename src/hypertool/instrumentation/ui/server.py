"""Running the web UI: uvicorn on 127.0.0.1 unless asked otherwise, with a warning then."""

from __future__ import annotations

import ipaddress
import sys
import threading
import webbrowser
from pathlib import Path

import uvicorn

from hypertool.instrumentation.store.trace_store import TraceStore
from hypertool.instrumentation.ui.app import create_app


def is_loopback(host: str) -> bool:
    """True when ``host`` is only reachable from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def url_of(host: str, port: int) -> str:
    """The address to open in a browser for a server on ``host``:``port``."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    if ":" in shown and not shown.startswith("["):
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/"


def exposure_warning(host: str) -> str | None:
    """What to tell someone serving on ``host``, when other machines can reach it."""
    if is_loopback(host):
        return None
    return (
        f"hypertool: warning: serving on {host}, reachable from other machines: traces hold "
        "prompts and completions, and the UI has no login"
    )


def run(store: Path, *, host: str, port: int, open_browser: bool) -> int:
    """Open ``store`` read-only and serve the UI until Ctrl-C; 0 when stopped cleanly."""
    reader = TraceStore(store, read_only=True)
    app = create_app(reader, allowed_hosts=None if is_loopback(host) else ["*"])
    warning = exposure_warning(host)
    if warning:
        print(warning, file=sys.stderr)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
    server = uvicorn.Server(config)

    def announce() -> None:
        while not server.started and not server.should_exit:
            threading.Event().wait(0.05)
        if not server.started:
            return
        sockets = [s for srv in server.servers for s in srv.sockets]
        bound = sockets[0].getsockname()[1] if sockets else port
        address = url_of(host, bound)
        print(f"hypertool ui: {address}  (store {store}, read-only; Ctrl-C to stop)", flush=True)
        if open_browser:
            webbrowser.open(address)

    threading.Thread(target=announce, name="hypertool-ui-announce", daemon=True).start()
    try:
        server.run()
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it stopped on: the normal end
        pass
    finally:
        reader.close()
    return 0 if server.started else 1
