"""Presence in this one process: each user's connections counted per room, and the
grace period after their last one closes before they leave."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from chat.presence import ENTERED, STAYED, Arrival, Held, OnLeft


@dataclass(slots=True)
class _Member:
    name: str
    connections: int = 0
    leaving: asyncio.TimerHandle | None = field(default=None, repr=False)


class LocalPresence:
    def __init__(self, grace: float, on_left: OnLeft) -> None:
        self._grace = grace
        self._on_left = on_left
        self._rooms: dict[str, dict[str, _Member]] = {}
        self._pending: set[asyncio.Task] = set()

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        for members in self._rooms.values():
            for member in members.values():
                if member.leaving is not None:
                    member.leaving.cancel()

    async def members(self, room: str) -> dict[str, str]:
        return {user_id: member.name for user_id, member in self._rooms.get(room, {}).items()}

    async def count(self, room: str) -> int:
        return len(self._rooms.get(room, {}))

    async def has(self, room: str, user_id: str) -> bool:
        return user_id in self._rooms.get(room, {})

    async def arrive(self, room: str, user_id: str, name: str) -> Arrival:
        members = self._rooms.setdefault(room, {})
        member = members.get(user_id)
        if member is None:
            members[user_id] = _Member(name, connections=1)
            return ENTERED
        if member.leaving is not None:
            member.leaving.cancel()
            member.leaving = None
        member.connections += 1
        if member.name == name:
            return STAYED
        renamed_from, member.name = member.name, name
        return Arrival(entered=False, renamed_from=renamed_from)

    async def depart(self, room: str, user_id: str) -> None:
        member = self._rooms.get(room, {}).get(user_id)
        if member is None:
            return
        member.connections -= 1
        if member.connections <= 0:
            self._start_leaving(room, user_id, member)

    def _start_leaving(self, room: str, user_id: str, member: _Member) -> None:
        loop = asyncio.get_running_loop()
        member.leaving = loop.call_later(self._grace, self._leave, room, user_id)

    def held(self) -> list[Held]:
        return [
            Held(room, user_id, member.name)
            for room, members in self._rooms.items()
            for user_id, member in members.items()
        ]

    async def restore(self, members: list[Held]) -> list[Held]:
        for held in members:
            room = self._rooms.setdefault(held.room, {})
            if held.user_id not in room:
                member = room[held.user_id] = _Member(held.name)
                self._start_leaving(held.room, held.user_id, member)
        return members

    def _leave(self, room: str, user_id: str) -> None:
        members = self._rooms.get(room, {})
        member = members.pop(user_id, None)
        if not members:
            self._rooms.pop(room, None)
        if member is None:
            return
        task = asyncio.get_running_loop().create_task(self._on_left(room, user_id, member.name))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
