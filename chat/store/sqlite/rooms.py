"""Rooms: creating them, whether one exists, when each became empty, deleting the
empty ones, and the members parked across a restart."""

from __future__ import annotations

import sqlite3
from datetime import datetime

from chat.store import (
    Member,
    utc_now,
)
from chat.store.sqlite.rows import (
    to_ms,
)


class Rooms:
    async def add_room(self, code: str, empty_from: datetime) -> bool:
        def insert() -> bool:
            try:
                self._write.execute(
                    "INSERT INTO rooms (code, created_at, empty_since) VALUES (?, ?, ?)",
                    (code, to_ms(utc_now()), to_ms(empty_from)),
                )
            except sqlite3.IntegrityError:
                return False
            return True

        return await self._on_writer(insert)

    async def room_exists(self, code: str) -> bool:
        def query() -> bool:
            row = self._read.execute("SELECT 1 FROM rooms WHERE code = ?", (code,)).fetchone()
            return row is not None

        return await self._on_reader(query)

    async def set_room_empty(self, room: str, since: datetime | None) -> None:
        value = None if since is None else to_ms(since)
        await self._on_writer(
            lambda: self._write.execute(
                "UPDATE rooms SET empty_since = ? WHERE code = ?", (value, room)
            )
        )

    async def set_unknown_rooms_empty(self, since: datetime) -> None:
        await self._on_writer(
            lambda: self._write.execute(
                "UPDATE rooms SET empty_since = ? WHERE empty_since IS NULL", (to_ms(since),)
            )
        )

    async def delete_rooms_empty_since(self, cutoff: datetime) -> list[str]:
        def delete() -> list[str]:
            rows = self._write.execute(
                "DELETE FROM rooms WHERE empty_since IS NOT NULL AND empty_since <= ?"
                " RETURNING code",
                (to_ms(cutoff),),
            ).fetchall()
            return [code for (code,) in rows]

        return await self._on_writer(delete)

    async def park_members(self, members: list[Member]) -> None:
        def park() -> None:
            self._write.executemany(
                "INSERT OR REPLACE INTO parked_members (room_code, user_id, name)"
                " SELECT code, ?, ? FROM rooms WHERE code = ?",
                [(user_id, name, room) for room, user_id, name in members],
            )

        await self._on_writer(park)

    async def take_parked_members(self) -> list[Member]:
        def take() -> list[Member]:
            rows = self._write.execute(
                "DELETE FROM parked_members RETURNING room_code, user_id, name"
            ).fetchall()
            return [tuple(row) for row in rows]

        return await self._on_writer(take)
