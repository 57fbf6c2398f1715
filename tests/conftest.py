"""Shared fixtures: settings on a fresh SQLite file, the app, Quart's test client, a
Redis of the test's own, and the stores of the contract tests (SQLite and PostgreSQL)."""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator, Iterator
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
from tests.kit.redis import RedisServer
from tests.kit.stores import POSTGRES_URL, Database, postgres_admin, with_search_path

ORIGIN = "http://localhost"


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


CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


async def csrf_token(client: TestClientProtocol) -> str:
    """The session's CSRF token, as the home form carries it (creates the session)."""
    page = await (await client.get("/")).get_data(as_text=True)
    return CSRF_FIELD.search(page).group(1)


async def post_form(client: TestClientProtocol, path: str, form: dict[str, str]):
    """POST a form the way a browser on our page does: with the token and our Origin."""
    token = await csrf_token(client)
    return await client.post(path, form={**form, "csrf_token": token}, headers={"Origin": ORIGIN})


async def join_room(client: TestClientProtocol, name: str, code: str | None = None) -> str:
    """Join `code` (or create a room when None) as `name`; the room's code."""
    form = (
        {"name": name, "create": "1"} if code is None else {"name": name, "code": code, "join": "1"}
    )
    response = await post_form(client, "/", form)
    assert response.status_code == 303, await response.get_data(as_text=True)
    return response.headers["Location"].rsplit("/", 1)[1]


@pytest.fixture(params=["sqlite", "postgres"])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    if request.param == "sqlite":
        path = tmp_path / "chat.db"
        database = Database("sqlite", lambda: SQLiteStore(path), path)
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
