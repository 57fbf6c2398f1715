"""Text that reads well: a message's text as HTML, escaped exactly once, with `http(s)`
URLs as links and `@Name` mentions of people who have been in the room marked.

Rendered once on the server for every reader; no other scheme ever becomes a link.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import lru_cache

from markupsafe import Markup, escape

# A URL runs to the next space, quote or angle bracket; what a sentence puts after it
# (a full stop, a closing bracket) is not part of it.
_URL = r"https?://[^\s<>\"'`]+"
_TRAILING = ".,;:!?'\")]}*"


@lru_cache(maxsize=256)
def _pattern(names: frozenset[str]) -> re.Pattern[str]:
    parts = [f"(?P<url>{_URL})"]
    if names:
        # Longest first, so "@Ann Lee" wins over "@Ann"; a mention ends where a word does.
        alternatives = "|".join(re.escape(name) for name in sorted(names, key=len, reverse=True))
        parts.append(rf"(?<![\w@])@(?P<mention>{alternatives})(?!\w)")
    return re.compile("|".join(parts), re.IGNORECASE)


def _link(url: str) -> tuple[str, str]:
    """The link's markup and what follows it (trailing punctuation given back)."""
    kept = url.rstrip(_TRAILING)
    if url[len(kept):].startswith(")") and "(" in kept:  # a URL with balanced brackets
        kept += ")"
    if kept.lower() in ("http://", "https://"):
        return escape(url), ""
    anchor = Markup(
        '<a href="{0}" rel="noopener noreferrer nofollow" target="_blank">{0}</a>'
    ).format(kept)
    return anchor, url[len(kept):]


def render(text: str, mentionable: Mapping[str, Sequence[str]]) -> tuple[Markup, list[str]]:
    """`text` as HTML, and the member keys it mentions (`mentionable`: name -> keys)."""
    names = {name.casefold(): name for name in mentionable}
    pattern = _pattern(frozenset(mentionable) if "@" in text else frozenset())
    pieces: list[str] = []
    mentioned: list[str] = []
    end = 0
    for found in pattern.finditer(text):
        pieces.append(escape(text[end:found.start()]))
        end = found.end()
        if found.group("url"):
            anchor, rest = _link(found.group("url"))
            pieces += [anchor, escape(rest)]
            continue
        typed = found.group("mention")
        name = names[typed.casefold()]
        pieces.append(Markup('<span class="mention">@{}</span>').format(typed))
        mentioned += [key for key in mentionable[name] if key not in mentioned]
    pieces.append(escape(text[end:]))
    return Markup("".join(pieces)), mentioned
