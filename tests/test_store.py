"""The store contract, run against every implementation: SQLite and PostgreSQL.

SQLite runs on a file in `tmp_path`. PostgreSQL runs on a real server
(`CHAT_TEST_POSTGRES_URL`, default postgresql://postgres@127.0.0.1:5432/test), each test
in a fresh schema of its own that is dropped afterwards. When the server is unreachable
the PostgreSQL tests are skipped, except under CI (the `CI` variable is set), where they
fail: CI must run them.
"""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from chat.store import Message, MessageMissing, NotYours, Posted, RoomGone, Store, utc_now
from chat.store.sqlite import SQLiteStore
from tests.kit.stores import MIGRATIONS, Database, latest_schema


def _count_batches(store: Store) -> list[int]:
    """Sizes of the batches `store` commits from now on (one transaction each)."""
    sizes: list[int] = []
    batcher = store._batcher
    original = batcher._commit

    def counting(batch):
        sizes.append(len(batch))
        return original(batch)

    batcher._commit = counting
    return sizes


def _is_ms_utc(moment: datetime) -> bool:
    return moment.utcoffset() == timedelta(0) and moment.microsecond % 1000 == 0


async def _room(store: Store, code: str = "ROOM", *, empty_from: datetime | None = None) -> str:
    assert await store.add_room(code, empty_from or utc_now())
    return code


async def _post(store: Store, *args: str) -> Message:
    return (await store.add_message(*args)).message


async def _fill(store: Store, room: str, count: int) -> list[Message]:
    return [await _post(store, room, "u1", "Ann", f"message {n}") for n in range(count)]


# Rooms ------------------------------------------------------------------------------


async def test_add_room_refuses_a_taken_code(store: Store) -> None:
    assert await store.add_room("ABCD", utc_now())
    assert not await store.add_room("ABCD", utc_now())
    assert await store.add_room("ABCE", utc_now())


async def test_room_exists(store: Store) -> None:
    assert not await store.room_exists("ABCD")
    await _room(store, "ABCD")
    assert await store.room_exists("ABCD")
    assert not await store.room_exists("abcd")  # codes are stored as given


async def test_ping(store: Store) -> None:
    assert await store.ping()


# Messages ---------------------------------------------------------------------------


async def test_add_message_returns_committed_messages(database: Database, store: Store) -> None:
    room = await _room(store)
    before = utc_now().replace(microsecond=utc_now().microsecond // 1000 * 1000)
    first = await _post(store, room, "u1", "Ann", "hello")
    second = await _post(store, room, "u2", "Bob", "hi <b>there</b>")
    after = utc_now()

    assert (first.room, first.author_id, first.author, first.text) == (room, "u1", "Ann", "hello")
    assert second.id > first.id
    for message in (first, second):
        assert _is_ms_utc(message.sent_at)
        assert message.sent_at.tzinfo is not None
        assert before - timedelta(milliseconds=1) <= message.sent_at <= after
    # Committed: another store on the same database sees them, exactly as returned.
    other = await database.open()
    assert (await other.page_before(room, None, 10)).messages == [first, second]


async def test_concurrent_messages_are_stored_once_in_few_transactions(store: Store) -> None:
    room = await _room(store)
    batches = _count_batches(store)

    posts = await asyncio.gather(
        *(store.add_message(room, f"u{n}", f"User {n}", f"text {n}") for n in range(200))
    )
    messages = [post.message for post in posts]

    ids = [message.id for message in messages]
    assert len(set(ids)) == 200
    assert ids == sorted(ids)  # in the order the calls were made
    assert [message.text for message in messages] == [f"text {n}" for n in range(200)]
    stored = await store.page_before(room, None, 500)
    assert stored.messages == messages
    assert not stored.has_earlier
    assert sum(batches) == 200
    assert len(batches) < 200


async def test_room_gone_fails_only_its_own_messages(store: Store) -> None:
    live = await _room(store, "LIVE")
    doomed = await _room(store, "GONE", empty_from=utc_now() - timedelta(hours=1))
    await _post(store, doomed, "u1", "Ann", "soon gone")
    assert await store.delete_rooms_empty_since(utc_now() - timedelta(minutes=30)) == [doomed]
    batches = _count_batches(store)

    results = await asyncio.gather(
        store.add_message(live, "u1", "Ann", "one"),
        store.add_message(doomed, "u1", "Ann", "into a deleted room"),
        store.add_message("NONE", "u1", "Ann", "into a room that never was"),
        store.add_message(live, "u1", "Ann", "two"),
        return_exceptions=True,
    )

    first, deleted, missing, second = results
    assert isinstance(deleted, RoomGone)
    assert isinstance(missing, RoomGone)
    assert isinstance(first, Posted) and isinstance(second, Posted)
    first, second = first.message, second.message
    assert first.id < second.id
    assert batches == [4]  # they were one batch, and the good ones still committed
    assert (await store.page_before(live, None, 10)).messages == [first, second]
    assert (await store.page_before(doomed, None, 10)).messages == []


async def test_page_before_walks_the_history_without_gaps(store: Store) -> None:
    room = await _room(store)
    other = await _room(store, "OTHR")
    written = []
    for n in range(120):
        written.append(await _post(store, room, "u1", "Ann", f"m{n}"))
        if n % 7 == 0:
            await _post(store, other, "u2", "Bob", f"elsewhere {n}")

    pages = []
    before = None
    while True:
        page = await store.page_before(room, before, 50)
        pages.append(page)
        if not page.has_earlier:
            break
        before = page.first_id

    assert [len(page.messages) for page in pages] == [50, 50, 20]
    assert [page.has_earlier for page in pages] == [True, True, False]
    for page in pages:
        ids = [message.id for message in page.messages]
        assert ids == sorted(ids)  # oldest first within a page
    walked = [message for page in reversed(pages) for message in page.messages]
    assert walked == written
    # Exactly a page's worth left: no earlier ones.
    exact = await store.page_before(room, written[50].id, 50)
    assert exact.messages == written[:50]
    assert not exact.has_earlier
    empty = await store.page_before(room, written[0].id, 50)
    assert empty.messages == [] and not empty.has_earlier
    assert empty.first_id is None and empty.last_id == 0
    assert (await store.page_before("NONE", None, 50)).messages == []


async def test_messages_after(store: Store) -> None:
    room = await _room(store)
    other = await _room(store, "OTHR")
    written = []
    for n in range(10):
        written.append(await _post(store, room, "u1", "Ann", f"m{n}"))
        await _post(store, other, "u2", "Bob", f"o{n}")

    assert await store.messages_after(room, 0, 100) == written
    assert await store.messages_after(room, written[3].id, 4) == written[4:8]
    assert await store.messages_after(room, written[-1].id, 100) == []
    assert await store.messages_after("NONE", 0, 100) == []


# Empty rooms ------------------------------------------------------------------------


async def test_only_rooms_empty_long_enough_are_deleted_with_their_history(
    store: Store,
) -> None:
    now = utc_now()
    old = await _room(store, "OLDR", empty_from=now - timedelta(minutes=30))
    fresh = await _room(store, "NEWR", empty_from=now - timedelta(minutes=1))
    busy = await _room(store, "BUSY", empty_from=now - timedelta(minutes=30))
    await store.set_room_empty(busy, None)  # someone is in it
    for room in (old, fresh, busy):
        await _fill(store, room, 3)

    assert await store.delete_rooms_empty_since(now - timedelta(minutes=15)) == [old]

    assert not await store.room_exists(old)
    assert await store.room_exists(fresh) and await store.room_exists(busy)
    assert len((await store.page_before(fresh, None, 10)).messages) == 3
    assert len((await store.page_before(busy, None, 10)).messages) == 3
    # The history went with the room: a new room under the old code starts empty.
    await _room(store, old)
    assert (await store.page_before(old, None, 10)).messages == []
    assert await store.messages_after(old, 0, 10) == []

    # Emptied again later: deleted once that, too, is long enough ago.
    await store.set_room_empty(busy, now - timedelta(minutes=20))
    assert await store.delete_rooms_empty_since(now - timedelta(minutes=15)) == [busy]
    assert await store.delete_rooms_empty_since(now - timedelta(minutes=15)) == []


async def test_set_unknown_rooms_empty_marks_only_occupied_rooms(store: Store) -> None:
    now = utc_now()
    occupied = await _room(store, "OCCU")
    await store.set_room_empty(occupied, None)
    empty = await _room(store, "EMPT", empty_from=now - timedelta(minutes=1))

    await store.set_unknown_rooms_empty(now - timedelta(minutes=30))

    # The occupied room now counts as empty since then; the empty one keeps its time.
    assert await store.delete_rooms_empty_since(now - timedelta(minutes=15)) == [occupied]
    assert await store.room_exists(empty)
    assert await store.delete_rooms_empty_since(now) == [empty]


async def test_cutoff_is_inclusive_to_the_millisecond(store: Store) -> None:
    moment = datetime(2030, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    await _room(store, "EDGE", empty_from=moment)
    assert await store.delete_rooms_empty_since(moment - timedelta(milliseconds=1)) == []
    assert await store.delete_rooms_empty_since(moment.replace(microsecond=123000)) == ["EDGE"]


# Sent exactly once ------------------------------------------------------------------


async def test_a_nonce_posts_once_and_returns_the_first_message(store: Store) -> None:
    room = await _room(store)
    first = await store.add_message(room, "u1", "Ann", "hello", "n-1")
    again = await store.add_message(room, "u1", "Ann", "hello (typed again)", "n-1")

    assert first.new and not again.new
    assert again.message == first.message
    assert first.message.nonce == "n-1"
    assert (await store.page_before(room, None, 10)).messages == [first.message]


async def test_the_same_nonce_in_one_batch_posts_once(store: Store) -> None:
    room = await _room(store)
    batches = _count_batches(store)

    posts = await asyncio.gather(
        store.add_message(room, "u1", "Ann", "before", None),
        *(store.add_message(room, "u1", "Ann", "resent", "same") for _ in range(3)),
        store.add_message(room, "u1", "Ann", "after", None),
    )

    assert batches == [5]
    assert [post.new for post in posts] == [True, True, False, False, True]
    assert len({post.message.id for post in posts[1:4]}) == 1
    stored = (await store.page_before(room, None, 10)).messages
    assert [message.text for message in stored] == ["before", "resent", "after"]


async def test_nonces_are_per_user_and_room_and_none_is_never_deduplicated(
    store: Store,
) -> None:
    room, other = await _room(store), await _room(store, "OTHR")
    posts = [
        await store.add_message(room, "u1", "Ann", "a", "n"),
        await store.add_message(room, "u2", "Bob", "b", "n"),
        await store.add_message(other, "u1", "Ann", "c", "n"),
        await store.add_message(room, "u1", "Ann", "d", None),
        await store.add_message(room, "u1", "Ann", "d", None),
    ]
    assert all(post.new for post in posts)
    assert len({post.message.id for post in posts}) == 5


async def test_a_database_of_the_first_release_upgrades_in_place(database: Database) -> None:
    await _build_first_release_database(database)

    store = await database.open()
    [kept] = (await store.page_before("ABCD", None, 10)).messages
    assert (kept.author, kept.text, kept.nonce) == ("Ann", "from the first release", None)
    assert (await database.schema_versions())[-1] == latest_schema(database.kind)
    first = await store.add_message("ABCD", "u1", "Ann", "now with a nonce", "n")
    assert not (await store.add_message("ABCD", "u1", "Ann", "again", "n")).new
    assert first.message.id > kept.id


async def test_sqlite_file_alone_holds_messages_within_seconds(tmp_path: Path) -> None:
    """The WAL is copied into the database file beside the writer, so a copy of the file
    alone (a backup that missed the -wal file) is at most a couple of seconds behind."""
    path = tmp_path / "chat.db"
    store = SQLiteStore(path)
    await store.open()
    try:
        room = await _room(store)
        await _fill(store, room, 20)

        def count_in_file_alone() -> int:
            copy = tmp_path / "file-alone.db"
            copy.write_bytes(path.read_bytes())
            with sqlite3.connect(copy) as connection:
                try:
                    return connection.execute("SELECT count(*) FROM messages").fetchone()[0]
                except sqlite3.OperationalError:  # not even the tables yet
                    return 0

        for _ in range(30):
            if count_in_file_alone() == 20:
                return
            await asyncio.sleep(0.1)
        raise AssertionError("the database file alone still lacks the messages after 3 s")
    finally:
        await store.close()


async def _build_first_release_database(database: Database) -> None:
    """The schema and a message as the first release left them (migration 1 only)."""
    first = "0001_rooms_and_messages.sql"
    if database.kind == "sqlite":
        with sqlite3.connect(database.location) as connection:
            connection.executescript((MIGRATIONS / "sqlite" / first).read_text())
            connection.execute("INSERT INTO rooms VALUES ('ABCD', 0, NULL)")
            connection.execute(
                "INSERT INTO messages (room_code, author_id, author, body, sent_at)"
                " VALUES ('ABCD', 'u1', 'Ann', 'from the first release', 1000)"
            )
            connection.execute("PRAGMA user_version=1")
        return
    connection = await asyncpg.connect(database.location)
    try:
        await connection.execute((MIGRATIONS / "postgres" / first).read_text())
        await connection.execute(
            "CREATE TABLE schema_migrations (version integer PRIMARY KEY,"
            " applied_at timestamptz NOT NULL DEFAULT now());"
            "INSERT INTO schema_migrations (version) VALUES (1);"
            "INSERT INTO rooms VALUES ('ABCD', now(), NULL);"
            "INSERT INTO messages (room_code, author_id, author, body, sent_at)"
            " VALUES ('ABCD', 'u1', 'Ann', 'from the first release', now())"
        )
    finally:
        await connection.close()


# Edits, deletions, reactions -------------------------------------------------------


async def test_edit_and_delete_are_the_authors_and_show_everywhere(store: Store) -> None:
    room = await _room(store)
    first, second = await _fill(store, room, 2)
    since = await store.room_revision(room)

    edited = await store.edit_message(room, first.id, "u1", "fixed the typo")
    assert (edited.id, edited.text, edited.edited, edited.deleted) == (
        first.id, "fixed the typo", True, False)
    assert edited.sent_at == first.sent_at and edited.revision > since
    with pytest.raises(NotYours):
        await store.edit_message(room, second.id, "someone else", "mine now")
    with pytest.raises(NotYours):
        await store.delete_message(room, second.id, "someone else")
    with pytest.raises(MessageMissing):
        await store.edit_message(room, 10**9, "u1", "no such message")
    with pytest.raises(MessageMissing):
        await store.edit_message("OTHR", first.id, "u1", "wrong room")

    deleted = await store.delete_message(room, second.id, "u1")
    assert (deleted.text, deleted.deleted) == ("", True)
    with pytest.raises(MessageMissing):
        await store.edit_message(room, second.id, "u1", "back from the dead")

    page = (await store.page_before(room, None, 10)).messages
    assert page == [edited, deleted]
    assert await store.messages_after(room, 0, 10) == [edited, deleted]
    # A page rendered before both changes catches up on them, in the order they happened.
    assert await store.changed_since(room, since, second.id, 10) == [edited, deleted]
    assert await store.changed_since(room, edited.revision, second.id, 10) == [deleted]
    assert await store.changed_since(room, since, first.id, 10) == [edited]


async def test_reactions_toggle_per_user_and_emoji(store: Store) -> None:
    room = await _room(store)
    [message] = await _fill(store, room, 1)
    await store.toggle_reaction(room, message.id, "u1", "Ann", "👍")
    await store.toggle_reaction(room, message.id, "u2", "Bob", "👍")
    after = await store.toggle_reaction(room, message.id, "u2", "Bob", "🎉")
    assert [(r.emoji, r.names, r.count) for r in after.reactions] == [
        ("👍", ("Ann", "Bob"), 2), ("🎉", ("Bob",), 1)]

    after = await store.toggle_reaction(room, message.id, "u1", "Ann", "👍")  # taken back
    assert [(r.emoji, r.names) for r in after.reactions] == [("👍", ("Bob",)), ("🎉", ("Bob",))]
    assert (await store.page_before(room, None, 10)).messages == [after]
    with pytest.raises(MessageMissing):
        await store.toggle_reaction(room, 10**9, "u1", "Ann", "👍")


async def test_names_that_have_been_in_a_room(store: Store) -> None:
    room, other = await _room(store), await _room(store, "OTHR")
    await store.add_room_name(room, "u1", "Ann")
    await store.add_room_name(room, "u1", "Ann")
    await store.add_room_name(room, "u2", "Ann")
    await store.add_room_name(room, "u3", "Bob")
    await store.add_room_name(other, "u4", "Cy")
    names = await store.room_names(room)
    assert {name: sorted(ids) for name, ids in names.items()} == {
        "Ann": ["u1", "u2"], "Bob": ["u3"]}


async def test_parked_members_are_taken_once_and_skip_deleted_rooms(store: Store) -> None:
    room = await _room(store)
    await store.park_members([(room, "u1", "Ann"), (room, "u2", "Bob"), ("GONE", "u3", "Cy")])
    await store.park_members([(room, "u1", "Ann B")])  # parked again: the newer name

    assert sorted(await store.take_parked_members()) == [(room, "u1", "Ann B"), (room, "u2", "Bob")]
    assert await store.take_parked_members() == []


# Schema and restarts ----------------------------------------------------------------


async def test_stores_opening_together_migrate_once(database: Database) -> None:
    first, second = await asyncio.gather(database.open(), database.open())
    await _room(first, "ABCD")
    message = await _post(second, "ABCD", "u1", "Ann", "hello")
    assert (await first.page_before("ABCD", None, 10)).messages == [message]

    third = await database.open()  # already up to date: nothing to do, nothing lost
    assert await third.room_exists("ABCD")
    assert (await database.schema_versions())[-1] == latest_schema(database.kind)


async def test_restart_keeps_rooms_and_messages(database: Database) -> None:
    store = await database.open()
    await _room(store, "ABCD")
    written = await _fill(store, "ABCD", 5)
    await database.close(store)

    reopened = await database.open()
    assert await reopened.room_exists("ABCD")
    assert (await reopened.page_before("ABCD", None, 10)).messages == written
    # Ids go on from where they were.
    later = await _post(reopened, "ABCD", "u1", "Ann", "after the restart")
    assert later.id > written[-1].id
