"""Presence: users counted once however many connections (and processes) they use,
one enter and one leave announcement each, the leave grace period, and users of a
crashed process reaped after the entry TTL.

RedisPresence tests need Redis on 127.0.0.1:6379 (skipped without it, failing on CI).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable

import pytest
import redis.asyncio

from chat.presence import Presence
from chat.presence.local import LocalPresence
from chat.presence.redis import RedisPresence
from chat.presence.redis_upkeep import ROOMS_KEY
from tests.kit import free_port, wait_until
from tests.kit.redis import REDIS_URL, require_redis

GRACE = 0.2


class Departures:
    """Records `on_left` calls, possibly from several presences."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []

    async def __call__(self, room: str, user_id: str, name: str) -> None:
        self.calls.append((room, user_id, name))


@pytest.fixture
def room() -> str:
    return "T" + uuid.uuid4().hex[:10].upper()


@pytest.fixture
async def cleanup_redis(room: str) -> AsyncIterator[None]:
    yield
    client = redis.asyncio.Redis.from_url(REDIS_URL)
    await client.delete(f"chat:presence:{room}", f"chat:names:{room}")
    await client.srem(ROOMS_KEY, room)
    await client.aclose()


@pytest.fixture
async def make_presence(request, cleanup_redis) -> AsyncIterator[Callable[..., object]]:
    """Factory of started presences sharing one `Departures`; for Redis each is one
    "process" (its own process id) on the same Redis."""
    kind = getattr(request, "param", "redis")
    if kind == "redis":
        require_redis()
    departures = Departures()
    made: list[Presence] = []

    async def make(**options: object) -> Presence:
        presence: Presence
        if kind == "local":
            presence = LocalPresence(GRACE, departures)
        else:
            presence = RedisPresence(REDIS_URL, GRACE, departures, **options)
        await presence.start()
        made.append(presence)
        return presence

    make.departures = departures  # type: ignore[attr-defined]
    yield make
    for presence in made:
        await presence.stop()


both = pytest.mark.parametrize("make_presence", ["local", "redis"], indirect=True)


@both
async def test_first_connection_arrives_and_the_last_leaves_after_the_grace(make_presence, room):
    presence = await make_presence()
    assert (await presence.arrive(room, "u1", "Ann")).entered
    assert not (await presence.arrive(room, "u1", "Ann")).entered  # second tab
    assert (await presence.arrive(room, "u2", "Bob")).entered
    assert await presence.count(room) == 2
    assert await presence.members(room) == {"u1": "Ann", "u2": "Bob"}
    assert await presence.has(room, "u1")

    await presence.depart(room, "u1")
    await presence.depart(room, "u1")
    assert await presence.count(room) == 2  # still there during the grace period
    await wait_until(lambda: len(make_presence.departures.calls) == 1)
    assert make_presence.departures.calls == [(room, "u1", "Ann")]
    assert await presence.members(room) == {"u2": "Bob"}
    assert not await presence.has(room, "u1")


@both
async def test_coming_back_within_the_grace_neither_leaves_nor_enters(make_presence, room):
    presence = await make_presence()
    assert (await presence.arrive(room, "u1", "Ann")).entered
    await presence.depart(room, "u1")
    await asyncio.sleep(GRACE / 4)
    assert not (await presence.arrive(room, "u1", "Ann")).entered
    await asyncio.sleep(GRACE * 2)
    assert make_presence.departures.calls == []
    assert await presence.members(room) == {"u1": "Ann"}


async def test_user_on_two_processes_counts_once_and_is_announced_once(make_presence, room):
    one, two = await make_presence(), await make_presence()
    assert one.proc_id != two.proc_id
    arrived = await asyncio.gather(one.arrive(room, "u1", "Ann"), two.arrive(room, "u1", "Ann"))
    assert sorted(a.entered for a in arrived) == [False, True]  # exactly one "has entered"
    assert (await one.arrive(room, "u2", "Bob")).entered
    for presence in (one, two):
        assert await presence.count(room) == 2
        assert await presence.members(room) == {"u1": "Ann", "u2": "Bob"}

    await one.depart(room, "u1")
    await asyncio.sleep(GRACE * 2)
    assert make_presence.departures.calls == []  # still connected to the other process
    assert await one.has(room, "u1")

    await two.depart(room, "u1")
    await wait_until(lambda: make_presence.departures.calls != [])
    await asyncio.sleep(GRACE)
    assert make_presence.departures.calls == [(room, "u1", "Ann")]  # exactly one "has left"
    assert await one.members(room) == await two.members(room) == {"u2": "Bob"}


async def test_leaving_two_processes_at_once_is_announced_once(make_presence, room):
    one, two = await make_presence(), await make_presence()
    await one.arrive(room, "u1", "Ann")
    await two.arrive(room, "u1", "Ann")
    await asyncio.gather(one.depart(room, "u1"), two.depart(room, "u1"))
    await wait_until(lambda: make_presence.departures.calls != [])
    await asyncio.sleep(GRACE)
    assert make_presence.departures.calls == [(room, "u1", "Ann")]
    assert await one.count(room) == 0


async def test_users_of_a_crashed_process_are_reaped_after_the_ttl(make_presence, room):
    fast = {"ttl": 1.0, "heartbeat": 0.3, "reap_every": 0.2}
    survivor, doomed = await make_presence(**fast), await make_presence(**fast)
    await survivor.arrive(room, "u1", "Ann")
    assert (await doomed.arrive(room, "u2", "Bob")).entered
    assert not (await doomed.arrive(room, "u1", "Ann")).entered  # Ann is on both
    await asyncio.sleep(1.5)  # heartbeats keep live entries past the TTL
    assert await survivor.members(room) == {"u1": "Ann", "u2": "Bob"}
    assert make_presence.departures.calls == []

    doomed._kill()  # no more heartbeats, no cleanup: as if the process died
    await wait_until(lambda: make_presence.departures.calls != [], 15)
    await asyncio.sleep(0.5)
    assert make_presence.departures.calls == [(room, "u2", "Bob")]  # Ann is still on survivor
    assert await survivor.members(room) == {"u1": "Ann"}
    assert await survivor.count(room) == 1


async def test_falls_back_to_this_process_when_redis_is_down(room):
    departures = Departures()
    presence = RedisPresence(f"redis://127.0.0.1:{free_port()}/0", GRACE, departures)
    await presence.start()
    try:
        assert (await presence.arrive(room, "u1", "Ann")).entered
        assert await presence.members(room) == {"u1": "Ann"}
        assert await presence.count(room) == 1
        await presence.depart(room, "u1")
        await wait_until(lambda: departures.calls == [(room, "u1", "Ann")])
    finally:
        await presence.stop()


@both
async def test_rejoining_under_a_new_name_renames_without_leaving(make_presence, room):
    presence = await make_presence()
    assert (await presence.arrive(room, "u1", "Zed Typo")).entered
    await presence.depart(room, "u1")
    arrival = await presence.arrive(room, "u1", "Zed")  # within the grace period
    assert not arrival.entered
    assert arrival.renamed_from == "Zed Typo"
    assert await presence.members(room) == {"u1": "Zed"}
    await asyncio.sleep(GRACE * 2)
    assert make_presence.departures.calls == []


async def test_a_new_name_on_another_process_is_a_rename(make_presence, room):
    one, two = await make_presence(), await make_presence()
    assert (await one.arrive(room, "u1", "Zed Typo")).entered
    arrival = await two.arrive(room, "u1", "Zed")
    assert (arrival.entered, arrival.renamed_from) == (False, "Zed Typo")
    assert await one.members(room) == await two.members(room) == {"u1": "Zed"}


@both
async def test_members_held_across_a_restart_come_back_unannounced(make_presence, room):
    before = await make_presence()
    await before.arrive(room, "u1", "Ann")
    await before.arrive(room, "u2", "Bob")
    held = before.held()
    assert {(h.room, h.user_id, h.name) for h in held} == {(room, "u1", "Ann"), (room, "u2", "Bob")}
    await before.stop()

    after = await make_presence()
    assert len(await after.restore(held)) == 2
    assert await after.members(room) == {"u1": "Ann", "u2": "Bob"}
    assert not (await after.arrive(room, "u1", "Ann")).entered  # back within the grace
    await wait_until(lambda: make_presence.departures.calls != [])
    await asyncio.sleep(GRACE)
    # Bob did not come back: he leaves, once, and the list says so.
    assert make_presence.departures.calls == [(room, "u2", "Bob")]
    assert await after.members(room) == {"u1": "Ann"}


async def test_a_member_announced_gone_meanwhile_is_not_taken_back(make_presence, room):
    fast = {"ttl": 0.5, "heartbeat": 0.2, "reap_every": 0.2}
    survivor, doomed = await make_presence(**fast), await make_presence(**fast)
    await doomed.arrive(room, "u1", "Ann")
    held = doomed.held()
    doomed._kill()
    await wait_until(lambda: make_presence.departures.calls == [(room, "u1", "Ann")],
                     15)

    restarted = await make_presence(**fast)
    assert await restarted.restore(held) == []
    assert await survivor.members(room) == {}
