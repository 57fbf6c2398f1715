"""The Redis side of the Redis broker: connecting both connections (commands and
pub/sub), supervising them with backoff, publishing the queue in order, reading the
channels, and watching that the pub/sub connection still answers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from itertools import islice
from typing import TYPE_CHECKING

from chat import redis_client
from chat.broker import RoomEvent
from chat.redis_client import describe

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.client import PubSub

log = logging.getLogger("chat")

CHANNEL_PREFIX = "chat:room:"
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 5.0
SUBSCRIBE_TIMEOUT = 2.0
PING_EVERY = 5.0  # a PubSub connection that answers no PING for 3 of these is dead
PUBLISH_BATCH = 256
STOP_DRAIN = 1.0


def channel(room: str) -> str:
    return CHANNEL_PREFIX + room


def encode(event: RoomEvent) -> str:
    payload = {"html": event.html, "message_id": event.message_id, "skip_user": event.skip_user}
    return json.dumps(payload, separators=(",", ":"))


class RedisLink:
    """Mixed into `RedisBroker`, whose state it shares."""

    # Connection life cycle ---------------------------------------------------

    async def _connect(self) -> None:
        """Connect both connections and subscribe to every room that has a subscriber."""
        self._broken = asyncio.Event()
        client = self._client = redis_client.connect(self._url)
        await client.ping()
        pubsub = client.pubsub()
        self._connection = pubsub
        await pubsub.connect()
        self._last_pong = time.monotonic()
        self._pubsub = pubsub  # from here on `subscribe` sends its own SUBSCRIBE too
        self._reader = asyncio.create_task(self._read(pubsub), name="redis-broker-reader")
        await self._subscribe(pubsub, list(self._rooms))

    async def _disconnect(self) -> None:
        self._pubsub = None
        self._connection, pubsub = None, self._connection
        self._client, client = None, self._client
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
        for future in self._confirmations.values():
            future.cancel()
        self._confirmations.clear()
        for closable in (pubsub, client):
            if closable is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(closable.aclose(), redis_client.CONNECT_TIMEOUT)

    async def _supervise(self) -> None:
        delay = BACKOFF_FIRST
        while True:
            if self._healthy:
                try:
                    await self._serve()
                except Exception as error:
                    self._fail(error)
                await self._disconnect()
                delay = BACKOFF_FIRST
            await asyncio.sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX)
            try:
                await self._connect()
            except Exception as error:
                log.debug("redis broker still unreachable: %s", describe(error))
                await self._disconnect()
                continue
            self._healthy = True
            log.warning("redis broker reachable again: fan-out across processes resumed")
            for callback in tuple(self._callbacks):
                try:
                    callback()
                except Exception:
                    log.exception("broker recovery callback failed")

    async def _serve(self) -> None:
        """Publish and watch until something fails; raises what failed."""
        assert self._client is not None and self._pubsub is not None
        tasks = [
            asyncio.create_task(self._publish_queued(self._client)),
            asyncio.create_task(self._watch(self._pubsub)),
            asyncio.create_task(self._broken.wait()),
        ]
        if self._reader is not None:
            tasks.append(self._reader)
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
        raise ConnectionError(self._failure)

    # Tasks -------------------------------------------------------------------

    async def _subscribe(self, pubsub: PubSub, rooms: list[str]) -> None:
        """SUBSCRIBE and wait for Redis to confirm, so nothing published afterwards is
        missed by whoever subscribed."""
        if not rooms:
            return
        loop = asyncio.get_running_loop()
        futures = []
        for room in rooms:
            future = self._confirmations.get(channel(room))
            if future is None or future.done():
                future = self._confirmations[channel(room)] = loop.create_future()
            futures.append(future)
        await pubsub.subscribe(*(channel(room) for room in rooms))
        await asyncio.wait_for(asyncio.gather(*(asyncio.shield(f) for f in futures)),
                               SUBSCRIBE_TIMEOUT)

    async def _read(self, pubsub: PubSub) -> None:
        while True:
            message = await pubsub.get_message(timeout=None)
            if message is None:
                continue
            kind = message["type"]
            if kind == "message":
                name = message["channel"].decode()
                try:
                    payload = json.loads(message["data"])
                    event = RoomEvent(name.removeprefix(CHANNEL_PREFIX), payload["html"],
                                      payload.get("message_id"), payload.get("skip_user"))
                except (ValueError, KeyError, TypeError):
                    log.warning("dropping malformed event on %s", name)
                    continue
                self._deliver(event)
            elif kind == "subscribe":
                future = self._confirmations.pop(message["channel"].decode(), None)
                if future is not None and not future.done():
                    future.set_result(None)
            elif kind == "pong":
                self._last_pong = time.monotonic()

    async def _publish_queued(self, client: Redis) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                batch = list(islice(self._queue, PUBLISH_BATCH))
                async with client.pipeline(transaction=False) as pipe:
                    for event in batch:
                        pipe.publish(channel(event.room), encode(event))
                    await pipe.execute()
                for _ in batch:  # dropped only once sent: a failure delivers them locally
                    self._queue.popleft()
            self._drained.set()

    async def _watch(self, pubsub: PubSub) -> None:
        while True:
            await asyncio.sleep(PING_EVERY)
            if time.monotonic() - self._last_pong > 3 * PING_EVERY:
                raise ConnectionError("redis pub/sub connection stopped answering")
            await pubsub.ping()

