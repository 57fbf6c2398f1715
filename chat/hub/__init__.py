"""The hub: the operations routes and live sockets call, each done by one part.

What happens in a room goes store first, then render once, then publish. The parts:
`lobby` (start and find rooms, let people in), `messages` (post, edit, delete, react,
typing), `history` (pages, search, catch-up), `membership` (enter, leave, member
lists, keeping members across a restart), `empty_rooms` (deleting rooms left empty) and
`connections` (the live sockets to close on shutdown). Only the parts talk to the store,
the broker and presence.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from chat.broker import Broker
from chat.fragments import Fragments
from chat.hub.connections import Connections, LiveConnection
from chat.hub.empty_rooms import EmptyRooms
from chat.hub.history import History
from chat.hub.lobby import Lobby, TooManyLookups, TooManyRooms
from chat.hub.membership import Membership
from chat.hub.messages import Messages, TooFast
from chat.ratelimits import RateLimits
from chat.settings import Settings
from chat.store import Bot, Found, Message, Page, Posted, Store, utc_now

__all__ = ["Hub", "LiveConnection", "TooFast", "TooManyLookups", "TooManyRooms"]


class Hub:
    def __init__(self, settings: Settings, store: Store, broker: Broker, fragments: Fragments):
        self.settings = settings
        self.store = store
        self.broker = broker
        self.fragments = fragments
        limits = RateLimits.from_settings(settings)
        self.connections = Connections()
        broker.on_recovered(self.connections.resync)
        self.empty_rooms = EmptyRooms(settings, store)
        self.membership = Membership(
            settings, store, broker, fragments, self.connections, self.empty_rooms
        )
        self.lobby = Lobby(settings, store, limits, self.membership.presence)
        self.history = History(settings, store, fragments)
        self.messages = Messages(settings, store, broker, fragments, limits, self.history)

    # Starting and stopping -----------------------------------------------------------

    async def start(self) -> None:
        await self.membership.presence.start()
        if not self.settings.broker_url:
            # Alone, this process knows nobody is connected yet. With shared presence,
            # rooms still occupied elsewhere must stay, and members of a crashed
            # process are reaped (and their rooms marked empty) by presence.
            await self.store.set_unknown_rooms_empty(utc_now())
        await self.membership.take_back_parked()
        self.empty_rooms.start()

    def close_connections(self) -> None:
        self.connections.close_all()

    async def park_members(self) -> None:
        await self.membership.park()

    async def stop(self) -> None:
        """Close the sockets, keep the members, stop the timers, then the broker and the
        store the hub was given."""
        self.connections.close_all()
        await self.membership.park()
        await self.empty_rooms.stop()
        await self.membership.stop()
        await self.broker.stop()
        await self.store.close()

    async def health(self) -> tuple[bool, bool]:
        """(the database answers, fan-out across processes works)."""
        return await self.store.ping(), self.broker.healthy

    # Rooms -----------------------------------------------------------------------

    async def create_room(self, address: str) -> str:
        return await self.lobby.create_room(address)

    async def find_room(self, code: str, address: str) -> bool:
        return await self.lobby.find_room(code, address)

    async def is_full_for(self, code: str, user_id: str) -> bool:
        return await self.lobby.is_full_for(code, user_id)

    async def keep_alive_without_socket(self, code: str) -> None:
        await self.lobby.keep_alive_without_socket(code)

    # Members ---------------------------------------------------------------------

    async def enter(self, code: str, user_id: str, name: str, connection: LiveConnection) -> None:
        await self.membership.enter(code, user_id, name, connection)

    async def exit(self, code: str, user_id: str, connection: LiveConnection) -> None:
        await self.membership.exit(code, user_id, connection)

    async def members_frame(self, code: str) -> str:
        return await self.membership.members_frame(code)

    async def member_list(self, code: str, viewer_id: str, viewer_name: str) -> str:
        return await self.membership.member_list(code, viewer_id, viewer_name)

    async def note_name(self, code: str, user_id: str, name: str) -> None:
        await self.messages.note_name(code, user_id, name)

    # Messages --------------------------------------------------------------------

    async def post_message(
        self, code: str, user_id: str, author: str, raw_text: str, nonce: str | None = None
    ) -> Posted:
        return await self.messages.post(code, user_id, author, raw_text, nonce)

    async def post_from_socket(
        self, code: str, user_id: str, author: str, raw_text: str, nonce: str | None
    ) -> str | None:
        return await self.messages.post_from_socket(code, user_id, author, raw_text, nonce)

    async def retry_after(self, user_id: str) -> int:
        return await self.messages.retry_after(user_id)

    async def edit_message(self, code: str, message_id: int, user_id: str, raw_text: str) -> None:
        await self.messages.edit(code, message_id, user_id, raw_text)

    async def delete_message(self, code: str, message_id: int, user_id: str) -> None:
        await self.messages.delete(code, message_id, user_id)

    async def react(self, code: str, message_id: int, user_id: str, name: str, emoji: str) -> None:
        await self.messages.react(code, message_id, user_id, name, emoji)

    async def typing(self, code: str, user_id: str, name: str) -> None:
        await self.messages.typing(code, user_id, name)

    # History ---------------------------------------------------------------------

    async def history_page(
        self, code: str, before_id: int | None = None, around_id: int | None = None
    ) -> tuple[Page, str, int]:
        return await self.history.history(code, before_id, around_id)

    async def earlier_html(self, code: str, before_id: int | None) -> str:
        return await self.history.earlier_html(code, before_id)

    async def message(self, code: str, message_id: int) -> Message | None:
        return await self.history.message(code, message_id)

    async def list_messages(
        self, code: str, before_id: int | None, after_id: int | None, limit: int | None
    ) -> list[Message]:
        return await self.history.messages(code, before_id, after_id, limit)

    async def search(self, code: str, words: list[str], before_id: int | None) -> Found:
        return await self.history.search(code, words, before_id)

    def catch_up_frames(
        self, code: str, after_id: int, since_revision: int | None = None
    ) -> AsyncIterator[tuple[list[int], str]]:
        return self.history.catch_up_frames(code, after_id, since_revision)

    # Bots ------------------------------------------------------------------------

    async def bots(self, code: str) -> list[Bot]:
        return await self.store.bots(code)

    async def add_bot(self, code: str, name: str, token_hash: str, created_by: str) -> Bot:
        return await self.store.add_bot(code, name, token_hash, created_by)

    async def delete_bot(self, code: str, bot_id: int) -> bool:
        return await self.store.delete_bot(code, bot_id)

    async def bot_by_token(self, token_hash: str) -> Bot | None:
        return await self.store.bot_by_token(token_hash)
