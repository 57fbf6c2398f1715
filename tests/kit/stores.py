"""Stores for the contract tests: a `Database` (SQLite file or a fresh PostgreSQL
schema) that opens stores on it, and the way to reach the test PostgreSQL server
(`CHAT_TEST_POSTGRES_URL`; unreachable: skipped, except under CI where it fails)."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
import pytest

from chat.store import Store

MIGRATIONS = resources.files("chat.store") / "migrations"


def latest_schema(kind: str) -> int:
    """The newest migration of a kind of store (each store numbers its own)."""
    return max(
        int(entry.name.split("_", 1)[0])
        for entry in (MIGRATIONS / kind).iterdir()
        if entry.name.endswith(".sql")
    )


POSTGRES_URL = os.environ.get(
    "CHAT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


def with_search_path(url: str, schema: str) -> str:
    # asyncpg passes unknown query parameters on as server settings.
    parts = urlsplit(url)
    query = [*parse_qsl(parts.query), ("search_path", schema)]
    return urlunsplit(parts._replace(query=urlencode(query)))


async def postgres_admin() -> asyncpg.Connection:
    try:
        return await asyncpg.connect(POSTGRES_URL, timeout=5)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
        reason = f"PostgreSQL at {POSTGRES_URL} is unreachable: {error!r}"
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (CI is set, so the PostgreSQL store tests must run)")
        pytest.skip(reason)


class Database:
    """One fresh database of one kind; makes stores on it and closes them afterwards."""

    def __init__(self, kind: str, build: Callable[[], Store], location: Path | str) -> None:
        self.kind = kind
        self.build = build
        self.location = location  # the SQLite file, or the PostgreSQL schema's URL
        self.open_stores: list[Store] = []

    async def open(self) -> Store:
        store = self.build()
        await store.open()
        self.open_stores.append(store)
        return store

    async def close(self, store: Store) -> None:
        self.open_stores.remove(store)
        await store.close()

    async def close_all(self) -> None:
        while self.open_stores:
            await self.close(self.open_stores[-1])

    async def schema_versions(self) -> list[int]:
        if self.kind == "sqlite":
            with sqlite3.connect(self.location) as connection:
                return [connection.execute("PRAGMA user_version").fetchone()[0]]
        connection = await asyncpg.connect(self.location)
        try:
            rows = await connection.fetch("SELECT version FROM schema_migrations ORDER BY 1")
        finally:
            await connection.close()
        return [row["version"] for row in rows]
