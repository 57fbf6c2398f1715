"""The store boundary: rooms and their message history, whatever database holds them.

Routes and the hub speak only to the `Store` protocol; `open_store` picks the
implementation from `CHAT_DATABASE_URL`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Protocol

from chat.settings import Settings, SettingsError


class StoreClosed(RuntimeError):
    """The store was closed before the message could be committed."""


class RoomGone(LookupError):
    """The room was deleted (or never existed) while something was being done in it."""


class MessageMissing(LookupError):
    """No such message in the room (or it was deleted)."""


class NotYours(PermissionError):
    """Only a message's author may change it."""


# The columns message and bot rows are read with, in the same order in every dialect.
MESSAGE_COLUMNS = (
    "id, room_code, author_id, author, body, sent_at, nonce, revision, edited_at, deleted_at"
)
BOT_COLUMNS = "id, room_code, name, created_at"


@dataclass(frozen=True, slots=True)
class Reaction:
    emoji: str
    names: tuple[str, ...]  # who reacted, in the order they did

    @property
    def count(self) -> int:
        return len(self.names)


@dataclass(frozen=True, slots=True)
class Message:
    id: int
    room: str
    author_id: str
    author: str
    text: str  # empty once deleted
    sent_at: datetime
    # What the sender's page called it, so that page can tell its own message arrived.
    nonce: str | None = None
    # The room's revision when it last changed (0: never), for catching up on changes.
    revision: int = 0
    edited: bool = False
    deleted: bool = False
    reactions: tuple[Reaction, ...] = ()

    @property
    def is_bot(self) -> bool:
        """Posted by a bot through the JSON API (people's ids never contain a colon)."""
        return self.author_id.startswith(BOT_AUTHOR_PREFIX)


# A bot's messages carry the author id "bot:<bot id>".
BOT_AUTHOR_PREFIX = "bot:"


# A room's member as kept across a restart: (room, user id, display name).
Member = tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class Posted:
    """The stored message, and whether this post created it (False when the same user
    had already posted it in the room under the same nonce)."""

    message: Message
    new: bool


@dataclass(frozen=True, slots=True)
class Page:
    """Messages oldest first, and whether older ones exist before the first."""

    messages: list[Message]
    has_earlier: bool

    @property
    def first_id(self) -> int | None:
        return self.messages[0].id if self.messages else None

    @property
    def last_id(self) -> int:
        return self.messages[-1].id if self.messages else 0


def attach_reactions(
    messages: list[Message], rows: Iterable[tuple[int, str, str]]
) -> list[Message]:
    """`messages` with their reactions from (message id, emoji, name) rows in the order
    people reacted: each emoji once, in the order it was first used."""
    by_message: dict[int, dict[str, list[str]]] = {}
    for message_id, emoji, name in rows:
        by_message.setdefault(message_id, {}).setdefault(emoji, []).append(name)
    return [
        replace(message, reactions=tuple(
            Reaction(emoji, tuple(names)) for emoji, names in by_message[message.id].items()
        )) if message.id in by_message else message
        for message in messages
    ]


def group_names(rows: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    names: dict[str, list[str]] = {}
    for name, user_id in rows:
        names.setdefault(name, []).append(user_id)
    return names
@dataclass(frozen=True, slots=True)
class Found:
    """Messages that match a search, newest first, and whether older ones match too."""

    messages: list[Message]
    has_more: bool

    @property
    def last_id(self) -> int | None:
        return self.messages[-1].id if self.messages else None


@dataclass(frozen=True, slots=True)
class Bot:
    """A bot of one room; its token is known only to whoever created it."""

    id: int
    room: str
    name: str
    created_at: datetime

    @property
    def author_id(self) -> str:
        return f"{BOT_AUTHOR_PREFIX}{self.id}"


def utc_now() -> datetime:
    return datetime.now(UTC)


class Store(Protocol):
    async def open(self) -> None:
        """Connect and bring the schema up to date (safe when several processes start)."""

    async def close(self) -> None:
        """Commit the messages already queued (or fail their callers), then disconnect."""

    async def ping(self) -> bool:
        """True when the database answers."""

    async def add_room(self, code: str, empty_from: datetime) -> bool:
        """Create a room that counts as empty from `empty_from`; False when the code
        is taken."""

    async def room_exists(self, code: str) -> bool: ...

    async def add_message(
        self, room: str, author_id: str, author: str, text: str, nonce: str | None = None
    ) -> Posted:
        """Store a message with the server's time; returns once it is committed.
        Within a room, ids commit in increasing order (so "after id N" misses nothing).
        With a `nonce` the user already used in the room, nothing is stored and the
        message first posted with it comes back (`new` False).
        Raises `RoomGone` when the room no longer exists, `StoreClosed` after close."""

    async def page_before(self, room: str, before_id: int | None, limit: int) -> Page:
        """The `limit` newest messages older than `before_id` (all when None)."""

    async def messages_after(self, room: str, after_id: int, limit: int) -> list[Message]:
        """Up to `limit` messages newer than `after_id`, oldest first."""

    async def search(
        self, room: str, words: list[str], before_id: int | None, limit: int
    ) -> Found:
        """Up to `limit` of the room's messages older than `before_id` (all when None)
        that contain every one of `words` (whole words, any case), newest first. Words
        are matched as they are spelled, never read as query syntax; no words, no match."""

    async def add_bot(self, room: str, name: str, token_hash: str, created_by: str) -> Bot:
        """Create a bot for the room, known by the hash of its token; raises `RoomGone`."""

    async def bots(self, room: str) -> list[Bot]:
        """The room's bots, oldest first."""

    async def bot_by_token(self, token_hash: str) -> Bot | None:
        """The bot whose token has this hash, None when there is none (or it was revoked)."""

    async def delete_bot(self, room: str, bot_id: int) -> bool:
        """Revoke the room's bot; False when the room has no such bot."""

    async def set_room_empty(self, room: str, since: datetime | None) -> None:
        """Record when the room last became empty; None while someone is in it."""

    async def set_unknown_rooms_empty(self, since: datetime) -> None:
        """At start nobody is connected yet: rooms left marked occupied become empty."""

    async def delete_rooms_empty_since(self, cutoff: datetime) -> list[str]:
        """Delete rooms empty since before `cutoff`, with their history; their codes."""

    async def edit_message(self, room: str, message_id: int, author_id: str, text: str) -> Message:
        """Replace the text of the author's message; raises `MessageMissing` (also once
        deleted) or `NotYours`."""

    async def delete_message(self, room: str, message_id: int, author_id: str) -> Message:
        """Delete the author's message (its text is gone, its place stays); raises
        `MessageMissing` or `NotYours`."""

    async def toggle_reaction(
        self, room: str, message_id: int, user_id: str, name: str, emoji: str
    ) -> Message:
        """Add this user's `emoji` to the message, or take it back; raises
        `MessageMissing`."""

    async def changed_since(
        self, room: str, revision: int, up_to_id: int, limit: int
    ) -> list[Message]:
        """Messages up to `up_to_id` that changed after `revision`, in revision order."""

    async def room_revision(self, room: str) -> int:
        """The room's latest revision: what a page rendered now has seen."""

    async def add_room_name(self, room: str, user_id: str, name: str) -> None:
        """Remember that `name` has been in the room (what mentions may name)."""

    async def room_names(self, room: str) -> dict[str, list[str]]:
        """Every name that has been in the room -> the user ids that used it."""

    async def park_members(self, members: list[Member]) -> None:
        """Keep (room, user id, name) of members across a restart (rooms gone are skipped)."""

    async def take_parked_members(self) -> list[Member]:
        """The members parked so far, removed as they are read."""


async def open_store(settings: Settings) -> Store:
    url = settings.database_url
    store: Store
    if url.startswith(("postgresql://", "postgres://")):
        from chat.store.postgres import PostgresStore

        store = PostgresStore(url)
    else:
        path = settings.sqlite_path
        if path is None:
            raise SettingsError(f"CHAT_DATABASE_URL {url!r} names a store this build lacks")
        from chat.store.sqlite import SQLiteStore

        # Without a shared broker this process is the only one on the file.
        store = SQLiteStore(path, alone=not settings.broker_url)
    await store.open()
    return store
