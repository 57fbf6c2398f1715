"""Presence shared by every process through Redis.

Each process counts its own connections and runs the leave grace period with a
`LocalPresence`; what it shares is one entry per user it holds, in a sorted set per room
(`chat:presence:<CODE>`, members `<process id>:<user id>`, scored by expiry time), with
display names in `chat:names:<CODE>` and the rooms that have entries in
`chat:presence:rooms`. A heartbeat pushes this process's expiry times forward; a reaper
in every process removes the entries of processes that stopped beating (crashed).

Announcements are decided in Redis, atomically, by small Lua scripts (`lua/*.lua` of this
package, read at start): a user enters when
their first entry anywhere is added and leaves when their last entry is removed, so
exactly one process announces each. Times come from Redis (`TIME`), so machines with
skewed clocks agree on what has expired.

While Redis is unreachable this process falls back to its own view (arrivals and
leaves of its own users, its own member list) and resynchronises its entries once Redis
answers again.
"""

from __future__ import annotations

import asyncio
import uuid
import weakref

from redis.asyncio import Redis

from chat import redis_client
from chat.presence import ENTERED, STAYED, Arrival, Held, OnCorrected, OnLeft
from chat.presence.local import LocalPresence
from chat.presence.redis_upkeep import (
    ENTRY_TTL,
    HEARTBEAT_EVERY,
    REAP_EVERY,
    Upkeep,
    room_keys,
)
from chat.redis_client import REDIS_ERRORS

_SCRIPTS = ("arrive", "restore", "leave", "reap", "heartbeat", "shorten", "live")


async def _ignore_correction(room: str, user_id: str, name: str | None) -> None:
    pass


def _scripts() -> dict[str, str]:
    """The Lua scripts of `chat/presence/lua/`, each led by the shared prelude."""
    prelude = redis_client.lua("chat.presence", "prelude")
    return {name: prelude + redis_client.lua("chat.presence", name) for name in _SCRIPTS}


class RedisPresence(Upkeep):
    def __init__(
        self,
        url: str,
        grace: float,
        on_left: OnLeft,
        on_corrected: OnCorrected | None = None,
        *,
        ttl: float = ENTRY_TTL,
        heartbeat: float = HEARTBEAT_EVERY,
        reap_every: float = REAP_EVERY,
        proc_id: str | None = None,
    ) -> None:
        self.proc_id = proc_id or uuid.uuid4().hex
        self._url = url
        self._grace = grace
        self._ttl = ttl
        self._heartbeat_every = heartbeat
        self._reap_every = reap_every
        self._on_left = on_left
        self._on_corrected = on_corrected or _ignore_correction
        # Connections of this process, and the grace period; calls `_gone_here` after it.
        self._local = LocalPresence(grace, self._gone_here)
        self._entries: dict[str, dict[str, str]] = {}  # room -> user -> name, held in Redis
        self._stale_rooms: set[str] = set()  # own entries there may outlive their user
        self._locks: weakref.WeakValueDictionary[tuple[str, str], asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )
        self._redis: Redis | None = None
        self._reachable = True
        self._tasks: list[asyncio.Task] = []
        self._pending: set[asyncio.Task] = set()

    # Life cycle --------------------------------------------------------------

    async def start(self) -> None:
        redis = self._redis = redis_client.connect(self._url, decode_responses=True)
        self._scripts = {name: redis.register_script(lua) for name, lua in _scripts().items()}
        try:
            await redis.ping()
        except REDIS_ERRORS as error:
            self._unreachable(error)
        await self._local.start()
        self._tasks = [
            asyncio.create_task(self._beat_forever(), name="presence-heartbeat"),
            asyncio.create_task(self._reap_forever(), name="presence-reaper"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        await self._local.stop()
        # Users still held here (connections closing, grace periods cut short) are gone
        # for others once the grace period passes, unless they reconnect elsewhere.
        if self._redis is not None and self._reachable and self._entries:
            try:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for room in self._entries:
                        await self._scripts["shorten"](keys=room_keys(room),
                                            args=[room, self.proc_id, self._stop_horizon],
                                            client=pipe)
                    await asyncio.wait_for(pipe.execute(), 2.0)
            except REDIS_ERRORS:
                pass
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    @property
    def _stop_horizon(self) -> float:
        """How long the entries of a stopping process outlive it, for its members to
        reconnect elsewhere (or to it, restarted) without being announced."""
        return max(self._grace, 1.0)

    # Presence protocol -------------------------------------------------------

    async def arrive(self, room: str, user_id: str, name: str) -> Arrival:
        here = await self._local.arrive(room, user_id, name)
        if here == STAYED:
            return STAYED  # another connection here, or back within the grace period
        async with self._lock(room, user_id):
            self._entries.setdefault(room, {})[user_id] = name
            if not self._reachable:
                return here
            try:
                absent, previous = await self._scripts["arrive"](
                    keys=room_keys(room), args=[room, self.proc_id, user_id, name, self._ttl])
            except REDIS_ERRORS as error:
                self._unreachable(error)
                return here
        if absent:
            return ENTERED
        if previous and previous != name:
            return Arrival(entered=False, renamed_from=previous)
        return STAYED

    def held(self) -> list[Held]:
        return self._local.held()

    async def restore(self, members: list[Held]) -> list[Held]:
        """Take back the members still present in Redis; the others were announced gone
        by another process while this one was down."""
        if not self._reachable:
            return []
        taken = []
        for held in members:
            try:
                still = await self._scripts["restore"](
                    keys=room_keys(held.room),
                    args=[held.room, self.proc_id, held.user_id, held.name, self._ttl,
                          self._stop_horizon])
            except REDIS_ERRORS as error:
                self._unreachable(error)
                return taken
            if still:
                self._entries.setdefault(held.room, {})[held.user_id] = held.name
                taken.append(held)
        return await self._local.restore(taken)

    async def depart(self, room: str, user_id: str) -> None:
        await self._local.depart(room, user_id)

    async def _gone_here(self, room: str, user_id: str, name: str) -> None:
        """The user's last connection here closed a grace period ago."""
        async with self._lock(room, user_id):
            if await self._local.has(room, user_id):
                return  # came back meanwhile: their entry stays
            held = self._entries.get(room, {})
            held.pop(user_id, None)
            if not held:
                self._entries.pop(room, None)
            left = True
            if self._reachable:
                try:
                    left = bool(await self._scripts["leave"](
                        keys=room_keys(room), args=[room, self.proc_id, user_id]))
                except REDIS_ERRORS as error:
                    self._unreachable(error)
            if not self._reachable:
                self._stale_rooms.add(room)
        if left:
            await self._on_left(room, user_id, name)
