"""Bots: adding, listing, finding by token hash and revoking."""

from __future__ import annotations

import sqlite3

from chat.store import (
    BOT_COLUMNS,
    Bot,
    RoomGone,
    utc_now,
)
from chat.store.sqlite.rows import (
    bot_from_row,
    to_ms,
)


class Bots:
    async def add_bot(self, room: str, name: str, token_hash: str, created_by: str) -> Bot:
        def insert() -> Bot:
            try:
                row = self._write.execute(
                    "INSERT INTO bots (room_code, name, token_hash, created_by, created_at)"
                    f" VALUES (?, ?, ?, ?, ?) RETURNING {BOT_COLUMNS}",
                    (room, name, token_hash, created_by, to_ms(utc_now())),
                ).fetchone()
            except sqlite3.IntegrityError:  # no such room (token hashes do not collide)
                raise RoomGone(room) from None
            return bot_from_row(row)

        return await self._on_writer(insert)

    async def bots(self, room: str) -> list[Bot]:
        def query() -> list[Bot]:
            rows = self._read.execute(
                f"SELECT {BOT_COLUMNS} FROM bots WHERE room_code = ? ORDER BY id", (room,)
            ).fetchall()
            return [bot_from_row(row) for row in rows]

        return await self._on_reader(query)

    async def bot_by_token(self, token_hash: str) -> Bot | None:
        def query() -> Bot | None:
            row = self._read.execute(
                f"SELECT {BOT_COLUMNS} FROM bots WHERE token_hash = ?", (token_hash,)
            ).fetchone()
            return None if row is None else bot_from_row(row)

        return await self._on_reader(query)

    async def delete_bot(self, room: str, bot_id: int) -> bool:
        def delete() -> bool:
            cursor = self._write.execute(
                "DELETE FROM bots WHERE room_code = ? AND id = ?", (room, bot_id)
            )
            return cursor.rowcount > 0

        return await self._on_writer(delete)
