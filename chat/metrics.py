"""`/metrics`: what operators watch, in Prometheus text format (`prometheus-client`).

The hot path only adds to plain integers on `Counts` (no lock, no label lookup per frame);
the library's metrics are brought up to date from them when they are read:

- one process: at every scrape, into this app's own registry;
- `python -m chat --workers N`: the parent gives every worker the same
  `PROMETHEUS_MULTIPROC_DIR` (prometheus-client's multiprocess mode), each worker copies
  its counts there every `SHARE_EVERY` seconds (and before answering a scrape), and
  whichever worker answers `/metrics` reads every worker's files: counters are summed,
  `chat_open_connections` and `chat_rooms_open` come per worker (label `pid`).

The multiprocess mode is chosen by prometheus-client when it is imported, from the
environment, which is why only the parent of `--workers` sets the variable.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge
from prometheus_client import generate_latest as render
from prometheus_client.multiprocess import MultiProcessCollector
from quart import Blueprint, Response, current_app
from quart_schema import hide

from chat.broker import Broker, RoomEvent, Subscriber

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
SHARE_EVERY = 1.0
blueprint = Blueprint("metrics", __name__)


@dataclass(slots=True)
class Counts:
    """Plain integers the hot path adds to."""

    frames_delivered: int = 0
    messages_stored: int = 0
    slow_client_closes: int = 0
    catch_ups: int = 0
    open_connections: int = 0
    rooms_open: int = 0
    broker_up: int = 1


COUNTERS = {
    "frames_delivered": ("chat_frames_delivered", "WebSocket frames sent to browsers"),
    "messages_stored": ("chat_messages_stored", "Messages stored and published"),
    "slow_client_closes": ("chat_slow_client_closes",
                           "Live sockets closed with 1013 because they fell behind"),
    "catch_ups": ("chat_catch_ups", "(Re)connections that were sent messages they missed"),
}
GAUGES = {
    "open_connections": ("chat_open_connections", "Live WebSocket connections", "liveall"),
    "rooms_open": ("chat_rooms_open", "Rooms with a live connection on this process",
                   "liveall"),
    "broker_up": ("chat_broker_up", "1 while fan-out through the broker works", "livemin"),
}


class Metrics:
    def __init__(self, broker_healthy: Callable[[], bool]) -> None:
        self.counts = Counts()
        self._broker_healthy = broker_healthy
        self._shared_dir = os.environ.get(MULTIPROCESS_ENV) or None
        self._registry = CollectorRegistry(auto_describe=True)
        target = None if self._shared_dir else self._registry
        self._counters = {key: Counter(name, doc, registry=target)
                          for key, (name, doc) in COUNTERS.items()}
        self._gauges = {key: Gauge(name, doc, registry=target, multiprocess_mode=mode)
                        for key, (name, doc, mode) in GAUGES.items()}
        self._copied = Counts()
        self._sharer: asyncio.Task | None = None
        if self._shared_dir:
            MultiProcessCollector(self._registry, path=self._shared_dir)

    def _copy(self) -> None:
        """Bring the library's metrics up to date with the counts."""
        counts, copied = self.counts, self._copied
        counts.broker_up = int(self._broker_healthy())
        for key, counter in self._counters.items():
            delta = getattr(counts, key) - getattr(copied, key)
            if delta:
                counter.inc(delta)
                setattr(copied, key, getattr(counts, key))
        for key, gauge in self._gauges.items():
            gauge.set(getattr(counts, key))

    def exposition(self) -> bytes:
        self._copy()
        return render(self._registry)

    async def start(self) -> None:
        if self._shared_dir:
            self._sharer = asyncio.create_task(self._share_forever(), name="metrics-sharer")

    async def stop(self) -> None:
        if self._sharer is not None:
            self._sharer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sharer

    async def _share_forever(self) -> None:
        while True:
            self._copy()
            await asyncio.sleep(SHARE_EVERY)


class CountingBroker:
    """The broker, counting stored messages published and rooms open on this process."""

    def __init__(self, broker: Broker, counts: Counts) -> None:
        self._broker = broker
        self._counts = counts
        self._subscribers: dict[str, int] = {}

    def __getattr__(self, name: str):
        return getattr(self._broker, name)

    @property
    def healthy(self) -> bool:
        return self._broker.healthy

    def publish(self, event: RoomEvent) -> None:
        if event.message_id is not None:
            self._counts.messages_stored += 1
        self._broker.publish(event)

    async def subscribe(self, room: str, subscriber: Subscriber) -> None:
        await self._broker.subscribe(room, subscriber)
        self._subscribers[room] = self._subscribers.get(room, 0) + 1
        self._counts.rooms_open = len(self._subscribers)

    async def unsubscribe(self, room: str, subscriber: Subscriber) -> None:
        left = self._subscribers.get(room, 0) - 1
        if left > 0:
            self._subscribers[room] = left
        else:
            self._subscribers.pop(room, None)
        self._counts.rooms_open = len(self._subscribers)
        await self._broker.unsubscribe(room, subscriber)


@blueprint.get("/metrics")
@hide
async def metrics() -> Response:
    watch: Metrics = current_app.extensions["chat.metrics"]
    return Response(watch.exposition(), content_type=CONTENT_TYPE_LATEST)
