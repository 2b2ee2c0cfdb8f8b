"""Shared fixtures: a clean environment and a fresh process default for every test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from hypertool.instrumentation import reset_langfuse_integration

_PREFIXES = ("LANGFUSE_", "HYPERTOOL_", "OTEL_")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No LANGFUSE_/HYPERTOOL_/OTEL_ variables (the store off), no stray .env, no leftover
    default integration."""
    for name in list(os.environ):
        if name.startswith(_PREFIXES):
            monkeypatch.delenv(name)
    # Never the user's real store: tests that use one point HYPERTOOL_STORE at a tmp path.
    monkeypatch.setenv("HYPERTOOL_STORE", "off")
    monkeypatch.chdir(tmp_path)
    reset_langfuse_integration()
    yield
    reset_langfuse_integration()
