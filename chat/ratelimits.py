"""Rate limits: messages per user, failed joins and room creations per client address.

Counting is done by the `limits` library (moving windows). With `CHAT_BROKER_URL` the
counts live in Redis, shared by every process; while Redis cannot be reached each
process counts on its own rather than refusing or letting everything through. A limit
whose setting is `off` always allows.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

from limits import RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError

from chat import redis_client
from chat.settings import Rate, Settings

log = logging.getLogger("chat")


class _Counters:
    """The shared limiter when there is one, this process's own as the fallback."""

    def __init__(self, shared_url: str) -> None:
        self.local = MovingWindowRateLimiter(MemoryStorage())
        self.shared = None
        if shared_url:
            self.shared = MovingWindowRateLimiter(redis_client.rate_limit_storage(shared_url))
        self._warned = False

    def falling_back(self, error: StorageError) -> MovingWindowRateLimiter:
        if not self._warned:
            log.warning("rate limits: redis unreachable (%s); counting per process", error)
            self._warned = True
        return self.local

    def recovered(self) -> None:
        if self._warned:
            log.info("rate limits: shared counting again")
            self._warned = False


class Limit:
    def __init__(self, counters: _Counters, rate: Rate | None, name: str) -> None:
        self._counters = counters
        self._item = (
            None
            if rate is None
            else RateLimitItemPerSecond(rate.count, rate.seconds, namespace=name)
        )

    async def hit(self, key: str) -> bool:
        """Count one event for `key`; False when it is over the limit."""
        if self._item is None:
            return True
        return await self._ask("hit", key)

    async def exhausted(self, key: str) -> bool:
        """True when another event for `key` would be over the limit (counts nothing)."""
        if self._item is None:
            return False
        return not await self._ask("test", key)

    async def retry_after(self, key: str) -> int:
        """Whole seconds until `key` may have another event (at least 1)."""
        if self._item is None:
            return 1
        counters = self._counters
        limiter = counters.shared or counters.local
        try:
            stats = await limiter.get_window_stats(self._item, key)
        except StorageError:
            stats = await counters.local.get_window_stats(self._item, key)
        return max(1, math.ceil(stats.reset_time - time.time()))

    async def _ask(self, question: str, key: str) -> bool:
        counters = self._counters
        if counters.shared is not None:
            try:
                answer = await getattr(counters.shared, question)(self._item, key)
            except StorageError as error:
                limiter = counters.falling_back(error)
            else:
                counters.recovered()
                return answer
        else:
            limiter = counters.local
        return await getattr(limiter, question)(self._item, key)


@dataclass(frozen=True, slots=True)
class RateLimits:
    messages: Limit
    failed_joins: Limit
    creations: Limit

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimits:
        counters = _Counters(settings.broker_url)
        return cls(
            messages=Limit(counters, settings.message_rate, "messages"),
            failed_joins=Limit(counters, settings.join_fail_rate, "failed-joins"),
            creations=Limit(counters, settings.create_rate, "creations"),
        )
