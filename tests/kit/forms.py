"""What a browser reads from our pages and sends back, as pure functions: the hidden
inputs of a form, the home form filled in to join or create a room, the room a 303 sends
it to, the address a room page's socket connects to (`hx-ws:connect`) and the frame hx-ws
sends for the message form.

The kit's `Member` and `LiveClient` and the benchmark's load generator (`bench/client.py`)
all use these, so they follow one flow; they import nothing but the standard library.
"""

from __future__ import annotations

import html
import json
import re
from html.parser import HTMLParser
from urllib.parse import urlsplit

WS_CONNECT = re.compile(r'hx-ws:connect="([^"]+)"')
# The headers htmx 4 adds to a frame its hx-ws extension sends for the message form.
MESSAGE_FORM_HEADERS = {"HX-Request": "true", "HX-Source": "form#message-form",
                        "HX-Target": "form#message-form"}


class _FormInputs(HTMLParser):
    """Hidden inputs of the form that posts to `action` (what a browser submits)."""

    def __init__(self, action: str) -> None:
        super().__init__()
        self.action = action
        self.inside = False
        self.hidden: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            method = a.get("method", "get").lower()
            self.inside = method == "post" and a.get("action") == self.action
        elif (tag == "input" and self.inside and a.get("type", "").lower() == "hidden"
              and "name" in a):
            self.hidden[a["name"]] = a.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.inside = False


def hidden_inputs(page: str, action: str = "/") -> dict[str, str]:
    """The hidden inputs (the CSRF token, a nonce) of the page's form posting to `action`."""
    parser = _FormInputs(action)
    parser.feed(page)
    return parser.hidden


def join_form(home: str, name: str, code: str | None = None) -> dict[str, str]:
    """The home form as submitted: its hidden inputs and `name`, with "Join a Room" and
    `code`, or "Create a Room" when `code` is None."""
    form = {**hidden_inputs(home, "/"), "name": name}
    form.update({"create": "1"} if code is None else {"code": code, "join": "1"})
    return form


def room_code(location: str) -> str:
    """The room a join's 303 redirects to (`/rooms/ABCD`, absolute or not)."""
    return urlsplit(location).path.rstrip("/").rsplit("/", 1)[1]


def connect_address(page: str) -> str | None:
    """Where the room page's socket connects (`hx-ws:connect`), as the browser reads it:
    `/rooms/ABCD/ws?after=N&since=R`; None when the page has no live socket."""
    found = WS_CONNECT.search(page)
    return html.unescape(found.group(1)) if found else None


def message_frame(text: str, nonce: str | None = None) -> str:
    """The text frame hx-ws sends for the message form: its values, and htmx's headers."""
    values = {"message": text} if nonce is None else {"message": text, "nonce": nonce}
    return json.dumps({**values, "headers": MESSAGE_FORM_HEADERS})
