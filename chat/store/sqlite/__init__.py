"""SQLite store: one file in WAL mode, the embedded default.

All SQLite calls run on two private threads, never on the event loop: one writer that
commits messages arriving together in a single transaction (each caller still waits for
its own commit), and one reader, which WAL lets run beside the writer. The work is split
by concern into the mixins `rooms`, `messages`, `changes` and `bots`; `schema` opens
and migrates the file, `rows` converts rows.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from chat.store.batching import Batcher
from chat.store.sqlite.bots import Bots
from chat.store.sqlite.changes import Changes
from chat.store.sqlite.messages import Messages
from chat.store.sqlite.rooms import Rooms
from chat.store.sqlite.schema import connect, migrate

T = TypeVar("T")


class SQLiteStore(Rooms, Messages, Changes, Bots):
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
        self._write = await self._on_writer(lambda: connect(self.path))
        await self._on_writer(lambda: migrate(self._write))
        self._read = await self._on_reader(lambda: connect(self.path))
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
