"""Reconnecting: a socket is sent exactly what it missed; a rejoin or second tab is no entrance."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

import pytest
from quart.testing.connections import WebsocketDisconnectError

from tests.kit.in_process import join_room
from tests.kit.live import (
    TIMEOUT,
    arrive,
    articles,
    hub,
    is_quiet,
    listed,
    message_ids,
    receive,
    receive_until,
    say,
    socket,
    user,
)


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
