"""The hub: what happens in rooms, in order — store first, then render once, then publish.

Routes and live connections call the hub; the hub alone talks to the store, the broker
and presence, and it owns the timers that delete rooms left empty.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable
from datetime import timedelta
from typing import Protocol

from chat import rooms
from chat.announcements import Announcements
from chat.broker import Broker, RoomEvent
from chat.fragments import Fragments, Mentionable
from chat.presence import Held, Presence, open_presence
from chat.ratelimits import RateLimits
from chat.settings import Settings
from chat.store import Found, Message, MessageMissing, NotYours, Page, Posted, Store, utc_now

log = logging.getLogger("chat")

# A new room counts as empty only from this long after creation, so that its creator
# has time to arrive even when empty rooms are deleted at once.
NEW_ROOM_GRACE = timedelta(seconds=60)
SWEEP_EVERY = 30.0
CATCH_UP_PAGE = 200
CATCH_UP_OVERLAP = 20
# Draws before giving up on finding a free code (only a nearly full code space needs more).
CODE_ATTEMPTS = 100
SLOW_DOWN = "You are sending messages too quickly. Please wait a moment."
# Someone's "is typing" goes out at most this often; pages drop it a few seconds after.
TYPING_EVERY = 2.0
TYPING_TRACKED = 10_000
MEMBER_LISTS_KEPT = 1_000


# WebSocket close codes after which htmx reconnects by itself (and the page catches up).
RESTARTING = 1012
CATCH_UP = 1013


class LiveConnection(Protocol):
    """A browser's live connection, as the hub sees it."""

    def __call__(self, event: RoomEvent) -> None:
        """Queue the event for sending (never blocks)."""

    def stop(self, close_code: int) -> None:
        """Close the socket with `close_code` soon."""


class TooManyLookups(Exception):
    """This address looked up too many codes that do not exist."""


class TooFast(rooms.RuleBroken):
    """The sender is over the message rate limit (a rule broken, said as `SLOW_DOWN`)."""


class Hub:
    def __init__(self, settings: Settings, store: Store, broker: Broker, fragments: Fragments):
        self.settings = settings
        self.rate_limits = RateLimits.from_settings(settings)
        self.store = store
        self.broker = broker
        self.fragments = fragments
        self.presence: Presence = open_presence(
            settings, settings.leave_grace, self._left, self._corrected
        )
        self._connections: set[LiveConnection] = set()
        self._accepting = True
        broker.on_recovered(self._resync_connections)
        self._deletions: dict[str, asyncio.Task] = {}
        self._typing: dict[tuple[str, str], float] = {}  # (room, user) -> when last told
        self._member_lists: dict[str, tuple[dict[str, str], str]] = {}  # room -> last sent
        self._announcements = Announcements(
            broker.publish, self.presence.count, fragments.announcement_frame
        )
        self._sweeper: asyncio.Task | None = None

    async def start(self) -> None:
        await self.presence.start()
        if not self.shared:
            # Alone, this process knows nobody is connected yet. With shared presence,
            # rooms still occupied elsewhere must stay, and members of a crashed
            # process are reaped (and their rooms marked empty) by presence.
            await self.store.set_unknown_rooms_empty(utc_now())
        await self._take_back_parked_members()
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="room-sweeper")

    def close_connections(self) -> None:
        """Shutting down: close every live connection so browsers reconnect elsewhere or
        after the restart, and close new ones at once."""
        self._accepting = False
        for connection in tuple(self._connections):
            connection.stop(RESTARTING)

    async def stop(self) -> None:
        self.close_connections()
        await self.park_members()
        if self._sweeper:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
        for task in self._deletions.values():
            task.cancel()
        await self._announcements.stop()
        await self.presence.stop()

    async def park_members(self) -> None:
        """Shutting down: keep who is in each room, so that after the restart coming
        back within the grace period announces nobody again."""
        held = self.presence.held()
        try:
            await self.store.park_members([(m.room, m.user_id, m.name) for m in held])
        except Exception:
            log.exception("keeping the members across the restart failed")

    async def _take_back_parked_members(self) -> None:
        parked = [Held(*member) for member in await self.store.take_parked_members()]
        taken = await self.presence.restore(parked)
        for code in {member.room for member in taken}:
            await self.store.set_room_empty(code, None)
        if taken:
            log.info("members kept across the restart: %d", len(taken))

    def _resync_connections(self) -> None:
        """Close every live connection with "try again": each reconnects and catches up
        from the store what the broker could not deliver."""
        log.warning("fan-out recovered: asking live connections to catch up")
        for connection in tuple(self._connections):
            connection.stop(CATCH_UP)

    # Rooms -------------------------------------------------------------------

    async def create_room(self) -> str:
        empty_from = utc_now() + NEW_ROOM_GRACE
        for _ in range(CODE_ATTEMPTS):
            code = rooms.new_code(self.settings.code_length)
            if await self.store.add_room(code, empty_from):
                log.info("room created: %s", code)
                return code
        raise RuntimeError(f"no free room code after {CODE_ATTEMPTS} draws: raise CHAT_CODE_LENGTH")

    async def room_exists(self, code: str) -> bool:
        if not rooms.is_well_formed_code(code, self.settings.code_length):
            return False
        return await self.store.room_exists(code)

    async def find_room(self, code: str, address: str) -> bool:
        """Whether the room exists, counting misses against the address's failed-join
        limit so that codes cannot be enumerated; raises `TooManyLookups`."""
        limit = self.rate_limits.failed_joins
        if await limit.exhausted(address):
            raise TooManyLookups(address)
        if await self.room_exists(code):
            return True
        await limit.hit(address)
        return False

    async def is_full_for(self, code: str, user_id: str) -> bool:
        """A user already in the room always gets back in; others only while there is room."""
        presence = self.presence
        if await presence.has(code, user_id):
            return False
        return await presence.count(code) >= self.settings.room_capacity

    # Messages ----------------------------------------------------------------

    async def post_message(
        self, code: str, user_id: str, author: str, raw_text: str, nonce: str | None = None
    ) -> Posted:
        """Check, store, then publish; raises `RuleBroken` or `RoomGone`. A nonce the
        user already posted in the room publishes nothing: everyone has that message."""
        text = rooms.clean_message(raw_text, self.settings.message_max)
        if not await self.rate_limits.messages.hit(user_id):
            raise TooFast(SLOW_DOWN)
        posted = await self.store.add_message(code, user_id, author, text, nonce)
        if posted.new:
            message = posted.message
            mentionable = await self._mentionable(code, (message,))
            html = self.fragments.messages_frame((message,), mentionable)
            # The message lands: its author is no longer typing.
            html += self.fragments.typing_done(user_id)
            self.broker.publish(RoomEvent(code, html, message.id))
        return posted

    async def edit_message(self, code: str, message_id: int, user_id: str, raw_text: str) -> None:
        """Raises `MessageMissing` or `NotYours` before `RuleBroken`: whether the text would
        do is no business of someone who may not edit the message."""
        try:
            text = rooms.clean_message(raw_text, self.settings.message_max)
        except rooms.RuleBroken:
            message = await self.message(code, message_id)
            if message is None:
                raise MessageMissing(message_id) from None
            if message.author_id != user_id:
                raise NotYours(message_id) from None
            raise
        mentionable = await self.store.room_names(code) if "@" in text else {}
        message = await self.store.edit_message(code, message_id, user_id, text)
        self._publish_change(message, mentionable)

    async def delete_message(self, code: str, message_id: int, user_id: str) -> None:
        """Raises `MessageMissing` or `NotYours`."""
        self._publish_change(await self.store.delete_message(code, message_id, user_id), {})

    async def react(self, code: str, message_id: int, user_id: str, name: str, emoji: str) -> None:
        """Toggle the user's reaction; raises `RuleBroken` or `MessageMissing`."""
        rooms.check_reaction(emoji)
        if not await self.rate_limits.messages.hit(user_id):
            raise rooms.RuleBroken(SLOW_DOWN)
        mentionable = await self.store.room_names(code)
        message = await self.store.toggle_reaction(code, message_id, user_id, name, emoji)
        self._publish_change(message, mentionable)

    def _publish_change(self, message: Message, mentionable: Mentionable) -> None:
        # Published as soon as it is stored (no wait in between), so a room's changes
        # reach every page in the order they were made.
        html = self.fragments.changes_frame((message,), mentionable)
        self.broker.publish(RoomEvent(message.room, html))

    async def typing(self, code: str, user_id: str, name: str) -> None:
        """Tell the others this user is typing; at most once per TYPING_EVERY seconds."""
        now = asyncio.get_running_loop().time()
        key = (code, user_id)
        if now - self._typing.get(key, -TYPING_EVERY) < TYPING_EVERY:
            return
        self._typing[key] = now
        if len(self._typing) > TYPING_TRACKED:
            self._forget_old_typing(now)
        html = self.fragments.typing_frame(user_id, name)
        self.broker.publish(RoomEvent(code, html, skip_user=user_id))

    def _forget_old_typing(self, now: float) -> None:
        self._typing = {
            key: then for key, then in self._typing.items() if now - then < TYPING_EVERY
        }

    async def _mentionable(self, code: str, messages: Iterable[Message]) -> Mentionable:
        """The names these messages may mention: read only when one has an `@`."""
        if not any("@" in message.text for message in messages):
            return {}
        return await self.store.room_names(code)

    async def note_name(self, code: str, user_id: str, name: str) -> None:
        """`name` has been in the room: mentions of it are marked from now on."""
        await self.store.add_room_name(code, user_id, name)

    async def keep_alive_without_socket(self, code: str) -> None:
        """A post from a page without JavaScript (no live connection) restarts the
        empty-room clock, so a room used that way is not deleted under its users."""
        if await self.presence.count(code) == 0:
            await self.store.set_room_empty(code, utc_now() + NEW_ROOM_GRACE)

    async def latest_page(self, code: str, before_id: int | None = None) -> Page:
        return await self.store.page_before(code, before_id, self.settings.page_size)

    async def message(self, code: str, message_id: int) -> Message | None:
        """One message as it is now; None when there is none (or it was deleted)."""
        page = await self.store.page_before(code, message_id + 1, 1)
        found = page.messages[0] if page.messages else None
        if found is None or found.id != message_id or found.deleted:
            return None
        return found

    async def history(
        self, code: str, before_id: int | None = None, around_id: int | None = None
    ) -> tuple[Page, str, int]:
        """A page of history (the latest, before a message, or around one: a search
        result in context), its HTML, and the room's revision it shows (read first: a
        change racing the read is sent again on connect, never missed)."""
        revision = await self.store.room_revision(code)
        if around_id is not None:
            page = await self.page_around(code, around_id)
        else:
            page = await self.latest_page(code, before_id)
        mentionable = await self._mentionable(code, page.messages)
        return page, self.fragments.page(code, page, mentionable, around_id), revision
    async def search(self, code: str, words: list[str], before_id: int | None) -> Found:
        """The room's messages with every one of `words`, newest first, a page at a time."""
        if not words:
            return Found([], has_more=False)
        return await self.store.search(code, words, before_id, self.settings.page_size)

    async def page_around(self, code: str, message_id: int) -> Page:
        """A page with `message_id` in the middle: the half before it, it, and the rest
        after it (oldest first), so "Load earlier" continues from its first message."""
        size = self.settings.page_size
        earlier = await self.store.page_before(code, message_id + 1, size // 2 + 1)
        later = await self.store.messages_after(code, message_id, size - len(earlier.messages))
        return Page(earlier.messages + later, earlier.has_earlier)

    @property
    def shared(self) -> bool:
        """Several processes serve the rooms (presence and fan-out through a broker)."""
        return bool(self.settings.broker_url)

    async def catch_up_frames(
        self, code: str, after_id: int, since_revision: int | None = None
    ) -> AsyncIterator[tuple[list[int], str]]:
        """Every message after `after_id`, oldest first: (their ids, frame) a page at a
        time; then, with `since_revision`, the older ones changed since then."""
        seen_up_to = after_id
        async for frame in self._new_messages_frames(code, after_id):
            yield frame
        if since_revision is None:
            return
        while True:
            changed = await self.store.changed_since(
                code, since_revision, seen_up_to, CATCH_UP_PAGE
            )
            if not changed:
                return
            since_revision = changed[-1].revision
            mentionable = await self._mentionable(code, changed)
            yield [], self.fragments.changes_frame(changed, mentionable)

    async def _new_messages_frames(
        self, code: str, after_id: int
    ) -> AsyncIterator[tuple[list[int], str]]:
        if self.shared and after_id:
            # Across processes a message can arrive after a newer one, so the page's
            # newest id does not prove it has every older one: re-send the last few too
            # (the page replaces what it already shows).
            recent = await self.store.page_before(code, after_id + 1, CATCH_UP_OVERLAP)
            after_id = (recent.first_id or after_id + 1) - 1
        while True:
            missed = await self.store.messages_after(code, after_id, CATCH_UP_PAGE)
            if not missed:
                return
            after_id = missed[-1].id
            frame = self.fragments.messages_frame(missed, await self._mentionable(code, missed))
            yield [message.id for message in missed], frame

    # Presence ----------------------------------------------------------------

    async def enter(self, code: str, user_id: str, name: str, connection: LiveConnection) -> None:
        self._connections.add(connection)
        if not self._accepting:
            connection.stop(RESTARTING)
        await self.broker.subscribe(code, connection)
        arrival = await self.presence.arrive(code, user_id, name)
        if arrival.renamed_from:
            notice = f"{arrival.renamed_from} is now {name}"
            self._announce(code, notice, self.fragments.member_renamed(user_id, name))
        if not arrival.entered:
            return
        self._cancel_deletion(code)
        await self.store.set_room_empty(code, None)
        log.info("user entered: room=%s user=%s", code, user_id)
        notice = f"{name} has entered the room"
        self._announce(code, notice, self.fragments.member_added(user_id, name))

    async def exit(self, code: str, user_id: str, connection: LiveConnection) -> None:
        self._connections.discard(connection)
        await self.broker.unsubscribe(code, connection)
        await self.presence.depart(code, user_id)

    async def _left(self, code: str, user_id: str, name: str) -> None:
        log.info("user left: room=%s user=%s", code, user_id)
        self._announce(code, f"{name} has left the room", self.fragments.member_removed(user_id))
        if await self.presence.count(code) == 0:
            await self.store.set_room_empty(code, utc_now())
            self._schedule_deletion(code)

    async def _corrected(self, code: str, user_id: str, name: str | None) -> None:
        """After a fault, shared presence knows better than what pages were told: fix the
        lists (nobody came or went, so no notice)."""
        if name is None:
            self._announcements.add(code, self.fragments.member_removed(user_id))
        else:
            self._announcements.add(code, self.fragments.member_added(user_id, name))

    def _announce(self, code: str, notice: str, member_changes: str) -> None:
        self._announcements.add(code, self.fragments.notice_frame(notice) + member_changes)

    async def members_frame(self, code: str) -> str:
        """The whole member list, for a page that connects. Pages arriving together in a
        room that has not changed meanwhile share one rendering."""
        members = await self.presence.members(code)
        cached = self._member_lists.get(code)
        if cached is not None and cached[0] == members:
            return cached[1]
        html = self.fragments.members_frame(members)
        self._member_lists[code] = (members, html)
        if len(self._member_lists) > MEMBER_LISTS_KEPT:
            del self._member_lists[next(iter(self._member_lists))]  # the oldest
        return html

    # Deleting empty rooms ----------------------------------------------------

    def _schedule_deletion(self, code: str) -> None:
        self._cancel_deletion(code)
        self._deletions[code] = asyncio.create_task(self._delete_when_expired(code))

    def _cancel_deletion(self, code: str) -> None:
        task = self._deletions.pop(code, None)
        if task is not None:
            task.cancel()

    async def _delete_when_expired(self, code: str) -> None:
        await asyncio.sleep(self.settings.empty_room_ttl)
        del self._deletions[code]
        await self._sweep()

    async def _sweep(self) -> None:
        cutoff = utc_now() - timedelta(seconds=self.settings.empty_room_ttl)
        for code in await self.store.delete_rooms_empty_since(cutoff):
            log.info("room deleted: %s", code)

    async def _sweep_forever(self) -> None:
        while True:
            try:
                await self._sweep()
            except Exception:
                log.exception("sweeping empty rooms failed")
            await asyncio.sleep(SWEEP_EVERY)
