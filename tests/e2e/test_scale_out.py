"""Scale-out end to end: two `python -m chat` processes on one Redis broker and one
database behave like one server.

Scripted members (`tests.kit.Member`) follow the browser's flow (home form with its CSRF
token and session cookie, then the room page's socket) and their pages behave like the
page: messages are kept by id (htmx upserts them), and after a 1012/1013 close they
reconnect with `?after=<newest id on the page>`. Each test starts its own `redis-server`
on a free port; the database is a fresh PostgreSQL database when PostgreSQL answers on
127.0.0.1:5432, else a SQLite file both processes share.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.kit import LiveClient, MakeServer, wait_until

pytestmark = pytest.mark.e2e


def assert_complete(pages: list[LiveClient], expected: int) -> None:
    ids = set(pages[0].messages)
    for page in pages:
        assert len(page.messages) == expected, (page.name, sorted(page.messages))
        assert set(page.messages) == ids, page.name
        assert page.doubled == [], (page.name, page.doubled)


def listed(page: LiveClient) -> tuple[list[str] | None, int | None]:
    """The member list a page shows, and its count."""
    return page.members, page.member_count


async def test_two_processes_chat_as_one_through_restart_and_redis_outage(
    two_servers, redis_server, members
):
    a, b = two_servers
    alice, bob, carol = members(a, "Alice"), members(b, "Bob"), members(a, "Carol")

    # Presence merged: one room, members on both processes, Carol on both.
    code = await alice.create_room()
    on_a = await alice.open(code)
    # Arrivals are announced on a short tick: Bob comes once Alice's is out.
    await wait_until(lambda: "Alice" in on_a.entered(), 15, "Alice's arrival")
    await bob.join_room(code)
    on_b = await bob.open(code)
    # One arrival at a time: member counts announced by two processes at once can reach
    # Redis in either order, and the older count may land last (see docs/scale-out.md).
    await wait_until(lambda: "Bob" in on_a.entered(), 15, "Bob's arrival on A")
    await carol.join_room(code)
    carol_a = await carol.open(code)
    await wait_until(lambda: "Carol" in on_b.entered(), 15, "Carol's arrival on B")
    carol_b = await carol.open(code, server=b)
    pages = [on_a, on_b, carol_a, carol_b]

    def merged(page: LiveClient) -> bool:
        return listed(page) == (["Alice", "Bob", "Carol"], 3)

    await wait_until(lambda: all(merged(p) for p in pages), 15, "everyone in every member list")
    await asyncio.sleep(0.3)
    assert all(merged(p) for p in pages), [listed(p) for p in pages]  # Carol counts once
    assert sorted(on_a.entered()) == ["Alice", "Bob", "Carol"]  # one notice per user
    assert sorted(on_b.entered()) == ["Bob", "Carol"]

    # Chat from both processes: every page gets every message once, in one order.
    for round_ in range(5):
        for page in pages:
            page.send(f"{page.name.lower()}-{page.server.name}-{round_}")
    await wait_until(lambda: all(len(p.messages) == 20 for p in pages), 15,
                     "20 messages everywhere")
    await asyncio.sleep(0.3)
    assert_complete(pages, 20)
    assert on_a.order == on_b.order == carol_a.order == carol_b.order

    # Restart B: its sockets close with 1012, reconnect and catch up what A got meanwhile.
    await b.astop()
    for i in range(3):
        on_a.send(f"while-b-restarts-{i}")
    await b.astart()
    await wait_until(lambda: all(len(p.messages) == 23 for p in pages), 15,
                     "23 messages everywhere")
    await asyncio.sleep(0.3)
    assert_complete(pages, 23)
    assert on_b.connects >= 2 and carol_b.connects >= 2
    assert on_a.left() == []  # back within the grace period: nobody left
    # ... and nobody entered again: the restart announced no one.
    assert sorted(on_a.entered()) == ["Alice", "Bob", "Carol"]
    assert sorted(on_b.entered()) == ["Bob", "Carol"]

    # Redis goes away: degraded, same-process chat goes on; back: everyone catches up.
    redis_server.stop()
    await wait_until(lambda: a.health() == b.health() == "degraded", 15, "degraded health")
    for i in range(2):
        on_a.send(f"during-outage-{i}")
    await wait_until(lambda: len(carol_a.messages) == 25, 15, "local delivery during the outage")
    assert len(on_b.messages) == 23  # B cannot hear A now
    redis_server.start()
    await wait_until(lambda: a.health() == b.health() == "ok", 20, "recovered health")
    await wait_until(lambda: all(len(p.messages) == 25 for p in pages), 15,
                     "caught up after outage")
    for page in pages:
        page.send(f"after-outage-{page.name}-{page.server.name}")
    await wait_until(lambda: all(len(p.messages) == 29 for p in pages), 15,
                     "29 messages everywhere")
    await asyncio.sleep(0.3)
    assert_complete(pages, 29)
    texts = " ".join(on_b.texts())
    for needle in ("alice-a-4", "bob-b-0", "carol-b-3", "while-b-restarts-2", "during-outage-1",
                   "after-outage-Bob-b"):
        assert needle in texts


async def test_changes_reach_the_other_process_and_a_page_that_was_away(two_servers, members):
    a, b = two_servers
    alice, bob = members(a, "Alice"), members(b, "Bob")
    code = await alice.create_room()
    on_a = await alice.open(code)
    await bob.join_room(code)
    on_b = await bob.open(code)
    on_a.send("draft one")
    await wait_until(lambda: len(on_b.messages) == 1, 15, "the message on B")
    (message_id,) = on_b.messages

    await alice.change(code, message_id, "edit", {"message": "final one"})
    await wait_until(lambda: "final one" in on_b.articles[message_id], 15, "the edit on B")
    assert "edited" in on_b.articles[message_id]
    await alice.change(code, message_id, "reactions", {"emoji": "🎉"})
    await wait_until(lambda: "🎉 1" in on_b.articles[message_id], 15, "the reaction on B")

    # B restarts; meanwhile the message is deleted on A. B's page, reconnecting with the
    # address it was served, catches up on the deletion.
    await b.astop()
    await alice.change(code, message_id, "delete", {})
    await b.astart()
    await wait_until(lambda: "This message was deleted." in on_b.articles[message_id], 15,
                     "the deletion on B after its restart")
    assert "final one" not in on_b.articles[message_id]


async def test_member_lists_converge_after_a_redis_outage_and_a_crash(
    two_servers, redis_server, members
):
    a, b = two_servers
    alice, bob, carol = members(a, "Alice"), members(b, "Bob"), members(a, "Carol")
    code = await alice.create_room()
    on_a = await alice.open(code)
    await bob.join_room(code)
    on_b = await bob.open(code)
    await wait_until(lambda: "Bob" in on_a.entered(), 15, "Bob's arrival on A")
    await carol.join_room(code)
    carol_a = await carol.open(code)
    pages = [on_a, on_b, carol_a]
    everyone = (["Alice", "Bob", "Carol"], 3)
    await wait_until(lambda: all(listed(p) == everyone for p in pages), 15, "everyone listed")

    # Redis loses everything it knew (restarted empty) while both processes run on.
    redis_server.stop()
    await wait_until(lambda: a.health() == b.health() == "degraded", 15, "degraded health")
    await asyncio.sleep(1.0)
    redis_server.start()
    await wait_until(lambda: a.health() == b.health() == "ok", 20, "recovered health")
    # Recovered, every page reconnects (to catch up) and is sent the list anew.
    await wait_until(lambda: all(p.connects >= 2 for p in pages), 15, "pages to reconnect")
    await wait_until(lambda: all(listed(p) == everyone for p in pages), 25,
                     "every list to show everyone again")
    await asyncio.sleep(1.0)
    assert [listed(p) for p in pages] == [everyone] * 3, [
        (listed(p), p.entered(), p.left()) for p in pages]
    assert on_a.left() == []  # nobody left, so nobody was announced as leaving

    # B dies without a word: Bob, on B only, leaves A's lists with a notice.
    b.kill()
    await wait_until(lambda: all(listed(p) == (["Alice", "Carol"], 2) for p in (on_a, carol_a)), 45,
                     "Bob to leave the lists")
    assert on_a.left() == carol_a.left() == ["Bob"]


def test_in_process_broker_refuses_a_second_process(make_live_server: MakeServer, tmp_path):
    database = tmp_path / "one.db"
    first = make_live_server(name="first", database=database)
    second = make_live_server(name="second", database=database, start=False)
    with pytest.raises(Exception, match="exited with 2"):
        second.start(timeout=20)
    assert "CHAT_BROKER_URL is not set" in second.log_tail()
    assert first.health() == "ok"
