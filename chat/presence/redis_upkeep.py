"""The upkeep of shared presence: reading a room's live members from Redis, the
heartbeat that keeps this process's entries exactly what it holds, and the reaper that
removes the entries of processes that stopped beating (see `chat.presence.redis`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine

from chat.redis_client import REDIS_ERRORS

log = logging.getLogger("chat")

ROOMS_KEY = "chat:presence:rooms"
ENTRY_TTL = 30.0
HEARTBEAT_EVERY = 10.0
REAP_EVERY = 10.0
RETRY_EVERY = 1.0  # while Redis is unreachable


def room_keys(room: str) -> list[str]:
    return [f"chat:presence:{room}", f"chat:names:{room}", ROOMS_KEY]


class Upkeep:
    """Mixed into `RedisPresence`, whose state it shares."""

    def _kill(self) -> None:
        """Stop beating without any cleanup, as a crashed process would (for tests)."""
        for task in self._tasks:
            task.cancel()

    async def members(self, room: str) -> dict[str, str]:
        live = await self._live(room)
        if live is None:
            return await self._local.members(room)
        return live

    async def count(self, room: str) -> int:
        live = await self._live(room)
        if live is None:
            return await self._local.count(room)
        return len(live)

    async def has(self, room: str, user_id: str) -> bool:
        live = await self._live(room)
        if live is None:
            return await self._local.has(room, user_id)
        return user_id in live

    def _lock(self, room: str, user_id: str) -> asyncio.Lock:
        """Serialises a user's arrive and leave scripts of one room in this process."""
        lock = self._locks.get((room, user_id))
        if lock is None:
            lock = self._locks[(room, user_id)] = asyncio.Lock()
        return lock

    async def _live(self, room: str) -> dict[str, str] | None:
        """User id -> name of the room's live users, or None when Redis is unreachable."""
        if not self._reachable:
            return None
        try:
            flat = await self._scripts["live"](keys=room_keys(room)[:2])
        except REDIS_ERRORS as error:
            self._unreachable(error)
            return None
        return dict(zip(flat[::2], flat[1::2], strict=True))

    def _unreachable(self, error: BaseException) -> None:
        if self._reachable:
            log.warning("presence: redis unreachable (%s): counting this process's "
                        "users only until it is back", error)
        self._reachable = False

    async def _beat(self) -> None:
        """Make this process's entries in Redis exactly what it holds, expiring later."""
        assert self._redis is not None
        rooms = list(self._entries.keys() | self._stale_rooms)
        if not rooms:
            await self._redis.ping()
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for room in rooms:
                args: list[object] = [room, self.proc_id, self._ttl]
                for user_id, name in self._entries.get(room, {}).items():
                    args += [user_id, name]
                await self._scripts["heartbeat"](keys=room_keys(room), args=args, client=pipe)
            results = await pipe.execute()
        self._stale_rooms.difference_update(rooms)
        for room, (returned, gone) in zip(rooms, results, strict=True):
            for user_id, name in zip(returned[::2], returned[1::2], strict=True):
                self._spawn(self._on_corrected(room, user_id, name))
            for user_id, _ in zip(gone[::2], gone[1::2], strict=True):
                self._spawn(self._on_corrected(room, user_id, None))

    def _spawn(self, work: Coroutine[None, None, None]) -> None:
        task = asyncio.create_task(work)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _beat_forever(self) -> None:
        while True:
            await asyncio.sleep(self._heartbeat_every if self._reachable else RETRY_EVERY)
            try:
                await self._beat()
            except REDIS_ERRORS as error:
                self._unreachable(error)
                continue
            if not self._reachable:
                self._reachable = True
                log.warning("presence: redis reachable again: presence shared again")

    async def _reap_forever(self) -> None:
        while True:
            await asyncio.sleep(self._reap_every)
            if not self._reachable:
                continue
            try:
                await self._reap_once()
            except REDIS_ERRORS as error:
                self._unreachable(error)
            except Exception:
                log.exception("presence: reaping failed")

    async def _reap_once(self) -> None:
        """Remove expired entries of other processes; announce users gone everywhere."""
        assert self._redis is not None
        rooms = sorted(await self._redis.smembers(ROOMS_KEY))
        if not rooms:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for room in rooms:
                await self._scripts["reap"](
                    keys=room_keys(room), args=[room, self.proc_id], client=pipe)
            results = await pipe.execute()
        for room, flat in zip(rooms, results, strict=True):
            for user_id, name in zip(flat[::2], flat[1::2], strict=True):
                log.info("presence: reaped user of a vanished process: room=%s user=%s",
                         room, user_id)
                self._spawn(self._on_left(room, user_id, name))

