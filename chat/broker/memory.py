"""In-process broker: fan-out to the connections of this one process.

It reaches no other process, so running several workers with it would split rooms
silently. Each instance therefore holds an exclusive lock on a file beside the database
while it runs, and a second process on the same database refuses to start.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from collections.abc import Callable
from pathlib import Path

from chat.broker import LocalFanout, RoomEvent, Subscriber
from chat.settings import Settings, SettingsError

ONE_PROCESS_ONLY = (
    "CHAT_BROKER_URL is not set: the in-process broker serves one process only, and "
    "another process already serves this database ({lock}); set "
    "CHAT_BROKER_URL=redis://... to run several workers"
)


class SingleProcessOnly(SettingsError):
    """A second process tried to serve the same database with the in-process broker."""


def lock_path(settings: Settings) -> Path:
    """The lock file: beside the SQLite database, or for another store in the instance
    folder, named after its URL."""
    database = settings.sqlite_path
    if database is not None:
        return database.with_name(database.name + ".broker.lock")
    digest = hashlib.sha256(settings.database_url.encode()).hexdigest()[:12]
    return settings.instance_path / f"broker-{digest}.lock"


class InProcessBroker:
    def __init__(self, lock: Path | None = None) -> None:
        self._fanout = LocalFanout()
        self._lock_path = lock
        self._lock_fd: int | None = None

    async def start(self) -> None:
        if self._lock_path is None or self._lock_fd is not None:
            return
        self._lock_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise SingleProcessOnly(ONE_PROCESS_ONLY.format(lock=self._lock_path)) from None
        self._lock_fd = fd

    async def stop(self) -> None:
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

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
