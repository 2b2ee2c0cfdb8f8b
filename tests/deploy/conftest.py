"""Helpers of the deployment suite: run a shape in a clean interpreter, read what arrived."""

from __future__ import annotations

import collections
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hypertool.instrumentation import semconv
from hypertool.instrumentation.store import TraceStore
from support.loopback import LoopbackOTLP

HERE = Path(__file__).parent
SHAPES = HERE / "shapes.py"
TAG = re.compile(r"gen:[\w-]+")
ENV_PREFIXES = ("LANGFUSE_", "HYPERTOOL_", "OTEL_", "PROMETHEUS_")


@dataclass
class Run:
    """What a shape program reported, and its standard error."""

    report: dict[str, Any]
    stderr: str


def clean_env(receiver: LoopbackOTLP, store: Path, **extra: str) -> dict[str, str]:
    """The environment of a program sending to ``receiver`` and ``store``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIXES)}
    env.update(
        LANGFUSE_PUBLIC_KEY="pk-lf-deploy",
        LANGFUSE_SECRET_KEY="sk-lf-deploy-secret",
        LANGFUSE_HOST=receiver.url,
        HYPERTOOL_STORE=str(store),
        HYPERTOOL_EXIT_TIMEOUT="5",
        PYTHONPATH=os.pathsep.join(p for p in sys.path if p),
    )
    env.update(extra)
    return env


def run_shape(env: dict[str, str], *args: object, timeout: float = 60) -> Run:
    """Run ``shapes.py ARGS``; fail (never hang) if it does not end within ``timeout``."""
    done = subprocess.run(
        [sys.executable, str(SHAPES), *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    line = next((line for line in done.stdout.splitlines() if line.startswith("report ")), None)
    assert line is not None, (done.stdout[-2000:], done.stderr[-3000:])
    return Run(json.loads(line.removeprefix("report ")), done.stderr)


def received_tags(receiver: LoopbackOTLP) -> collections.Counter[str]:
    """How many times each generation (by its ``gen:`` tag) reached the receiver."""
    tags: collections.Counter[str] = collections.Counter()
    for span in receiver.spans(accepted_only=True):
        if span.attributes.get(semconv.OBSERVATION_TYPE) != "generation":
            continue
        match = TAG.search(str(span.attributes.get(semconv.INPUT, "")))
        assert match is not None, span.attributes
        tags[match.group()] += 1
    return tags


def stored_tags(store: Path) -> collections.Counter[str]:
    """Each generation's tag in the store (a span is stored once by design: count rows)."""
    tags: collections.Counter[str] = collections.Counter()
    with TraceStore(store, create=False) as opened:
        rows = opened.generations(limit=1_000_000)
    for row in rows:
        match = TAG.search(str(row["input"]))
        assert match is not None, row
        tags[match.group()] += 1
    return tags


def only_once(tags: collections.Counter[str]) -> list[str]:
    """Tags that arrived more than once."""
    return sorted(tag for tag, n in tags.items() if n > 1)


@pytest.fixture
def receiver() -> Iterator[LoopbackOTLP]:
    with LoopbackOTLP(200) as running:
        yield running


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "traces.db"
