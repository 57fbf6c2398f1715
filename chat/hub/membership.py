"""Membership: who is in each room. Entering and leaving (with the notices and member
list changes they announce), the member list a connecting page gets, and keeping the
members across a restart so coming back announces nobody again."""

from __future__ import annotations

import logging

from chat import texts
from chat.broker import Broker
from chat.fragments import Fragments
from chat.hub.announcements import Announcements
from chat.hub.connections import Connections, LiveConnection
from chat.hub.empty_rooms import EmptyRooms
from chat.presence import Held, Presence, open_presence
from chat.settings import Settings
from chat.store import Store, utc_now

log = logging.getLogger("chat")

MEMBER_LISTS_KEPT = 1_000


class Membership:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        broker: Broker,
        fragments: Fragments,
        connections: Connections,
        empty_rooms: EmptyRooms,
    ) -> None:
        self._store = store
        self._broker = broker
        self._fragments = fragments
        self._connections = connections
        self._empty_rooms = empty_rooms
        self.presence: Presence = open_presence(
            settings, settings.leave_grace, self._left, self._corrected
        )
        self._member_lists: dict[str, tuple[dict[str, str], str]] = {}  # room -> last sent
        self._announcements = Announcements(
            broker.publish,
            self.presence.count,
            lambda changes, count: fragments.announcement_frame(
                changes.notices, changes.removed_first, changes.listed, count
            ),
        )

    async def stop(self) -> None:
        await self._announcements.stop()
        await self.presence.stop()

    async def enter(self, code: str, user_id: str, name: str, connection: LiveConnection) -> None:
        self._connections.add(connection)
        await self._broker.subscribe(code, connection)
        arrival = await self.presence.arrive(code, user_id, name)
        if arrival.renamed_from:
            notice = texts.renamed(arrival.renamed_from, name)
            self._announcements.add(code, notice, user_id, name, moved=True)
        if not arrival.entered:
            return
        self._empty_rooms.cancel_deletion(code)
        await self._store.set_room_empty(code, None)
        log.info("user entered: room=%s user=%s", code, user_id)
        self._announcements.add(code, texts.entered(name), user_id, name)

    async def exit(self, code: str, user_id: str, connection: LiveConnection) -> None:
        self._connections.discard(connection)
        await self._broker.unsubscribe(code, connection)
        await self.presence.depart(code, user_id)

    async def _left(self, code: str, user_id: str, name: str) -> None:
        log.info("user left: room=%s user=%s", code, user_id)
        self._announcements.add(code, texts.left(name), user_id, None)
        if await self.presence.count(code) == 0:
            await self._store.set_room_empty(code, utc_now())
            self._empty_rooms.schedule_deletion(code)

    async def _corrected(self, code: str, user_id: str, name: str | None) -> None:
        """After a fault, shared presence knows better than what pages were told: fix the
        lists (nobody came or went, so no notice)."""
        self._announcements.add(code, None, user_id, name)

    async def member_list(self, code: str, viewer_id: str, viewer_name: str) -> str:
        """The member list a room page shows. The viewer is in the room even before (or
        without) a live connection: a page without JavaScript never connects, and must
        not say "Here now (0)"."""
        members = {**await self.presence.members(code), viewer_id: viewer_name}
        return self._fragments.members(members)

    async def members_frame(self, code: str) -> str:
        """The whole member list, for a page that connects. Pages arriving together in a
        room that has not changed meanwhile share one rendering."""
        members = await self.presence.members(code)
        cached = self._member_lists.get(code)
        if cached is not None and cached[0] == members:
            return cached[1]
        html = self._fragments.members_frame(members)
        self._member_lists[code] = (members, html)
        if len(self._member_lists) > MEMBER_LISTS_KEPT:
            del self._member_lists[next(iter(self._member_lists))]  # the oldest
        return html

    async def park(self) -> None:
        """Shutting down: keep who is in each room, so that after the restart coming
        back within the grace period announces nobody again."""
        held = self.presence.held()
        try:
            await self._store.park_members([(m.room, m.user_id, m.name) for m in held])
        except Exception:
            log.exception("keeping the members across the restart failed")

    async def take_back_parked(self) -> None:
        parked = [Held(*member) for member in await self._store.take_parked_members()]
        taken = await self.presence.restore(parked)
        for code in {member.room for member in taken}:
            await self._store.set_room_empty(code, None)
        if taken:
            log.info("members kept across the restart: %d", len(taken))
