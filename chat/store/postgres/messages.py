"""Messages: batched inserts (one transaction for messages arriving together, a
nonce posting once, a room's messages committed in id order), pages of history and
full-text search (tsvector)."""

from __future__ import annotations

import asyncpg

from chat.store import (
    MESSAGE_COLUMNS,
    Found,
    Message,
    Page,
    Posted,
    utc_now,
)
from chat.store.batching import Draft
from chat.store.postgres.rows import (
    message_from_row,
    ms,
    with_reactions,
)

# A batch that meets a deadlock (or, in theory, a room deleted under it) is retried
# this many times in all before its callers see the error.
_BATCH_ATTEMPTS = 3


def _first_of_each_nonce(batch: list[Draft]) -> list[Draft]:
    """The drafts to insert: all without a nonce, and the first of each repeated one."""
    seen: set[tuple[str, str, str]] = set()
    first = []
    for draft in batch:
        key = draft.nonce_key
        if key is None or key not in seen:
            first.append(draft)
        if key is not None:
            seen.add(key)
    return first


async def _already_posted(
    connection: asyncpg.Connection, drafts: list[Draft]
) -> dict[tuple[str, str, str], Posted]:
    """The messages these drafts' nonces already posted. Their rooms' rows are locked,
    so no other process can post the same nonce before this transaction ends."""
    if not drafts:
        return {}
    rows = await connection.fetch(
        f"SELECT {MESSAGE_COLUMNS} FROM messages"
        " WHERE (room_code, author_id, nonce) IN ("
        "  SELECT * FROM unnest($1::text[], $2::text[], $3::text[]))",
        [draft.room for draft in drafts],
        [draft.author_id for draft in drafts],
        [draft.nonce for draft in drafts],
    )
    messages = map(message_from_row, rows)
    return {(m.room, m.author_id, m.nonce): Posted(m, new=False) for m in messages}


class Messages:
    async def add_message(
        self, room: str, author_id: str, author: str, text: str, nonce: str | None = None
    ) -> Posted:
        return await self._batcher.submit(room, author_id, author, text, nonce)

    async def _insert_batch(self, batch: list[Draft]) -> list[Posted | None]:
        for attempt in range(1, _BATCH_ATTEMPTS + 1):
            try:
                async with self._pool.acquire() as connection, connection.transaction():
                    return await self._insert_in(connection, batch)
            except (asyncpg.DeadlockDetectedError, asyncpg.ForeignKeyViolationError):
                # Nothing was committed; the next attempt sees the rooms as they are now.
                if attempt == _BATCH_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")

    async def _insert_in(
        self, connection: asyncpg.Connection, batch: list[Draft]
    ) -> list[Posted | None]:
        # Locking the rooms' rows (in code order, so two batches cannot deadlock) does two
        # things. A sequence hands out ids before commit, so without it two processes
        # could commit a room's ids out of order and a page catching up "after id N"
        # would miss the late one; with it, a room's messages commit in id order. And it
        # tells which rooms still exist: a locked room cannot be deleted before we
        # commit, and the rest are gone. (The foreign key stays as the last word: if it
        # ever fires, the batch is retried and that room is found missing.)
        rows = await connection.fetch(
            "SELECT code FROM rooms WHERE code = ANY($1::text[]) ORDER BY code"
            " FOR NO KEY UPDATE",
            sorted({draft.room for draft in batch}),
        )
        present = {row["code"] for row in rows}
        posted: dict[tuple[str, str, str], Posted] = await _already_posted(
            connection, [draft for draft in batch if draft.room in present and draft.nonce]
        )
        fresh = [
            draft for draft in _first_of_each_nonce(batch)
            if draft.room in present and draft.nonce_key not in posted
        ]
        sent_at = ms(utc_now())
        ids: list[int] = []
        if fresh:
            rows = await connection.fetch(
                "INSERT INTO messages (room_code, author_id, author, body, sent_at, nonce)"
                " SELECT d.room, d.author_id, d.author, d.body, $5::timestamptz, d.nonce"
                " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $6::text[])"
                " WITH ORDINALITY AS d (room, author_id, author, body, nonce, n)"
                " ORDER BY d.n RETURNING id",
                [draft.room for draft in fresh],
                [draft.author_id for draft in fresh],
                [draft.author for draft in fresh],
                [draft.text for draft in fresh],
                sent_at,
                [draft.nonce for draft in fresh],
            )
            # Rows are numbered in the order they are inserted, so the sorted ids
            # belong to the drafts in batch order.
            ids = sorted(row["id"] for row in rows)
        results: dict[int, Posted] = {}
        for draft, id_ in zip(fresh, ids, strict=True):
            message = Message(
                id_, draft.room, draft.author_id, draft.author, draft.text, sent_at, draft.nonce
            )
            results[id(draft)] = Posted(message, new=True)
            if draft.nonce_key:
                posted[draft.nonce_key] = Posted(message, new=False)
        return [
            results.get(id(draft)) or posted.get(draft.nonce_key) if draft.room in present
            else None
            for draft in batch
        ]

    async def page_before(self, room: str, before_id: int | None, limit: int) -> Page:
        rows = await self._pool.fetch(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE room_code = $1 AND id < $2"
            " ORDER BY id DESC LIMIT $3",
            room, before_id if before_id is not None else 2**63 - 1, limit + 1,
        )
        oldest_first = [message_from_row(row) for row in reversed(rows[:limit])]
        return Page(await with_reactions(self._pool, oldest_first), has_earlier=len(rows) > limit)

    async def messages_after(self, room: str, after_id: int, limit: int) -> list[Message]:
        rows = await self._pool.fetch(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE room_code = $1 AND id > $2"
            " ORDER BY id LIMIT $3",
            room, after_id, limit,
        )
        return await with_reactions(self._pool, [message_from_row(row) for row in rows])

    async def search(
        self, room: str, words: list[str], before_id: int | None, limit: int
    ) -> Found:
        # plainto_tsquery reads no operators: every word is a lexeme, all must match.
        # The words go through the same regexp as the indexed text (migration 0007).
        text = " ".join(word.replace("\x00", "") for word in words).strip()
        if not text:
            return Found([], has_more=False)
        rows = await self._pool.fetch(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE room_code = $1 AND id < $2"
            " AND search @@ plainto_tsquery('simple',"
            "  regexp_replace($3::text, '[^[:alnum:]]+', ' ', 'g'))"
            " ORDER BY id DESC LIMIT $4",
            room, before_id if before_id is not None else 2**63 - 1, text, limit + 1,
        )
        return Found([message_from_row(row) for row in rows[:limit]], has_more=len(rows) > limit)
