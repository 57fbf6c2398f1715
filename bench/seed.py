"""Seed a SQLite file in the app's schema directly with SQL (fast: one transaction)."""

from __future__ import annotations

import sqlite3
import time
from importlib import resources
from pathlib import Path


def _migrations() -> list[tuple[int, str]]:
    folder = resources.files("chat.store") / "migrations" / "sqlite"
    scripts = [p for p in folder.iterdir() if p.name.endswith(".sql")]
    return sorted((int(p.name.split("_", 1)[0]), p.read_text()) for p in scripts)


def create_schema(path: Path) -> sqlite3.Connection:
    """A new database at `path` with every migration applied, as the app leaves it."""
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    migrations = _migrations()
    for _, script in migrations:
        connection.executescript(script)
    connection.execute(f"PRAGMA user_version={migrations[-1][0] if migrations else 0}")
    return connection


def seed_rooms(path: Path, rooms: dict[str, int]) -> None:
    """Rooms `code -> message count`, messages one millisecond apart, ending now."""
    connection = create_schema(path)
    now_ms = int(time.time() * 1000)
    connection.execute("PRAGMA synchronous=OFF")
    connection.execute("BEGIN")
    for code, count in rooms.items():
        connection.execute(
            "INSERT INTO rooms (code, created_at, empty_since) VALUES (?, ?, ?)",
            (code, now_ms - count - 1000, now_ms),
        )
        start = now_ms - count
        connection.executemany(
            "INSERT INTO messages (room_code, author_id, author, body, sent_at)"
            " VALUES (?, ?, ?, ?, ?)",
            ((code, f"seed-{i % 7}", f"Seeder {i % 7}",
              f"Seeded message {i} of {count}: the quick brown fox jumps over the lazy dog.",
              start + i) for i in range(count)),
        )
    connection.execute("COMMIT")
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()
