"""Scale-out end to end: two `python -m chat` processes on one Redis broker and one
database behave like one server.

WebSocket clients follow the browser's flow (home form with its CSRF token and session
cookie, then the room's socket) and behave like the page: messages are kept by id
(htmx upserts them), and after a 1012/1013 close they reconnect with
`?after=<newest id on the page>`. Each test starts its own `redis-server` on a free port;
the database is a fresh PostgreSQL database when PostgreSQL answers on 127.0.0.1:5432,
else a SQLite file both processes share.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.e2e.conftest import MakeServer
from tests.e2e.scripted import (
    ENTERED,
    LEFT,
    Page,
    eventually,
    health,
)

pytestmark = pytest.mark.e2e

def assert_complete(pages: list[Page], expected: int) -> None:
    ids = set(pages[0].messages)
    for page in pages:
        assert len(page.messages) == expected, (page.user.name, sorted(page.messages))
        assert set(page.messages) == ids, page.user.name
        assert page.doubled == [], (page.user.name, page.doubled)


async def test_two_processes_chat_as_one_through_restart_and_redis_outage(
    two_servers, redis_server, users
):
    a, b = two_servers
    alice, bob, carol = users["Alice"], users["Bob"], users["Carol"]

    # Presence merged: one room, members on both processes, Carol on both.
    code = await alice.join(a)
    on_a = await alice.open(a, code)
    # Arrivals are announced on a short tick: Bob comes once Alice's is out.
    await eventually(lambda: "Alice" in on_a.notices(ENTERED), "Alice's arrival")
    await bob.join(b, code)
    on_b = await bob.open(b, code)
    # One arrival at a time: member counts announced by two processes at once can reach
    # Redis in either order, and the older count may land last (see docs/scale-out.md).
    await eventually(lambda: "Bob" in on_a.notices(ENTERED), "Bob's arrival on A")
    await carol.join(a, code)
    carol_a = await carol.open(a, code)
    await eventually(lambda: "Carol" in on_b.notices(ENTERED), "Carol's arrival on B")
    carol_b = await carol.open(b, code)
    pages = [on_a, on_b, carol_a, carol_b]

    def merged(page: Page) -> bool:
        return page.members() == (["Alice", "Bob", "Carol"], 3)

    await eventually(lambda: all(merged(p) for p in pages), "everyone in every member list")
    await asyncio.sleep(0.3)
    assert all(merged(p) for p in pages), [p.members() for p in pages]  # Carol counts once
    assert sorted(on_a.notices(ENTERED)) == ["Alice", "Bob", "Carol"]  # one notice per user
    assert sorted(on_b.notices(ENTERED)) == ["Bob", "Carol"]

    # Chat from both processes: every page gets every message once, in one order.
    for round_ in range(5):
        for page in pages:
            await page.send(f"{page.user.name.lower()}-{page.server.name}-{round_}")
    await eventually(lambda: all(len(p.messages) == 20 for p in pages), "20 messages everywhere")
    await asyncio.sleep(0.3)
    assert_complete(pages, 20)
    assert on_a.order == on_b.order == carol_a.order == carol_b.order

    # Restart B: its sockets close with 1012, reconnect and catch up what A got meanwhile.
    await b.astop()
    for i in range(3):
        await on_a.send(f"while-b-restarts-{i}")
    await b.astart()
    await eventually(lambda: all(len(p.messages) == 23 for p in pages), "23 messages everywhere")
    await asyncio.sleep(0.3)
    assert_complete(pages, 23)
    assert on_b.connects >= 2 and carol_b.connects >= 2
    assert on_a.notices(LEFT) == []  # back within the grace period: nobody left
    # ... and nobody entered again: the restart announced no one.
    assert sorted(on_a.notices(ENTERED)) == ["Alice", "Bob", "Carol"]
    assert sorted(on_b.notices(ENTERED)) == ["Bob", "Carol"]

    # Redis goes away: degraded, same-process chat goes on; back: everyone catches up.
    redis_server.stop()
    await eventually(lambda: health(a) == health(b) == "degraded", "degraded health")
    for i in range(2):
        await on_a.send(f"during-outage-{i}")
    await eventually(lambda: len(carol_a.messages) == 25, "local delivery during the outage")
    assert len(on_b.messages) == 23  # B cannot hear A now
    redis_server.start()
    await eventually(lambda: health(a) == health(b) == "ok", "recovered health", timeout=20)
    await eventually(lambda: all(len(p.messages) == 25 for p in pages), "caught up after outage")
    for page in pages:
        await page.send(f"after-outage-{page.user.name}-{page.server.name}")
    await eventually(lambda: all(len(p.messages) == 29 for p in pages), "29 messages everywhere")
    await asyncio.sleep(0.3)
    assert_complete(pages, 29)
    texts = " ".join(on_b.messages.values())
    for needle in ("alice-a-4", "bob-b-0", "carol-b-3", "while-b-restarts-2", "during-outage-1",
                   "after-outage-Bob-b"):
        assert needle in texts


async def test_changes_reach_the_other_process_and_a_page_that_was_away(two_servers, users):
    a, b = two_servers
    alice, bob = users["Alice"], users["Bob"]
    code = await alice.join(a)
    on_a = await alice.open(a, code)
    await bob.join(b, code)
    on_b = await bob.open(b, code)
    await on_a.send("draft one")
    await eventually(lambda: len(on_b.messages) == 1, "the message on B")
    (message_id,) = on_b.messages

    await alice.change(a, code, message_id, "edit", {"message": "final one"})
    await eventually(lambda: "final one" in on_b.messages[message_id], "the edit on B")
    assert "edited" in on_b.messages[message_id]
    await alice.change(a, code, message_id, "reactions", {"emoji": "🎉"})
    await eventually(lambda: "🎉 1" in on_b.messages[message_id], "the reaction on B")

    # B restarts; meanwhile the message is deleted on A. B's page, reconnecting with the
    # address it was served, catches up on the deletion.
    await b.astop()
    await alice.change(a, code, message_id, "delete", {})
    await b.astart()
    await eventually(lambda: "This message was deleted." in on_b.messages[message_id],
                     "the deletion on B after its restart")
    assert "final one" not in on_b.messages[message_id]


async def test_member_lists_converge_after_a_redis_outage_and_a_crash(
    two_servers, redis_server, users
):
    a, b = two_servers
    alice, bob, carol = users["Alice"], users["Bob"], users["Carol"]
    code = await alice.join(a)
    on_a = await alice.open(a, code)
    await bob.join(b, code)
    on_b = await bob.open(b, code)
    await eventually(lambda: "Bob" in on_a.notices(ENTERED), "Bob's arrival on A")
    await carol.join(a, code)
    carol_a = await carol.open(a, code)
    pages = [on_a, on_b, carol_a]
    everyone = (["Alice", "Bob", "Carol"], 3)
    await eventually(lambda: all(p.members() == everyone for p in pages), "everyone listed")

    # Redis loses everything it knew (restarted empty) while both processes run on.
    redis_server.stop()
    await eventually(lambda: health(a) == health(b) == "degraded", "degraded health")
    await asyncio.sleep(1.0)
    redis_server.start()
    await eventually(lambda: health(a) == health(b) == "ok", "recovered health", timeout=20)
    # Recovered, every page reconnects (to catch up) and is sent the list anew.
    await eventually(lambda: all(p.connects >= 2 for p in pages), "pages to reconnect")
    await eventually(lambda: all(p.members() == everyone for p in pages),
                     "every list to show everyone again", timeout=25)
    await asyncio.sleep(1.0)
    assert [p.members() for p in pages] == [everyone] * 3, [
        (p.members(), p.notices(ENTERED), p.notices(LEFT)) for p in pages]
    assert on_a.notices(LEFT) == []  # nobody left, so nobody was announced as leaving

    # B dies without a word: Bob, on B only, leaves A's lists with a notice.
    b.kill()
    await eventually(lambda: all(p.members() == (["Alice", "Carol"], 2) for p in (on_a, carol_a)),
                     "Bob to leave the lists", timeout=45)
    assert on_a.notices(LEFT) == carol_a.notices(LEFT) == ["Bob"]


def test_in_process_broker_refuses_a_second_process(make_live_server: MakeServer, tmp_path):
    database = tmp_path / "one.db"
    first = make_live_server(name="first", database=database)
    second = make_live_server(name="second", database=database, start=False)
    with pytest.raises(Exception, match="exited with 2"):
        second.start(timeout=20)
    assert "CHAT_BROKER_URL is not set" in second.log_tail()
    assert health(first) == "ok"
