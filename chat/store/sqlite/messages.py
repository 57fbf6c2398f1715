"""Messages: batched inserts (one transaction for messages arriving together, a
nonce posting once), pages of history and full-text search (FTS5, indexed in batches:
see migration 0008)."""

from __future__ import annotations

import sqlite3

from chat.store import (
    MESSAGE_COLUMNS,
    Found,
    Message,
    Page,
    Posted,
    utc_now,
)
from chat.store.batching import Draft
from chat.store.sqlite.rows import (
    from_ms,
    message_from_row,
    to_ms,
    with_reactions,
)


def _fts_phrase(column: str, text: str) -> str:
    # A double-quoted FTS5 string (quotes doubled) is always a phrase of the words in
    # it: `*`, `OR`, `NEAR(`, `-` and parentheses inside it mean nothing.
    return f'{column} : "{text.replace(chr(34), chr(34) * 2)}"'


def _match_expression(room: str, words: list[str]) -> str:
    return " AND ".join([_fts_phrase("room_code", room), *(_fts_phrase("body", w) for w in words)])


class Messages:
    async def add_message(
        self, room: str, author_id: str, author: str, text: str, nonce: str | None = None
    ) -> Posted:
        return await self._batcher.submit(room, author_id, author, text, nonce)

    async def _commit_batch(self, batch: list[Draft]) -> list[Posted | None]:
        return await self._on_writer(lambda: self._insert_batch(batch))

    def _insert_batch(self, batch: list[Draft]) -> list[Posted | None]:
        sent_ms = to_ms(utc_now())
        if len(batch) == 1:  # one statement is its own transaction: one lock, one commit
            return [self._insert(batch[0], sent_ms)]
        self._write.execute("BEGIN")
        try:
            results = [self._insert(draft, sent_ms) for draft in batch]
            self._write.execute("COMMIT")
        except BaseException:
            self._write.execute("ROLLBACK")
            raise
        return results

    def _insert(self, draft: Draft, sent_ms: int) -> Posted | None:
        try:
            inserted = self._write.execute(
                "INSERT INTO messages (room_code, author_id, author, body, sent_at, nonce)"
                " VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (room_code, author_id, nonce) WHERE nonce IS NOT NULL DO NOTHING"
                " RETURNING id",
                (draft.room, draft.author_id, draft.author, draft.text, sent_ms, draft.nonce),
            ).fetchall()  # to the end: an autocommit statement commits once it is done
        except sqlite3.IntegrityError:  # the room was deleted meanwhile
            return None
        if not inserted:  # the nonce was posted before: that message stands
            row = self._write.execute(
                f"SELECT {MESSAGE_COLUMNS} FROM messages"
                " WHERE room_code = ? AND author_id = ? AND nonce = ?",
                (draft.room, draft.author_id, draft.nonce),
            ).fetchone()
            return Posted(message_from_row(row), new=False)
        message = Message(
            inserted[0][0], draft.room, draft.author_id, draft.author, draft.text,
            from_ms(sent_ms), draft.nonce,
        )
        return Posted(message, new=True)

    def _index_for_search(self) -> None:
        """Add the messages stored since the last call to the search index, in one
        transaction (BEGIN IMMEDIATE: another process on the file cannot index the same
        messages meanwhile)."""
        self._write.execute("BEGIN IMMEDIATE")
        try:
            self._write.execute(
                "INSERT INTO messages_fts (rowid, room_code, body)"
                " SELECT id, room_code, body FROM messages"
                " WHERE id > (SELECT indexed_upto FROM search_index)"
            )
            self._write.execute(
                "UPDATE search_index SET indexed_upto = newest"
                " FROM (SELECT max(id) AS newest FROM messages) WHERE newest > indexed_upto"
            )
            self._write.execute("COMMIT")
        except BaseException:
            self._write.execute("ROLLBACK")
            raise

    async def page_before(self, room: str, before_id: int | None, limit: int) -> Page:
        def query() -> Page:
            rows = self._read.execute(
                f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE room_code = ? AND id < ?"
                " ORDER BY id DESC LIMIT ?",
                (room, before_id if before_id is not None else 2**63 - 1, limit + 1),
            ).fetchall()
            oldest_first = [message_from_row(row) for row in reversed(rows[:limit])]
            return Page(with_reactions(self._read, oldest_first), has_earlier=len(rows) > limit)

        return await self._on_reader(query)

    async def messages_after(self, room: str, after_id: int, limit: int) -> list[Message]:
        def query() -> list[Message]:
            rows = self._read.execute(
                f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE room_code = ? AND id > ?"
                " ORDER BY id LIMIT ?",
                (room, after_id, limit),
            ).fetchall()
            return with_reactions(self._read, [message_from_row(row) for row in rows])

        return await self._on_reader(query)

    async def search(
        self, room: str, words: list[str], before_id: int | None, limit: int
    ) -> Found:
        # A NUL would end FTS5's reading of the expression (and messages hold none).
        words = [clean for word in words if (clean := word.replace("\x00", ""))]
        if not words:
            return Found([], has_more=False)
        columns = ", ".join(f"m.{column}" for column in MESSAGE_COLUMNS.split(", "))

        await self._on_writer(self._index_for_search)  # what was just stored is found too

        def query() -> Found:
            # The room is part of the match, so the index intersects it with the words;
            # rowid order lets FTS5 stop after the newest `limit` + 1.
            rows = self._read.execute(
                f"SELECT {columns} FROM messages_fts JOIN messages m ON m.id = messages_fts.rowid"
                " WHERE messages_fts MATCH ? AND messages_fts.rowid < ? AND m.room_code = ?"
                " ORDER BY messages_fts.rowid DESC LIMIT ?",
                (
                    _match_expression(room, words),
                    before_id if before_id is not None else 2**63 - 1,
                    room,
                    limit + 1,
                ),
            ).fetchall()
            found = [message_from_row(row) for row in rows[:limit]]
            return Found(found, has_more=len(rows) > limit)

        return await self._on_reader(query)
