"""Shared fixtures: settings on a fresh SQLite file, the app, Quart's test client, a
Redis of the test's own, the stores of the contract tests (SQLite and PostgreSQL), and
for the end-to-end and hardening tests real servers and Chromium. The helpers they use
are in tests/kit."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
from quart import Quart
from quart.typing import TestClientProtocol

from chat import create_app
from chat.settings import Settings, load_settings
from chat.store import Store
from chat.store.postgres import PostgresStore
from chat.store.sqlite import SQLiteStore
from tests.kit.pages import CHROMIUM_ARGS, chromium_or_skip
from tests.kit.redis import RedisServer
from tests.kit.server import LiveServer, MakeServer
from tests.kit.stores import POSTGRES_URL, Database, postgres_admin, with_search_path


@pytest.fixture
def make_settings(tmp_path: Path):
    """Settings on a fresh database in `tmp_path`; keyword arguments override fields."""

    def make(**overrides: object) -> Settings:
        env = {"CHAT_DATABASE_URL": f"sqlite:///{tmp_path / 'chat.db'}"}
        defaults = {
            "leave_grace": 0.05,
            "message_rate": None,
            "join_fail_rate": None,
            "create_rate": None,
        }
        return load_settings(env, **{**defaults, **overrides})

    return make


@pytest.fixture
def settings(make_settings) -> Settings:
    return make_settings()


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Quart]:
    app = create_app(settings)
    async with app.test_app():
        yield app


@pytest.fixture
async def make_app(make_settings) -> AsyncIterator:
    """Apps on settings of the test's choosing, e.g. `await make_app(leave_grace=1)`."""
    async with AsyncExitStack() as stack:

        async def make(**overrides: object) -> Quart:
            app = create_app(make_settings(**overrides))
            await stack.enter_async_context(app.test_app())
            return app

        yield make


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A `redis-server` of the test's own on a free port, stoppable and restartable."""
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def client(app: Quart) -> TestClientProtocol:
    return app.test_client()


@pytest.fixture(params=["sqlite", "sqlite-shared", "postgres"])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """A fresh database: SQLite as one process uses it (writes on the event loop) or as
    several do (writes on a thread), or a PostgreSQL schema."""
    if request.param.startswith("sqlite"):
        path = tmp_path / "chat.db"
        alone = request.param == "sqlite"
        database = Database("sqlite", lambda: SQLiteStore(path, alone=alone), path)
        yield database
        await database.close_all()
        return

    admin = await postgres_admin()
    schema = f"test_store_{secrets.token_hex(6)}"
    await admin.execute(f'CREATE SCHEMA "{schema}"')
    url = with_search_path(POSTGRES_URL, schema)
    database = Database("postgres", lambda: PostgresStore(url, max_size=4), url)
    try:
        yield database
        await database.close_all()
    finally:
        await admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await admin.close()


@pytest.fixture
async def store(database: Database) -> Store:
    return await database.open()


# Real servers and a real browser -------------------------------------------------------


@pytest.fixture
def make_live_server(tmp_path: Path) -> Iterator[MakeServer]:
    """Factory: `make_live_server(env={...}, args=[...], start=True)`; all stopped at teardown.

    Each server gets its own work folder (`tmp_path/<name>`), unless `database` is given
    to share one between processes.
    """
    servers: list[LiveServer] = []

    def make(*, env: Mapping[str, str] | None = None, args: Sequence[str] = (),
             start: bool = True, name: str | None = None, **options) -> LiveServer:
        name = name or f"server{len(servers) + 1}"
        server = LiveServer(tmp_path / name, env=env, args=args, name=name, **options)
        servers.append(server)
        if start:
            server.start()
        return server

    yield make
    for server in reversed(servers):
        server.close()
        print(f"\n--- {server.name} log ({server.log_path}) ---\n{server.log_tail()}")


@pytest.fixture
async def browser() -> AsyncIterator[object]:
    """Debian's Chromium, headless, through Playwright's async API (one per test)."""
    executable = chromium_or_skip()
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            await browser.close()
