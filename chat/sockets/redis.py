"""Socket limits shared by every process through Redis (`CHAT_BROKER_URL`).

Each process keeps its own counts in a hash `chat:sockets:proc:<process id>` (fields `u:<user id>`
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

from redis.asyncio import Redis

from chat import redis_client
from chat.redis_client import REDIS_ERRORS
from chat.sockets import Claim
from chat.sockets.local import LocalSockets, address_field, user_field

log = logging.getLogger("chat")

PREFIX = "chat:sockets:"
LEASE = 15.0  # seconds a crashed process's sockets keep counting, at most
RENEW_EVERY = 5.0
RETRY_EVERY = 1.0  # while Redis is unreachable
STOP_TIMEOUT = 2.0


def _scripts() -> dict[str, str]:
    """The Lua scripts of `chat/sockets/lua/` (read at start), led by the prelude."""
    prelude = redis_client.lua("chat.sockets", "prelude")
    return {
        name: (prelude if name != "release" else "") + redis_client.lua("chat.sockets", name)
        for name in ("claim", "release", "renew", "write")
    }


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
        redis = self._redis = redis_client.connect(self._url, decode_responses=True)
        scripts = {name: redis.register_script(lua) for name, lua in _scripts().items()}
        self._claim_script, self._release_script = scripts["claim"], scripts["release"]
        self._renew_script, self._write_script = scripts["renew"], scripts["write"]
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
                    args=[self.proc_id, self._hash_prefix, user_field(user_id),
                          address_field(claim.address), local.per_user,
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
                args=[user_field(claim.user_id), address_field(claim.address)])
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

