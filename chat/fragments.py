"""Fragments: the HTML pieces that are both part of a page and pushed live.

Each kind has one template under `templates/fragments/`; pages include the same
templates, so a message looks the same on load, in "Load earlier messages" and live.
A live frame wraps fragments in an out-of-band swap that says where htmx puts them.
"""

from __future__ import annotations

from collections.abc import Iterable

from jinja2 import Environment
from markupsafe import Markup, escape

from chat.store import Message


class Fragments:
    def __init__(self, jinja: Environment) -> None:
        # Quart's environment renders asynchronously; fragments are rendered on the hot
        # path and inside callbacks, so they use a synchronous overlay of it (same
        # loader, filters and globals).
        jinja = jinja.overlay(enable_async=False)
        self._message = jinja.get_template("fragments/message.html")
        self._notice = jinja.get_template("fragments/notice.html")
        self._members = jinja.get_template("fragments/members.html")
        self._message_form = jinja.get_template("fragments/message_form.html")

    def message(self, message: Message) -> str:
        return self._message.render(message=message)

    def notice(self, text: str) -> str:
        return self._notice.render(text=text)

    def members(self, names: list[str]) -> str:
        return self._members.render(members=names)

    def message_form(self, room: str, value: str = "", error: str | None = None) -> str:
        return self._message_form.render(code=room, value=value, error=error)

    # Live frames ---------------------------------------------------------------

    def messages_frame(self, messages: Iterable[Message]) -> str:
        # upsert replaces a message the page already shows and inserts a new one in id
        # order, so a catch-up that overlaps what arrived live shows nothing twice.
        return _out_of_band("upsert:#messages", "".join(map(self.message, messages)))

    def notice_frame(self, text: str) -> str:
        return _out_of_band("beforeend:#messages", self.notice(text))

    def members_frame(self, names: list[str]) -> str:
        return _out_of_band("innerHTML:#presence", self.members(names))

    def message_form_frame(self, room: str, value: str = "", error: str | None = None) -> str:
        return self.message_form(room, value, error).replace(
            "<form ", '<form hx-swap-oob="outerHTML" ', 1
        )


def _out_of_band(swap: str, inner: str) -> str:
    return Markup('<div hx-swap-oob="{}">{}</div>').format(escape(swap), Markup(inner))
