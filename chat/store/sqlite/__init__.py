"""SQLite store: one file in WAL mode, the embedded default.

All SQLite calls run on private threads, never on the event loop: one writer that
commits messages arriving together in a single transaction (each caller still waits for
its own commit), one reader, which WAL lets run beside the writer, and one that copies
the WAL into the database file every second. SQLite would otherwise do that inside a
commit now and then, and the messages of that batch would wait for the disk. Every
second the writer also adds the new messages to the search index, as one batch. The work is split
by concern into the mixins `rooms`, `messages`, `changes` and `bots`; `schema` opens
and migrates the file, `rows` converts rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from chat.store.batching import Batcher
from chat.store.sqlite.bots import Bots
from chat.store.sqlite.changes import Changes
from chat.store.sqlite.messages import Messages
from chat.store.sqlite.rooms import Rooms
from chat.store.sqlite.schema import connect, migrate
from chat.store.sqlite.worker import Worker

T = TypeVar("T")
log = logging.getLogger("chat")

UPKEEP_EVERY = 1.0  # seconds between search indexing and copies of the WAL into the file


class SQLiteStore(Rooms, Messages, Changes, Bots):
    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer = Worker("sqlite-writer")
        self._reader = Worker("sqlite-reader")
        self._write: sqlite3.Connection | None = None
        self._read: sqlite3.Connection | None = None
        self._checkpointer = Worker("sqlite-checkpoint")
        self._upkeep: asyncio.Task | None = None
        self._batcher = Batcher(self._commit_batch, "sqlite-batcher")

    async def _on_writer(self, work: Callable[[], T]) -> T:
        return await self._writer.run(work)

    async def _on_reader(self, work: Callable[[], T]) -> T:
        return await self._reader.run(work)

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._write = await self._on_writer(lambda: connect(self.path))
        await self._on_writer(lambda: migrate(self._write))
        await self._on_writer(lambda: self._write.execute("PRAGMA wal_autocheckpoint=0"))
        self._read = await self._on_reader(lambda: connect(self.path))
        self._batcher.start()
        self._upkeep = asyncio.create_task(self._keep_up(), name="sqlite-upkeep")

    async def _keep_up(self) -> None:
        connection = await self._checkpointer.run(lambda: connect(self.path))
        try:
            while True:
                await asyncio.sleep(UPKEEP_EVERY)
                try:
                    await self._on_writer(self._index_for_search)
                except sqlite3.Error as error:
                    log.warning("indexing new messages for search failed: %s", error)
                try:  # PASSIVE: copies what no reader still needs, never waits for anyone
                    await self._checkpointer.run(
                        lambda: connection.execute("PRAGMA wal_checkpoint(PASSIVE)")
                    )
                except sqlite3.Error as error:
                    log.warning("copying the WAL into the database failed: %s", error)
        finally:
            await asyncio.shield(self._checkpointer.run(connection.close))

    async def close(self) -> None:
        await self._batcher.close()
        if self._upkeep is not None:
            self._upkeep.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._upkeep
        self._checkpointer.stop()
        for connection, worker in ((self._write, self._writer), (self._read, self._reader)):
            if connection is not None:
                await worker.run(connection.close)
            worker.stop()

    async def ping(self) -> bool:
        try:
            await self._on_reader(lambda: self._read.execute("SELECT 1").fetchone())
        except sqlite3.Error:
            return False
        return True
