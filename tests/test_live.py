"""The live WebSocket /rooms/<CODE>/ws, driven through Quart's test client.

Every wait has a timeout, so a missing frame fails the test instead of hanging it.
"""

from __future__ import annotations

import asyncio
import re
from contextlib import AsyncExitStack

import pytest
from quart.testing.connections import WebsocketDisconnectError

from tests.kit.in_process import join_room, post_form
from tests.kit.live import (
    ADD_MEMBER,
    MEMBER,
    MEMBER_LIST,
    TIMEOUT,
    arrive,
    articles,
    close_code,
    counted,
    hub,
    is_quiet,
    listed,
    member_ids,
    message_ids,
    pair,
    receive,
    receive_until,
    say,
    socket,
    user,
)

# Chatting ---------------------------------------------------------------------


async def test_two_users_chat_both_ways_with_the_same_frame_bytes(app):
    async with AsyncExitStack() as stack:
        _, ann_ws, bob_ws, _, _ = await pair(app, stack)

        # Everyone gets the same bytes, the sender too (its page clears its own input).
        await ann_ws.send(say("Hi Bob"))
        to_ann = (await receive_until(ann_ws, "Hi Bob"))[-1]
        to_bob = (await receive_until(bob_ws, "Hi Bob"))[-1]
        assert to_bob.startswith('<div hx-swap-oob="upsert:#messages"><article')
        # ... and Ann, who sent it, is no longer typing.
        assert re.search(r'</article></div><span id="typing-[0-9a-f]+" hx-swap-oob="delete">'
                         r"</span>$", to_bob)
        assert to_ann == to_bob
        first = to_bob
        assert '<span class="author">Ann</span>' in to_bob

        await bob_ws.send(say("  Hello Ann  "))
        to_bob = (await receive_until(bob_ws, "Hello Ann"))[-1]
        to_ann = (await receive_until(ann_ws, "Hello Ann"))[-1]
        assert to_bob == to_ann
        assert '<p class="text">Hello Ann</p>' in to_ann  # trimmed
        assert message_ids([to_bob]) > message_ids([first]) > [0]


async def test_a_frame_sent_again_with_its_nonce_posts_one_message(app):
    async with AsyncExitStack() as stack:
        code, ann_ws, bob_ws, ann, _ = await pair(app, stack)

        # Enter pressed three times while the socket was down: htmx sends all three.
        for _ in range(3):
            await ann_ws.send(say("only once", nonce="n0nce-1"))
        await ann_ws.send(say("next one", nonce="n0nce-2"))

        to_bob = await receive_until(bob_ws, "next one")
        assert [text.count("only once") for text in to_bob] == [1, 0]
        to_ann = await receive_until(ann_ws, "next one")
        # The sender's page is sent the one message again (it replaces it by id), so a
        # page whose first send was lost still shows it; nobody else hears of it.
        ids = [message_ids([frame]) for frame in to_ann]
        assert ids == [ids[0]] * 3 + [message_ids(to_bob[1:])]
        assert ids[3] != ids[0]
        assert 'data-nonce="n0nce-1"' in to_ann[0]
        assert await is_quiet(bob_ws, 0.05)
        page = await (await ann.get(f"/rooms/{code}")).get_data(as_text=True)
        assert page.count("only once") == 1


async def test_a_nonce_is_per_user(app):
    async with AsyncExitStack() as stack:
        _, ann_ws, bob_ws, _, _ = await pair(app, stack)
        await ann_ws.send(say("from Ann", nonce="shared"))
        await bob_ws.send(say("from Bob", nonce="shared"))
        frames = await receive_until(ann_ws, "from Bob")
        assert len(articles(frames)) == 2


async def test_a_message_without_a_nonce_is_never_deduplicated(app):
    async with AsyncExitStack() as stack:
        _, ann_ws, bob_ws, _, _ = await pair(app, stack)
        await ann_ws.send(say("twice"))
        await ann_ws.send(say("twice", nonce=""))
        frames = await receive_until(bob_ws, "twice")
        frames += await receive_until(bob_ws, "twice")
        assert len(set(message_ids(frames))) == 2


async def test_frame_with_the_fields_htmx_adds_is_accepted(app):
    async with AsyncExitStack() as stack:
        _, ann_ws, bob_ws, _, _ = await pair(app, stack)
        headers = {
            "HX-Request": "true",
            "HX-Source": "form#message-form",
            "HX-Target": "form#message-form",
            "HX-Current-URL": "http://localhost/rooms/ABCD",
        }
        await ann_ws.send(say("with headers", headers=headers, extra=[1, 2]))
        assert "with headers" in (await receive_until(bob_ws, "with headers"))[-1]


async def test_three_rooms_at_once_stay_isolated(app):
    async with AsyncExitStack() as stack:
        rooms = [await pair(app, stack) for _ in range(3)]
        assert len({code for code, *_ in rooms}) == 3

        for code, ann_ws, _, _, _ in rooms:
            await ann_ws.send(say(f"only for {code}"))
        for code, ann_ws, bob_ws, _, _ in rooms:
            for ws in (ann_ws, bob_ws):
                frames = await receive_until(ws, f"only for {code}")
                assert "message-form" not in frames[-1]
                assert len(articles(frames)) == 1
                assert await is_quiet(ws, 0.05)

        for code, _, _, ann, _ in rooms:
            page = await (await ann.get(f"/rooms/{code}")).get_data(as_text=True)
            assert page.count("only for ") == 1 and f"only for {code}" in page


async def test_message_is_in_the_history_when_it_is_broadcast(app):
    async with AsyncExitStack() as stack:
        code, ann_ws, bob_ws, _, bob = await pair(app, stack)
        await ann_ws.send(say("stored first"))
        (frame,) = articles([await receive(bob_ws)])
        page = await (await bob.get(f"/rooms/{code}")).get_data(as_text=True)
        assert frame in page


async def test_message_posted_without_javascript_reaches_live_members(app):
    async with AsyncExitStack() as stack:
        code, ann_ws, _, _, bob = await pair(app, stack)
        response = await post_form(bob, f"/rooms/{code}/messages", {"message": "posted by a form"})
        assert response.status_code == 303
        assert "posted by a form" in (await receive_until(ann_ws, "posted by a form"))[-1]


# Presence ---------------------------------------------------------------------


async def test_entering_announces_the_user_and_the_member_list(app):
    ann, code = await user(app, "Ann")
    bob, _ = await user(app, "Bob", code)
    async with socket(ann, code) as ann_ws:
        first = await receive(ann_ws)
        assert first.startswith(MEMBER_LIST)  # the whole list, on connect
        assert listed(first) == ["Ann"] and counted(first) == "(1)"
        entered = await receive(ann_ws)
        notice = '<p class="notice">Ann has entered the room</p>'
        assert entered.startswith(f'<div hx-swap-oob="beforeend:#messages">{notice}</div>')
        assert f"{ADD_MEMBER}{MEMBER.search(entered).group(0)}</div>" in entered
        assert listed(entered) == ["Ann"] and counted(entered) == "(1)"

        async with socket(bob, code) as bob_ws:
            (entered,) = await receive_until(ann_ws, "has entered")
            assert entered.count("has entered") == 1 and "Bob has entered the room" in entered
            # only Bob is added: the list is not sent again
            assert MEMBER_LIST not in entered and ADD_MEMBER in entered
            assert listed(entered) == ["Bob"] and counted(entered) == "(2)"
            bob_frames = await receive_until(bob_ws, "Bob has entered the room")
            assert bob_frames[-1] == entered
            assert listed(bob_frames[0]) == ["Ann", "Bob"] and counted(bob_frames[0]) == "(2)"


async def test_a_join_storm_reaches_members_as_a_few_frames(app):
    ann, code = await user(app, "Ann")
    crowd = [(await user(app, f"P{n:02d}", code))[0] for n in range(12)]
    async with AsyncExitStack() as stack:
        ann_ws = await arrive(stack, ann, code, "Ann")
        await asyncio.gather(*(stack.enter_async_context(socket(c, code)) for c in crowd))
        frames = []
        while "".join(frames).count("has entered") < 12:
            frames.append(await receive(ann_ws))
        # Arrivals that come together are announced together, with the count once each.
        assert len(frames) <= 3
        assert sorted(listed("".join(frames))) == [f"P{n:02d}" for n in range(12)]
        assert counted(frames[-1]) == "(13)"
        assert "".join(frames).count('id="member-count"') == len(frames)
        # ... and in one swap each for their notices and for their list items.
        assert "".join(frames).count(ADD_MEMBER) == len(frames)
        assert "".join(frames).count('hx-swap-oob="beforeend:#messages"') == len(frames)


async def test_leaving_is_announced_after_the_grace_period(app):
    ann, code = await user(app, "Ann")
    bob, _ = await user(app, "Bob", code)
    async with AsyncExitStack() as stack:
        ann_ws = await arrive(stack, ann, code, "Ann")
        async with socket(bob, code) as bob_ws:
            await receive_until(bob_ws, "Bob has entered the room")
            (entered,) = await receive_until(ann_ws, "Bob has entered the room")
        (left,) = await receive_until(ann_ws, "has left")
        assert '<p class="notice">Bob has left the room</p>' in left
        assert left.count("has left") == 1
        bob_item = member_ids(entered)["Bob"]
        assert f'<li id="{bob_item}" hx-swap-oob="delete"></li>' in left  # Bob's item goes
        assert listed(left) == [] and counted(left) == "(1)"  # Ann's item stays as it is


async def test_reconnecting_within_the_grace_period_neither_leaves_nor_enters(make_app):
    app = await make_app(leave_grace=1)
    loop = asyncio.get_running_loop()
    ann, code = await user(app, "Ann")
    bob, _ = await user(app, "Bob", code)
    async with AsyncExitStack() as stack:
        ann_ws = await arrive(stack, ann, code, "Ann")
        async with socket(bob, code) as bob_ws:
            await receive_until(bob_ws, "Bob has entered the room")
            await receive_until(ann_ws, "Bob has entered the room")
        gone_at = loop.time()

        async with socket(bob, code) as bob_ws:  # a page refresh
            members = await receive(bob_ws)
            assert listed(members) == ["Ann", "Bob"] and counted(members) == "(2)"
            # past the end of the grace period: still no left/entered for anyone
            assert await is_quiet(ann_ws, 1.2)
            assert await is_quiet(bob_ws, 0.01)
            await bob_ws.send(say("still here"))
            assert "still here" in await receive(ann_ws)
            assert "still here" in await receive(bob_ws)
        gone_at = loop.time()

        (left,) = await receive_until(ann_ws, "has left")
        assert "Bob has left the room" in left
        assert loop.time() - gone_at >= 0.9  # announced only once the grace has passed


# Catching up after a reconnect --------------------------------------------------


async def test_reconnect_catches_up_exactly_the_missed_messages(make_app):
    app = await make_app(leave_grace=5)  # reconnects below stay within the grace period
    _, code = await user(app, "Ann")
    bob, _ = await user(app, "Bob", code)
    posted = [
        (await hub(app).post_message(code, "ann-id", "Ann", f"m{i}")).message.id for i in range(6)
    ]

    async with socket(bob, code, after=posted[1]) as bob_ws:
        frames = await receive_until(bob_ws, "Bob has entered the room")
        assert message_ids(frames) == posted[2:]
        await bob_ws.send(say("live one"))
        live_frames = await receive_until(bob_ws, "live one")
        (live_id,) = message_ids(live_frames)
        assert await is_quiet(bob_ws, 0.05)

    async with socket(bob, code, after=live_id) as bob_ws:  # missed nothing: gets nothing
        assert "Bob" in listed(await receive(bob_ws))
        assert await is_quiet(bob_ws, 0.1)

    await hub(app).post_message(code, "ann-id", "Ann", "while Bob was away")
    async with socket(bob, code, after=live_id) as bob_ws:
        assert "Bob" in listed(await receive(bob_ws))
        (missed,) = articles([await receive(bob_ws)])
        assert "while Bob was away" in missed
        assert await is_quiet(bob_ws, 0.1)


async def test_connect_without_after_sends_the_whole_history(app):
    ann, code = await user(app, "Ann")
    posted = [(await hub(app).post_message(code, "x", "Ann", f"o{i}")).message.id for i in range(3)]
    async with socket(ann, code) as ann_ws:
        frames = await receive_until(ann_ws, "Ann has entered the room")
    assert message_ids(frames) == posted


async def test_messages_sent_while_connecting_arrive_once_each_in_order(app):
    _, code = await user(app, "Ann")
    bob, _ = await user(app, "Bob", code)
    first = await hub(app).post_message(code, "ann-id", "Ann", "before")

    async def chatter():
        for i in range(40):
            await hub(app).post_message(code, "ann-id", "Ann", f"during {i}")

    async with socket(bob, code, after=0) as bob_ws:
        await asyncio.wait_for(chatter(), TIMEOUT)
        await hub(app).post_message(code, "ann-id", "Ann", "the end")
        frames = await receive_until(bob_ws, "the end")
    ids = message_ids(frames)
    assert ids == sorted(set(ids))
    assert ids == list(range(first.message.id, first.message.id + 42))


async def test_catch_up_larger_than_one_frame_arrives_whole(app):
    _, code = await user(app, "Ann")
    bob, _ = await user(app, "Bob", code)
    posted = [
        (await hub(app).post_message(code, "ann-id", "Ann", f"n{i}")).message.id for i in range(230)
    ]
    async with socket(bob, code, after=posted[4]) as bob_ws:
        frames = await receive_until(bob_ws, "Bob has entered the room")
    assert message_ids(frames) == posted[5:]


async def test_client_that_falls_behind_is_closed_with_1013_and_catches_up(make_app):
    app = await make_app(send_queue=3)
    bob, code = await user(app, "Bob")
    async with AsyncExitStack() as stack:
        bob_ws = await arrive(stack, bob, code, "Bob")
        # a burst committed together and published before the writer can drain any
        burst = [hub(app).post_message(code, "ann-id", "Ann", f"burst {i}") for i in range(10)]
        posted = sorted(post.message.id for post in await asyncio.gather(*burst))
        frames = []
        with pytest.raises(WebsocketDisconnectError) as closed:
            while True:
                frames.append(await receive(bob_ws))
        assert closed.value.args[0] == 1013
    seen = message_ids(frames)
    assert len(seen) < len(posted)

    async with socket(bob, code, after=max(seen, default=0)) as bob_ws:
        await receive(bob_ws)  # the member list
        seen += message_ids([await receive(bob_ws)])
    assert seen == posted


async def test_rejoining_under_a_new_name_renames_the_member(make_app):
    app = await make_app(leave_grace=5)
    async with AsyncExitStack() as stack:
        bob, code = await user(app, "Bob")
        bob_ws = await arrive(stack, bob, code, "Bob")
        zed, _ = await user(app, "Zed Typo", code)
        async with socket(zed, code) as zed_ws:
            await receive_until(zed_ws, "Zed Typo has entered the room")
        await receive_until(bob_ws, "Zed Typo has entered the room")

        await join_room(zed, "Zed", code)  # within the grace period
        async with socket(zed, code) as zed_ws:
            frames = await receive_until(bob_ws, "Zed Typo is now Zed")
            assert listed(frames[-1]) == ["Zed"]
            assert 'hx-swap-oob="delete"' in frames[-1]  # the old item goes
            assert "has entered" not in "".join(frames)
            await zed_ws.send(say("it is me"))
            frames = await receive_until(bob_ws, "it is me")
            assert '<span class="author">Zed</span>' in frames[-1]
        page = await (await bob.get(f"/rooms/{code}")).get_data(as_text=True)
        assert ">Zed</li>" in page and "Zed Typo</li>" not in page


async def test_a_second_tab_neither_enters_nor_leaves(app):
    ann, code = await user(app, "Ann")
    async with AsyncExitStack() as stack:
        first_tab = await arrive(stack, ann, code, "Ann")
        async with socket(ann, code) as second_tab:
            assert listed(await receive(second_tab)) == ["Ann"]
            assert await is_quiet(second_tab, 0.05)
        assert await is_quiet(first_tab, 0.2)  # well past the 0.05 s grace period
        await first_tab.send(say("still in"))
        assert "still in" in await receive(first_tab)


# Empty rooms ------------------------------------------------------------------


async def test_empty_room_is_deleted_once_the_last_member_has_left(make_app):
    app = await make_app(empty_room_ttl=0, leave_grace=0.3)
    ann, code = await user(app, "Ann")
    async with socket(ann, code) as ann_ws:
        await receive_until(ann_ws, "Ann has entered the room")
        await ann_ws.send(say("soon gone"))
        await receive_until(ann_ws, "soon gone")

    # Still there during the grace period: a page refresh finds the room.
    response = await ann.get(f"/rooms/{code}")
    assert response.status_code == 200

    for _ in range(100):  # deleted within about 2 s
        response = await ann.get(f"/rooms/{code}")
        if response.status_code != 200:
            break
        await asyncio.sleep(0.02)
    assert response.status_code == 303
    assert response.headers["Location"] == "/"
    home = await (await ann.get("/")).get_data(as_text=True)
    assert "Room does not exist." in home

    async with socket(ann, code) as ann_ws:
        assert await close_code(ann_ws) == 1008


async def test_room_with_a_member_is_kept(make_app):
    app = await make_app(empty_room_ttl=0)
    ann, code = await user(app, "Ann")
    bob, _ = await user(app, "Bob", code)
    async with AsyncExitStack() as stack:
        ann_ws = await arrive(stack, ann, code, "Ann")
        async with socket(bob, code) as bob_ws:
            await receive_until(bob_ws, "Bob has entered the room")
        await receive_until(ann_ws, "Bob has left the room")
        await asyncio.sleep(0.1)
        assert (await ann.get(f"/rooms/{code}")).status_code == 200
