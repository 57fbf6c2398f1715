"""SQLite store: one file in WAL mode, the embedded default.

All SQLite calls run on two private threads, never on the event loop: one writer that
commits messages arriving together in a single transaction (each caller still waits for
its own commit), and one reader, which WAL lets run beside the writer.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import TypeVar

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

T = TypeVar("T")

_MESSAGE_COLUMNS = (
    "id, room_code, author_id, author, body, sent_at, nonce, revision, edited_at, deleted_at"
)


def _to_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def _message(row: tuple) -> Message:
    id_, room, author_id, author, body, sent_at, nonce, revision, edited_at, deleted_at = row
    return Message(
        id_, room, author_id, author, body, _from_ms(sent_at), nonce, revision,
        edited=edited_at is not None, deleted=deleted_at is not None,
    )


def _with_reactions(connection: sqlite3.Connection, messages: list[Message]) -> list[Message]:
    """The messages with their reactions, read in one query."""
    if not messages:
        return messages
    marks = ",".join("?" * len(messages))
    rows = connection.execute(
        f"SELECT message_id, emoji, name FROM reactions WHERE message_id IN ({marks})"
        " ORDER BY reacted_at, rowid",
        [message.id for message in messages],
    ).fetchall()
    return attach_reactions(messages, rows)


def _bot(row: tuple) -> Bot:
    id_, room, name, created_at = row
    return Bot(id_, room, name, _from_ms(created_at))


def _fts_phrase(column: str, text: str) -> str:
    # A double-quoted FTS5 string (quotes doubled) is always a phrase of the words in
    # it: `*`, `OR`, `NEAR(`, `-` and parentheses inside it mean nothing.
    return f'{column} : "{text.replace(chr(34), chr(34) * 2)}"'


def _match_expression(room: str, words: list[str]) -> str:
    return " AND ".join([_fts_phrase("room_code", room), *(_fts_phrase("body", w) for w in words)])


_BOT_COLUMNS = "id, room_code, name, created_at"


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


def _connect(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    _switch_to_wal(connection)
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute("PRAGMA foreign_keys=ON")
    return connection


def _migrate(connection: sqlite3.Connection) -> None:
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


class SQLiteStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer_thread = ThreadPoolExecutor(1, thread_name_prefix="sqlite-writer")
        self._reader_thread = ThreadPoolExecutor(1, thread_name_prefix="sqlite-reader")
        self._write: sqlite3.Connection | None = None
        self._read: sqlite3.Connection | None = None
        self._batcher = Batcher(self._commit_batch, "sqlite-batcher")

    async def _on_writer(self, work: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._writer_thread, work)

    async def _on_reader(self, work: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._reader_thread, work)

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._write = await self._on_writer(lambda: _connect(self.path))
        await self._on_writer(lambda: _migrate(self._write))
        self._read = await self._on_reader(lambda: _connect(self.path))
        self._batcher.start()

    async def close(self) -> None:
        await self._batcher.close()
        for connection, thread in (
            (self._write, self._writer_thread),
            (self._read, self._reader_thread),
        ):
            if connection is not None:
                await asyncio.get_running_loop().run_in_executor(thread, connection.close)
            thread.shutdown(wait=True)

    async def ping(self) -> bool:
        try:
            await self._on_reader(lambda: self._read.execute("SELECT 1").fetchone())
        except sqlite3.Error:
            return False
        return True

    async def add_room(self, code: str, empty_from: datetime) -> bool:
        def insert() -> bool:
            try:
                self._write.execute(
                    "INSERT INTO rooms (code, created_at, empty_since) VALUES (?, ?, ?)",
                    (code, _to_ms(utc_now()), _to_ms(empty_from)),
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

    async def add_message(
        self, room: str, author_id: str, author: str, text: str, nonce: str | None = None
    ) -> Posted:
        return await self._batcher.submit(room, author_id, author, text, nonce)

    async def _commit_batch(self, batch: list[Draft]) -> list[Posted | None]:
        return await self._on_writer(lambda: self._insert_batch(batch))

    def _insert_batch(self, batch: list[Draft]) -> list[Posted | None]:
        sent_ms = _to_ms(utc_now())
        self._write.execute("BEGIN")
        try:
            results = [self._insert(draft, sent_ms) for draft in batch]
            self._write.execute("COMMIT")
        except BaseException:
            self._write.execute("ROLLBACK")
            raise
        return results

    def _insert(self, draft: Draft, sent_ms: int) -> Posted | None:
        if draft.nonce:
            row = self._write.execute(
                f"SELECT {_MESSAGE_COLUMNS} FROM messages"
                " WHERE room_code = ? AND author_id = ? AND nonce = ?",
                (draft.room, draft.author_id, draft.nonce),
            ).fetchone()
            if row is not None:
                return Posted(_message(row), new=False)
        try:
            cursor = self._write.execute(
                "INSERT INTO messages (room_code, author_id, author, body, sent_at, nonce)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (draft.room, draft.author_id, draft.author, draft.text, sent_ms, draft.nonce),
            )
        except sqlite3.IntegrityError:  # the room was deleted meanwhile
            return None
        message = Message(
            cursor.lastrowid, draft.room, draft.author_id, draft.author, draft.text,
            _from_ms(sent_ms), draft.nonce,
        )
        return Posted(message, new=True)

    async def page_before(self, room: str, before_id: int | None, limit: int) -> Page:
        def query() -> Page:
            rows = self._read.execute(
                f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE room_code = ? AND id < ?"
                " ORDER BY id DESC LIMIT ?",
                (room, before_id if before_id is not None else 2**63 - 1, limit + 1),
            ).fetchall()
            oldest_first = [_message(row) for row in reversed(rows[:limit])]
            return Page(_with_reactions(self._read, oldest_first), has_earlier=len(rows) > limit)

        return await self._on_reader(query)

    async def messages_after(self, room: str, after_id: int, limit: int) -> list[Message]:
        def query() -> list[Message]:
            rows = self._read.execute(
                f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE room_code = ? AND id > ?"
                " ORDER BY id LIMIT ?",
                (room, after_id, limit),
            ).fetchall()
            return _with_reactions(self._read, [_message(row) for row in rows])

        return await self._on_reader(query)

    async def search(
        self, room: str, words: list[str], before_id: int | None, limit: int
    ) -> Found:
        # A NUL would end FTS5's reading of the expression (and messages hold none).
        words = [clean for word in words if (clean := word.replace("\x00", ""))]
        if not words:
            return Found([], has_more=False)
        columns = ", ".join(f"m.{column}" for column in _MESSAGE_COLUMNS.split(", "))

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
            return Found([_message(row) for row in rows[:limit]], has_more=len(rows) > limit)

        return await self._on_reader(query)

    # Bots ------------------------------------------------------------------------

    async def add_bot(self, room: str, name: str, token_hash: str, created_by: str) -> Bot:
        def insert() -> Bot:
            try:
                row = self._write.execute(
                    "INSERT INTO bots (room_code, name, token_hash, created_by, created_at)"
                    f" VALUES (?, ?, ?, ?, ?) RETURNING {_BOT_COLUMNS}",
                    (room, name, token_hash, created_by, _to_ms(utc_now())),
                ).fetchone()
            except sqlite3.IntegrityError:  # no such room (token hashes do not collide)
                raise RoomGone(room) from None
            return _bot(row)

        return await self._on_writer(insert)

    async def bots(self, room: str) -> list[Bot]:
        def query() -> list[Bot]:
            rows = self._read.execute(
                f"SELECT {_BOT_COLUMNS} FROM bots WHERE room_code = ? ORDER BY id", (room,)
            ).fetchall()
            return [_bot(row) for row in rows]

        return await self._on_reader(query)

    async def bot_by_token(self, token_hash: str) -> Bot | None:
        def query() -> Bot | None:
            row = self._read.execute(
                f"SELECT {_BOT_COLUMNS} FROM bots WHERE token_hash = ?", (token_hash,)
            ).fetchone()
            return None if row is None else _bot(row)

        return await self._on_reader(query)

    async def delete_bot(self, room: str, bot_id: int) -> bool:
        def delete() -> bool:
            cursor = self._write.execute(
                "DELETE FROM bots WHERE room_code = ? AND id = ?", (room, bot_id)
            )
            return cursor.rowcount > 0

        return await self._on_writer(delete)

    # Empty rooms -----------------------------------------------------------------

    async def set_room_empty(self, room: str, since: datetime | None) -> None:
        value = None if since is None else _to_ms(since)
        await self._on_writer(
            lambda: self._write.execute(
                "UPDATE rooms SET empty_since = ? WHERE code = ?", (value, room)
            )
        )

    async def set_unknown_rooms_empty(self, since: datetime) -> None:
        await self._on_writer(
            lambda: self._write.execute(
                "UPDATE rooms SET empty_since = ? WHERE empty_since IS NULL", (_to_ms(since),)
            )
        )

    async def delete_rooms_empty_since(self, cutoff: datetime) -> list[str]:
        def delete() -> list[str]:
            rows = self._write.execute(
                "DELETE FROM rooms WHERE empty_since IS NOT NULL AND empty_since <= ?"
                " RETURNING code",
                (_to_ms(cutoff),),
            ).fetchall()
            return [code for (code,) in rows]

        return await self._on_writer(delete)

    # Changes ---------------------------------------------------------------------

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
                apply(revision, _to_ms(utc_now()))
                changed = self._write.execute(
                    f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE id = ?", (message_id,)
                ).fetchone()
                [message] = _with_reactions(self._write, [_message(changed)])
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
                f"SELECT {_MESSAGE_COLUMNS} FROM messages"
                " WHERE room_code = ? AND revision > ? AND id <= ? ORDER BY revision LIMIT ?",
                (room, revision, up_to_id, limit),
            ).fetchall()
            return _with_reactions(self._read, [_message(row) for row in rows])

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

    # Restarts ----------------------------------------------------------------------

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
