"""Talking to Redis (`CHAT_BROKER_URL`), for fan-out, presence, rate limits and socket
counts: one way to connect, the errors that mean "unreachable", a URL safe to log, and
the Lua scripts shipped as files of their package.

Clients fail fast instead of retrying by themselves: a silent reconnect would hide a gap
in delivery, which only the caller can repair (each caller falls back to this process's
own view while Redis is away, and says so once).
"""

from __future__ import annotations

import asyncio
from importlib import resources

from limits.aio.storage import RedisStorage
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

CONNECT_TIMEOUT = 2.0
COMMAND_TIMEOUT = 5.0
# What a command raises when Redis cannot be reached or stops answering.
REDIS_ERRORS = (RedisError, OSError, asyncio.TimeoutError)


def connect(url: str, **options: object) -> Redis:
    """A client that fails fast (no retries of its own)."""
    return Redis.from_url(
        url,
        socket_connect_timeout=CONNECT_TIMEOUT,
        socket_timeout=COMMAND_TIMEOUT,
        retry=Retry(NoBackoff(), 0),
        **options,
    )


def rate_limit_storage(url: str) -> RedisStorage:
    """Where the `limits` library keeps shared counts; its errors arrive wrapped as
    `limits.errors.StorageError`."""
    return RedisStorage(f"async+{url}", implementation="redispy", wrap_exceptions=True)


def safe_url(url: str) -> str:
    """The URL without a password, for the log."""
    scheme, sep, rest = url.partition("://")
    _, at, host = rest.rpartition("@")
    return f"{scheme}{sep}{host}" if at else url


def describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def lua(package: str, name: str) -> str:
    """The script `lua/<name>.lua` of `package`, read once at start."""
    return (resources.files(package) / "lua" / f"{name}.lua").read_text()
