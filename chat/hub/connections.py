"""The live connections of this process: who to close when it shuts down, and who to
ask to catch up when fan-out recovers from a fault."""

from __future__ import annotations

import logging
from typing import Protocol

from chat.broker import RoomEvent
from chat.close_codes import CATCH_UP, RESTARTING

log = logging.getLogger("chat")


class LiveConnection(Protocol):
    """A browser's live connection, as the hub sees it."""

    def __call__(self, event: RoomEvent) -> None:
        """Queue the event for sending (never blocks)."""

    def stop(self, close_code: int) -> None:
        """Close the socket with `close_code` soon."""


class Connections:
    def __init__(self) -> None:
        self._open: set[LiveConnection] = set()
        self._accepting = True

    def add(self, connection: LiveConnection) -> None:
        """Count a new connection; while shutting down it is closed at once."""
        self._open.add(connection)
        if not self._accepting:
            connection.stop(RESTARTING)

    def discard(self, connection: LiveConnection) -> None:
        self._open.discard(connection)

    def close_all(self) -> None:
        """Shutting down: close every live connection so browsers reconnect elsewhere or
        after the restart, and close new ones at once."""
        self._accepting = False
        for connection in tuple(self._open):
            connection.stop(RESTARTING)

    def resync(self) -> None:
        """Close every live connection with "try again": each reconnects and catches up
        from the store what the broker could not deliver."""
        log.warning("fan-out recovered: asking live connections to catch up")
        for connection in tuple(self._open):
            connection.stop(CATCH_UP)
