"""Live presence: entering and leaving are announced; a reconnect within the grace is neither."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

from chat.hub.announcements import Announcements
from tests.kit.live import (
    ADD_MEMBER,
    MEMBER,
    MEMBER_LIST,
    arrive,
    counted,
    is_quiet,
    listed,
    member_ids,
    receive,
    receive_until,
    say,
    socket,
    user,
)


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


async def test_a_big_room_gathers_its_changes_for_longer():
    # Ten times the members per tick: a room of 2,000 waits 10 ticks (at most 1 s), so a
    # join storm costs it about as many frames per second as a small room.
    published = []
    sizes = {"BIG": 2_000, "SMALL": 10}

    async def count(room: str) -> int:
        return sizes[room]

    announcements = Announcements(published.append, count, lambda g, n: "", tick=0.05)
    try:
        for room in sizes:  # the first frame of each: sizes not known yet, one tick
            announcements.add(room, "entered", "u1", "Ann")
        await asyncio.sleep(0.2)
        assert sorted(event.room for event in published) == ["BIG", "SMALL"]
        published.clear()
        for room in sizes:
            announcements.add(room, "entered", "u2", "Bob")
        await asyncio.sleep(0.25)
        assert [event.room for event in published] == ["SMALL"]
        await asyncio.sleep(0.5)  # the big room's tick: 0.05 s x 2,000 / 200 = 0.5 s
        assert sorted(event.room for event in published) == ["BIG", "SMALL"]
    finally:
        await announcements.stop()
