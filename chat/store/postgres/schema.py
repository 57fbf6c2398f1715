"""Migrating the database to the newest schema (`chat/store/migrations/postgres/*.sql`,
tracked in `schema_migrations`), one process at a time."""

from __future__ import annotations

from importlib import resources

import asyncpg

# pg_advisory_xact_lock key for migrations: "chatmigr" read as a big-endian int64.
_MIGRATION_LOCK = int.from_bytes(b"chatmigr", "big", signed=True)


def _migrations() -> list[tuple[int, str]]:
    folder = resources.files("chat.store") / "migrations" / "postgres"
    scripts = [entry for entry in folder.iterdir() if entry.name.endswith(".sql")]
    return sorted((int(entry.name.split("_", 1)[0]), entry.read_text()) for entry in scripts)


async def migrate(connection: asyncpg.Connection) -> None:
    # The advisory lock is held until the transaction ends, so workers starting together
    # migrate one after another and the later ones find nothing left to do. DDL is
    # transactional in PostgreSQL: a failing script leaves no half-built schema.
    async with connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
        await connection.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        current = await connection.fetchval(
            "SELECT coalesce(max(version), 0) FROM schema_migrations"
        )
        for version, script in _migrations():
            if version > current:
                await connection.execute(script)  # simple protocol: several statements
                await connection.execute(
                    "INSERT INTO schema_migrations (version) VALUES ($1)", version
                )
