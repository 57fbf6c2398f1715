"""Search words: what a typed query searches for, and matched words marked in a text.

A query is read as plain words, never as query syntax: a word is a run of letters and
digits, as both stores' indexes split text, so quotes, `*`, `-` and parentheses only
separate words, and `OR` or `NEAR` are words like any other.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from markupsafe import Markup, escape

# A run of letters and digits (Python's \w without the underscore).
WORD = re.compile(r"[^\W_]+")
QUERY_MAX = 200  # characters of a query that are read
WORDS_MAX = 16


def query_words(query: str) -> list[str]:
    """The distinct words of `query` (any case) in the order typed, at most a few. They
    keep their spelling: each store folds case in the query as it did in the index."""
    words: dict[str, str] = {}
    for word in WORD.findall(query[:QUERY_MAX]):
        words.setdefault(word.lower(), word)
    return list(words.values())[:WORDS_MAX]


def marker(words: list[str]) -> Callable[[str], Markup]:
    """A function that escapes a message's text and wraps each searched word in <mark>.

    The text is cut into words and the rest first, each piece escaped on its own, so a
    mark never lands inside markup or an entity."""
    wanted = {word.lower() for word in words}

    def mark(text: str) -> Markup:
        pieces: list[str] = []
        last = 0
        for found in WORD.finditer(text):
            if found.group().lower() not in wanted:
                continue
            pieces.append(escape(text[last:found.start()]))
            pieces.append(Markup("<mark>%s</mark>") % found.group())
            last = found.end()
        pieces.append(escape(text[last:]))
        return Markup("").join(pieces)

    return mark
