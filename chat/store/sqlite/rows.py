"""Rows as the store returns them: messages (with their reactions), bots, and times
kept as integer milliseconds."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

from chat.store import (
    Bot,
    Message,
    attach_reactions,
)


def to_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def message_from_row(row: tuple) -> Message:
    id_, room, author_id, author, body, sent_at, nonce, revision, edited_at, deleted_at = row
    return Message(
        id_, room, author_id, author, body, from_ms(sent_at), nonce, revision,
        edited=edited_at is not None, deleted=deleted_at is not None,
    )


def with_reactions(connection: sqlite3.Connection, messages: list[Message]) -> list[Message]:
    """The messages with their reactions, read in one query."""
    if not messages:
        return messages
    marks = ",".join("?" * len(messages))
    rows = connection.execute(
        f"SELECT message_id, emoji, name FROM reactions WHERE message_id IN ({marks})"
        " ORDER BY reacted_at, rowid",
        [message.id for message in messages],
    ).fetchall()
    return attach_reactions(messages, rows)


def bot_from_row(row: tuple) -> Bot:
    id_, room, name, created_at = row
    return Bot(id_, room, name, from_ms(created_at))
