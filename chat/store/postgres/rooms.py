"""Rooms: creating them, whether one exists, when each became empty, deleting the
empty ones, and the members parked across a restart."""

from __future__ import annotations

from datetime import datetime

from chat.store import (
    Member,
    utc_now,
)
from chat.store.postgres.rows import (
    ms,
)


class Rooms:
    async def add_room(self, code: str, empty_from: datetime) -> bool:
        inserted = await self._pool.fetchval(
            "INSERT INTO rooms (code, created_at, empty_since) VALUES ($1, $2, $3)"
            " ON CONFLICT (code) DO NOTHING RETURNING true",
            code, ms(utc_now()), ms(empty_from),
        )
        return bool(inserted)

    async def room_exists(self, code: str) -> bool:
        row = await self._pool.fetchval("SELECT true FROM rooms WHERE code = $1", code)
        return bool(row)

    async def set_room_empty(self, room: str, since: datetime | None) -> None:
        value = None if since is None else ms(since)
        await self._pool.execute("UPDATE rooms SET empty_since = $1 WHERE code = $2", value, room)

    async def set_unknown_rooms_empty(self, since: datetime) -> None:
        await self._pool.execute(
            "UPDATE rooms SET empty_since = $1 WHERE empty_since IS NULL", ms(since)
        )

    async def delete_rooms_empty_since(self, cutoff: datetime) -> list[str]:
        # Lock in code order, as message batches do, so the two never deadlock; the lock
        # re-checks empty_since, so a room someone entered meanwhile is kept.
        rows = await self._pool.fetch(
            "DELETE FROM rooms WHERE code IN ("
            " SELECT code FROM rooms WHERE empty_since <= $1 ORDER BY code FOR UPDATE)"
            " RETURNING code",
            ms(cutoff),
        )
        return [row["code"] for row in rows]

    async def park_members(self, members: list[Member]) -> None:
        await self._pool.execute(
            "INSERT INTO parked_members (room_code, user_id, name)"
            " SELECT r.code, m.user_id, m.name FROM unnest($1::text[], $2::text[], $3::text[])"
            " AS m (room, user_id, name) JOIN rooms r ON r.code = m.room"
            " ON CONFLICT (room_code, user_id) DO UPDATE SET name = excluded.name",
            [room for room, _, _ in members],
            [user_id for _, user_id, _ in members],
            [name for _, _, name in members],
        )

    async def take_parked_members(self) -> list[Member]:
        rows = await self._pool.fetch(
            "DELETE FROM parked_members RETURNING room_code, user_id, name"
        )
        return [tuple(row) for row in rows]
