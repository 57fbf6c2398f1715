"""The fan-out boundary: events for a room reach every subscriber of that room.

An event carries HTML rendered once, and framed once for sockets written to directly;
every subscriber gets the same string and the same frame. The hub
publishes, live connections subscribe; `open_broker` picks the implementation from
`CHAT_BROKER_URL` (in-process by default).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from chat.frames import text_frame
from chat.settings import Settings, SettingsError


@dataclass(slots=True)
class RoomEvent:
    room: str
    html: str
    # Set for stored messages, so a connection can skip what its catch-up already sent.
    message_id: int | None = None
    # Set for what everyone but this user gets (someone is typing).
    skip_user: str | None = None
    _frame: bytes | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def frame(self) -> bytes:
        """The HTML as one WebSocket text frame, built by the first socket that asks."""
        if self._frame is None:
            self._frame = text_frame(self.html)
        return self._frame


Subscriber = Callable[[RoomEvent], None]


class Broker(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def publish(self, event: RoomEvent) -> None:
        """Hand the event over for delivery; events of one room arrive in publish order."""

    async def subscribe(self, room: str, subscriber: Subscriber) -> None: ...

    async def unsubscribe(self, room: str, subscriber: Subscriber) -> None: ...

    def on_recovered(self, callback: Callable[[], None]) -> None:
        """Call `callback` after fan-out was interrupted and works again: events of the
        gap may be lost, so connections must catch up from the store."""

    @property
    def healthy(self) -> bool:
        """False while events cannot reach other processes."""


class LocalFanout:
    """Subscribers of this process, by room; what every broker delivers into."""

    def __init__(self) -> None:
        self._rooms: dict[str, set[Subscriber]] = {}

    def add(self, room: str, subscriber: Subscriber) -> bool:
        """Add; True when it is the room's first subscriber here."""
        subscribers = self._rooms.setdefault(room, set())
        subscribers.add(subscriber)
        return len(subscribers) == 1

    def discard(self, room: str, subscriber: Subscriber) -> bool:
        """Remove; True when the room has no subscriber here any more."""
        subscribers = self._rooms.get(room)
        if subscribers is None:
            return False
        subscribers.discard(subscriber)
        if subscribers:
            return False
        del self._rooms[room]
        return True

    def deliver(self, event: RoomEvent) -> None:
        for subscriber in tuple(self._rooms.get(event.room, ())):
            subscriber(event)


async def open_broker(settings: Settings) -> Broker:
    """The broker `CHAT_BROKER_URL` names, started: Redis for redis:// URLs, else the
    in-process one (which refuses to start when another process serves the database)."""
    broker: Broker
    if settings.broker_url.startswith(("redis://", "rediss://")):
        from chat.broker.redis import RedisBroker

        broker = RedisBroker(settings.broker_url)
    elif settings.broker_url:
        raise SettingsError(
            f"CHAT_BROKER_URL {settings.broker_url!r} names a broker this build lacks"
        )
    else:
        from chat.broker.memory import InProcessBroker, lock_path

        broker = InProcessBroker(lock_path(settings))
    await broker.start()
    return broker
