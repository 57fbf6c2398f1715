"""Redis broker: fan-out across processes and machines through Redis pub/sub.

One PubSub connection per process, one channel per room (`chat:room:<CODE>`), subscribed
while the room has a subscriber here. `publish` queues the event; one publisher task
sends the queue in order, so this process's events of a room reach Redis in the order
they were published. Local subscribers receive events back through Redis like everyone
else: one path, hence one order in every process.

While Redis is unreachable the broker delivers each event to this process's subscribers
directly (people on one process keep chatting), says so through `healthy`, and retries
with backoff; once back it resubscribes, and calls the `on_recovered` callbacks so that
connections catch up from the store on what other processes published meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable

from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from chat.broker import LocalFanout, RoomEvent, Subscriber
from chat.broker.redis_link import STOP_DRAIN, RedisLink, channel
from chat.redis_client import describe, safe_url

log = logging.getLogger("chat")


class RedisBroker(RedisLink):
    def __init__(self, url: str) -> None:
        self._url = url
        self._fanout = LocalFanout()
        self._rooms: set[str] = set()  # rooms with a subscriber here
        self._queue: deque[RoomEvent] = deque()
        self._wake = asyncio.Event()
        self._drained = asyncio.Event()  # set while the queue is empty
        self._broken = asyncio.Event()
        self._healthy = False
        self._client: Redis | None = None
        self._connection: PubSub | None = None  # the PubSub connection, to close
        self._pubsub: PubSub | None = None  # the same, while subscribe commands can be sent
        self._reader: asyncio.Task | None = None
        self._failure = "redis connection lost"
        self._confirmations: dict[str, asyncio.Future[None]] = {}
        self._last_pong = 0.0
        self._callbacks: list[Callable[[], None]] = []
        self._supervisor: asyncio.Task | None = None

    # Broker protocol ---------------------------------------------------------

    async def start(self) -> None:
        try:
            await self._connect()
        except Exception as error:
            await self._disconnect()
            log.warning("redis broker unreachable at start (%s): delivering locally "
                        "and retrying", describe(error))
        else:
            self._healthy = True
            log.info("redis broker connected: %s", safe_url(self._url))
        self._supervisor = asyncio.create_task(self._supervise(), name="redis-broker")

    async def stop(self) -> None:
        if self._healthy and self._queue:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._drained.wait(), STOP_DRAIN)
        if self._supervisor is not None:
            self._supervisor.cancel()
            await asyncio.gather(self._supervisor, return_exceptions=True)
            self._supervisor = None
        self._healthy = False
        self._deliver_queued_locally()
        await self._disconnect()

    def publish(self, event: RoomEvent) -> None:
        if self._healthy:
            self._queue.append(event)
            self._drained.clear()
            self._wake.set()
        else:
            self._deliver(event)

    async def subscribe(self, room: str, subscriber: Subscriber) -> None:
        if not self._fanout.add(room, subscriber):
            return
        self._rooms.add(room)
        pubsub = self._pubsub
        if pubsub is None:
            return  # subscribed on reconnection
        try:
            await self._subscribe(pubsub, [room])
        except Exception as error:
            self._fail(error)

    async def unsubscribe(self, room: str, subscriber: Subscriber) -> None:
        if not self._fanout.discard(room, subscriber):
            return
        self._rooms.discard(room)
        pubsub = self._pubsub
        if pubsub is None:
            return
        try:
            await pubsub.unsubscribe(channel(room))
        except Exception as error:
            self._fail(error)

    def on_recovered(self, callback: Callable[[], None]) -> None:
        self._callbacks.append(callback)

    @property
    def healthy(self) -> bool:
        return self._healthy

    def _fail(self, error: BaseException) -> None:
        """Redis failed: deliver locally from now on (queued events first, in order)."""
        if self._healthy:
            log.warning("redis broker unreachable (%s): delivering locally only, "
                        "retrying", describe(error))
        self._healthy = False
        self._failure = describe(error)
        self._pubsub = None
        self._deliver_queued_locally()
        self._broken.set()

    def _deliver_queued_locally(self) -> None:
        while self._queue:
            self._deliver(self._queue.popleft())
        self._drained.set()

    def _deliver(self, event: RoomEvent) -> None:
        try:
            self._fanout.deliver(event)
        except Exception:
            log.exception("delivering an event failed: room=%s", event.room)

