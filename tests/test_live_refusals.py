"""The live WebSocket refusing what it must: sockets without a session, from a foreign
origin or for an unknown or full room (1008), and frames that are binary, too big, not
JSON or break a room rule (only the offender is affected)."""

from __future__ import annotations

import json
from contextlib import AsyncExitStack

import pytest
from quart.testing.connections import WebsocketDisconnectError

from tests.kit.in_process import ORIGIN
from tests.kit.live import (
    arrive,
    articles,
    close_code,
    is_quiet,
    pair,
    receive,
    receive_until,
    say,
    socket,
    user,
)

# Refusals ---------------------------------------------------------------------


REFUSALS = ["no session", "foreign origin", "missing origin", "unknown room"]


@pytest.mark.parametrize("refusal", REFUSALS)
async def test_refused_socket_is_closed_with_1008_and_nothing_is_broadcast(app, refusal):
    async with AsyncExitStack() as stack:
        ann, code = await user(app, "Ann")
        ann_ws = await arrive(stack, ann, code, "Ann")

        if refusal == "no session":
            intruder, target, origin = app.test_client(), code, ORIGIN
        else:
            intruder, _ = await user(app, "Eve", code)
            target, origin = code, ORIGIN
            if refusal == "foreign origin":
                origin = "http://evil.example"
            elif refusal == "missing origin":
                origin = None
            else:
                target = "ZZZZ" if code != "ZZZZ" else "YYYY"

        async with socket(intruder, target, origin=origin) as refused:
            with pytest.raises(WebsocketDisconnectError) as closed:
                await receive(refused)  # the close comes first: no members, no history
            assert closed.value.args[0] == 1008

        assert await is_quiet(ann_ws)
        assert "Eve" not in await (await ann.get(f"/rooms/{code}")).get_data(as_text=True)


async def test_full_room_refuses_a_socket_with_1008(make_app):
    app = await make_app(room_capacity=1)
    ann, code = await user(app, "Ann")
    bob, _ = await user(app, "Bob", code)  # joined while the room was still empty
    async with AsyncExitStack() as stack:
        ann_ws = await arrive(stack, ann, code, "Ann")
        async with socket(bob, code) as bob_ws:
            assert await close_code(bob_ws) == 1008
        assert await is_quiet(ann_ws)


# Bad frames -------------------------------------------------------------------


BAD_FRAMES = {
    "binary": (b'{"message": "hi"}', 1003),
    "not JSON": ("hello", 1007),
    "empty string": ("", 1007),
    "JSON array": ('["hello"]', 1007),
    "message not a string": ('{"message": 5}', 1007),
    "no message": ('{"headers": {}}', 1007),
    "nonce too long": (json.dumps({"message": "hi", "nonce": "n" * 65}), 1007),
    "nonce not a token": (json.dumps({"message": "hi", "nonce": "a b<"}), 1007),
    "typing not 1": ('{"typing": "2"}', 1007),
    "typing a number": ('{"typing": 1}', 1007),
    "neither message nor typing": ('{"typing": null}', 1007),
    "oversized": (None, 1009),
}


@pytest.mark.parametrize("kind", list(BAD_FRAMES))
async def test_bad_frame_closes_only_the_offender(app, settings, kind):
    frame, expected = BAD_FRAMES[kind]
    if frame is None:
        frame = say("x" * settings.ws_frame_max)
    async with AsyncExitStack() as stack:
        _, ann_ws, bob_ws, _, _ = await pair(app, stack)
        await bob_ws.send(frame)
        assert await close_code(bob_ws) == expected

        await ann_ws.send(say("carry on"))
        frames = await receive_until(ann_ws, "carry on")
        assert len(articles(frames)) == 1  # nothing of Bob's frame was broadcast
        assert "carry on" in articles(frames)[0]
        assert "is typing" not in "".join(frames)


@pytest.mark.parametrize(
    ("text", "error"),
    [("y" * 2001, "Messages can be at most 2,000 characters."), ("   ", "Please type a message.")],
)
async def test_message_breaking_a_rule_returns_the_form_with_the_error(app, text, error):
    async with AsyncExitStack() as stack:
        _, ann_ws, bob_ws, _, _ = await pair(app, stack)
        await bob_ws.send(say(text, nonce="kept-nonce"))
        form = await receive(bob_ws)
        assert form.startswith('<form hx-swap-oob="outerHTML" id="message-form"')
        assert f'<p id="message-error" class="error" role="alert">{error}</p>' in form
        assert f'>{text}</textarea>' in form  # what was typed is kept
        # ... under the same nonce, so sending it again cannot post it twice.
        assert 'name="nonce" value="kept-nonce"' in form
        assert await is_quiet(ann_ws, 0.05)

        await bob_ws.send(say("second try"))  # the socket stayed open
        assert "second try" in await receive(bob_ws)
        assert "second try" in await receive(ann_ws)


async def test_longest_message_is_accepted_however_the_json_is_escaped(app):
    # json.dumps escapes non-ASCII by default: each emoji becomes "\\ud83d\\ude00",
    # 12 characters of frame for 1 character of message. Still a valid message.
    async with AsyncExitStack() as stack:
        _, ann_ws, bob_ws, _, _ = await pair(app, stack)
        longest = "\U0001f600" * 2000
        await ann_ws.send(json.dumps({"message": longest}))
        try:
            frame = await receive(ann_ws)
        except WebsocketDisconnectError as closed:
            pytest.fail(f"a valid message closed the sender's socket with {closed.args[0]}")
        assert longest in frame
        assert longest in await receive(bob_ws)


async def test_markup_in_a_message_reaches_others_escaped(app):
    async with AsyncExitStack() as stack:
        _, ann_ws, bob_ws, _, _ = await pair(app, stack)
        await ann_ws.send(say("<script>alert(1)</script>"))
        frame = await receive(bob_ws)
        assert "<script>" not in frame
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in frame
