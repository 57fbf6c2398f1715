"""SQLite store: one file in WAL mode, the embedded default.

Reads run on a thread of their own, which WAL lets run beside the writes. Writes commit
messages arriving together in a single transaction (each caller still waits for its own
commit). When this process is alone on the file (`alone`: the in-process broker's lock
sees to that) they run on the event loop itself: a commit takes tens of microseconds,
less than handing it to a thread and back, and nobody else can hold the file's write
lock for long. With several processes on one file a write may wait for another's lock,
so writes run on a writer thread. A third thread copies the WAL into the database file
every second; SQLite would otherwise do that inside a commit now and then, and the
messages of that batch would wait for the disk. Every second the new messages are also
added to the search index, as one batch. The work is split by concern into the mixins
`rooms`, `messages`, `changes` and `bots`; `schema` opens and migrates the file, `rows`
converts rows, `worker` runs the threads.
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
    def __init__(self, path: Path, *, alone: bool = False) -> None:
        self.path = path
        self._writer = None if alone else Worker("sqlite-writer")
        self._reader = Worker("sqlite-reader")
        self._write: sqlite3.Connection | None = None
        self._read: sqlite3.Connection | None = None
        self._checkpointer = Worker("sqlite-checkpoint")
        self._upkeep: asyncio.Task | None = None
        self._batcher = Batcher(self._commit_batch, "sqlite-batcher")

    async def _on_writer(self, work: Callable[[], T]) -> T:
        if self._writer is None:  # alone on the file: see the module
            return work()
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
        if self._write is not None:
            await self._on_writer(self._write.close)
        if self._writer is not None:
            self._writer.stop()
        if self._read is not None:
            await self._reader.run(self._read.close)
        self._reader.stop()

    async def ping(self) -> bool:
        try:
            await self._on_reader(lambda: self._read.execute("SELECT 1").fetchone())
        except sqlite3.Error:
            return False
        return True
