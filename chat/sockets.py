"""How many live sockets each session and each client address holds, and who may open
one more (`CHAT_SOCKETS_PER_USER`, `CHAT_SOCKETS_PER_ADDRESS`).

A socket takes a place with `claim` once it is admitted and gives it back with `release`
when it closes, before its close frame goes out, so a page that reconnects at once finds
its place free. `LocalSockets` counts this process's sockets.

`RedisSockets` (with `CHAT_BROKER_URL`) counts the sockets of every process. Each process
keeps its own counts in a hash `chat:sockets:proc:<process id>` (fields `u:<user id>`
and `a:<address>`) and holds a lease in the sorted set `chat:sockets:procs` (process id
scored by expiry time, Redis's clock, renewed by a heartbeat). A claim adds up the
counts of the processes whose lease is live and takes the place in one Lua script, so
two processes never both hand out the last place. A process that dies without stopping
(crash, SIGKILL) stops renewing: its counts stop counting when its lease runs out
(`LEASE`) and its hash expires with it. While Redis is unreachable each process counts
only its own sockets, and writes its counts back when Redis answers again.

The scripts read the hashes of other processes by names they build, which a Redis
Cluster would refuse; one Redis (as for presence and fan-out) is what this supports.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from chat.broker.redis import connect
from chat.settings import Settings

log = logging.getLogger("chat")

TOO_MANY_CONNECTIONS = "too many connections"
PREFIX = "chat:sockets:"
LEASE = 15.0  # seconds a crashed process's sockets keep counting, at most
RENEW_EVERY = 5.0
RETRY_EVERY = 1.0  # while Redis is unreachable
STOP_TIMEOUT = 2.0
REDIS_ERRORS = (RedisError, OSError, asyncio.TimeoutError)


@dataclass(frozen=True, slots=True)
class Claim:
    """One socket's place: its session's user id and, when that limit is on, its address."""

    user_id: str
    address: str | None


class Sockets(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def claim(self, user_id: str, address: str) -> Claim | None:
        """Take a place for one more socket; None when the session or the address
        already holds as many as allowed."""

    async def release(self, claim: Claim) -> None:
        """The socket closed: its place is free from now on."""


class LocalSockets:
    """The sockets of this process, counted in memory."""

    def __init__(self, per_user: int, per_address: int | None) -> None:
        self.per_user = per_user
        self.per_address = per_address
        self.users: Counter[str] = Counter()
        self.addresses: Counter[str] = Counter()

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def claim(self, user_id: str, address: str) -> Claim | None:
        claim = self.claim_for(user_id, address)
        if not self.fits(claim):
            return None
        self.add(claim)
        return claim

    async def release(self, claim: Claim) -> None:
        self.remove(claim)

    # Used by RedisSockets too ---------------------------------------------------

    def claim_for(self, user_id: str, address: str) -> Claim:
        return Claim(user_id, None if self.per_address is None else address)

    def fits(self, claim: Claim) -> bool:
        if self.users[claim.user_id] >= self.per_user:
            return False
        if claim.address is None or self.per_address is None:
            return True
        return self.addresses[claim.address] < self.per_address

    def add(self, claim: Claim) -> None:
        self.users[claim.user_id] += 1
        if claim.address is not None:
            self.addresses[claim.address] += 1

    def remove(self, claim: Claim) -> None:
        _decrement(self.users, claim.user_id)
        if claim.address is not None:
            _decrement(self.addresses, claim.address)

    def fields(self) -> dict[str, int]:
        """This process's counts as the fields of its Redis hash."""
        counts = {_user_field(user): n for user, n in self.users.items()}
        counts.update({_address_field(address): n for address, n in self.addresses.items()})
        return counts


def _decrement(counter: Counter[str], key: str) -> None:
    counter[key] -= 1
    if counter[key] <= 0:
        del counter[key]


def _user_field(user_id: str) -> str:
    return "u:" + user_id


def _address_field(address: str | None) -> str:
    return "" if address is None else "a:" + address


_PRELUDE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local function score(x) return string.format('%.6f', x) end
local function ms(seconds) return math.floor(tonumber(seconds) * 1000) end
"""

# KEYS: leases, own hash. ARGV: proc, hash prefix, user field, address field ('' = no
# address limit), user limit, address limit, lease -> 0 taken, 1 user full, 2 address full.
_CLAIM = _PRELUDE + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', score(now))
local users, addresses = 0, 0
local function add(key)
  local counts = redis.call('HMGET', key, ARGV[3], ARGV[4] ~= '' and ARGV[4] or ARGV[3])
  users = users + (tonumber(counts[1]) or 0)
  if ARGV[4] ~= '' then addresses = addresses + (tonumber(counts[2]) or 0) end
end
add(KEYS[2])
for _, proc in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if proc ~= ARGV[1] then add(ARGV[2] .. proc) end
end
if users >= tonumber(ARGV[5]) then return 1 end
if ARGV[4] ~= '' and addresses >= tonumber(ARGV[6]) then return 2 end
redis.call('HINCRBY', KEYS[2], ARGV[3], 1)
if ARGV[4] ~= '' then redis.call('HINCRBY', KEYS[2], ARGV[4], 1) end
redis.call('PEXPIRE', KEYS[2], ms(ARGV[7]))
return 0
"""

# KEYS: own hash. ARGV: user field, address field ('' = none).
_RELEASE = """
for _, field in ipairs(ARGV) do
  if field ~= '' and redis.call('HINCRBY', KEYS[1], field, -1) <= 0 then
    redis.call('HDEL', KEYS[1], field)
  end
end
return 1
"""

# KEYS: leases, own hash. ARGV: proc, lease -> 1 when the lease was still live (the hash
# is intact), 0 when it had run out (the hash must be written again).
_RENEW = _PRELUDE + """
local held = redis.call('ZSCORE', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[1], score(now + tonumber(ARGV[2])), ARGV[1])
redis.call('PEXPIRE', KEYS[2], ms(ARGV[2]))
if held and tonumber(held) > now then return 1 end
return 0
"""

# KEYS: leases, own hash. ARGV: proc, lease, field, count, field, count, ...: the hash
# becomes exactly these counts, and the lease is renewed.
_WRITE = _PRELUDE + """
redis.call('DEL', KEYS[2])
for i = 3, #ARGV, 2 do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
redis.call('PEXPIRE', KEYS[2], ms(ARGV[2]))
redis.call('ZADD', KEYS[1], score(now + tonumber(ARGV[2])), ARGV[1])
return 1
"""


class RedisSockets:
    """The sockets of every process, counted in Redis (see the module's docstring)."""

    def __init__(
        self,
        url: str,
        per_user: int,
        per_address: int | None,
        *,
        lease: float = LEASE,
        renew_every: float = RENEW_EVERY,
        prefix: str = PREFIX,
        proc_id: str | None = None,
    ) -> None:
        self.proc_id = proc_id or uuid.uuid4().hex
        self._url = url
        self._lease = lease
        self._renew_every = renew_every
        self._leases_key = prefix + "procs"
        self._hash_prefix = prefix + "proc:"
        self._own_key = self._hash_prefix + self.proc_id
        # This process's own counts: the fallback while Redis is away, and what its
        # hash is written back from.
        self.local = LocalSockets(per_user, per_address)
        self._redis: Redis | None = None
        self._reachable = True
        self._dirty = False  # counts changed here that Redis has not seen
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        redis = self._redis = connect(self._url, decode_responses=True)
        self._claim_script = redis.register_script(_CLAIM)
        self._release_script = redis.register_script(_RELEASE)
        self._renew_script = redis.register_script(_RENEW)
        self._write_script = redis.register_script(_WRITE)
        try:
            await self._write()
        except REDIS_ERRORS as error:
            self._unreachable(error)
        self._task = asyncio.create_task(self._renew_forever(), name="socket-lease")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._redis is None:
            return
        if self._reachable:
            # Leaving: this process's places are free for the others at once.
            try:
                async with self._redis.pipeline(transaction=True) as pipe:
                    pipe.delete(self._own_key).zrem(self._leases_key, self.proc_id)
                    await asyncio.wait_for(pipe.execute(), STOP_TIMEOUT)
            except REDIS_ERRORS:
                pass
        await self._redis.aclose()
        self._redis = None

    async def claim(self, user_id: str, address: str) -> Claim | None:
        local = self.local
        claim = local.claim_for(user_id, address)
        if self._reachable:
            try:
                verdict = await self._claim_script(
                    keys=[self._leases_key, self._own_key],
                    args=[self.proc_id, self._hash_prefix, _user_field(user_id),
                          _address_field(claim.address), local.per_user,
                          local.per_address or 0, self._lease])
            except REDIS_ERRORS as error:
                self._unreachable(error)
            else:
                if verdict:
                    return None
                local.add(claim)
                return claim
        self._dirty = True
        return await local.claim(user_id, address)

    async def release(self, claim: Claim) -> None:
        self.local.remove(claim)
        if not self._reachable:
            self._dirty = True
            return
        try:
            await self._release_script(
                keys=[self._own_key],
                args=[_user_field(claim.user_id), _address_field(claim.address)])
        except REDIS_ERRORS as error:
            self._unreachable(error)
            self._dirty = True

    # Internals ---------------------------------------------------------------

    def _unreachable(self, error: BaseException) -> None:
        if self._reachable:
            log.warning("socket limits: redis unreachable (%s): counting this process's "
                        "sockets only until it is back", error)
        self._reachable = False

    async def _write(self) -> None:
        """Make this process's hash exactly its own counts, and renew its lease."""
        self._dirty = False  # changes from now on are written by the next round
        args: list[object] = [self.proc_id, self._lease]
        for field, count in self.local.fields().items():
            args += [field, count]
        await self._write_script(keys=[self._leases_key, self._own_key], args=args)

    async def _renew(self) -> None:
        if self._dirty or not self._reachable:
            await self._write()
        elif not await self._renew_script(
            keys=[self._leases_key, self._own_key], args=[self.proc_id, self._lease]
        ):
            log.warning("socket limits: this process's lease had run out; counts written again")
            await self._write()
        if not self._reachable:
            self._reachable = True
            log.warning("socket limits: redis reachable again: counting shared again")

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(self._renew_every if self._reachable else RETRY_EVERY)
            try:
                await self._renew()
            except REDIS_ERRORS as error:
                self._unreachable(error)
            except Exception:
                log.exception("socket limits: renewing the lease failed")

    def _kill(self) -> None:
        """Stop renewing without any cleanup, as a crashed process would (for tests)."""
        if self._task is not None:
            self._task.cancel()


def open_sockets(settings: Settings) -> Sockets:
    if settings.broker_url:
        return RedisSockets(
            settings.broker_url, settings.sockets_per_user, settings.sockets_per_address)
    return LocalSockets(settings.sockets_per_user, settings.sockets_per_address)
