"""Bounded live sockets (`CHAT_SOCKETS_PER_USER`, `CHAT_SOCKETS_PER_ADDRESS`): the
counters on their own (this process; several processes through Redis) and the socket
route refusing the one over the limit with 1008.

Redis tests start their own `redis-server` (they stop and restart it).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack

import pytest
from quart.testing.connections import WebsocketDisconnectError

from chat.sockets.local import LocalSockets
from chat.sockets.redis import RedisSockets
from tests.kit.in_process import ORIGIN, join_room

TIMEOUT = 10.0


async def eventually(check: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


# One process -----------------------------------------------------------------------


async def test_a_session_gets_its_limit_and_a_closed_socket_frees_its_place():
    sockets = LocalSockets(per_user=3, per_address=None)
    claims = [await sockets.claim("ann", "203.0.113.7") for _ in range(3)]
    assert None not in claims
    assert await sockets.claim("ann", "198.51.100.1") is None  # another address: same session
    assert await sockets.claim("bob", "203.0.113.7") is not None  # address limit off
    await sockets.release(claims[0])
    assert await sockets.claim("ann", "203.0.113.7") is not None
    assert await sockets.claim("ann", "203.0.113.7") is None


async def test_an_address_gets_its_limit_whoever_holds_the_sockets():
    sockets = LocalSockets(per_user=10, per_address=3)
    held = [await sockets.claim(user, "203.0.113.7") for user in ("ann", "bob", "cid")]
    assert None not in held
    assert await sockets.claim("dan", "203.0.113.7") is None
    assert await sockets.claim("dan", "198.51.100.1") is not None
    await sockets.release(held[1])
    assert await sockets.claim("dan", "203.0.113.7") is not None


async def test_released_places_leave_nothing_behind():
    sockets = LocalSockets(per_user=2, per_address=5)
    claims = [await sockets.claim(f"user{i}", f"192.0.2.{i}") for i in range(5)]
    for claim in claims:
        await sockets.release(claim)
    assert not sockets.users and not sockets.addresses


# Several processes through Redis -----------------------------------------------------


@pytest.fixture
async def make_process(redis_server) -> AsyncIterator[Callable[..., RedisSockets]]:
    """Factory of started `RedisSockets`, each standing for one process."""
    made: list[RedisSockets] = []

    async def make(per_user: int = 3, per_address: int | None = 4, **options) -> RedisSockets:
        sockets = RedisSockets(redis_server.url, per_user, per_address, **options)
        await sockets.start()
        made.append(sockets)
        return sockets

    yield make
    for sockets in made:
        await sockets.stop()


async def test_processes_share_the_counts(make_process):
    a, b = await make_process(), await make_process()
    on_a = [await a.claim("ann", "203.0.113.7") for _ in range(2)]
    assert await b.claim("ann", "203.0.113.7") is not None
    assert await b.claim("ann", "203.0.113.7") is None  # 3 per session, across processes
    assert await a.claim("ann", "203.0.113.7") is None
    assert await b.claim("bob", "203.0.113.7") is not None  # the address's 4th
    assert await a.claim("cid", "203.0.113.7") is None  # the 5th from that address
    assert await a.claim("cid", "198.51.100.1") is not None
    await a.release(on_a[0])
    assert await b.claim("ann", "203.0.113.7") is not None  # freed at once, elsewhere too


async def test_address_limit_off_counts_sessions_only(make_process):
    a, b = await make_process(per_address=None), await make_process(per_address=None)
    for user in ("ann", "bob", "cid", "dan", "eve"):
        assert await (a if user < "c" else b).claim(user, "203.0.113.7") is not None


async def test_a_stopped_process_frees_its_places_at_once(make_process):
    a, b = await make_process(), await make_process()
    for _ in range(3):
        assert await a.claim("ann", "203.0.113.7") is not None
    assert await b.claim("ann", "203.0.113.7") is None
    await a.stop()
    assert await b.claim("ann", "203.0.113.7") is not None


async def test_a_crashed_process_stops_counting_when_its_lease_runs_out(make_process):
    a = await make_process(lease=1.5, renew_every=0.1)
    b = await make_process(lease=1.5, renew_every=0.1)
    for _ in range(3):
        assert await a.claim("ann", "203.0.113.7") is not None
    await asyncio.sleep(2.0)  # longer than a lease: renewed while a lives
    assert await b.claim("ann", "203.0.113.7") is None
    a._kill()  # no more renewals, no cleanup

    async def free_again() -> bool:
        claim = await b.claim("ann", "203.0.113.7")
        return claim is not None

    await eventually(free_again, "the crashed process's places to expire")


async def test_redis_outage_counts_locally_then_shares_again(make_process, redis_server):
    a = await make_process(renew_every=0.1)
    b = await make_process(renew_every=0.1)
    for _ in range(2):
        assert await a.claim("ann", "203.0.113.7") is not None
    redis_server.stop()
    # Each process on its own: b sees none of a's sockets, and counts its own.
    held_on_b = [await b.claim("ann", "203.0.113.7") for _ in range(3)]
    assert None not in held_on_b
    assert await b.claim("ann", "203.0.113.7") is None
    await b.release(held_on_b[0])
    await b.release(held_on_b[1])
    redis_server.start()

    async def shared_again() -> bool:
        # b now holds 1 and a 2: the session is full everywhere once both wrote back.
        claim = await a.claim("ann", "203.0.113.7")
        if claim is not None:
            await a.release(claim)
            return False
        return True

    await eventually(shared_again, "counts written back after the outage")
    await b.release(held_on_b[2])
    assert await a.claim("ann", "203.0.113.7") is not None


# The socket route -----------------------------------------------------------------


async def first_frame(stack: AsyncExitStack, client, code: str, *, peer=None,
                      forwarded_for: str | None = None) -> str | int:
    """Open a socket (kept open until `stack` closes): its first frame, or its close code."""
    headers = {"Origin": ORIGIN}
    if forwarded_for is not None:
        headers["X-Forwarded-For"] = forwarded_for
    scope = None if peer is None else {"client": peer}
    ws = await stack.enter_async_context(
        client.websocket(f"/rooms/{code}/ws", headers=headers, scope_base=scope))
    try:
        return await asyncio.wait_for(ws.receive(), 2.0)
    except WebsocketDisconnectError as closed:
        return closed.args[0]


def accepted(frame: str | int) -> bool:
    """An admitted socket's first frame is the member list."""
    return isinstance(frame, str) and 'id="members"' in frame


async def test_socket_over_the_session_limit_is_closed_with_1008(make_app):
    app = await make_app(sockets_per_user=2)
    ann, bob = app.test_client(), app.test_client()
    code = await join_room(ann, "Ann")
    await join_room(bob, "Bob", code)
    async with AsyncExitStack() as stack:
        tab = await stack.enter_async_context(
            ann.websocket(f"/rooms/{code}/ws", headers={"Origin": ORIGIN}))
        assert accepted(await asyncio.wait_for(tab.receive(), 2.0))
        assert accepted(await first_frame(stack, ann, code))
        assert await first_frame(stack, ann, code) == 1008
        assert accepted(await first_frame(stack, bob, code))  # another session is fine
        await tab.disconnect()  # the tab is closed

        async def place_again() -> bool:
            return accepted(await first_frame(stack, ann, code))

        await eventually(place_again, "a place after closing a tab")


async def test_socket_over_the_address_limit_is_closed_with_1008(make_app):
    app = await make_app(sockets_per_address=2, proxy_hops=1)
    proxy = ("10.0.0.1", 40000)
    ann, bob, cid = app.test_client(), app.test_client(), app.test_client()
    code = await join_room(ann, "Ann")
    await join_room(bob, "Bob", code)
    await join_room(cid, "Cid", code)
    async with AsyncExitStack() as stack:
        assert accepted(await first_frame(stack, ann, code, peer=proxy,
                                          forwarded_for="203.0.113.7"))
        assert accepted(await first_frame(stack, bob, code, peer=proxy,
                                          forwarded_for="203.0.113.7"))
        assert await first_frame(stack, cid, code, peer=proxy,
                                 forwarded_for="203.0.113.7") == 1008
        # Cid's own header in front of the proxy's entry changes nothing...
        assert await first_frame(stack, cid, code, peer=proxy,
                                 forwarded_for="198.51.100.9, 203.0.113.7") == 1008
        # ...and another client behind the same proxy is not held back.
        assert accepted(await first_frame(stack, cid, code, peer=proxy,
                                          forwarded_for="198.51.100.1"))
