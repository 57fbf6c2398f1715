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
import json
import logging
import time
from collections import deque
from collections.abc import Callable
from itertools import islice

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from chat.broker import LocalFanout, RoomEvent, Subscriber

log = logging.getLogger("chat")

CHANNEL_PREFIX = "chat:room:"
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 5.0
CONNECT_TIMEOUT = 2.0
COMMAND_TIMEOUT = 5.0
SUBSCRIBE_TIMEOUT = 2.0
PING_EVERY = 5.0  # a PubSub connection that answers no PING for 3 of these is dead
PUBLISH_BATCH = 256
STOP_DRAIN = 1.0


def connect(url: str, **options: object) -> Redis:
    """A client that fails fast instead of retrying by itself: a silent reconnect would
    hide a gap in delivery, which only the caller can repair."""
    return Redis.from_url(
        url,
        socket_connect_timeout=CONNECT_TIMEOUT,
        socket_timeout=COMMAND_TIMEOUT,
        retry=Retry(NoBackoff(), 0),
        **options,
    )


def channel(room: str) -> str:
    return CHANNEL_PREFIX + room


def encode(event: RoomEvent) -> str:
    payload = {"html": event.html, "message_id": event.message_id, "skip_user": event.skip_user}
    return json.dumps(payload, separators=(",", ":"))


class RedisBroker:
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
                        "and retrying", _describe(error))
        else:
            self._healthy = True
            log.info("redis broker connected: %s", _safe_url(self._url))
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

    # Connection life cycle ---------------------------------------------------

    async def _connect(self) -> None:
        """Connect both connections and subscribe to every room that has a subscriber."""
        self._broken = asyncio.Event()
        client = self._client = connect(self._url)
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
                    await asyncio.wait_for(closable.aclose(), CONNECT_TIMEOUT)

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
                log.debug("redis broker still unreachable: %s", _describe(error))
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

    def _fail(self, error: BaseException) -> None:
        """Redis failed: deliver locally from now on (queued events first, in order)."""
        if self._healthy:
            log.warning("redis broker unreachable (%s): delivering locally only, "
                        "retrying", _describe(error))
        self._healthy = False
        self._failure = _describe(error)
        self._pubsub = None
        self._deliver_queued_locally()
        self._broken.set()

    def _deliver_queued_locally(self) -> None:
        while self._queue:
            self._deliver(self._queue.popleft())
        self._drained.set()

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

    def _deliver(self, event: RoomEvent) -> None:
        try:
            self._fanout.deliver(event)
        except Exception:
            log.exception("delivering an event failed: room=%s", event.room)


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def _safe_url(url: str) -> str:
    """The URL without a password."""
    scheme, sep, rest = url.partition("://")
    _, at, host = rest.rpartition("@")
    return f"{scheme}{sep}{host}" if at else url
