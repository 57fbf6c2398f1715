"""PostgreSQL store: the shared store, for several processes or machines on one database.

Everything goes through a small asyncpg pool. Messages arriving together are committed
in one transaction by a batching task, like the SQLite store's writer (each caller still
waits for its own commit). Times are `timestamptz` cut to the millisecond, so they come
back exactly as the SQLite store returns them and fragments render the same.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from importlib import resources

import asyncpg

from chat.store import (
    Bot,
    Found,
    Member,
    Message,
    MessageMissing,
    NotYours,
    Page,
    Posted,
    RoomGone,
    attach_reactions,
    group_names,
    utc_now,
)
from chat.store.batching import Batcher, Draft

_MESSAGE_COLUMNS = (
    "id, room_code, author_id, author, body, sent_at, nonce, revision, edited_at, deleted_at"
)

# pg_advisory_xact_lock key for migrations: "chatmigr" read as a big-endian int64.
_MIGRATION_LOCK = int.from_bytes(b"chatmigr", "big", signed=True)

# A batch that meets a deadlock (or, in theory, a room deleted under it) is retried
# this many times in all before its callers see the error.
_BATCH_ATTEMPTS = 3

_CLOSE_DRAIN_SECONDS = 5.0
_PING_SECONDS = 5.0


def _ms(moment: datetime) -> datetime:
    """`moment` in UTC, cut to the millisecond (what the SQLite store keeps)."""
    moment = moment.astimezone(UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def _message(row: asyncpg.Record) -> Message:
    id_, room, author_id, author, body, sent_at, nonce, revision, edited_at, deleted_at = row
    return Message(
        id_, room, author_id, author, body, sent_at, nonce, revision,
        edited=edited_at is not None, deleted=deleted_at is not None,
    )


async def _with_reactions(
    connection: asyncpg.Connection | asyncpg.Pool, messages: list[Message]
) -> list[Message]:
    """The messages with their reactions, read in one query."""
    if not messages:
        return messages
    rows = await connection.fetch(
        "SELECT message_id, emoji, name FROM reactions WHERE message_id = ANY($1::bigint[])"
        " ORDER BY reacted_at, ctid",
        [message.id for message in messages],
    )
    return attach_reactions(messages, (tuple(row) for row in rows))


_BOT_COLUMNS = "id, room_code, name, created_at"


def _bot(row: asyncpg.Record) -> Bot:
    id_, room, name, created_at = row
    return Bot(id_, room, name, created_at)


def _migrations() -> list[tuple[int, str]]:
    folder = resources.files("chat.store") / "migrations" / "postgres"
    scripts = [entry for entry in folder.iterdir() if entry.name.endswith(".sql")]
    return sorted((int(entry.name.split("_", 1)[0]), entry.read_text()) for entry in scripts)


async def _migrate(connection: asyncpg.Connection) -> None:
    # The advisory lock is held until the transaction ends, so workers starting together
    # migrate one after another and the later ones find nothing left to do. DDL is
    # transactional in PostgreSQL: a failing script leaves no half-built schema.
    async with connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
        await connection.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        current = await connection.fetchval(
            "SELECT coalesce(max(version), 0) FROM schema_migrations"
        )
        for version, script in _migrations():
            if version > current:
                await connection.execute(script)  # simple protocol: several statements
                await connection.execute(
                    "INSERT INTO schema_migrations (version) VALUES ($1)", version
                )


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
        f"SELECT {_MESSAGE_COLUMNS} FROM messages"
        " WHERE (room_code, author_id, nonce) IN ("
        "  SELECT * FROM unnest($1::text[], $2::text[], $3::text[]))",
        [draft.room for draft in drafts],
        [draft.author_id for draft in drafts],
        [draft.nonce for draft in drafts],
    )
    messages = map(_message, rows)
    return {(m.room, m.author_id, m.nonce): Posted(m, new=False) for m in messages}


class PostgresStore:
    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 10) -> None:
        self.url = url
        self._pool_size = (min_size, max_size)
        self._pool: asyncpg.Pool | None = None
        self._batcher = Batcher(self._insert_batch, "postgres-batcher")

    async def open(self) -> None:
        min_size, max_size = self._pool_size
        self._pool = await asyncpg.create_pool(self.url, min_size=min_size, max_size=max_size)
        try:
            async with self._pool.acquire() as connection:
                await _migrate(connection)
        except BaseException:
            await self._pool.close()
            raise
        self._batcher.start()

    async def close(self) -> None:
        await self._batcher.close()
        if self._pool is not None:
            try:
                await asyncio.wait_for(self._pool.close(), _CLOSE_DRAIN_SECONDS)
            except TimeoutError:
                self._pool.terminate()

    async def ping(self) -> bool:
        try:
            async with self._pool.acquire(timeout=_PING_SECONDS) as connection:
                await connection.fetchval("SELECT 1", timeout=_PING_SECONDS)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
            return False
        return True

    async def add_room(self, code: str, empty_from: datetime) -> bool:
        inserted = await self._pool.fetchval(
            "INSERT INTO rooms (code, created_at, empty_since) VALUES ($1, $2, $3)"
            " ON CONFLICT (code) DO NOTHING RETURNING true",
            code, _ms(utc_now()), _ms(empty_from),
        )
        return bool(inserted)

    async def room_exists(self, code: str) -> bool:
        row = await self._pool.fetchval("SELECT true FROM rooms WHERE code = $1", code)
        return bool(row)

    # Messages ----------------------------------------------------------------

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
        sent_at = _ms(utc_now())
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
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE room_code = $1 AND id < $2"
            " ORDER BY id DESC LIMIT $3",
            room, before_id if before_id is not None else 2**63 - 1, limit + 1,
        )
        oldest_first = [_message(row) for row in reversed(rows[:limit])]
        return Page(await _with_reactions(self._pool, oldest_first), has_earlier=len(rows) > limit)

    async def messages_after(self, room: str, after_id: int, limit: int) -> list[Message]:
        rows = await self._pool.fetch(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE room_code = $1 AND id > $2"
            " ORDER BY id LIMIT $3",
            room, after_id, limit,
        )
        return await _with_reactions(self._pool, [_message(row) for row in rows])

    async def search(
        self, room: str, words: list[str], before_id: int | None, limit: int
    ) -> Found:
        # plainto_tsquery reads no operators: every word is a lexeme, all must match.
        # The words go through the same regexp as the indexed text (migration 0007).
        text = " ".join(word.replace("\x00", "") for word in words).strip()
        if not text:
            return Found([], has_more=False)
        rows = await self._pool.fetch(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE room_code = $1 AND id < $2"
            " AND search @@ plainto_tsquery('simple',"
            "  regexp_replace($3::text, '[^[:alnum:]]+', ' ', 'g'))"
            " ORDER BY id DESC LIMIT $4",
            room, before_id if before_id is not None else 2**63 - 1, text, limit + 1,
        )
        return Found([_message(row) for row in rows[:limit]], has_more=len(rows) > limit)

    # Bots ----------------------------------------------------------------------

    async def add_bot(self, room: str, name: str, token_hash: str, created_by: str) -> Bot:
        try:
            row = await self._pool.fetchrow(
                "INSERT INTO bots (room_code, name, token_hash, created_by, created_at)"
                f" VALUES ($1, $2, $3, $4, $5) RETURNING {_BOT_COLUMNS}",
                room, name, token_hash, created_by, _ms(utc_now()),
            )
        except asyncpg.ForeignKeyViolationError:
            raise RoomGone(room) from None
        return _bot(row)

    async def bots(self, room: str) -> list[Bot]:
        rows = await self._pool.fetch(
            f"SELECT {_BOT_COLUMNS} FROM bots WHERE room_code = $1 ORDER BY id", room
        )
        return [_bot(row) for row in rows]

    async def bot_by_token(self, token_hash: str) -> Bot | None:
        row = await self._pool.fetchrow(
            f"SELECT {_BOT_COLUMNS} FROM bots WHERE token_hash = $1", token_hash
        )
        return None if row is None else _bot(row)

    async def delete_bot(self, room: str, bot_id: int) -> bool:
        deleted = await self._pool.fetchval(
            "DELETE FROM bots WHERE room_code = $1 AND id = $2 RETURNING true", room, bot_id
        )
        return bool(deleted)

    # Empty rooms ---------------------------------------------------------------

    async def set_room_empty(self, room: str, since: datetime | None) -> None:
        value = None if since is None else _ms(since)
        await self._pool.execute("UPDATE rooms SET empty_since = $1 WHERE code = $2", value, room)

    async def set_unknown_rooms_empty(self, since: datetime) -> None:
        await self._pool.execute(
            "UPDATE rooms SET empty_since = $1 WHERE empty_since IS NULL", _ms(since)
        )

    async def delete_rooms_empty_since(self, cutoff: datetime) -> list[str]:
        # Lock in code order, as message batches do, so the two never deadlock; the lock
        # re-checks empty_since, so a room someone entered meanwhile is kept.
        rows = await self._pool.fetch(
            "DELETE FROM rooms WHERE code IN ("
            " SELECT code FROM rooms WHERE empty_since <= $1 ORDER BY code FOR UPDATE)"
            " RETURNING code",
            _ms(cutoff),
        )
        return [row["code"] for row in rows]

    # Changes -------------------------------------------------------------------------

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
                f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE id = $1", message_id
            )
            [message] = await _with_reactions(connection, [_message(changed)])
            return message

    async def changed_since(
        self, room: str, revision: int, up_to_id: int, limit: int
    ) -> list[Message]:
        rows = await self._pool.fetch(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages"
            " WHERE room_code = $1 AND revision > $2 AND id <= $3 ORDER BY revision LIMIT $4",
            room, revision, up_to_id, limit,
        )
        return await _with_reactions(self._pool, [_message(row) for row in rows])

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

    # Restarts --------------------------------------------------------------------------

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
