"""Empty rooms: a room is deleted once its last member has left, and kept while anyone is in it."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

from tests.kit.live import (
    arrive,
    close_code,
    receive_until,
    say,
    socket,
    user,
)


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
