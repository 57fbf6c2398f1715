"""Rate limits on the real server: a WebSocket flooder, failed joins, room creation.

Each test starts its own server with small limits, so counting starts from zero.
"""

from __future__ import annotations

import asyncio
import re

import pytest

from chat.texts import SLOW_DOWN, TOO_MANY_JOINS, TOO_MANY_ROOMS
from tests.kit import (
    NO_LIMITS,
    LiveClient,
    LogWatch,
    MakeServer,
    Member,
    count_messages,
    count_rooms,
    database_rows,
    wait_until,
)

pytestmark = pytest.mark.e2e

COUNT, WINDOW = 5, 30


async def test_flooder_is_told_to_slow_down_and_not_broadcast(
    make_live_server: MakeServer, clients: list[LiveClient]
) -> None:
    server = make_live_server(env={**NO_LIMITS, "CHAT_MESSAGE_RATE": f"{COUNT}/{WINDOW}"})
    watch = LogWatch(server)
    async with Member(server, "Flood") as flood, Member(server, "Ann") as ann, \
            Member(server, "Bob") as bob:
        code = await ann.create_room()
        await flood.join_room(code)
        await bob.join_room(code)
        flooder = await flood.client(code).open()
        reader = await ann.client(code).open()
        other = await bob.client(code).open()
        clients += [flooder, reader, other]

        flood_texts = [f"flood {n}" for n in range(40)]
        for text in flood_texts:
            flooder.send(text)
        # The server answers every frame, with the message or the form: wait for all 40.
        await wait_until(lambda: flooder.answers >= len(flood_texts), 10, "40 answers")

        # The flooder sees why, in the form the server pushes back.
        assert SLOW_DOWN in flooder.form_errors
        assert flooder.form_errors.count(SLOW_DOWN) == len(flood_texts) - COUNT
        # The pushed form keeps the refused text so nothing typed is lost.
        assert 'value="flood 39"' in flooder.frames[-1] or "flood 39" in flooder.frames[-1]

        # Another member got at most COUNT of them, and only the first COUNT.
        await asyncio.sleep(0.3)
        got = [text for author, text in reader.messages.values() if author == "Flood"]
        assert len(got) <= COUNT, got
        assert got == flood_texts[:COUNT]
        assert count_messages(server, code) == COUNT

        # The room stays usable for everyone else, at once.
        other.send("still here")
        await wait_until(lambda: reader.has_text("still here"), 5, "Bob's message")
        assert other.form_errors == []
        # The flooder stayed connected (slowed down, not thrown out).
        assert flooder.connected.is_set() and flooder.close_codes == []
    watch.assert_clean()


async def test_failed_joins_per_address_hit_429(make_live_server: MakeServer) -> None:
    limit = 4
    server = make_live_server(env={**NO_LIMITS, "CHAT_JOIN_FAIL_RATE": f"{limit}/60"})
    watch = LogWatch(server)
    async with Member(server, "Ann") as ann, Member(server, "Guesser") as guesser, \
            Member(server, "Other") as other:
        real_code = await ann.create_room()
        token = await guesser.csrf_token()
        guesses = [code for code in ("AAAA", "BBBB", "CCCC", "DDDD", "EEEE", "FFFF", "GGGG")
                   if code != real_code]
        statuses = []
        for code in guesses:
            reply = await guesser.post("/", {"name": "G", "code": code, "join": "1",
                                             "csrf_token": token})
            statuses.append(reply.status)
            if reply.status == 429:
                assert TOO_MANY_JOINS in reply.text.replace("&#39;", "'")
        assert statuses[:limit] == [404] * limit, statuses
        assert set(statuses[limit:]) == {429}, statuses

        # Once over the limit even a right guess is refused: codes cannot be enumerated.
        reply = await guesser.post("/", {"name": "G", "code": real_code, "join": "1",
                                         "csrf_token": token})
        assert reply.status == 429
        # The limit is per client address (not per session): a fresh cookie jar from the
        # same address is refused too.
        other_token = await other.csrf_token()
        reply = await other.post("/", {"name": "O", "code": "HHHH", "join": "1",
                                       "csrf_token": other_token})
        assert reply.status == 429
        # Room creation is a separate limit and still works.
        assert await other.create_room()
    watch.assert_clean()


async def test_room_creation_per_address_hits_429(make_live_server: MakeServer) -> None:
    limit = 3
    server = make_live_server(env={**NO_LIMITS, "CHAT_CREATE_RATE": f"{limit}/60"})
    watch = LogWatch(server)
    async with Member(server, "Ann") as ann, Member(server, "Bob") as bob:
        token = await ann.csrf_token()
        statuses = []
        for _ in range(limit + 3):
            reply = await ann.post("/", {"name": "Ann", "create": "1", "csrf_token": token})
            statuses.append(reply.status)
            if reply.status == 429:
                assert re.search("created many rooms", reply.text)
                assert TOO_MANY_ROOMS.split(".")[0] in reply.text
        assert statuses == [303] * limit + [429] * 3, statuses
        assert count_rooms(server) == limit
        # Same address, another session: still limited.
        bob_token = await bob.csrf_token()
        reply = await bob.post("/", {"name": "Bob", "create": "1", "csrf_token": bob_token})
        assert reply.status == 429
        assert count_rooms(server) == limit
        # Joining an existing room is not creating: still allowed.
        code = database_rows(server, "SELECT code FROM rooms LIMIT 1")[0][0]
        await bob.join_room(code)
    watch.assert_clean()



async def test_room_codes_cannot_be_enumerated_past_the_join_form(
    make_live_server: MakeServer,
) -> None:
    """The failed-join limit must also cover the other doors that tell a real code from
    an unknown one: the room page (200 vs redirect home) and the WebSocket (accepted vs
    1008). Once an address is over the limit, a real code must look like an unknown one."""
    limit = 4
    server = make_live_server(env={**NO_LIMITS, "CHAT_JOIN_FAIL_RATE": f"{limit}/60"})
    async with Member(server, "Ann") as ann, Member(server, "Prober") as prober:
        real_code = await ann.create_room()
        await prober.create_room()  # a named session of its own, no failed join yet
        guesses = [c for c in ("QQQQ", "RRRR", "SSSS", "TTTT", "UUUU", "VVVV", "WWWW", "XXXX")
                   if c != real_code]
        for code in guesses:  # twice the limit of wrong guesses through the room page
            await prober.get(f"/rooms/{code}")

        unknown = await prober.get(f"/rooms/{guesses[0]}")
        real = await prober.get(f"/rooms/{real_code}")
        assert (real.status, real.location) == (unknown.status, unknown.location), (
            f"room page still tells codes apart after {len(guesses)} wrong guesses: "
            f"real {real.status}, unknown {unknown.status} {unknown.location}"
        )

        ws_unknown = LiveClient(server, guesses[0], prober.cookie_header(), reconnect=False)
        ws_real = LiveClient(server, real_code, prober.cookie_header(), reconnect=False)
        for ws in (ws_unknown, ws_real):
            ws.start()
            await asyncio.wait_for(_first_frame_or_close(ws), 5)
            await ws.stop()
        assert ws_real.members is None and ws_real.close_codes == ws_unknown.close_codes, (
            "the WebSocket tells codes apart after the limit: "
            f"real {ws_real.close_codes} members={ws_real.members}, "
            f"unknown {ws_unknown.close_codes}"
        )


async def _first_frame_or_close(ws: LiveClient) -> None:
    await wait_until(lambda: ws.members is not None or ws.finished.is_set(), 5, "an answer")
