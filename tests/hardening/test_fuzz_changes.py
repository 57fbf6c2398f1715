"""Property-based attacks on what changes a posted message: the edit, delete and
reaction routes, and the typing frame, against the real server.

Invariants, for every example: no 5xx and no handler exception in the log; someone
else's message never changes (403) and an unknown one is 404; nothing the attacker
typed reaches another member as markup; the room keeps working.
"""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.kit import wait_until
from tests.kit.fuzzing import FUZZ, Arena, on_the_wire, raw_markup_in, text_values

pytestmark = pytest.mark.e2e

REACTIONS = ("👍", "❤️", "😂", "🎉", "😮", "🙏")
ids = st.one_of(st.sampled_from(["own", "others", "unknown"]), st.integers(-5, 10**20).map(str))


@pytest.fixture(autouse=True)
def _own_log_section(arena: Arena) -> None:
    arena.watch.mark()


async def _message_of(arena: Arena, who: str) -> int:
    """A fresh message by the attacker ("own") or the checker ("others")."""
    sender = arena.attacker.client(arena.code, reconnect=False) if who == "own" else arena.checker
    if who == "own":
        await sender.open()
    arena.round += 1
    text = f"target {who} {arena.round}"
    sender.send(text)
    await wait_until(lambda: arena.observer.has_text(text), 5, "the target message")
    if who == "own":
        await sender.stop()
    return max(arena.observer.messages)


async def _target(arena: Arena, which: str) -> str:
    if which in ("own", "others"):
        return str(await _message_of(arena, which))
    return "999999999" if which == "unknown" else which


@FUZZ
@given(which=ids, action=st.sampled_from(["edit", "delete", "reactions"]),
       values=st.lists(st.one_of(text_values, st.sampled_from(REACTIONS)), max_size=3),
       keep_token=st.booleans())
def test_change_routes_never_fail_nor_touch_what_is_not_yours(arena: Arena, which, action,
                                                              values, keep_token) -> None:
    mark = arena.observer_mark()

    async def attack() -> None:
        target = await _target(arena, which)
        before = dict(arena.observer.messages)
        field = "emoji" if action == "reactions" else "message"
        fields = [(field, on_the_wire(value)) for value in values]
        if keep_token:
            fields.append(("csrf_token", arena.token))
        reply = await arena.attacker.post(f"/rooms/{arena.code}/messages/{target}/{action}",
                                          fields)
        assert reply.status < 500, (reply.status, reply.text[-2000:])
        assert not raw_markup_in(reply.text.split("<body>", 1)[-1]), reply.text[-3000:]
        # Refused before anyone's rights are looked at: no such address (404: not an id a
        # message can have), a body over the 64 KiB limit (413), the field twice (400).
        too_big = len(urlencode(fields).encode()) > 64 * 1024
        no_such_id = not target.isdecimal() or len(target) > 18
        malformed = ((reply.status == 404 and no_such_id)
                     or (reply.status == 413 and too_big)
                     or (reply.status == 400 and len(values) > 1))
        if not keep_token:
            assert reply.status == 403 or malformed
        if which == "others" and action != "reactions":
            assert reply.status == 403 or malformed
        if which == "unknown" and keep_token:
            assert reply.status in (400, 404)
        if reply.status >= 400 and target.isdecimal() and int(target) in before:
            # Refused: the message as everyone saw it stays as it was.
            await arena.assert_room_works()
            assert arena.observer.messages[int(target)] == before[int(target)]
        await arena.assert_room_works()

    arena.run(attack())
    arena.assert_observer_clean(mark)
    arena.assert_server_clean()


@FUZZ
@given(typing=st.one_of(st.just("1"), text_values, st.integers(), st.none(), st.booleans()),
       with_message=st.booleans())
def test_typing_frames_never_fail_nor_reach_others_as_markup(arena: Arena, typing,
                                                            with_message) -> None:
    mark = arena.observer_mark()

    async def attack() -> None:
        ws = arena.attacker.client(arena.code, reconnect=False, after=arena.observer.newest)
        await ws.open()
        try:
            frame = {"typing": typing}
            if with_message:
                frame["message"] = "typed and sent"
            await ws.send_raw(json.dumps(frame))
            if (typing is not None and typing != "1") or (typing is None and not with_message):
                await wait_until(lambda: ws.finished.is_set(), 5, "the refusal")
                assert ws.close_code == 1007
        finally:
            await ws.stop()
        await arena.assert_room_works()

    arena.run(attack())
    arena.assert_observer_clean(mark)
    arena.assert_server_clean()


def test_change_routes_refuse_a_foreign_origin(arena: Arena) -> None:
    async def attack() -> None:
        target = await _message_of(arena, "own")
        before = arena.observer.messages[target]
        for action, field in (("edit", "message"), ("delete", "x"), ("reactions", "emoji")):
            reply = await arena.attacker.post(
                f"/rooms/{arena.code}/messages/{target}/{action}",
                {field: "👍", "csrf_token": arena.token}, origin="https://evil.example")
            assert reply.status == 403, (action, reply.status)
        await arena.assert_room_works()
        assert arena.observer.messages[target] == before

    arena.run(attack())
    arena.assert_server_clean()
