"""Opening the SQLite file (WAL, foreign keys) and migrating it to the newest schema
(`chat/store/migrations/sqlite/*.sql`, tracked in `PRAGMA user_version`)."""

from __future__ import annotations

import sqlite3
import time
from importlib import resources
from pathlib import Path


def _migrations() -> list[tuple[int, str]]:
    folder = resources.files("chat.store") / "migrations" / "sqlite"
    scripts = [entry for entry in folder.iterdir() if entry.name.endswith(".sql")]
    return sorted((int(entry.name.split("_", 1)[0]), entry.read_text()) for entry in scripts)


def _statements(script: str) -> list[str]:
    # executescript() would commit the migration's transaction, so run one at a time.
    statements, pending = [], ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            statements.append(pending)
            pending = ""
    return statements


def _switch_to_wal(connection: sqlite3.Connection) -> None:
    # Switching a new file to WAL does not wait on the busy timeout when another
    # process is doing the same at that moment: retry briefly instead.
    for attempt in range(50):
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError:
            if attempt == 49:
                raise
            time.sleep(0.02)


def connect(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    _switch_to_wal(connection)
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute("PRAGMA foreign_keys=ON")
    return connection


def migrate(connection: sqlite3.Connection) -> None:
    # BEGIN IMMEDIATE takes the write lock first, so workers starting together migrate
    # one after another and the later ones find nothing left to do.
    connection.execute("BEGIN IMMEDIATE")
    try:
        current = connection.execute("PRAGMA user_version").fetchone()[0]
        for version, script in _migrations():
            if version > current:
                for statement in _statements(script):
                    connection.execute(statement)
                connection.execute(f"PRAGMA user_version={version}")
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise
