"""Fragments: the HTML pieces that are both part of a page and pushed live.

Each kind has one template under `templates/fragments/`; pages include the same
templates, so a message looks the same on load, in "Load earlier messages" and live.
A live frame wraps fragments in an out-of-band swap that says where htmx puts them.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from jinja2 import Environment, Template
from markupsafe import Markup

from chat import text
from chat.store import Message, Page


@dataclass(frozen=True, slots=True)
class Listed:
    """A member as the member list shows them; `key` names their element without
    revealing their user id."""

    key: str
    name: str
    sort_key: str


def _sort_key(name: str) -> str:
    # Browsers order live insertions with localeCompare, the server orders the page by
    # code point: spelling each code point as six letters a-p makes both agree.
    return "".join(
        "".join(chr(97 + int(digit, 16)) for digit in f"{ord(char):06x}")
        for char in name.casefold()
    )


# Member keys and list items rendered once per user (and name) and kept: every page of
# a big room shows every member, so a room filling up would otherwise render N items N
# times, and every message names its author's key.
MEMBER_ITEMS_KEPT = 20_000


@functools.lru_cache(maxsize=MEMBER_ITEMS_KEPT)
def member_key(user_id: str) -> str:
    """A member's public key: names their list item and marks their messages (so a
    page can tell its own), without revealing the user id."""
    return hashlib.blake2s(user_id.encode(), digest_size=6).hexdigest()


def listed(user_id: str, name: str) -> Listed:
    return Listed(member_key(user_id), name, _sort_key(name))


class Fragments:
    def __init__(self, jinja: Environment) -> None:
        # Quart's environment renders asynchronously; fragments are rendered on the hot
        # path and inside callbacks, so they use a synchronous overlay of it (same
        # loader, filters and globals).
        jinja = jinja.overlay(enable_async=False)
        jinja.filters = {**jinja.filters, "member_key": member_key}

        def template(name: str) -> Template:
            # A template's globals are a ChainMap over the app's, which Jinja copies key
            # by key into every render's context (a third of rendering a message): a
            # plain dict instead, copied now, so globals are registered before this.
            loaded = jinja.get_template(f"fragments/{name}.html")
            loaded.globals = dict(loaded.globals)
            return loaded

        self._message = template("message")
        self._notice = template("notice")
        self._members = template("members")
        self._member = template("member")
        self._member_count = template("member_count")
        self._message_form = template("message_form")
        self._page = template("earlier")
        self._typing = template("typing")
        self._member_item = functools.lru_cache(maxsize=MEMBER_ITEMS_KEPT)(
            self._render_member_item
        )

    def message(self, message: Message, mentionable: Mentionable | None = None) -> str:
        # `around` given (no message is highlighted live): looking up a missing name
        # makes Jinja build an Undefined for every comparison.
        return self._message.render(message=message, mentionable=mentionable or {}, around=None)

    def page(
        self,
        code: str,
        page: Page,
        mentionable: Mentionable | None = None,
        around: int | None = None,
    ) -> str:
        """A page of history led by its "Load earlier messages" control (`around`: the
        message to highlight). Rendered here, synchronously, for the room page too:
        Jinja's async mode makes each included message several times dearer."""
        return self._page.render(
            code=code, page=page, mentionable=mentionable or {}, around=around
        )

    def notice(self, text: str) -> str:
        return self._notice.render(text=text)

    def members(self, members: dict[str, str]) -> str:
        """The whole member list, sorted as pages sort live arrivals."""
        items = sorted(self._member_item(*member) for member in members.items())
        return self._members.render(items=[html for _, html in items])

    def _render_member_item(self, user_id: str, name: str) -> tuple[str, Markup]:
        member = listed(user_id, name)
        return member.sort_key, Markup(self._member.render(member=member))

    def message_form(
        self, room: str, value: str = "", error: str | None = None, nonce: str | None = None
    ) -> str:
        """The message form, with a fresh nonce unless it gives back a failed message."""
        nonce = nonce or secrets.token_urlsafe(12)
        return self._message_form.render(code=room, value=value, error=error, nonce=nonce)

    # Live frames ---------------------------------------------------------------

    def messages_frame(
        self, messages: Iterable[Message], mentionable: Mentionable | None = None
    ) -> str:
        # upsert replaces a message the page already shows and inserts a new one in id
        # order, so a catch-up that overlaps what arrived live shows nothing twice.
        html = "".join(self.message(message, mentionable) for message in messages)
        return _out_of_band("upsert:#messages", html)

    def changes_frame(
        self, messages: Iterable[Message], mentionable: Mentionable | None = None
    ) -> str:
        """Messages edited, deleted or reacted to: each replaces the one with its id where
        a page shows it, and is nothing where it does not (never inserted out of place)."""
        return "".join(
            self.message(message, mentionable).replace("<article ", _REPLACE_ARTICLE, 1)
            for message in messages
        )

    def typing_frame(self, user_id: str, name: str) -> str:
        # One line per person in #typing; the page hides it a few seconds after it came.
        line = self._typing.render(key=member_key(user_id), name=name)
        return _out_of_band("upsert:#typing", line)

    def typing_done(self, user_id: str) -> str:
        return f'<span id="typing-{member_key(user_id)}" hx-swap-oob="delete"></span>'

    def members_frame(self, members: dict[str, str]) -> str:
        return _out_of_band("innerHTML:#presence", self.members(members))

    # Member-list changes: list items, not the whole list, so a join costs the same in a
    # room of 1,000. Items of one announcement share one swap; an item that moves (a
    # rename: the list is sorted by name) or goes is deleted first.
    def announcement_frame(
        self,
        notices: Sequence[str],
        removed_first: Iterable[str],
        listed: Mapping[str, str | None],
        count: int,
    ) -> str:
        """Notices and member-list changes gathered for a room (`listed`: user id -> name
        now, None when gone), and its count now."""
        parts = [_deleted_member(user_id) for user_id in removed_first]
        if notices:
            html = "".join(self.notice(text) for text in notices)
            parts.append(_out_of_band("beforeend:#messages", html))
        items = [self._member_item(user_id, name)[1] for user_id, name in listed.items() if name]
        if items:
            parts.append(_out_of_band("upsert key:data-sort target:#members", "".join(items)))
        parts.append(self._count_frame(count))
        return "".join(parts)

    # The page includes these templates as they are; pushed alone, they carry the
    # attribute that tells htmx to swap them in place.
    def _count_frame(self, count: int) -> str:
        return self._member_count.render(count=count).replace(
            "<span ", '<span hx-swap-oob="true" ', 1
        )

    def message_form_frame(
        self, room: str, value: str = "", error: str | None = None, nonce: str | None = None
    ) -> str:
        return self.message_form(room, value, error, nonce).replace(
            "<form ", '<form hx-swap-oob="outerHTML" ', 1
        )


_REPLACE_ARTICLE = '<article hx-swap-oob="outerHTML" '

# Who a message may mention: display name -> the user ids that have used it in the room.
Mentionable = Mapping[str, Sequence[str]]


def message_text(message: Message, mentionable: Mentionable) -> tuple[Markup, list[str]]:
    """A message's text as HTML and the member keys it mentions (template helper)."""
    if message.deleted:
        return Markup(""), []
    by_name = {name: [member_key(user) for user in users] for name, users in mentionable.items()}
    return text.render(message.text, by_name)


def _deleted_member(user_id: str) -> str:
    return f'<li id="member-{member_key(user_id)}" hx-swap-oob="delete"></li>'


def _out_of_band(swap: str, inner: str) -> str:
    # `inner` is rendered (escaped) HTML and `swap` one of the constants above; a plain
    # str, so frames can be joined without escaping one another.
    return f'<div hx-swap-oob="{swap}">{inner}</div>'
