"""End-to-end fixtures: a real server process (`live_server`; the factory
`make_live_server` and Chromium's `browser` are in tests/conftest.py), people in
Chromium, scripted members, and for several processes a shared database and two servers
on one Redis broker."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest

from tests.kit import LiveServer, MakeServer, Member
from tests.kit.pages import User, new_user
from tests.kit.stores import POSTGRES_URL


@pytest.fixture
def live_server_env() -> dict[str, str]:
    """Settings for `live_server`; override this fixture (or use the factory) to change them."""
    return {}


@pytest.fixture
def live_server(make_live_server: MakeServer, live_server_env: dict[str, str]) -> LiveServer:
    return make_live_server(env=live_server_env, name="server")


@pytest.fixture
async def database_url(tmp_path: Path) -> AsyncIterator[str]:
    """A fresh PostgreSQL database when PostgreSQL answers, else a SQLite file shared by
    the processes."""
    try:
        admin = await asyncpg.connect(POSTGRES_URL, timeout=2)
    except Exception:
        yield f"sqlite:///{tmp_path / 'shared.db'}"
        return
    name = f"chat_scale_{uuid.uuid4().hex[:10]}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with contextlib.suppress(Exception):
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()


OpenPerson = Callable[..., Awaitable[User]]


@pytest.fixture
async def people(browser) -> AsyncIterator[OpenPerson]:
    """Factory: `await people(server, "Ann", javascript=True, viewport=None, **options)`
    opens a person (their own browser context, so their own session) on `server`.

    At teardown, any console error or uncaught page error on any of their pages fails
    the test (a test that stops the server says so with `user.allow_offline_noise()`).
    """
    opened = []

    async def open_person(server: LiveServer, name: str, *, javascript: bool = True,
                          viewport: dict | None = None, **options) -> User:
        context = await browser.new_context(
            base_url=server.url, java_script_enabled=javascript,
            viewport=viewport or {"width": 1280, "height": 800}, **options)
        user = await new_user(context, name)
        opened.append(user)
        return user

    yield open_person
    problems = {user.name: user.unexpected_errors() for user in opened}
    problems = {name: lines for name, lines in problems.items() if lines}
    assert not problems, f"console errors: {problems}"


@pytest.fixture
async def members() -> AsyncIterator[Callable[..., Member]]:
    """Factory: `members(server, "Alice", **options)` is a scripted person
    (`tests.kit.Member`) on `server`; their pages and sessions close at teardown."""
    made: list[Member] = []

    def make(server: LiveServer, name: str, **options) -> Member:
        made.append(Member(server, name, **options))
        return made[-1]

    yield make
    for member in made:
        await member.close()


@pytest.fixture
def two_servers(redis_server, database_url, make_live_server: MakeServer):
    """Two app processes on one Redis broker and one database."""
    env = {
        "CHAT_BROKER_URL": redis_server.url,
        "CHAT_DATABASE_URL": database_url,
        "CHAT_SECRET_KEY": "scale-out-test-" + uuid.uuid4().hex,
        "CHAT_MESSAGE_RATE": "off",
        "CHAT_JOIN_FAIL_RATE": "off",
        "CHAT_CREATE_RATE": "off",
    }
    return make_live_server(env=env, name="a"), make_live_server(env=env, name="b")
