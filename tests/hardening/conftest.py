"""Hardening fixtures: scripted clients (`tests.kit`) attacking a real server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest

# Reused, not copied: the e2e fixtures (importing registers them).
from tests.e2e.conftest import (  # noqa: F401
    LiveServer,
    browser,
    make_live_server,
)
from tests.kit.browser import NO_LIMITS, LiveClient


@pytest.fixture
async def clients() -> AsyncIterator[list[LiveClient]]:
    """Register `LiveClient`s here so they are stopped at teardown."""
    made: list[LiveClient] = []
    yield made
    await asyncio.gather(*(client.stop() for client in made), return_exceptions=True)


@pytest.fixture(scope="module")
def module_server(tmp_path_factory: pytest.TempPathFactory,
                  request: pytest.FixtureRequest) -> Iterator[LiveServer]:
    """One server shared by a module's tests (limits off unless the module sets
    `SERVER_ENV`)."""
    env = {**NO_LIMITS, **getattr(request.module, "SERVER_ENV", {})}
    folder = tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])
    server = LiveServer(folder, env=env, name="module")
    server.start()
    try:
        yield server
    finally:
        server.close()
        print(f"\n--- {server.name} log ({server.log_path}) ---\n{server.log_tail()}")



# Load: many members in many rooms, checked message by message -------------------------


@pytest.fixture(scope="module")
def arena(module_server: LiveServer) -> Iterator[object]:
    """The fuzzing modules' arena, on the module's server."""
    from tests.hardening.fuzzing import Arena

    arena = Arena(module_server)
    arena.run(arena.open())
    try:
        yield arena
    finally:
        arena.run(arena.close())
        arena.loop.close()
