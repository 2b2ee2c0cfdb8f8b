"""``hypertool ui`` as a person starts it: a real process on 127.0.0.1 that stops on Ctrl-C."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from hypertool.instrumentation.store import TraceStore
from hypertool.instrumentation.ui.app import CONTENT_SECURITY_POLICY, create_app
from hypertool.instrumentation.ui.server import exposure_warning, is_loopback, url_of
from support.store_seed import Seeded

START_TIMEOUT_S = 30
STOP_TIMEOUT_S = 15


def test_hypertool_ui_serves_then_stops_on_ctrl_c(fresh_seeded: Seeded, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HYPERTOOL_", "LANGFUSE_"))}
    process = subprocess.Popen(
        [sys.executable, "-m", "hypertool.instrumentation.cli", "ui", "--store",
         str(fresh_seeded.path), "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], START_TIMEOUT_S)
        assert ready, "hypertool ui said nothing"
        line = process.stdout.readline()  # the server says where it is once it listens
        assert line.startswith("hypertool ui: http://127.0.0.1:"), line
        url = line.split()[2]
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.status == 200
            assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
            assert "Personas" in response.read().decode()
    finally:
        process.send_signal(signal.SIGINT)
        try:
            _, err = process.communicate(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            pytest.fail("hypertool ui did not stop on SIGINT")
    assert process.returncode == 0, err
    assert "Traceback" not in err


def test_only_loopback_is_quiet() -> None:
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        assert is_loopback(host) and exposure_warning(host) is None
    for host in ("0.0.0.0", "192.168.1.10", "example.org"):
        warning = exposure_warning(host)
        assert warning is not None and "no login" in warning and "prompts" in warning
    assert url_of("0.0.0.0", 8000) == "http://127.0.0.1:8000/"
    assert url_of("::1", 8000) == "http://[::1]:8000/"


def test_serving_elsewhere_accepts_other_host_names(fresh_seeded: Seeded) -> None:
    with TraceStore(fresh_seeded.path, read_only=True) as store:
        app = create_app(store, allowed_hosts=["*"])
        with TestClient(app, base_url="http://ui.example") as client:
            assert client.get("/").status_code == 200
