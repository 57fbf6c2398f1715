"""Hardening fixtures: scripted clients (`tests.kit`) attacking a real server
(`make_live_server` and `browser` are in tests/conftest.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest

from tests.kit import NO_LIMITS, LiveClient, LiveServer
from tests.kit.fuzzing import Arena


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


# Fuzzing: one room with an attacker, an observer and a checker -----------------------


@pytest.fixture(scope="module")
def arena(module_server: LiveServer) -> Iterator[Arena]:
    """The fuzzing modules' arena, on the module's server."""
    arena = Arena(module_server)
    arena.run(arena.open())
    try:
        yield arena
    finally:
        arena.run(arena.close())
        arena.loop.close()
