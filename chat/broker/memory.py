"""In-process broker: fan-out to the connections of this one process."""

from __future__ import annotations

from collections.abc import Callable

from chat.broker import LocalFanout, RoomEvent, Subscriber


class InProcessBroker:
    def __init__(self) -> None:
        self._fanout = LocalFanout()

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    def publish(self, event: RoomEvent) -> None:
        self._fanout.deliver(event)

    async def subscribe(self, room: str, subscriber: Subscriber) -> None:
        self._fanout.add(room, subscriber)

    async def unsubscribe(self, room: str, subscriber: Subscriber) -> None:
        self._fanout.discard(room, subscriber)

    def on_recovered(self, callback: Callable[[], None]) -> None:
        pass  # delivery within one process is never interrupted

    @property
    def healthy(self) -> bool:
        return True
