"""Presence: who is in each room right now, counted by user, not by connection.

A user's first connection makes them arrive; their last connection going starts a grace
period, and only if none comes back in it do they leave. A page refresh therefore
neither leaves nor enters. `Presence` is the boundary; `local.LocalPresence` counts the
connections of this one process, `redis.RedisPresence` shares them with every process.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from chat.settings import Settings

OnLeft = Callable[[str, str, str], Awaitable[None]]
# (room, user id, name or None): shared presence found the member lists pages were told
# wrong after a fault (a member listed again, or None: no longer); nobody came or went.
OnCorrected = Callable[[str, str, str | None], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Arrival:
    """What a new connection changed: `entered` when its user was in the room nowhere
    before; `renamed_from` their earlier name when they were, under another one."""

    entered: bool
    renamed_from: str | None = None


STAYED = Arrival(entered=False)
ENTERED = Arrival(entered=True)


@dataclass(frozen=True, slots=True)
class Held:
    """A member this process holds (connected, or in their grace period)."""

    room: str
    user_id: str
    name: str


class Presence(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def arrive(self, room: str, user_id: str, name: str) -> Arrival:
        """Count a new connection under the session's current name."""

    async def depart(self, room: str, user_id: str) -> None:
        """Count a closed connection; after the grace period with none back, the user
        has left and `on_left(room, user_id, name)` runs."""

    async def members(self, room: str) -> dict[str, str]:
        """The room's users: user id -> display name."""

    async def has(self, room: str, user_id: str) -> bool: ...

    async def count(self, room: str) -> int: ...

    def held(self) -> list[Held]:
        """The members this process holds, to hand over across a restart."""

    async def restore(self, members: list[Held]) -> list[Held]:
        """After a restart, members whose sockets were closed for it count as present
        for a grace period, so coming back announces nothing; those not back by then
        leave as usual. Returns the ones taken back (not gone meanwhile)."""


def open_presence(
    settings: Settings, grace: float, on_left: OnLeft, on_corrected: OnCorrected
) -> Presence:
    """Presence shared through Redis when `CHAT_BROKER_URL` is set, else this process's."""
    if settings.broker_url:
        from chat.presence.redis import RedisPresence

        return RedisPresence(settings.broker_url, grace, on_left, on_corrected)
    from chat.presence.local import LocalPresence

    return LocalPresence(grace, on_left)
