"""Presence shared by every process through Redis.

Each process counts its own connections and runs the leave grace period with a
`LocalPresence`; what it shares is one entry per user it holds, in a sorted set per room
(`chat:presence:<CODE>`, members `<process id>:<user id>`, scored by expiry time), with
display names in `chat:names:<CODE>` and the rooms that have entries in
`chat:presence:rooms`. A heartbeat pushes this process's expiry times forward; a reaper
in every process removes the entries of processes that stopped beating (crashed).

Announcements are decided in Redis, atomically, by small Lua scripts: a user enters when
their first entry anywhere is added and leaves when their last entry is removed, so
exactly one process announces each. Times come from Redis (`TIME`), so machines with
skewed clocks agree on what has expired.

While Redis is unreachable this process falls back to its own view (arrivals and
leaves of its own users, its own member list) and resynchronises its entries once Redis
answers again.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
import weakref
from collections.abc import Coroutine

from redis.asyncio import Redis
from redis.exceptions import RedisError

from chat.broker.redis import connect
from chat.presence import ENTERED, STAYED, Arrival, Held, LocalPresence, OnCorrected, OnLeft

log = logging.getLogger("chat")

ROOMS_KEY = "chat:presence:rooms"
ENTRY_TTL = 30.0
HEARTBEAT_EVERY = 10.0
REAP_EVERY = 10.0
RETRY_EVERY = 1.0  # while Redis is unreachable
REDIS_ERRORS = (RedisError, OSError, asyncio.TimeoutError)

_PRELUDE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local function score(x) return string.format('%.6f', x) end
local function user_of(entry)
  local sep = string.find(entry, ':', 1, true)
  return string.sub(entry, sep + 1)
end
local function forget_room_if_empty()
  if redis.call('ZCARD', KEYS[1]) == 0 then
    redis.call('DEL', KEYS[2])
    redis.call('SREM', KEYS[3], ARGV[1])
    return true
  end
  return false
end
"""

# ARGV: room, proc, user, name, ttl -> {1 when the user had no entry anywhere before,
# the name they had}.
_ARRIVE = _PRELUDE + """
local present = 0
for _, entry in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if user_of(entry) == ARGV[3] then present = 1 break end
end
local previous = redis.call('HGET', KEYS[2], ARGV[3]) or ''
redis.call('ZADD', KEYS[1], score(now + tonumber(ARGV[5])), ARGV[2] .. ':' .. ARGV[3])
redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
redis.call('SADD', KEYS[3], ARGV[1])
return {1 - present, previous}
"""

# ARGV: room, proc, user, name, ttl, horizon -> 1 when the user still has an entry (live
# or expired: nobody announced them gone), which this process then holds instead of the
# entries a stopped process left to expire within `horizon` seconds.
_RESTORE = _PRELUDE + """
local present = 0
local entries = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
for i = 1, #entries, 2 do
  if user_of(entries[i]) == ARGV[3] then
    present = 1
    if tonumber(entries[i + 1]) <= now + tonumber(ARGV[6]) then
      redis.call('ZREM', KEYS[1], entries[i])
    end
  end
end
if present == 0 then return 0 end
redis.call('ZADD', KEYS[1], score(now + tonumber(ARGV[5])), ARGV[2] .. ':' .. ARGV[3])
redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
redis.call('SADD', KEYS[3], ARGV[1])
return 1
"""

# ARGV: room, proc, user -> 1 when the user has no live entry left anywhere (they left).
# The user's expired entries (of dead processes) go too, so no reaper announces again.
_LEAVE = _PRELUDE + """
redis.call('ZREM', KEYS[1], ARGV[2] .. ':' .. ARGV[3])
local live = 0
local entries = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
for i = 1, #entries, 2 do
  if user_of(entries[i]) == ARGV[3] then
    if tonumber(entries[i + 1]) > now then live = 1
    else redis.call('ZREM', KEYS[1], entries[i]) end
  end
end
if live == 0 then redis.call('HDEL', KEYS[2], ARGV[3]) end
forget_room_if_empty()
return 1 - live
"""

# ARGV: room, proc -> {user, name, ...} of users whose last entry expired and was removed
# here. Entries of `proc` itself are left to its heartbeat.
_REAP = _PRELUDE + """
local touched, order = {}, {}
for _, entry in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', score(now))) do
  local sep = string.find(entry, ':', 1, true)
  if string.sub(entry, 1, sep - 1) ~= ARGV[2] then
    redis.call('ZREM', KEYS[1], entry)
    local user = string.sub(entry, sep + 1)
    if not touched[user] then touched[user] = true table.insert(order, user) end
  end
end
local still = {}
for _, entry in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do still[user_of(entry)] = true end
local gone = {}
for _, user in ipairs(order) do
  if not still[user] then
    table.insert(gone, user)
    table.insert(gone, redis.call('HGET', KEYS[2], user) or '')
    redis.call('HDEL', KEYS[2], user)
  end
end
forget_room_if_empty()
return gone
"""

# ARGV: room, proc, ttl, user, name, user, name, ... -> the entries this process holds in
# the room, exactly: listed ones pushed forward (re-added if lost), others removed.
# Returns {users re-added who had no entry anywhere (Redis lost them, or reaped them
# while this process stalled), users removed who have none left}, each as user, name.
_HEARTBEAT = _PRELUDE + """
local mine = ARGV[2] .. ':'
local function present()
  local users = {}
  for _, entry in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do users[user_of(entry)] = true end
  return users
end
local before = present()
local keep, returned = {}, {}
for i = 4, #ARGV, 2 do
  keep[mine .. ARGV[i]] = true
  if not before[ARGV[i]] then
    table.insert(returned, ARGV[i])
    table.insert(returned, ARGV[i + 1])
  end
  redis.call('ZADD', KEYS[1], score(now + tonumber(ARGV[3])), mine .. ARGV[i])
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
end
local dropped = {}
for _, entry in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if string.sub(entry, 1, #mine) == mine and not keep[entry] then
    redis.call('ZREM', KEYS[1], entry)
    table.insert(dropped, user_of(entry))
  end
end
local gone = {}
if #dropped > 0 then
  local still = present()
  for _, user in ipairs(dropped) do
    if not still[user] then
      table.insert(gone, user)
      table.insert(gone, redis.call('HGET', KEYS[2], user) or '')
      redis.call('HDEL', KEYS[2], user)
    end
  end
end
if not forget_room_if_empty() then redis.call('SADD', KEYS[3], ARGV[1]) end
return {returned, gone}
"""

# ARGV: room, proc, seconds: this process's entries expire within `seconds` at the latest.
_SHORTEN = _PRELUDE + """
local mine = ARGV[2] .. ':'
local latest = now + tonumber(ARGV[3])
local entries = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
for i = 1, #entries, 2 do
  if string.sub(entries[i], 1, #mine) == mine and tonumber(entries[i + 1]) > latest then
    redis.call('ZADD', KEYS[1], score(latest), entries[i])
  end
end
return 1
"""

# -> {user, name, ...} of the users with a live entry, each once.
_LIVE = _PRELUDE + """
local seen, out = {}, {}
for _, entry in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. score(now), '+inf')) do
  local user = user_of(entry)
  if not seen[user] then
    seen[user] = true
    table.insert(out, user)
    table.insert(out, redis.call('HGET', KEYS[2], user) or '')
  end
end
return out
"""


async def _ignore_correction(room: str, user_id: str, name: str | None) -> None:
    pass


def _keys(room: str) -> list[str]:
    return [f"chat:presence:{room}", f"chat:names:{room}", ROOMS_KEY]


class RedisPresence:
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
        redis = self._redis = connect(self._url, decode_responses=True)
        self._arrive = redis.register_script(_ARRIVE)
        self._restore = redis.register_script(_RESTORE)
        self._leave = redis.register_script(_LEAVE)
        self._reap = redis.register_script(_REAP)
        self._heartbeat = redis.register_script(_HEARTBEAT)
        self._shorten = redis.register_script(_SHORTEN)
        self._live_script = redis.register_script(_LIVE)
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
                        await self._shorten(keys=_keys(room),
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

    def _kill(self) -> None:
        """Stop beating without any cleanup, as a crashed process would (for tests)."""
        for task in self._tasks:
            task.cancel()

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
                absent, previous = await self._arrive(
                    keys=_keys(room), args=[room, self.proc_id, user_id, name, self._ttl])
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
                still = await self._restore(
                    keys=_keys(held.room),
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
                    left = bool(await self._leave(
                        keys=_keys(room), args=[room, self.proc_id, user_id]))
                except REDIS_ERRORS as error:
                    self._unreachable(error)
            if not self._reachable:
                self._stale_rooms.add(room)
        if left:
            await self._on_left(room, user_id, name)

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

    # Internals ---------------------------------------------------------------

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
            flat = await self._live_script(keys=_keys(room)[:2])
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
                await self._heartbeat(keys=_keys(room), args=args, client=pipe)
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
                await self._reap(keys=_keys(room), args=[room, self.proc_id], client=pipe)
            results = await pipe.execute()
        for room, flat in zip(rooms, results, strict=True):
            for user_id, name in zip(flat[::2], flat[1::2], strict=True):
                log.info("presence: reaped user of a vanished process: room=%s user=%s",
                         room, user_id)
                self._spawn(self._on_left(room, user_id, name))
