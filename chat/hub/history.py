"""A room's history as pages read it: the latest page, earlier pages, a page around a
search result, search itself, and the catch-up a reconnecting page gets."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable

from chat.fragments import Fragments, Mentionable
from chat.settings import Settings
from chat.store import Found, Message, Page, Store

CATCH_UP_PAGE = 200
CATCH_UP_OVERLAP = 20


async def mentionable(store: Store, code: str, messages: Iterable[Message]) -> Mentionable:
    """The names these messages may mention: read only when one has an `@`."""
    if not any("@" in message.text for message in messages):
        return {}
    return await store.room_names(code)


class History:
    def __init__(self, settings: Settings, store: Store, fragments: Fragments) -> None:
        self._page_size = settings.page_size
        # Several processes serve the rooms: messages may arrive out of id order.
        self._shared = bool(settings.broker_url)
        self._store = store
        self._fragments = fragments

    async def latest_page(self, code: str, before_id: int | None = None) -> Page:
        return await self._store.page_before(code, before_id, self._page_size)

    async def earlier_html(self, code: str, before_id: int | None) -> str:
        """The page before `before_id` as "Load earlier messages" inserts it."""
        return self._fragments.page(code, await self.latest_page(code, before_id))

    async def messages(
        self, code: str, before_id: int | None, after_id: int | None, limit: int | None
    ) -> list[Message]:
        """Oldest first: the messages after `after_id`, else the page before `before_id`."""
        limit = limit or self._page_size
        if after_id is not None:
            return await self._store.messages_after(code, after_id, limit)
        return (await self._store.page_before(code, before_id, limit)).messages

    async def message(self, code: str, message_id: int) -> Message | None:
        """One message as it is now; None when there is none (or it was deleted)."""
        page = await self._store.page_before(code, message_id + 1, 1)
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
        revision = await self._store.room_revision(code)
        if around_id is not None:
            page = await self.page_around(code, around_id)
        else:
            page = await self.latest_page(code, before_id)
        names = await mentionable(self._store, code, page.messages)
        return page, self._fragments.page(code, page, names, around_id), revision

    async def search(self, code: str, words: list[str], before_id: int | None) -> Found:
        """The room's messages with every one of `words`, newest first, a page at a time."""
        if not words:
            return Found([], has_more=False)
        return await self._store.search(code, words, before_id, self._page_size)

    async def page_around(self, code: str, message_id: int) -> Page:
        """A page with `message_id` in the middle: the half before it, it, and the rest
        after it (oldest first), so "Load earlier" continues from its first message."""
        size = self._page_size
        earlier = await self._store.page_before(code, message_id + 1, size // 2 + 1)
        later = await self._store.messages_after(code, message_id, size - len(earlier.messages))
        return Page(earlier.messages + later, earlier.has_earlier)

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
            changed = await self._store.changed_since(
                code, since_revision, seen_up_to, CATCH_UP_PAGE
            )
            if not changed:
                return
            since_revision = changed[-1].revision
            names = await mentionable(self._store, code, changed)
            yield [], self._fragments.changes_frame(changed, names)

    async def _new_messages_frames(
        self, code: str, after_id: int
    ) -> AsyncIterator[tuple[list[int], str]]:
        if self._shared and after_id:
            # Across processes a message can arrive after a newer one, so the page's
            # newest id does not prove it has every older one: re-send the last few too
            # (the page replaces what it already shows).
            recent = await self._store.page_before(code, after_id + 1, CATCH_UP_OVERLAP)
            after_id = (recent.first_id or after_id + 1) - 1
        while True:
            missed = await self._store.messages_after(code, after_id, CATCH_UP_PAGE)
            if not missed:
                return
            after_id = missed[-1].id
            names = await mentionable(self._store, code, missed)
            frame = self._fragments.messages_frame(missed, names)
            yield [message.id for message in missed], frame
