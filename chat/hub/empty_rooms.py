"""Deleting rooms left empty: a timer per room that empties here, and a sweeper that
deletes every room empty for longer than `CHAT_EMPTY_ROOM_TTL` (whoever emptied it)."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from chat.settings import Settings
from chat.store import Store, utc_now

log = logging.getLogger("chat")

SWEEP_EVERY = 30.0


class EmptyRooms:
    def __init__(self, settings: Settings, store: Store) -> None:
        self._ttl = settings.empty_room_ttl
        self._store = store
        self._deletions: dict[str, asyncio.Task] = {}
        self._sweeper: asyncio.Task | None = None

    def start(self) -> None:
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="room-sweeper")

    async def stop(self) -> None:
        if self._sweeper:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
        for task in self._deletions.values():
            task.cancel()

    def schedule_deletion(self, code: str) -> None:
        self.cancel_deletion(code)
        self._deletions[code] = asyncio.create_task(self._delete_when_expired(code))

    def cancel_deletion(self, code: str) -> None:
        task = self._deletions.pop(code, None)
        if task is not None:
            task.cancel()

    async def _delete_when_expired(self, code: str) -> None:
        await asyncio.sleep(self._ttl)
        del self._deletions[code]
        await self._sweep()

    async def _sweep(self) -> None:
        cutoff = utc_now() - timedelta(seconds=self._ttl)
        for code in await self._store.delete_rooms_empty_since(cutoff):
            log.info("room deleted: %s", code)

    async def _sweep_forever(self) -> None:
        while True:
            try:
                await self._sweep()
            except Exception:
                log.exception("sweeping empty rooms failed")
            await asyncio.sleep(SWEEP_EVERY)
