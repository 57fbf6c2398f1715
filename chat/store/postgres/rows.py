"""Rows as the store returns them: messages (with their reactions) and bots, times
in UTC cut to the millisecond (what the SQLite store keeps)."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg

from chat.store import (
    Bot,
    Message,
    attach_reactions,
)


def ms(moment: datetime) -> datetime:
    """`moment` in UTC, cut to the millisecond (what the SQLite store keeps)."""
    moment = moment.astimezone(UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def message_from_row(row: asyncpg.Record) -> Message:
    id_, room, author_id, author, body, sent_at, nonce, revision, edited_at, deleted_at = row
    return Message(
        id_, room, author_id, author, body, sent_at, nonce, revision,
        edited=edited_at is not None, deleted=deleted_at is not None,
    )


async def with_reactions(
    connection: asyncpg.Connection | asyncpg.Pool, messages: list[Message]
) -> list[Message]:
    """The messages with their reactions, read in one query."""
    if not messages:
        return messages
    rows = await connection.fetch(
        "SELECT message_id, emoji, name FROM reactions WHERE message_id = ANY($1::bigint[])"
        " ORDER BY reacted_at, ctid",
        [message.id for message in messages],
    )
    return attach_reactions(messages, (tuple(row) for row in rows))


def bot_from_row(row: asyncpg.Record) -> Bot:
    id_, room, name, created_at = row
    return Bot(id_, room, name, created_at)
