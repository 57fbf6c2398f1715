"""The lobby: starting rooms, finding them by code (without letting codes be
enumerated) and letting people in while there is room."""

from __future__ import annotations

import logging
from datetime import timedelta

from chat import rooms
from chat.presence import Presence
from chat.ratelimits import RateLimits
from chat.settings import Settings
from chat.store import Store, utc_now

log = logging.getLogger("chat")

# A new room counts as empty only from this long after creation, so that its creator
# has time to arrive even when empty rooms are deleted at once.
NEW_ROOM_GRACE = timedelta(seconds=60)
# Draws before giving up on finding a free code (only a nearly full code space needs more).
CODE_ATTEMPTS = 100


class TooManyLookups(Exception):
    """This address looked up too many codes that do not exist."""


class TooManyRooms(Exception):
    """This address started too many rooms in a short time."""


class Lobby:
    def __init__(
        self, settings: Settings, store: Store, limits: RateLimits, presence: Presence
    ) -> None:
        self._settings = settings
        self._store = store
        self._limits = limits
        self._presence = presence

    async def create_room(self, address: str) -> str:
        """A new room's code; raises `TooManyRooms` when `address` started too many."""
        if not await self._limits.creations.hit(address):
            raise TooManyRooms(address)
        empty_from = utc_now() + NEW_ROOM_GRACE
        for _ in range(CODE_ATTEMPTS):
            code = rooms.new_code(self._settings.code_length)
            if await self._store.add_room(code, empty_from):
                log.info("room created: %s", code)
                return code
        raise RuntimeError(f"no free room code after {CODE_ATTEMPTS} draws: raise CHAT_CODE_LENGTH")

    async def room_exists(self, code: str) -> bool:
        if not rooms.is_well_formed_code(code, self._settings.code_length):
            return False
        return await self._store.room_exists(code)

    async def find_room(self, code: str, address: str) -> bool:
        """Whether the room exists, counting misses against the address's failed-join
        limit so that codes cannot be enumerated; raises `TooManyLookups`."""
        limit = self._limits.failed_joins
        if await limit.exhausted(address):
            raise TooManyLookups(address)
        if await self.room_exists(code):
            return True
        await limit.hit(address)
        return False

    async def is_full_for(self, code: str, user_id: str) -> bool:
        """A user already in the room always gets back in; others only while there is room."""
        if await self._presence.has(code, user_id):
            return False
        return await self._presence.count(code) >= self._settings.room_capacity

    async def keep_alive_without_socket(self, code: str) -> None:
        """A post from a page without JavaScript (no live connection) restarts the
        empty-room clock, so a room used that way is not deleted under its users."""
        if await self._presence.count(code) == 0:
            await self._store.set_room_empty(code, utc_now() + NEW_ROOM_GRACE)
