"""Rate limits: off means off, counts per key, and with a broker they are shared by every
process — falling back to per-process counting while Redis is unreachable."""

from __future__ import annotations

import uuid

from chat.ratelimits import RateLimits
from chat.settings import Rate, load_settings
from tests.kit import free_port
from tests.kit.redis import REDIS_URL, require_redis

THREE_A_MINUTE = Rate(3, 60)


def limits(broker_url: str = "", rate: Rate | None = THREE_A_MINUTE) -> RateLimits:
    return RateLimits.from_settings(load_settings({}, broker_url=broker_url, message_rate=rate))


async def hits(limit, key: str, times: int) -> list[bool]:
    return [await limit.hit(key) for _ in range(times)]


async def test_a_limit_allows_its_count_per_key_then_refuses():
    messages = limits().messages
    assert await hits(messages, "ann", 4) == [True, True, True, False]
    assert await messages.exhausted("ann")
    assert await hits(messages, "bob", 1) == [True]  # another key has its own count


async def test_an_off_limit_always_allows():
    messages = limits(rate=None).messages
    assert await hits(messages, "ann", 50) == [True] * 50
    assert not await messages.exhausted("ann")


async def test_with_a_broker_two_processes_share_one_count():
    require_redis()
    first, second = limits(REDIS_URL).messages, limits(REDIS_URL).messages
    key = uuid.uuid4().hex
    assert [await first.hit(key), await second.hit(key), await first.hit(key)] == [True] * 3
    assert await second.hit(key) is False


async def test_unreachable_redis_falls_back_to_counting_per_process(caplog):
    messages = limits(f"redis://127.0.0.1:{free_port()}/0").messages
    assert await hits(messages, "ann", 4) == [True, True, True, False]
    assert "counting per process" in caplog.text
