"""Search and bots in the store contract, on SQLite and PostgreSQL (the fixtures of
`tests/test_store.py`: a fresh SQLite file, or a fresh PostgreSQL schema).

Search is by whole words, any case, newest first, a page at a time, within one room;
whatever is typed is read as words and never as the engine's query syntax (checked
with hypothesis). The index follows every write to `messages`, whoever makes it.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import sqlite3
import unicodedata
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from chat.search import query_words
from chat.store import Message, RoomGone, Store, utc_now
from chat.store.postgres import PostgresStore
from chat.store.sqlite import SQLiteStore
from tests.kit.stores import (
    MIGRATIONS,
    POSTGRES_URL,
    Database,
    postgres_admin,
    with_search_path,
)

# `database` and `store` (tests/conftest.py): every test below runs on SQLite and on
# PostgreSQL.

SYNTAX = ['"', '""', "*", "OR", "AND", "NOT", "NEAR(", "NEAR", "-", "(", ")", "^", ":",
          "'", "\\", "&", "|", "!", "<->", ":*", "{", "}", "+", "body:", "room_code :"]


async def _room(store: Store, code: str = "ROOM") -> str:
    assert await store.add_room(code, utc_now())
    return code


async def _post(store: Store, room: str, text: str, author: str = "Ann") -> Message:
    return (await store.add_message(room, "u1", author, text)).message


async def _found(store: Store, room: str, query: str, before: int | None = None,
                 limit: int = 50) -> list[str]:
    found = await store.search(room, query_words(query), before, limit)
    return [message.text for message in found.messages]


async def test_search_finds_whole_words_newest_first_in_one_room_only(store: Store) -> None:
    room, other = await _room(store), await _room(store, "OTHR")
    await _post(store, room, "Deploy finished on staging")
    await _post(store, other, "deploy in another room")
    await _post(store, room, "lunch?")
    await _post(store, room, "the DEPLOY failed: rolling back")
    await _post(store, room, "redeploy tomorrow")  # not the word "deploy"

    assert await _found(store, room, "deploy") == [
        "the DEPLOY failed: rolling back", "Deploy finished on staging"]
    assert await _found(store, room, "Deploy staging") == ["Deploy finished on staging"]
    assert await _found(store, room, "deploy lunch") == []  # every word must be there
    assert await _found(store, other, "DEPLOY") == ["deploy in another room"]
    assert await _found(store, "NONE", "deploy") == []
    assert await _found(store, room, "") == []
    assert await _found(store, room, "room") == []  # the room code is not a word of the text
    assert await _found(store, room, "ROOM") == []


async def test_search_pages_back_with_before(store: Store) -> None:
    room = await _room(store)
    written = [await _post(store, room, f"needle number {n}") for n in range(7)]
    await _post(store, room, "haystack")

    first = await store.search(room, ["needle"], None, 3)
    assert [m.id for m in first.messages] == [m.id for m in written[:-4:-1]]
    assert first.has_more and first.last_id == written[4].id
    second = await store.search(room, ["needle"], first.last_id, 3)
    assert [m.id for m in second.messages] == [m.id for m in written[3:0:-1]]
    third = await store.search(room, ["needle"], second.last_id, 3)
    assert third.messages == written[:1] and not third.has_more
    assert third.messages[0] == written[0]  # whole messages, as stored


async def test_query_syntax_is_read_as_words(store: Store) -> None:
    room = await _room(store)
    await _post(store, room, 'she said "ship it" OR else')
    await _post(store, room, "NEAR(the end) - (maybe) *starred*")
    await _post(store, room, "don't stop; foo-bar x_y café 日本語 МИР")
    await _post(store, room, "mail bob@example.com or see https://example.org/path?q=1")

    for query in SYNTAX:
        await _found(store, room, query)  # never an error
    assert await _found(store, room, '"ship it"') == ['she said "ship it" OR else']
    assert await _found(store, room, "OR") == [
        "mail bob@example.com or see https://example.org/path?q=1", 'she said "ship it" OR else']
    assert await _found(store, room, "NEAR(the") == ["NEAR(the end) - (maybe) *starred*"]
    assert await _found(store, room, "-(maybe) starred*") == ["NEAR(the end) - (maybe) *starred*"]
    assert await _found(store, room, "don't") == ["don't stop; foo-bar x_y café 日本語 МИР"]
    assert await _found(store, room, "foo-bar") == ["don't stop; foo-bar x_y café 日本語 МИР"]
    assert await _found(store, room, "CAFÉ мир 日本語") == [
        "don't stop; foo-bar x_y café 日本語 МИР"]
    assert await _found(store, room, "cafe") == []  # accents count, in both stores
    assert await _found(store, room, "bob example") == [
        "mail bob@example.com or see https://example.org/path?q=1"]
    assert await _found(store, room, "path") == [
        "mail bob@example.com or see https://example.org/path?q=1"]
    # Words given to the store directly are quoted too, whatever they hold.
    for raw in ['"', 'a" OR "b', "x*", "NEAR(a b)", "a:b", "'", "\\"]:
        await store.search(room, [raw], None, 10)


async def test_the_index_follows_writes_to_messages(database: Database, store: Store) -> None:
    """Edits and deletions, made by whatever writes the rows (here: plain SQL, as a later
    feature will), and rooms deleted with their history, stay in step with search."""
    room = await _room(store)
    kept = await _post(store, room, "alpha original")
    edited = await _post(store, room, "alpha typo")
    deleted = await _post(store, room, "alpha gone")
    await _sql(database, "UPDATE messages SET body = 'beta fixed' WHERE id = $1", edited.id)
    await _sql(database, "DELETE FROM messages WHERE id = $1", deleted.id)

    assert await _found(store, room, "alpha") == ["alpha original"]
    assert await _found(store, room, "typo") == []
    assert await _found(store, room, "beta") == ["beta fixed"]
    assert kept.id < edited.id

    doomed = await _room(store, "GONE")
    await _post(store, doomed, "alpha in a doomed room")
    await store.set_room_empty(doomed, utc_now() - timedelta(hours=1))
    await store.set_room_empty(room, None)
    assert await store.delete_rooms_empty_since(utc_now()) == [doomed]
    await _room(store, doomed)  # the code again: a new room with no history
    assert await _found(store, doomed, "alpha") == []


async def test_changes_reach_search_before_and_after_the_index_took_the_message_in(
    database: Database, store: Store
) -> None:
    """SQLite indexes new messages in batches: a message changed while still waiting for
    the index, and one changed after, are both found as they are now."""
    room = await _room(store)
    early = await _post(store, room, "gamma first")
    gone_early = await _post(store, room, "gamma doomed early")
    assert await _found(store, room, "gamma") == ["gamma doomed early", "gamma first"]
    late = await _post(store, room, "gamma second")
    gone_late = await _post(store, room, "gamma doomed late")
    for message, text in ((early, "delta first"), (late, "delta second")):
        await _sql(database, f"UPDATE messages SET body = '{text}' WHERE id = $1", message.id)
    for message in (gone_early, gone_late):
        await _sql(database, "DELETE FROM messages WHERE id = $1", message.id)

    assert await _found(store, room, "gamma") == []
    assert await _found(store, room, "delta") == ["delta second", "delta first"]
    if database.kind == "sqlite":  # FTS5 checks its index against the messages
        with sqlite3.connect(database.location) as connection:
            connection.execute("INSERT INTO messages_fts (messages_fts) VALUES ('integrity-check')")


async def test_sqlite_indexes_new_messages_within_seconds_without_a_search(
    tmp_path: Path,
) -> None:
    store = SQLiteStore(tmp_path / "chat.db")
    await store.open()
    try:
        room = await _room(store)
        await _post(store, room, "epsilon waits for no search")

        def indexed() -> int:
            with sqlite3.connect(store.path) as connection:
                return connection.execute(
                    "SELECT count(*) FROM messages_fts WHERE messages_fts MATCH 'epsilon'"
                ).fetchone()[0]

        for _ in range(50):
            if indexed():
                break
            await asyncio.sleep(0.1)
        assert indexed() == 1
    finally:
        await store.close()


async def _sql(database: Database, statement: str, *args: object) -> None:
    if database.kind == "sqlite":
        with sqlite3.connect(database.location) as connection:
            connection.execute(statement.replace("$1", "?"), args)
        return
    connection = await asyncpg.connect(database.location)
    try:
        await connection.execute(statement, *args)
    finally:
        await connection.close()


async def test_a_database_with_history_is_indexed_by_the_upgrade(database: Database) -> None:
    """Messages stored before search existed (schema 3) are found after the upgrade."""
    await _build_schema_3_database(database)
    store = await database.open()
    assert await _found(store, "ABCD", "earlier") == ["said earlier, before search"]
    await _post(store, "ABCD", "said later")
    assert await _found(store, "ABCD", "said") == ["said later", "said earlier, before search"]


async def _build_schema_3_database(database: Database) -> None:
    scripts = [MIGRATIONS / database.kind / name for name in (
        "0001_rooms_and_messages.sql", "0002_message_nonces.sql", "0003_parked_members.sql")]
    insert = ("INSERT INTO messages (room_code, author_id, author, body, sent_at)"
              " VALUES ('ABCD', 'u1', 'Ann', 'said earlier, before search', {now})")
    if database.kind == "sqlite":
        with sqlite3.connect(database.location) as connection:
            for script in scripts:
                connection.executescript(script.read_text())
            connection.execute("INSERT INTO rooms VALUES ('ABCD', 0, NULL)")
            connection.execute(insert.format(now=1000))
            connection.execute("PRAGMA user_version=3")
        return
    connection = await asyncpg.connect(database.location)
    try:
        for script in scripts:
            await connection.execute(script.read_text())
        await connection.execute(
            "CREATE TABLE schema_migrations (version integer PRIMARY KEY,"
            " applied_at timestamptz NOT NULL DEFAULT now());"
            "INSERT INTO schema_migrations (version) VALUES (1), (2), (3);"
            "INSERT INTO rooms VALUES ('ABCD', now(), NULL);" + insert.format(now="now()")
        )
    finally:
        await connection.close()


# Bots ---------------------------------------------------------------------------------


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def test_bots_are_found_by_token_hash_listed_per_room_and_revoked(store: Store) -> None:
    room, other = await _room(store), await _room(store, "OTHR")
    ci = await store.add_bot(room, "CI", _hash("token-1"), "u1")
    monitor = await store.add_bot(room, "Monitor", _hash("token-2"), "u2")
    elsewhere = await store.add_bot(other, "CI", _hash("token-3"), "u1")

    assert (ci.room, ci.name, ci.author_id) == (room, "CI", f"bot:{ci.id}")
    assert ci.created_at.utcoffset() == timedelta(0)
    assert await store.bots(room) == [ci, monitor]
    assert await store.bots(other) == [elsewhere]
    assert await store.bot_by_token(_hash("token-2")) == monitor
    assert await store.bot_by_token(_hash("nope")) is None

    assert not await store.delete_bot(other, ci.id)  # another room's bot: untouched
    assert await store.delete_bot(room, ci.id)
    assert not await store.delete_bot(room, ci.id)
    assert await store.bot_by_token(_hash("token-1")) is None
    assert await store.bots(room) == [monitor]

    with pytest.raises(RoomGone):
        await store.add_bot("NONE", "Ghost", _hash("token-4"), "u1")


async def test_bots_go_with_their_room(store: Store) -> None:
    room = await _room(store)
    await store.add_bot(room, "CI", _hash("token-1"), "u1")
    await store.set_room_empty(room, utc_now() - timedelta(hours=1))
    assert await store.delete_rooms_empty_since(utc_now()) == [room]
    assert await store.bot_by_token(_hash("token-1")) is None


async def test_a_bot_message_is_known_as_a_bots(store: Store) -> None:
    room = await _room(store)
    bot = await store.add_bot(room, "CI", _hash("t"), "u1")
    posted = (await store.add_message(room, bot.author_id, bot.name, "build green")).message
    person = await _post(store, room, "thanks")
    assert posted.is_bot and not person.is_bot
    [stored, _] = (await store.page_before(room, None, 10)).messages
    assert stored.is_bot and stored.author == "CI"


# Any text (hypothesis) -----------------------------------------------------------------

PROPERTY = settings(
    max_examples=60, deadline=None, database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def _storable(text: str) -> str:
    # What a message can hold (the room rules refuse control characters and lone
    # surrogates before anything is stored).
    return "".join(c for c in text if unicodedata.category(c) not in {"Cc", "Cs"})


# A word: letters and digits that Python reads as one word.
words = st.text(
    alphabet=st.characters(categories=["Lu", "Ll", "Lo", "Nd"]), min_size=1, max_size=12
).filter(lambda word: query_words(word) == [word])
noise = st.text(max_size=40).map(_storable)
# Syntax that is not itself a word, to stick to a word without joining it.
wraps = st.sampled_from([syntax for syntax in SYNTAX if not query_words(syntax)])
queries = st.one_of(
    st.text(max_size=80),
    st.lists(st.sampled_from(SYNTAX) | st.text(max_size=6), max_size=8).map(" ".join),
)


def _other_case(word: str) -> str:
    """The word in capitals where both stores fold case alike: Latin, Greek and Cyrillic
    letters whose capital folds back (not ß -> SS). (SQLite folds by Unicode 6.1's
    tables, so e.g. Adlam capitals, added later, stay distinct there.)"""
    return "".join(
        upper if ord(char) < 0x500 and len(upper := char.upper()) == 1
        and upper.lower() == char else char
        for char in word
    )


@pytest.fixture(params=["sqlite", "postgres"])
def loop_and_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple]:
    """A store on a private event loop: hypothesis calls a plain function per example."""
    loop = asyncio.new_event_loop()
    cleanup = []
    if request.param == "sqlite":
        store: Store = SQLiteStore(tmp_path / "chat.db")
    else:
        admin = loop.run_until_complete(postgres_admin())
        schema = f"test_search_{secrets.token_hex(6)}"
        loop.run_until_complete(admin.execute(f'CREATE SCHEMA "{schema}"'))
        store = PostgresStore(with_search_path(POSTGRES_URL, schema), max_size=2)
        cleanup.append(admin.execute(f'DROP SCHEMA "{schema}" CASCADE'))
        cleanup.append(admin.close())
    loop.run_until_complete(store.open())
    try:
        yield loop, store
    finally:
        loop.run_until_complete(store.close())
        for step in cleanup:
            loop.run_until_complete(step)
        loop.close()


def test_any_query_answers_and_a_message_is_found_by_any_of_its_words(loop_and_store) -> None:
    loop, store = loop_and_store
    run = loop.run_until_complete
    run(store.add_room("ROOM", utc_now()))
    run(store.add_room("OTHR", utc_now()))

    @PROPERTY
    @given(query=queries, word=words, before=noise, after=noise, wrap=wraps)
    def check(query: str, word: str, before: str, after: str, wrap: str) -> None:
        run(store.search("ROOM", query_words(query), None, 50))  # any text: no error
        run(store.search("ROOM", [query], None, 50))  # even handed to the store raw
        text = f"{before} {word} {after}"
        message = run(store.add_message("ROOM", "u1", "Ann", text)).message
        run(store.add_message("OTHR", "u1", "Ann", text))
        for typed in (word, _other_case(word), f"{wrap}{word}{wrap}"):
            found = run(store.search("ROOM", query_words(typed), None, 1)).messages
            assert found == [message], (typed, text)

    check()
