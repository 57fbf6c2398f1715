"""Room rules: what a room code, a display name and a message may be.

Pure functions with no I/O, shared by the forms, the WebSocket and the store, so every
way in applies the same rules and says the same thing (`chat.texts`) when one is broken.
"""

from __future__ import annotations

import secrets
import string
import unicodedata

from chat import texts
from chat.texts import NAME_MAX

CODE_ALPHABET = string.ascii_uppercase
# The reactions a message can get, in the order the picker offers them.
REACTIONS = ("👍", "❤️", "😂", "🎉", "😮", "🙏")


class RuleBroken(ValueError):
    """Input that breaks a room rule; its text is shown to the user as it is."""


def new_code(length: int) -> str:
    """A random room code; uniqueness is the store's job."""
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(length))


def normalize_code(raw: str) -> str:
    """Codes are typed by people: ignore surrounding space and case."""
    return raw.strip().upper()


def is_well_formed_code(code: str, length: int) -> bool:
    return len(code) == length and all(letter in CODE_ALPHABET for letter in code)


def _has_unprintable(text: str, allowed: str = "") -> bool:
    # Cc: control characters; Cf: invisible formatting (bidi overrides, zero-width);
    # Cs: lone surrogates; Co/Cn: private use and unassigned. `isprintable()` is False
    # for all of these (and for separators other than the space), in one C pass.
    if text.isprintable():
        return False
    return any(
        unicodedata.category(char) in {"Cc", "Cf", "Cs", "Co", "Cn"} and char not in allowed
        for char in text
    )


def check_reaction(emoji: str) -> None:
    if emoji not in REACTIONS:
        raise RuleBroken(texts.REACTION_UNKNOWN)


def clean_name(raw: str) -> str:
    name = raw.strip()
    if not name:
        raise RuleBroken(texts.NAME_MISSING)
    if len(name) > NAME_MAX:
        raise RuleBroken(texts.NAME_TOO_LONG)
    if _has_unprintable(name):
        raise RuleBroken(texts.NAME_UNPRINTABLE)
    return name


def clean_message(raw: str, longest: int) -> str:
    text = raw.replace("\r\n", "\n").strip()
    if not text:
        raise RuleBroken(texts.MESSAGE_EMPTY)
    if len(text) > longest:
        raise RuleBroken(texts.message_too_long(longest))
    if _has_unprintable(text, allowed="\n\t\u200d"):
        raise RuleBroken(texts.MESSAGE_UNPRINTABLE)
    return text
