"""Bots: adding, listing, finding by token hash and revoking."""

from __future__ import annotations

import asyncpg

from chat.store import (
    BOT_COLUMNS,
    Bot,
    RoomGone,
    utc_now,
)
from chat.store.postgres.rows import (
    bot_from_row,
    ms,
)


class Bots:
    async def add_bot(self, room: str, name: str, token_hash: str, created_by: str) -> Bot:
        try:
            row = await self._pool.fetchrow(
                "INSERT INTO bots (room_code, name, token_hash, created_by, created_at)"
                f" VALUES ($1, $2, $3, $4, $5) RETURNING {BOT_COLUMNS}",
                room, name, token_hash, created_by, ms(utc_now()),
            )
        except asyncpg.ForeignKeyViolationError:
            raise RoomGone(room) from None
        return bot_from_row(row)

    async def bots(self, room: str) -> list[Bot]:
        rows = await self._pool.fetch(
            f"SELECT {BOT_COLUMNS} FROM bots WHERE room_code = $1 ORDER BY id", room
        )
        return [bot_from_row(row) for row in rows]

    async def bot_by_token(self, token_hash: str) -> Bot | None:
        row = await self._pool.fetchrow(
            f"SELECT {BOT_COLUMNS} FROM bots WHERE token_hash = $1", token_hash
        )
        return None if row is None else bot_from_row(row)

    async def delete_bot(self, room: str, bot_id: int) -> bool:
        deleted = await self._pool.fetchval(
            "DELETE FROM bots WHERE room_code = $1 AND id = $2 RETURNING true", room, bot_id
        )
        return bool(deleted)
