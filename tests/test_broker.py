"""Both brokers behind one contract: fan-out by room, in order, the same string to every
subscriber; and for Redis, delivery across brokers (processes) and recovery after an
outage.

Redis tests use the server on 127.0.0.1:6379 and are skipped when it does not answer,
unless `CI` is set (then they fail). Tests that stop Redis start their own
`redis-server` on a free port.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable

import pytest

from chat.broker import Broker, RoomEvent
from chat.broker.memory import InProcessBroker, SingleProcessOnly
from chat.broker.redis import RedisBroker
from tests.kit import free_port, wait_until
from tests.kit.redis import REDIS_URL, require_redis

TIMEOUT = 5.0


class Inbox:
    """A subscriber that keeps what it receives."""

    def __init__(self) -> None:
        self.events: list[RoomEvent] = []

    def __call__(self, event: RoomEvent) -> None:
        self.events.append(event)

    @property
    def htmls(self) -> list[str]:
        return [event.html for event in self.events]


@pytest.fixture(params=["memory", "redis"])
async def make_broker(request) -> AsyncIterator[Callable[[], object]]:
    """Factory of started brokers of one kind; several Redis ones act as processes."""
    kind = request.param
    if kind == "redis":
        require_redis()
    brokers: list[Broker] = []

    async def make() -> Broker:
        if kind == "memory":
            assert not brokers, "one in-process broker per test"
            broker: Broker = InProcessBroker()
        else:
            broker = RedisBroker(REDIS_URL)
        await broker.start()
        brokers.append(broker)
        return broker

    make.kind = kind  # type: ignore[attr-defined]
    yield make
    for broker in brokers:
        await broker.stop()


def room() -> str:
    """A room name no other test (or process) uses."""
    return "T" + uuid.uuid4().hex[:10].upper()


async def test_events_reach_only_the_subscribers_of_their_room(make_broker):
    broker = await make_broker()
    here, there = room(), room()
    first, second, elsewhere = Inbox(), Inbox(), Inbox()
    await broker.subscribe(here, first)
    await broker.subscribe(here, second)
    await broker.subscribe(there, elsewhere)
    broker.publish(RoomEvent(here, "<p>hello</p>", 1))
    broker.publish(RoomEvent(there, "<p>other</p>", 2))
    await wait_until(lambda: len(first.events) == 1 and len(second.events) == 1
                     and len(elsewhere.events) == 1)
    await asyncio.sleep(0.1)  # nothing more arrives
    assert first.htmls == second.htmls == ["<p>hello</p>"]
    assert first.events[0].message_id == 1
    assert elsewhere.htmls == ["<p>other</p>"]


async def test_order_is_kept_for_500_events(make_broker):
    broker = await make_broker()
    code = room()
    inbox = Inbox()
    await broker.subscribe(code, inbox)
    for i in range(500):
        broker.publish(RoomEvent(code, f"<p>{i}</p>", i + 1))
    await wait_until(lambda: len(inbox.events) >= 500)
    await asyncio.sleep(0.1)
    assert [event.message_id for event in inbox.events] == list(range(1, 501))


async def test_unsubscribe_stops_delivery(make_broker):
    broker = await make_broker()
    code = room()
    leaving, staying = Inbox(), Inbox()
    await broker.subscribe(code, leaving)
    await broker.subscribe(code, staying)
    broker.publish(RoomEvent(code, "before"))
    await wait_until(lambda: len(leaving.events) == 1 and len(staying.events) == 1)
    await broker.unsubscribe(code, leaving)
    broker.publish(RoomEvent(code, "after"))
    await wait_until(lambda: len(staying.events) == 2)
    await broker.unsubscribe(code, staying)  # the last one: the channel goes too
    broker.publish(RoomEvent(code, "nobody"))
    await asyncio.sleep(0.2)
    assert leaving.htmls == ["before"]
    assert staying.htmls == ["before", "after"]


async def test_every_local_subscriber_gets_the_same_string_object(make_broker):
    broker = await make_broker()
    code = room()
    inboxes = [Inbox() for _ in range(5)]
    for inbox in inboxes:
        await broker.subscribe(code, inbox)
    broker.publish(RoomEvent(code, "<article>" + "x" * 1000 + "</article>", 7))
    await wait_until(lambda: all(inbox.events for inbox in inboxes))
    first = inboxes[0].events[0].html
    assert all(inbox.events[0].html is first for inbox in inboxes)


async def test_healthy_and_recovery_callback_registration(make_broker):
    broker = await make_broker()
    broker.on_recovered(lambda: None)
    assert broker.healthy


# Redis only ---------------------------------------------------------------------------


async def test_events_cross_brokers_in_one_order_everywhere():
    require_redis()
    one, two = RedisBroker(REDIS_URL), RedisBroker(REDIS_URL)
    await one.start()
    await two.start()
    try:
        code = room()
        on_one, on_two = Inbox(), Inbox()
        await one.subscribe(code, on_one)
        await two.subscribe(code, on_two)
        for i in range(200):  # interleaved from both "processes"
            (one if i % 2 else two).publish(RoomEvent(code, f"<p>{i}</p>", i))
        await wait_until(lambda: len(on_one.events) == 200 and len(on_two.events) == 200)
        await asyncio.sleep(0.1)
        assert on_one.htmls == on_two.htmls  # one order, each once
        assert sorted(on_one.htmls) == sorted(f"<p>{i}</p>" for i in range(200))
        # Each process's own events stay in the order it published them.
        mine = [e.message_id for e in on_two.events if e.message_id % 2]
        assert mine == sorted(mine)
    finally:
        await one.stop()
        await two.stop()


async def test_outage_delivers_locally_then_recovers_and_calls_back(redis_server):
    broker, other = RedisBroker(redis_server.url), RedisBroker(redis_server.url)
    await broker.start()
    await other.start()
    recovered = asyncio.Event()
    broker.on_recovered(recovered.set)
    code = room()
    inbox, remote = Inbox(), Inbox()
    await broker.subscribe(code, inbox)
    await other.subscribe(code, remote)
    try:
        broker.publish(RoomEvent(code, "before", 1))
        await wait_until(lambda: inbox.htmls == ["before"] and remote.htmls == ["before"])

        redis_server.stop()
        await wait_until(lambda: not broker.healthy and not other.healthy)
        broker.publish(RoomEvent(code, "during", 2))  # same process: still delivered
        assert inbox.htmls == ["before", "during"]

        redis_server.start()
        await asyncio.wait_for(recovered.wait(), 15)
        assert broker.healthy
        await wait_until(lambda: other.healthy, 15)
        broker.publish(RoomEvent(code, "after", 3))
        await wait_until(lambda: inbox.htmls[-1:] == ["after"] and remote.htmls[-1:] == ["after"])
        await asyncio.sleep(0.1)
        assert inbox.htmls == ["before", "during", "after"]
        assert remote.htmls == ["before", "after"]  # the gap is caught up from the store
    finally:
        await broker.stop()
        await other.stop()


async def test_redis_broker_starts_degraded_when_redis_is_down():
    broker = RedisBroker(f"redis://127.0.0.1:{free_port()}/0")
    await broker.start()
    try:
        assert not broker.healthy
        inbox = Inbox()
        await broker.subscribe("ROOM", inbox)
        broker.publish(RoomEvent("ROOM", "local"))
        assert inbox.htmls == ["local"]
    finally:
        await broker.stop()


# In-process only ----------------------------------------------------------------------


async def test_in_process_broker_serves_one_process_per_database(tmp_path):
    lock = tmp_path / "chat.db.broker.lock"
    first, second = InProcessBroker(lock), InProcessBroker(lock)
    await first.start()
    with pytest.raises(SingleProcessOnly, match="CHAT_BROKER_URL"):
        await second.start()
    await first.stop()
    await second.start()  # free again once the first stopped
    await second.stop()
