"""Reading the HTML the server sends, as a browser would: elements and their text, the
value a form field shows, the buttons a page offers, the home form's errors."""

from __future__ import annotations

import re
from html import unescape
from html.parser import HTMLParser


class _Elements(HTMLParser):
    """Every element's attributes and the text directly inside it, in document order."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str], list[str]]] = []
        self._open: list[list[str]] = []

    def handle_starttag(self, tag, attrs):
        text: list[str] = []
        self.found.append((tag, {key: value or "" for key, value in attrs}, text))
        if tag not in {"input", "meta", "link", "br", "img"}:
            self._open.append(text)

    def handle_endtag(self, tag):
        if self._open:
            self._open.pop()

    def handle_data(self, data):
        if self._open:
            self._open[-1].append(data)


def elements(html: str, tag: str, **attrs: str) -> list[tuple[dict[str, str], str]]:
    """(attributes, text) of each `tag` element with all the given attribute values."""
    parser = _Elements()
    parser.feed(html)
    return [
        (found, "".join(text).strip())
        for name, found, text in parser.found
        if name == tag and all(found.get(key) == value for key, value in attrs.items())
    ]


def field_value(html: str, name: str) -> str:
    """The value a form field shows: an input's `value`, a textarea's text."""
    inputs = elements(html, "input", name=name)
    if not inputs:  # a textarea's text, spaces included
        (typed,) = re.findall(rf'<textarea [^>]*name="{name}"[^>]*>(.*?)</textarea>', html, re.S)
        return unescape(typed)
    ((attrs, _),) = inputs
    return attrs["value"]


def visible_buttons(html: str) -> dict[str, str]:
    """Label -> name of each button a page shows without script (not `hidden`)."""
    return {label: attrs.get("name", "") for attrs, label in elements(html, "button")
            if "hidden" not in attrs}


def errors_shown(html: str) -> list[str]:
    """The errors on the home form."""
    shown = re.search(r'<div id="join-errors".*?</div>', html, re.S)
    return [unescape(text) for _, text in elements(shown.group(0), "p")] if shown else []


async def text(response) -> str:
    return await response.get_data(as_text=True)
