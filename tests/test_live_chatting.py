"""Live chat: a message reaches everyone in its room once, as one frame, and no other room."""

from __future__ import annotations

import re
from contextlib import AsyncExitStack

from tests.kit.in_process import post_form
from tests.kit.live import (
    articles,
    is_quiet,
    message_ids,
    pair,
    receive,
    receive_until,
    say,
)


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
