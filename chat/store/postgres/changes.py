"""Changes to posted messages (edit, delete, reactions) under the room's revision,
what changed since a revision, and the names a room's messages may mention."""

from __future__ import annotations

import asyncpg

from chat.store import (
    MESSAGE_COLUMNS,
    Message,
    MessageMissing,
    NotYours,
    group_names,
)
from chat.store.postgres.rows import (
    message_from_row,
    with_reactions,
)


class Changes:
    async def edit_message(self, room: str, message_id: int, author_id: str, text: str) -> Message:
        async def edit(connection: asyncpg.Connection, revision: int) -> None:
            await connection.execute(
                "UPDATE messages SET body = $1, edited_at = now(), revision = $2 WHERE id = $3",
                text, revision, message_id,
            )

        return await self._change(room, message_id, author_id, edit)

    async def delete_message(self, room: str, message_id: int, author_id: str) -> Message:
        async def delete(connection: asyncpg.Connection, revision: int) -> None:
            await connection.execute(
                "UPDATE messages SET body = '', deleted_at = now(), revision = $1 WHERE id = $2",
                revision, message_id,
            )
            await connection.execute("DELETE FROM reactions WHERE message_id = $1", message_id)

        return await self._change(room, message_id, author_id, delete)

    async def toggle_reaction(
        self, room: str, message_id: int, user_id: str, name: str, emoji: str
    ) -> Message:
        async def toggle(connection: asyncpg.Connection, revision: int) -> None:
            taken_back = await connection.fetchval(
                "DELETE FROM reactions WHERE message_id = $1 AND emoji = $2 AND user_id = $3"
                " RETURNING true",
                message_id, emoji, user_id,
            )
            if not taken_back:
                await connection.execute(
                    "INSERT INTO reactions (message_id, emoji, user_id, name)"
                    " VALUES ($1, $2, $3, $4)",
                    message_id, emoji, user_id, name,
                )
            await connection.execute(
                "UPDATE messages SET revision = $1 WHERE id = $2", revision, message_id
            )

        return await self._change(room, message_id, None, toggle)

    async def _change(self, room, message_id, author_id, apply) -> Message:
        """Check the message is there (and the author's, when `author_id` is given),
        then `apply(connection, revision)` under the room's next revision. Taking the
        revision locks the room's row, so a room's changes commit in revision order."""
        async with self._pool.acquire() as connection, connection.transaction():
            revision = await connection.fetchval(
                "UPDATE rooms SET revision = revision + 1 WHERE code = $1 RETURNING revision",
                room,
            )
            row = await connection.fetchrow(
                "SELECT author_id, deleted_at FROM messages WHERE id = $1 AND room_code = $2",
                message_id, room,
            )
            if revision is None or row is None or row["deleted_at"] is not None:
                raise MessageMissing(message_id)
            if author_id is not None and row["author_id"] != author_id:
                raise NotYours(message_id)
            await apply(connection, revision)
            changed = await connection.fetchrow(
                f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = $1", message_id
            )
            [message] = await with_reactions(connection, [message_from_row(changed)])
            return message

    async def changed_since(
        self, room: str, revision: int, up_to_id: int, limit: int
    ) -> list[Message]:
        rows = await self._pool.fetch(
            f"SELECT {MESSAGE_COLUMNS} FROM messages"
            " WHERE room_code = $1 AND revision > $2 AND id <= $3 ORDER BY revision LIMIT $4",
            room, revision, up_to_id, limit,
        )
        return await with_reactions(self._pool, [message_from_row(row) for row in rows])

    async def room_revision(self, room: str) -> int:
        revision = await self._pool.fetchval("SELECT revision FROM rooms WHERE code = $1", room)
        return revision or 0

    async def add_room_name(self, room: str, user_id: str, name: str) -> None:
        await self._pool.execute(
            "INSERT INTO room_names (room_code, name, user_id)"
            " SELECT code, $2, $3 FROM rooms WHERE code = $1 ON CONFLICT DO NOTHING",
            room, name, user_id,
        )

    async def room_names(self, room: str) -> dict[str, list[str]]:
        rows = await self._pool.fetch(
            "SELECT name, user_id FROM room_names WHERE room_code = $1", room
        )
        return group_names(tuple(row) for row in rows)
