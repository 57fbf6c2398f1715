"""Rate limits: messages per user, failed joins and room creations per client address.

Counting is done by the `limits` library (moving windows, in memory per process); a
limit whose setting is `off` always allows.
"""

from __future__ import annotations

from dataclasses import dataclass

from limits import RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter

from chat.settings import Rate, Settings


class Limit:
    def __init__(self, limiter: MovingWindowRateLimiter, rate: Rate | None, name: str) -> None:
        self._limiter = limiter
        self._item = (
            None
            if rate is None
            else RateLimitItemPerSecond(rate.count, rate.seconds, namespace=name)
        )

    async def hit(self, key: str) -> bool:
        """Count one event for `key`; False when it is over the limit."""
        return self._item is None or await self._limiter.hit(self._item, key)

    async def exhausted(self, key: str) -> bool:
        """True when another event for `key` would be over the limit (counts nothing)."""
        return self._item is not None and not await self._limiter.test(self._item, key)


@dataclass(frozen=True, slots=True)
class RateLimits:
    messages: Limit
    failed_joins: Limit
    creations: Limit

    @classmethod
    def from_settings(cls, settings: Settings, storage: Storage | None = None) -> RateLimits:
        limiter = MovingWindowRateLimiter(storage or MemoryStorage())
        return cls(
            messages=Limit(limiter, settings.message_rate, "messages"),
            failed_joins=Limit(limiter, settings.join_fail_rate, "failed-joins"),
            creations=Limit(limiter, settings.create_rate, "creations"),
        )
