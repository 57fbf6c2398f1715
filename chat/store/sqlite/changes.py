"""Changes to posted messages (edit, delete, reactions) under the room's revision,
what changed since a revision, and the names a room's messages may mention."""

from __future__ import annotations

from collections.abc import Callable

from chat.store import (
    MESSAGE_COLUMNS,
    Message,
    MessageMissing,
    NotYours,
    group_names,
    utc_now,
)
from chat.store.sqlite.rows import (
    message_from_row,
    to_ms,
    with_reactions,
)


class Changes:
    async def edit_message(self, room: str, message_id: int, author_id: str, text: str) -> Message:
        def edit(revision: int, now: int) -> None:
            self._write.execute(
                "UPDATE messages SET body = ?, edited_at = ?, revision = ? WHERE id = ?",
                (text, now, revision, message_id),
            )

        return await self._change(room, message_id, author_id, edit)

    async def delete_message(self, room: str, message_id: int, author_id: str) -> Message:
        def delete(revision: int, now: int) -> None:
            self._write.execute(
                "UPDATE messages SET body = '', deleted_at = ?, revision = ? WHERE id = ?",
                (now, revision, message_id),
            )
            self._write.execute("DELETE FROM reactions WHERE message_id = ?", (message_id,))

        return await self._change(room, message_id, author_id, delete)

    async def toggle_reaction(
        self, room: str, message_id: int, user_id: str, name: str, emoji: str
    ) -> Message:
        def toggle(revision: int, now: int) -> None:
            taken_back = self._write.execute(
                "DELETE FROM reactions WHERE message_id = ? AND emoji = ? AND user_id = ?",
                (message_id, emoji, user_id),
            ).rowcount
            if not taken_back:
                self._write.execute(
                    "INSERT INTO reactions (message_id, emoji, user_id, name, reacted_at)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (message_id, emoji, user_id, name, now),
                )
            self._write.execute(
                "UPDATE messages SET revision = ? WHERE id = ?", (revision, message_id)
            )

        return await self._change(room, message_id, None, toggle)

    async def _change(
        self,
        room: str,
        message_id: int,
        author_id: str | None,
        apply: Callable[[int, int], None],
    ) -> Message:
        """Check the message is there (and the author's, when `author_id` is given),
        then `apply(revision, now)` under the room's next revision, in one transaction."""

        def change() -> Message:
            self._write.execute("BEGIN IMMEDIATE")
            try:
                row = self._write.execute(
                    "SELECT author_id, deleted_at FROM messages WHERE id = ? AND room_code = ?",
                    (message_id, room),
                ).fetchone()
                if row is None or row[1] is not None:
                    raise MessageMissing(message_id)
                if author_id is not None and row[0] != author_id:
                    raise NotYours(message_id)
                (revision,) = self._write.execute(
                    "UPDATE rooms SET revision = revision + 1 WHERE code = ? RETURNING revision",
                    (room,),
                ).fetchone()
                apply(revision, to_ms(utc_now()))
                changed = self._write.execute(
                    f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ?", (message_id,)
                ).fetchone()
                [message] = with_reactions(self._write, [message_from_row(changed)])
                self._write.execute("COMMIT")
            except BaseException:
                self._write.execute("ROLLBACK")
                raise
            return message

        return await self._on_writer(change)

    async def changed_since(
        self, room: str, revision: int, up_to_id: int, limit: int
    ) -> list[Message]:
        def query() -> list[Message]:
            rows = self._read.execute(
                f"SELECT {MESSAGE_COLUMNS} FROM messages"
                " WHERE room_code = ? AND revision > ? AND id <= ? ORDER BY revision LIMIT ?",
                (room, revision, up_to_id, limit),
            ).fetchall()
            return with_reactions(self._read, [message_from_row(row) for row in rows])

        return await self._on_reader(query)

    async def room_revision(self, room: str) -> int:
        def query() -> int:
            row = self._read.execute(
                "SELECT revision FROM rooms WHERE code = ?", (room,)
            ).fetchone()
            return row[0] if row else 0

        return await self._on_reader(query)

    async def add_room_name(self, room: str, user_id: str, name: str) -> None:
        await self._on_writer(
            lambda: self._write.execute(
                "INSERT OR IGNORE INTO room_names (room_code, name, user_id)"
                " SELECT code, ?, ? FROM rooms WHERE code = ?",
                (name, user_id, room),
            )
        )

    async def room_names(self, room: str) -> dict[str, list[str]]:
        def query() -> dict[str, list[str]]:
            rows = self._read.execute(
                "SELECT name, user_id FROM room_names WHERE room_code = ?", (room,)
            ).fetchall()
            return group_names(rows)

        return await self._on_reader(query)
