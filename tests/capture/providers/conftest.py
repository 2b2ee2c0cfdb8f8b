"""Fixtures shared by the provider tests: the fake provider server and the sinks asserted on."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support.fake_servers import FakeProviderServer, Sink


@pytest.fixture
def server() -> Iterator[FakeProviderServer]:
    with FakeProviderServer() as fake:
        yield fake


@pytest.fixture(params=["memory", "wire"])
def sink(request: pytest.FixtureRequest) -> Iterator[Sink]:
    made = Sink(request.param)
    yield made
    made.close()


@pytest.fixture
def memory() -> Iterator[Sink]:
    made = Sink("memory")
    yield made
    made.close()
