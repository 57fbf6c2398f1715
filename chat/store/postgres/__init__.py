"""PostgreSQL store: the shared store, for several processes or machines on one database.

Everything goes through a small asyncpg pool. Messages arriving together are committed
in one transaction by a batching task, like the SQLite store's writer (each caller still
waits for its own commit). Times are `timestamptz` cut to the millisecond, so they come
back exactly as the SQLite store returns them and fragments render the same. The work is
split by concern into the mixins `rooms`, `messages`, `changes` and `bots`; `schema`
migrates, `rows` converts rows.
"""

from __future__ import annotations

import asyncio

import asyncpg

from chat.store.batching import Batcher
from chat.store.postgres.bots import Bots
from chat.store.postgres.changes import Changes
from chat.store.postgres.messages import Messages
from chat.store.postgres.rooms import Rooms
from chat.store.postgres.schema import migrate

_CLOSE_DRAIN_SECONDS = 5.0
_PING_SECONDS = 5.0


class PostgresStore(Rooms, Messages, Changes, Bots):
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
                await migrate(connection)
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
