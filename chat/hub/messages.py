"""Messages: posting (rules, rate limit, store, then one rendering published to the
room), editing, deleting, reacting, and "is typing"."""

from __future__ import annotations

import asyncio

from chat import rooms, texts
from chat.broker import Broker, RoomEvent
from chat.fragments import Fragments, Mentionable
from chat.hub.history import History, mentionable
from chat.ratelimits import RateLimits
from chat.settings import Settings
from chat.store import Message, MessageMissing, NotYours, Posted, Store

# Someone's "is typing" goes out at most this often; pages drop it a few seconds after.
TYPING_EVERY = 2.0
TYPING_TRACKED = 10_000


class TooFast(rooms.RuleBroken):
    """The sender is over the message rate limit (a rule broken, said as `SLOW_DOWN`)."""


class Messages:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        broker: Broker,
        fragments: Fragments,
        limits: RateLimits,
        history: History,
    ) -> None:
        self._message_max = settings.message_max
        self._store = store
        self._broker = broker
        self._fragments = fragments
        self._limits = limits
        self._history = history
        self._typing: dict[tuple[str, str], float] = {}  # (room, user) -> when last told

    async def post(
        self, code: str, user_id: str, author: str, raw_text: str, nonce: str | None = None
    ) -> Posted:
        """Check, store, then publish; raises `RuleBroken` or `RoomGone`. A nonce the
        user already posted in the room publishes nothing: everyone has that message."""
        text = rooms.clean_message(raw_text, self._message_max)
        if not await self._limits.messages.hit(user_id):
            raise TooFast(texts.SLOW_DOWN)
        posted = await self._store.add_message(code, user_id, author, text, nonce)
        if posted.new:
            message = posted.message
            names = await mentionable(self._store, code, (message,))
            html = self._fragments.messages_frame((message,), names)
            # The message lands: its author is no longer typing.
            html += self._fragments.typing_done(user_id)
            self._broker.publish(RoomEvent(code, html, message.id))
        return posted

    async def post_from_socket(
        self, code: str, user_id: str, author: str, raw_text: str, nonce: str | None
    ) -> str | None:
        """Post a message sent over the live socket; the frame for the sender alone, if
        any. Raises `RoomGone`."""
        try:
            posted = await self.post(code, user_id, author, raw_text, nonce)
        except rooms.RuleBroken as broken:
            # The page cleared its input when the message left: give the text back
            # with the reason, under the same nonce, so sending it again is safe.
            return self._fragments.message_form_frame(code, raw_text, str(broken), nonce or None)
        if posted.new:
            return None
        # Sent again (queued while the socket was down): the room already has it, and
        # this page shows it once it gets it (pages upsert by id).
        return self._fragments.messages_frame((posted.message,))

    async def retry_after(self, user_id: str) -> int:
        """Whole seconds until `user_id` may post again."""
        return await self._limits.messages.retry_after(user_id)

    async def edit(self, code: str, message_id: int, user_id: str, raw_text: str) -> None:
        """Raises `MessageMissing` or `NotYours` before `RuleBroken`: whether the text would
        do is no business of someone who may not edit the message."""
        try:
            text = rooms.clean_message(raw_text, self._message_max)
        except rooms.RuleBroken:
            message = await self._history.message(code, message_id)
            if message is None:
                raise MessageMissing(message_id) from None
            if message.author_id != user_id:
                raise NotYours(message_id) from None
            raise
        names = await self._store.room_names(code) if "@" in text else {}
        message = await self._store.edit_message(code, message_id, user_id, text)
        self._publish_change(message, names)

    async def delete(self, code: str, message_id: int, user_id: str) -> None:
        """Raises `MessageMissing` or `NotYours`."""
        self._publish_change(await self._store.delete_message(code, message_id, user_id), {})

    async def react(self, code: str, message_id: int, user_id: str, name: str, emoji: str) -> None:
        """Toggle the user's reaction; raises `RuleBroken` or `MessageMissing`."""
        rooms.check_reaction(emoji)
        if not await self._limits.messages.hit(user_id):
            raise rooms.RuleBroken(texts.SLOW_DOWN)
        names = await self._store.room_names(code)
        message = await self._store.toggle_reaction(code, message_id, user_id, name, emoji)
        self._publish_change(message, names)

    def _publish_change(self, message: Message, names: Mentionable) -> None:
        # Published as soon as it is stored (no wait in between), so a room's changes
        # reach every page in the order they were made.
        html = self._fragments.changes_frame((message,), names)
        self._broker.publish(RoomEvent(message.room, html))

    async def typing(self, code: str, user_id: str, name: str) -> None:
        """Tell the others this user is typing; at most once per TYPING_EVERY seconds."""
        now = asyncio.get_running_loop().time()
        key = (code, user_id)
        if now - self._typing.get(key, -TYPING_EVERY) < TYPING_EVERY:
            return
        self._typing[key] = now
        if len(self._typing) > TYPING_TRACKED:
            self._forget_old_typing(now)
        html = self._fragments.typing_frame(user_id, name)
        self._broker.publish(RoomEvent(code, html, skip_user=user_id))

    def _forget_old_typing(self, now: float) -> None:
        self._typing = {
            key: then for key, then in self._typing.items() if now - then < TYPING_EVERY
        }

    async def note_name(self, code: str, user_id: str, name: str) -> None:
        """`name` has been in the room: mentions of it are marked from now on."""
        await self._store.add_room_name(code, user_id, name)
