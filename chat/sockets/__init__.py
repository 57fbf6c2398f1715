"""How many live sockets each session and each client address holds, and who may open
one more (`CHAT_SOCKETS_PER_USER`, `CHAT_SOCKETS_PER_ADDRESS`).

A socket takes a place with `claim` once it is admitted and gives it back with `release`
when it closes, before its close frame goes out, so a page that reconnects at once finds
its place free. `local.LocalSockets` counts this process's sockets; with
`CHAT_BROKER_URL`, `redis.RedisSockets` counts the sockets of every process.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from chat.settings import Settings


@dataclass(frozen=True, slots=True)
class Claim:
    """One socket's place: its session's user id and, when that limit is on, its address."""

    user_id: str
    address: str | None


class Sockets(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def claim(self, user_id: str, address: str) -> Claim | None:
        """Take a place for one more socket; None when the session or the address
        already holds as many as allowed."""

    async def release(self, claim: Claim) -> None:
        """The socket closed: its place is free from now on."""


def open_sockets(settings: Settings) -> Sockets:
    if settings.broker_url:
        from chat.sockets.redis import RedisSockets

        return RedisSockets(
            settings.broker_url, settings.sockets_per_user, settings.sockets_per_address)
    from chat.sockets.local import LocalSockets

    return LocalSockets(settings.sockets_per_user, settings.sockets_per_address)
